/**
 * Genesis dataset benchmark on the whole of nlp-corpus with a vocab-8192 tokenizer: build
 * (tokenize + hash + write), verify, assignment and batch throughput.
 *
 * Run: pnpm --filter @neuroshard/genesis-data bench   (after `tsc -b packages/genesis-data`)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { trainBpe } from '@neuroshard/tokenizer'
import { assignShards, batches, buildGenesisDataset, loadDataset, readCorpus, verifyDataset } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'ns-genesis-bench-'))
const corpus = await readCorpus('nlp-corpus')
const textBytes = corpus.documents.reduce((a, d) => a + Buffer.byteLength(d), 0)

let t = performance.now()
const tokenizer = trainBpe(corpus.documents, { vocabSize: 8192 })
const trainMs = performance.now() - t

t = performance.now()
const { manifest } = await buildGenesisDataset({ source: 'nlp-corpus', tokenizer, outDir: dir })
const buildMs = performance.now() - t
const shardBytes = manifest.shards.reduce((a, s) => a + s.bytes, 0)
const tokens = manifest.shards.reduce((a, s) => a + s.tokens, 0)

t = performance.now()
await verifyDataset(dir)
const verifyMs = performance.now() - t

t = performance.now()
const ASSIGN = 2000
for (let p = 0; p < ASSIGN; p++) assignShards(manifest, `12D3KooWPeer${p}`, 1, 4)
const assignMs = performance.now() - t

const { shards } = await loadDataset(dir, { split: 'train' })
t = performance.now()
let batchTokens = 0
for (const b of batches(shards, { seqLen: 512, batchSize: 8, seed: 1 })) batchTokens += b.input.length
const batchMs = performance.now() - t

const result = {
  corpus: { documents: corpus.documents.length, textBytes },
  tokenizerTrainMs: Math.round(trainMs),
  build: { ms: Math.round(buildMs), textMBps: +(textBytes / 1e6 / (buildMs / 1000)).toFixed(2), shards: manifest.shards.length, tokens, shardBytes },
  verify: { ms: Math.round(verifyMs), MBps: +(shardBytes / 1e6 / (verifyMs / 1000)).toFixed(1) },
  assign: { shards: manifest.shards.filter(s => s.split === 'train').length, perCallMs: +(assignMs / ASSIGN).toFixed(3) },
  batches: { seqLen: 512, batchSize: 8, dtype: 'int64', tokensPerSecond: Math.round(batchTokens / (batchMs / 1000)) },
  manifestHash: manifest.manifestHash,
  node: process.version
}
const rows: Array<[string, string]> = [
  ['corpus', `${corpus.documents.length} documents, ${(textBytes / 1e6).toFixed(2)} MB`],
  ['tokenizer training (vocab 8192)', `${(trainMs / 1000).toFixed(2)} s`],
  ['build (tokenize, split, hash, write)', `${(buildMs / 1000).toFixed(2)} s (${result.build.textMBps} MB/s of text), ${manifest.shards.length} shards, ${tokens} tokens`],
  ['verify every shard + manifest', `${verifyMs.toFixed(0)} ms (${result.verify.MBps} MB/s)`],
  [`assignShards (${result.assign.shards} train shards, k = 4)`, `${result.assign.perCallMs} ms per call`],
  ['batches (seqLen 512, batch 8, int64)', `${(result.batches.tokensPerSecond / 1e6).toFixed(1)} M tokens/s`],
  ['manifestHash', manifest.manifestHash]
]
const w = Math.max(...rows.map(r => r[0].length))
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`)
const outDir = new URL('../../bench-results/', import.meta.url)
mkdirSync(outDir, { recursive: true })
writeFileSync(new URL('genesis.json', outDir), JSON.stringify(result, null, 2) + '\n')
rmSync(dir, { recursive: true, force: true })
