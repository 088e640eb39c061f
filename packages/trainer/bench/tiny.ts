/**
 * Benchmark: train the `tiny` preset on the genesis data (nlp-corpus, BPE vocabulary 4096) for a
 * wall-clock budget (default 10 minutes), then report the validation-loss curve, tokens/s, the gap to
 * the unigram entropy of the validation tokens, and a generated sample.
 *
 *   node_modules/.bin/tsc -b packages/trainer && node_modules/.bin/node packages/trainer/dist/bench/tiny.js
 *
 * Env: NEUROSHARD_BENCH_SECONDS (default 600), NEUROSHARD_BENCH_THREADS (default all cores).
 */
import { existsSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildGenesisDataset, loadDataset, readCorpus, readDatasetTokenizerJson, readManifest } from '@neuroshard/genesis-data'
import { countParameters, modelParameters, preset } from '@neuroshard/model'
import { BpeTokenizer, trainBpe } from '@neuroshard/tokenizer'
import { TextGenerator, samplingRng, train, unigramEntropy } from '../src/index.js'
import type { EvalPoint } from '../src/index.js'

const here = dirname(fileURLToPath(import.meta.url))
const resultsDir = join(here, '..', '..', 'bench-results')
const work = join(resultsDir, 'tiny-run')
const seconds = Number(process.env.NEUROSHARD_BENCH_SECONDS ?? 600)
const threads = process.env.NEUROSHARD_BENCH_THREADS !== undefined ? Number(process.env.NEUROSHARD_BENCH_THREADS) : undefined
const VOCAB = 4096

await mkdir(work, { recursive: true })
const genesis = join(work, 'genesis')
let t0 = performance.now()
if (!existsSync(join(genesis, 'manifest.json'))) {
  const corpus = await readCorpus('nlp-corpus')
  const tokenizer = trainBpe(corpus.documents, { vocabSize: VOCAB })
  await buildGenesisDataset({ source: 'nlp-corpus', tokenizer, outDir: genesis })
}
const manifest = await readManifest(genesis)
const tokenizer = BpeTokenizer.fromTokenizerJson(await readDatasetTokenizerJson(genesis, manifest))
const trainShards = (await loadDataset(genesis, { split: 'train' })).shards.map(s => s.tokens)
const valShards = (await loadDataset(genesis, { split: 'validation' })).shards.map(s => s.tokens)
const dataSeconds = (performance.now() - t0) / 1000
const uni = unigramEntropy(valShards, tokenizer.vocabSize, trainShards)
const trainTokens = trainShards.reduce((a, s) => a + s.length, 0)
console.log(`data: ${trainTokens} train / ${uni.tokens} validation tokens, vocab ${tokenizer.vocabSize} (${dataSeconds.toFixed(1)} s)`)
console.log(`unigram: validation entropy ${uni.entropy.toFixed(4)} nats/token; cross-entropy under the train unigram ${uni.crossEntropy?.toFixed(4)}`)

const config = { ...preset('tiny'), vocabSize: tokenizer.vocabSize }
const ckpt = join(work, 'checkpoints')
await rm(ckpt, { recursive: true, force: true })
t0 = performance.now()
let lastLog = 0
const result = await train({
  config,
  train: trainShards,
  validation: valShards,
  dataId: manifest.manifestHash,
  seqLen: 128,
  batchSize: 16,
  timeBudgetMs: seconds * 1000,
  peakLr: 5e-3,
  warmupSteps: 100,
  evalEvery: 50,
  evalBatches: 16,
  checkpointEvery: 200,
  checkpointDir: ckpt,
  ...(threads !== undefined ? { threads } : {}),
  onProgress: (e) => {
    if (e.type === 'eval') console.log(`  step ${String(e.step).padStart(5)}  val ${e.loss.toFixed(4)}  ${(e.elapsedMs / 1000).toFixed(0)} s`)
    if (e.type === 'schedule') console.log(`  schedule fixed: ${e.totalSteps} steps (${e.secondsPerStep.toFixed(3)} s/step)`)
    if (e.type === 'step' && performance.now() - lastLog > 30_000) {
      lastLog = performance.now()
      console.log(`  step ${e.step}/${e.totalSteps ?? '?'} loss ${e.loss.toFixed(3)} ${e.tokensPerSecond.toFixed(0)} tok/s`)
    }
  }
})
const wall = (performance.now() - t0) / 1000
const final = result.evals.at(-1) as EvalPoint
const best = Math.min(...result.evals.map(e => e.loss))
const gap = (uni.crossEntropy as number) - final.loss

// a sample, as it comes out
const gen = await TextGenerator.create({ config, parameters: result.parameters, threads: 1 })
const samples: Array<{ prompt: string, text: string, options: Record<string, number> }> = []
for (const prompt of ['The', 'In the morning', 'She said that']) {
  const s = await gen.session()
  const ids: number[] = []
  const options = { temperature: 0.8, topK: 40, topP: 0.95, maxTokens: 60, seed: 1 }
  for await (const id of s.generate([tokenizer.eosId as number, ...tokenizer.encode(prompt)], { ...options, random: samplingRng(1), stopTokens: [tokenizer.eosId as number] })) ids.push(id)
  await s.close()
  samples.push({ prompt, text: prompt + tokenizer.decode(ids, { skipSpecialTokens: true }), options })
}
await gen.close()

const rows: Array<[string, string]> = [
  ['model', `tiny (${countParameters(modelParameters(config))} parameters, vocab ${config.vocabSize})`],
  ['batch', '16 × 128 tokens, AdamW, warmup 100 + cosine, peak lr 5e-3'],
  ['budget / wall', `${seconds} s / ${wall.toFixed(0)} s (incl. evals and checkpoints)`],
  ['steps', `${result.step} (schedule ${result.totalSteps})`],
  ['training tokens', `${result.tokens} (${(result.tokens / trainTokens).toFixed(2)} epochs)`],
  ['tokens/s (training steps)', result.tokensPerSecond.toFixed(0)],
  ['validation loss: start → end (best)', `${result.evals[0].loss.toFixed(4)} → ${final.loss.toFixed(4)} (${best.toFixed(4)}) nats/token`],
  ['unigram cross-entropy of validation (train unigram)', `${uni.crossEntropy?.toFixed(4)} nats/token`],
  ['unigram entropy of validation itself', `${uni.entropy.toFixed(4)} nats/token`],
  ['gap below unigram (goal ≥ 1 nat)', `${gap.toFixed(4)} nats`]
]
const w = Math.max(...rows.map(r => r[0].length))
console.log('\n| measurement | result |\n|---|---|')
for (const [k, v] of rows) console.log(`| ${k.padEnd(w)} | ${v} |`)
console.log('\nvalidation curve (step: loss):')
console.log(result.evals.map(e => `${e.step}: ${e.loss.toFixed(3)}`).join(', '))
for (const s of samples) console.log(`\nsample (${JSON.stringify(s.options)}):\n${s.text}`)

await mkdir(resultsDir, { recursive: true })
await writeFile(join(resultsDir, 'tiny.json'), JSON.stringify({
  date: new Date().toISOString(),
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  loadavg: loadavg(),
  seconds,
  wallSeconds: wall,
  manifestHash: manifest.manifestHash,
  vocabSize: config.vocabSize,
  steps: result.step,
  totalSteps: result.totalSteps,
  tokens: result.tokens,
  tokensPerSecond: result.tokensPerSecond,
  unigram: uni,
  finalValidationLoss: final.loss,
  gapBelowUnigram: gap,
  evals: result.evals,
  samples
}, null, 2) + '\n')
