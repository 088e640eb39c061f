// Regenerates the genesis-data test vectors from corpus.jsonl with the reference implementation.
// Run from the repo root after `tsc -b packages/genesis-data`:
//   node_modules/.bin/node specs/genesis-data/vectors/generate.mjs
// The vectors are committed; packages/genesis-data/test/vectors.spec.ts replays them.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { trainBpe, BpeTokenizer } from '../../../packages/tokenizer/dist/src/index.js'
import { buildGenesisDataset, assignShards, windowOrder, ShuffleStream, documentSplit } from '../../../packages/genesis-data/dist/src/index.js'

const here = new URL('./', import.meta.url).pathname
const corpusPath = join(here, 'corpus.jsonl')
const docs = readFileSync(corpusPath, 'utf8').trim().split('\n').map(l => JSON.parse(l).text)
const tok = trainBpe(docs, { vocabSize: 320, minFrequency: 2 })
writeFileSync(join(here, 'tokenizer.json'), tok.toTokenizerJson())
const tokenizer = BpeTokenizer.fromTokenizerJson(readFileSync(join(here, 'tokenizer.json'), 'utf8'))
const settings = { shardTokens: 64, validationFraction: 0.25 }
const out = mkdtempSync(join(tmpdir(), 'ns-vectors-'))
const { manifest } = await buildGenesisDataset({ source: { files: [corpusPath] }, tokenizer, outDir: out, ...settings })
const rng = new ShuffleStream(7n)
const vectors = {
  description: 'corpus.jsonl + tokenizer.json built with these settings must give exactly this manifest; assignments and shuffle as listed',
  settings,
  documentSplits: docs.map(d => documentSplit(d, manifest.settings.validationThreshold)),
  documentTokens: docs.map(d => tokenizer.encode(d)),
  manifest,
  assignments: [
    { peerId: '12D3KooWGenesisPeerA', round: 0, k: 2 },
    { peerId: '12D3KooWGenesisPeerA', round: 1, k: 2 },
    { peerId: '12D3KooWGenesisPeerB', round: 0, k: 3 },
    { peerId: 'peer-c', round: '18446744073709551615', k: 100 }
  ].map(a => ({ ...a, shards: assignShards(manifest, a.peerId, BigInt(a.round), a.k) })),
  shuffle: {
    seed: '7',
    firstU32: Array.from({ length: 10 }, () => rng.nextU32()),
    windowOrder: { shardLengths: [10, 7, 1, 13], seqLen: 3, order: windowOrder([10, 7, 1, 13], 3, 7n) }
  }
}
writeFileSync(join(here, 'vectors.json'), JSON.stringify(vectors, null, 2) + '\n')
rmSync(out, { recursive: true, force: true })
console.log('shards', manifest.shards.length, 'manifestHash', manifest.manifestHash)
