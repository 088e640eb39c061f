import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BpeTokenizer } from '@neuroshard/tokenizer'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { assignShards, buildGenesisDataset, documentSplit, ShuffleStream, validateManifest, verifyDataset, windowOrder } from '../src/index.js'
import { tempDir } from './helpers.js'

const VECTORS = new URL('../../../specs/genesis-data/vectors/', import.meta.url).pathname

let tmp: Awaited<ReturnType<typeof tempDir>>
beforeEach(async () => { tmp = await tempDir() })
afterEach(async () => { await tmp.cleanup() })

describe('spec vectors (specs/genesis-data/vectors)', () => {
  it('rebuilds the exact manifest, shard hashes, splits, assignments and shuffle', async () => {
    const v = JSON.parse(await readFile(join(VECTORS, 'vectors.json'), 'utf8'))
    const tokenizer = await BpeTokenizer.load(join(VECTORS, 'tokenizer.json'))
    const corpusPath = join(VECTORS, 'corpus.jsonl')
    const docs = (await readFile(corpusPath, 'utf8')).trim().split('\n').map(l => JSON.parse(l).text as string)
    expect(docs.map(d => tokenizer.encode(d))).toEqual(v.documentTokens)
    expect(docs.map(d => documentSplit(d, v.manifest.settings.validationThreshold))).toEqual(v.documentSplits)

    const { manifest } = await buildGenesisDataset({ source: { files: [corpusPath] }, tokenizer, outDir: tmp.dir, ...v.settings })
    expect(manifest).toEqual(v.manifest)
    expect(validateManifest(v.manifest)).toEqual(v.manifest)
    await verifyDataset(tmp.dir)

    for (const a of v.assignments) expect(assignShards(v.manifest, a.peerId, BigInt(a.round), a.k)).toEqual(a.shards)
    const rng = new ShuffleStream(BigInt(v.shuffle.seed))
    expect(Array.from({ length: 10 }, () => rng.nextU32())).toEqual(v.shuffle.firstU32)
    const wo = v.shuffle.windowOrder
    expect(windowOrder(wo.shardLengths, wo.seqLen, BigInt(v.shuffle.seed))).toEqual(wo.order)
  })
})
