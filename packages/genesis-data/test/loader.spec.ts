import { readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildGenesisDataset, computeManifestHash, encodeShard, loadDataset, loadShard, readManifest, sha256Hex, verifyDataset } from '../src/index.js'
import type { GenesisManifest } from '../src/index.js'
import { sentences, smallTokenizer, tempDir, writeCorpusFiles } from './helpers.js'

let tmp: Awaited<ReturnType<typeof tempDir>>
let manifest: GenesisManifest
let outDir: string

beforeAll(async () => {
  tmp = await tempDir()
  const files = await writeCorpusFiles(tmp.dir, sentences(300))
  outDir = join(tmp.dir, 'ds')
  manifest = (await buildGenesisDataset({ source: { files }, tokenizer: smallTokenizer(), shardTokens: 1024, outDir })).manifest
})
afterAll(async () => { await tmp.cleanup() })

/** Run `fn` with one file temporarily modified */
async function withModified (path: string, modify: (b: Buffer) => Buffer | undefined, fn: () => Promise<void>): Promise<void> {
  const original = await readFile(path)
  const changed = modify(Buffer.from(original))
  if (changed === undefined) await rm(path)
  else await writeFile(path, changed)
  try {
    await fn()
  } finally {
    await writeFile(path, original)
  }
}

describe('loader', () => {
  it('loads verified shards and the whole dataset', async () => {
    const report = await verifyDataset(outDir)
    expect(report.shards).toBe(manifest.shards.length)
    expect(report.tokens).toBe(manifest.shards.reduce((a, s) => a + s.tokens, 0))
    const { shards } = await loadDataset(outDir, { split: 'train' })
    expect(shards.length).toBe(manifest.shards.filter(s => s.split === 'train').length)
    expect(shards[0].tokens).toBeInstanceOf(Uint16Array)
    expect(shards[0].split).toBe('train')
    const one = await loadDataset(outDir, { shards: [manifest.shards[1].hash] })
    expect(one.shards.map(s => s.hash)).toEqual([manifest.shards[1].hash])
  })

  it('a flipped byte anywhere in a shard is refused with ShardIntegrityError', async () => {
    const s = manifest.shards[0]
    const path = join(outDir, 'shards', `${s.hash}.bin`)
    for (const at of [0, 5, 11, 12, 500, s.bytes - 1]) {
      await withModified(path, b => { b[at] ^= 0x01; return b }, async () => {
        await expect(loadShard(outDir, s.hash, manifest)).rejects.toMatchObject({ name: 'ShardIntegrityError' })
        await expect(loadShard(outDir, s.hash)).rejects.toMatchObject({ name: 'ShardIntegrityError' })
        await expect(verifyDataset(outDir)).rejects.toMatchObject({ name: 'ShardIntegrityError' })
      })
    }
    await expect(loadShard(outDir, s.hash, manifest)).resolves.toBeDefined()
  })

  it('truncated and missing shards are typed errors', async () => {
    const s = manifest.shards[1]
    const path = join(outDir, 'shards', `${s.hash}.bin`)
    await withModified(path, b => b, async () => {
      await truncate(path, 100)
      await expect(loadShard(outDir, s.hash, manifest)).rejects.toMatchObject({ name: 'ShardIntegrityError' })
    })
    await withModified(path, () => undefined, async () => {
      await expect(loadShard(outDir, s.hash, manifest)).rejects.toMatchObject({ name: 'ShardNotFoundError' })
      await expect(loadDataset(outDir)).rejects.toMatchObject({ name: 'ShardNotFoundError' })
    })
    await expect(loadShard(outDir, 'a'.repeat(64), manifest)).rejects.toMatchObject({ name: 'ShardNotFoundError' })
    await expect(loadShard(outDir, '../manifest')).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(loadShard(outDir, s.hash.toUpperCase())).rejects.toMatchObject({ name: 'InvalidParametersError' })
  })

  it('a shard with a valid name but a malformed body or foreign ids is a ShardFormatError', async () => {
    const put = async (bytes: Uint8Array): Promise<string> => {
      const h = sha256Hex(bytes)
      await writeFile(join(outDir, 'shards', `${h}.bin`), bytes)
      return h
    }
    const good = encodeShard([1, 2, 3], 2)
    const badMagic = good.slice(); badMagic[0] = 0x58
    const badVersion = good.slice(); badVersion[4] = 2
    const badWidth = good.slice(); badWidth[5] = 3
    const shortBody = good.slice(0, good.length - 1)
    for (const b of [badMagic, badVersion, badWidth, shortBody, good.slice(0, 5)]) {
      await expect(loadShard(outDir, await put(b))).rejects.toMatchObject({ name: 'ShardFormatError' })
    }
    // listed in a (correctly hashed) manifest but holding an id outside the vocabulary
    const foreign = encodeShard([1, 2, 60000], 2)
    const h = await put(foreign)
    const body = { ...manifest, shards: [...manifest.shards, { hash: h, split: 'train' as const, tokens: 3, bytes: foreign.length }] }
    const m2 = { ...body, manifestHash: computeManifestHash(body) }
    await expect(loadShard(outDir, h, m2)).rejects.toMatchObject({ name: 'ShardFormatError' })
    // listed with the wrong size
    const body3 = { ...manifest, shards: [{ ...manifest.shards[0], tokens: manifest.shards[0].tokens - 1, bytes: manifest.shards[0].bytes - 2 }] }
    await expect(loadShard(outDir, manifest.shards[0].hash, { ...body3, manifestHash: computeManifestHash(body3) })).rejects.toMatchObject({ name: 'ShardIntegrityError' })
    // not listed at all
    await expect(loadShard(outDir, h, manifest)).rejects.toMatchObject({ name: 'ShardNotFoundError' })
  })

  it('a tampered manifest or tokenizer is refused', async () => {
    const mpath = join(outDir, 'manifest.json')
    await withModified(mpath, b => Buffer.from(b.toString().replace(/"tokens": (\d+)/, (_, n) => `"tokens": ${Number(n) - 1}`)), async () => {
      await expect(readManifest(outDir)).rejects.toMatchObject({ name: 'ManifestError' }) // bytes no longer match tokens
    })
    await withModified(mpath, b => Buffer.from(b.toString().replace(/"split": "train"/, '"split": "validation"')), async () => {
      await expect(readManifest(outDir)).rejects.toMatchObject({ name: 'ManifestIntegrityError' })
    })
    await withModified(mpath, () => Buffer.from('{"format":'), async () => {
      await expect(readManifest(outDir)).rejects.toMatchObject({ name: 'ManifestError' })
    })
    await withModified(mpath, b => Buffer.from(b.toString().replace('"version": 1', '"version": 2')), async () => {
      await expect(readManifest(outDir)).rejects.toMatchObject({ name: 'ManifestError' })
    })
    await withModified(mpath, () => undefined, async () => {
      await expect(readManifest(outDir)).rejects.toMatchObject({ name: 'ManifestError' })
    })
    await withModified(join(outDir, 'tokenizer.json'), b => Buffer.concat([b, Buffer.from(' ')]), async () => {
      await expect(verifyDataset(outDir)).rejects.toMatchObject({ name: 'ManifestIntegrityError' })
    })
    await expect(verifyDataset(outDir)).resolves.toBeDefined()
  })
})
