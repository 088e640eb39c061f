import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BpeTokenizer } from '@neuroshard/tokenizer'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { assignShards, buildGenesisDataset, documentSplit, loadShard, readCorpus, ShuffleStream, validateManifest, verifyDataset, windowOrder } from '../src/index.js'
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

  // manifest-*.json and shard-*.json are written by rejections.py (Python, from the spec text)
  const files = readdirSync(VECTORS).sort()
  const load = (f: string): any => JSON.parse(readFileSync(join(VECTORS, f), 'utf8'))

  it.each(files.filter(f => f.startsWith('manifest-')))('%s', (f) => {
    const v = load(f)
    if (v.error === undefined) expect(validateManifest(v.manifest)).toEqual(v.manifest)
    else expect(() => validateManifest(v.manifest)).toThrow(expect.objectContaining({ name: v.error }))
  })

  it.each(files.filter(f => f.startsWith('shard-')))('%s', async (f) => {
    const v = load(f)
    const manifest = typeof v.manifest === 'string' ? load(v.manifest).manifest : v.manifest
    await mkdir(join(tmp.dir, 'shards'))
    await writeFile(join(tmp.dir, 'shards', `${String(v.name)}.bin`), Buffer.from(v.shardHex, 'hex'))
    const run = async (): Promise<number[]> => Array.from((await loadShard(tmp.dir, v.name, manifest)).tokens)
    if (v.error === undefined) expect(await run()).toEqual(v.tokens)
    else await expect(run()).rejects.toThrow(expect.objectContaining({ name: v.error }))
  })

  it.each(files.filter(f => f.startsWith('assign-')))('%s', (f) => {
    const v = load(f)
    const manifest = load('vectors.json').manifest
    const run = (): string[] => assignShards(manifest, v.peerId, BigInt(v.round), v.k, { split: v.split })
    if (v.error === undefined) expect(run()).toEqual(v.shards)
    else expect(run).toThrow(expect.objectContaining({ name: v.error }))
  })

  it('nlp-corpus.json: the nlp-corpus source has the documents, order and source hash the spec gives', async () => {
    const v = load('nlp-corpus.json')
    const corpus = await readCorpus('nlp-corpus')
    expect(corpus.description).toEqual({ kind: 'nlp-corpus', package: v.package, version: v.version })
    expect(corpus.documents.length).toBe(v.documents)
    expect([corpus.documents[0], corpus.documents[1000], corpus.documents.at(-1)]).toEqual([v.first, v.document1000, v.last])
    const h = createHash('sha256')
    for (const d of corpus.documents) {
      const b = Buffer.from(d, 'utf8')
      const len = Buffer.alloc(4)
      len.writeUInt32LE(b.length)
      h.update(len).update(b)
    }
    expect(h.digest('hex')).toBe(v.sha256)
  })
})

// The independent Python checkers next to the vectors (written from the spec text) must agree with the files too.
const hasPython = spawnSync('python3', ['--version']).status === 0
describe('independent Python checkers', () => {
  it.skipIf(!hasPython)('specs/genesis-data/vectors/verify.py', () => {
    const r = spawnSync('python3', [new URL('../../../specs/', import.meta.url).pathname + 'genesis-data/vectors/verify.py'], { encoding: 'utf8', timeout: 120_000 })
    expect(r.status, r.stderr + r.stdout).toBe(0)
  })
  it.skipIf(!hasPython)('specs/genesis-data/vectors/rejections.py', () => {
    const r = spawnSync('python3', [new URL('../../../specs/', import.meta.url).pathname + 'genesis-data/vectors/rejections.py'], { encoding: 'utf8', timeout: 120_000 })
    expect(r.status, r.stderr + r.stdout).toBe(0)
  })
})
