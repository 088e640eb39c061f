/**
 * Example: train the `tiny` NeuroLLM from nothing, on your own machine.
 *
 * 1. take a few hundred sentences of `nlp-corpus` (real English, shipped on the npm registry),
 * 2. train a byte-level BPE tokenizer on them (`@neuroshard/tokenizer`),
 * 3. build a genesis dataset from them in a temporary directory (`@neuroshard/genesis-data`):
 *    content-addressed token shards + a manifest anyone can verify,
 * 4. load (and verify) the shards and train the `tiny` preset (`@neuroshard/model`, ≈ 0.1M parameters)
 *    for a few dozen steps with `@neuroshard/trainer` on onnxruntime (CPU),
 * 5. generate a few tokens from a prompt with the KV cache.
 *
 * At this budget (seconds of CPU, a few thousand tokens) the loss falls clearly but the generated text is
 * gibberish: that is expected. `neuroshard train` (packages/node) runs the same pipeline for as long as you
 * let it.
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-train-tiny start`
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { buildGenesisDataset, loadDataset, readCorpus, verifyDataset } from '@neuroshard/genesis-data'
import { preset, validateConfig } from '@neuroshard/model'
import { trainBpe } from '@neuroshard/tokenizer'
import { TextGenerator, samplingRng, train } from '@neuroshard/trainer'

const SENTENCES = 400
const VOCAB = 512
const STEPS = 60

export interface TrainTinyResult {
  vocabSize: number
  manifestHash: string
  trainTokens: number
  steps: number
  /** validation loss (nats/token) before the first step and after the last */
  lossBefore: number
  lossAfter: number
  /** the prompt, and the token ids / text generated after it */
  prompt: string
  generatedIds: number[]
  generatedText: string
  parameters: number
}

export async function main (log: (line: string) => void = console.log): Promise<TrainTinyResult> {
  const dir = await mkdtemp(join(tmpdir(), 'neuroshard-train-tiny-'))
  try {
    // --- 1. a few hundred sentences of real English --------------------------------------------------------
    const corpus = await readCorpus('nlp-corpus')
    const sentences = corpus.documents.filter(d => d.length > 40).slice(0, SENTENCES)
    // the genesis builder reads .txt files whose documents are separated by blank lines
    const textFile = join(dir, 'sentences.txt')
    await writeFile(textFile, sentences.join('\n\n') + '\n')
    log(`${sentences.length} sentences from nlp-corpus, e.g. "${sentences[0].slice(0, 60)}…"`)

    // --- 2. tokenizer: byte-level BPE, saved in the Hugging Face tokenizer.json format -------------------
    const tokenizer = trainBpe(sentences, { vocabSize: VOCAB })
    log(`BPE tokenizer with ${tokenizer.vocabSize} tokens; "the model" → ${JSON.stringify(tokenizer.encode('the model'))}`)

    // --- 3. genesis dataset: same text + tokenizer → same bytes and manifest hash on every machine --------
    const outDir = join(dir, 'genesis')
    const { manifest } = await buildGenesisDataset({ source: { files: [textFile] }, tokenizer, outDir, shardTokens: 4096, validationFraction: 0.1 })
    await verifyDataset(outDir) // re-hashes every shard against the manifest
    log(`genesis dataset ${manifest.manifestHash.slice(0, 16)}…: ${manifest.shards.length} shards`)

    // --- 4. train: load the (verified) shards of each split and run the training loop ----------------------
    const trainShards = (await loadDataset(outDir, { split: 'train' })).shards.map(s => s.tokens)
    const validationShards = (await loadDataset(outDir, { split: 'validation' })).shards.map(s => s.tokens)
    const trainTokens = trainShards.reduce((n, t) => n + t.length, 0)
    // the tiny preset, with the vocabulary of our tokenizer
    const config = validateConfig({ ...preset('tiny'), vocabSize: tokenizer.vocabSize })
    const result = await train({
      config,
      train: trainShards,
      validation: validationShards,
      steps: STEPS,
      seqLen: 64,
      batchSize: 8,
      peakLr: 1e-2,
      warmupSteps: 4,
      evalEvery: 0, // validate only at the start and the end
      evalBatches: 4,
      seed: 1,
      onProgress: (e) => {
        if (e.type === 'start') log(`training ${e.parameters.toLocaleString('en-US')} parameters on ${e.executionProvider}, ${e.tokensPerStep} tokens per step`)
        if (e.type === 'step' && e.step % 10 === 0) log(`  step ${e.step}/${e.totalSteps ?? '?'}: loss ${e.loss.toFixed(3)}, lr ${e.lr.toExponential(2)}`)
        if (e.type === 'eval') log(`  validation loss at step ${e.step}: ${e.loss.toFixed(3)}`)
      }
    })
    const lossBefore = result.evals[0].loss
    const lossAfter = result.evals[result.evals.length - 1].loss
    log(`trained ${result.step} steps in ${(result.elapsedMs / 1000).toFixed(1)} s: validation loss ${lossBefore.toFixed(3)} → ${lossAfter.toFixed(3)} ` +
      `(ln(vocab) = ${Math.log(tokenizer.vocabSize).toFixed(3)} is a uniform guess); weights ${result.contentHash.slice(0, 16)}…`)

    // --- 5. generate: prefill the prompt into the KV cache, then sample one token at a time --------------------
    const generator = await TextGenerator.create({ config, parameters: result.parameters })
    const prompt = 'The'
    const generatedIds: number[] = []
    try {
      const session = await generator.session()
      const promptIds = [...(tokenizer.eosId !== undefined ? [tokenizer.eosId] : []), ...tokenizer.encode(prompt)]
      for await (const id of session.generate(promptIds, { temperature: 0.8, topK: 40, maxTokens: 16, random: samplingRng(7) })) {
        generatedIds.push(id)
      }
      await session.close()
    } finally {
      await generator.close()
    }
    const generatedText = tokenizer.decode(generatedIds, { skipSpecialTokens: true })
    log(`generated after "${prompt}": ${JSON.stringify(generatedText)}`)
    log('(gibberish is expected after a few seconds of training on a few hundred sentences)')

    return {
      vocabSize: tokenizer.vocabSize,
      manifestHash: manifest.manifestHash,
      trainTokens,
      steps: result.step,
      lossBefore,
      lossAfter,
      prompt,
      generatedIds,
      generatedText,
      parameters: [...result.parameters.values()].reduce((n, p) => n + p.length, 0)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

// run only when executed directly (`node dist/src/index.js`), not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
