import { createHash } from 'node:crypto'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BpeTokenizer, trainBpe } from '@neuroshard/tokenizer'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { buildGenesisDataset, decodeShard, readCorpus, readManifest, splitParagraphs, validationThreshold, verifyDataset } from '../src/index.js'
import { sentences, smallTokenizer, tempDir, writeCorpusFiles } from './helpers.js'

let tmp: Awaited<ReturnType<typeof tempDir>>
beforeEach(async () => { tmp = await tempDir() })
afterEach(async () => { await tmp.cleanup() })

describe('buildGenesisDataset', () => {
  it('writes content-addressed shards whose sha256, size and token count match the manifest', async () => {
    const docs = sentences(600)
    const files = await writeCorpusFiles(tmp.dir, docs)
    const tok = smallTokenizer()
    const outDir = join(tmp.dir, 'out')
    const { manifest } = await buildGenesisDataset({ source: { files }, tokenizer: tok, shardTokens: 2048, validationFraction: 0.1, outDir })
    expect(await readManifest(outDir)).toEqual(manifest)
    const names = (await readdir(join(outDir, 'shards'))).sort()
    expect(names).toEqual(manifest.shards.map(s => `${s.hash}.bin`).sort())
    let trainTokens: number[] = []
    let valTokens: number[] = []
    for (const s of manifest.shards) {
      const bytes = await readFile(join(outDir, 'shards', `${s.hash}.bin`))
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(s.hash)
      expect(bytes.length).toBe(s.bytes)
      const ids = [...decodeShard(new Uint8Array(bytes))]
      expect(ids.length).toBe(s.tokens)
      if (s.split === 'train') trainTokens = trainTokens.concat(ids)
      else valTokens = valTokens.concat(ids)
    }
    // all shards full but the last of each split
    for (const split of ['train', 'validation'] as const) {
      const list = manifest.shards.filter(s => s.split === split)
      expect(list.slice(0, -1).every(s => s.tokens === 2048)).toBe(true)
    }
    // every document is in exactly one split, followed by <|eos|>
    const eos = tok.eosId as number
    const docsOf = (ids: number[]): string[] => tok.decode(ids).split('<|eos|>').slice(0, -1)
    const train = docsOf(trainTokens)
    const val = docsOf(valTokens)
    expect(trainTokens.at(-1)).toBe(eos)
    expect([...train, ...val].sort()).toEqual([...docs].sort())
    expect(val.length).toBeGreaterThan(20)
    expect(val.length).toBeLessThan(120)
    expect(manifest.source).toMatchObject({ kind: 'files', documents: 600, files: [{ name: 'a.jsonl' }, { name: 'b.txt' }] })
    expect(manifest.tokenizer).toMatchObject({ vocabSize: 512, eosId: 257 })
    expect(manifest.settings).toEqual({ shardTokens: 2048, bytesPerToken: 2, validationThreshold: validationThreshold(0.1) })
    // the dataset ships the tokenizer it was built with
    const shipped = await readFile(join(outDir, 'tokenizer.json'))
    expect(createHash('sha256').update(shipped).digest('hex')).toBe(manifest.tokenizer.sha256)
  })

  it('is deterministic: same input and settings → identical manifest and shard bytes', async () => {
    const files = await writeCorpusFiles(tmp.dir, sentences(300))
    const a = await buildGenesisDataset({ source: { files }, tokenizer: smallTokenizer(), shardTokens: 1000, outDir: join(tmp.dir, 'a') })
    const b = await buildGenesisDataset({ source: { files }, tokenizer: BpeTokenizer.fromTokenizerJson(smallTokenizer().toTokenizerJson()), shardTokens: 1000, outDir: join(tmp.dir, 'b') })
    expect(await readFile(join(tmp.dir, 'b', 'manifest.json'), 'utf8')).toBe(await readFile(join(tmp.dir, 'a', 'manifest.json'), 'utf8'))
    expect(b.manifest.manifestHash).toBe(a.manifest.manifestHash)
    for (const s of a.manifest.shards) {
      expect(await readFile(join(tmp.dir, 'b', 'shards', `${s.hash}.bin`))).toEqual(await readFile(join(tmp.dir, 'a', 'shards', `${s.hash}.bin`)))
    }
    // a different setting gives a different dataset
    const c = await buildGenesisDataset({ source: { files }, tokenizer: smallTokenizer(), shardTokens: 999, outDir: join(tmp.dir, 'c') })
    expect(c.manifest.manifestHash).not.toBe(a.manifest.manifestHash)
  })

  it('validationFraction 0 and 1 put everything in one split; big vocabularies use 4-byte ids', async () => {
    const files = await writeCorpusFiles(tmp.dir, sentences(50))
    const none = await buildGenesisDataset({ source: { files }, tokenizer: smallTokenizer(), validationFraction: 0, outDir: join(tmp.dir, 'n') })
    expect(none.manifest.shards.every(s => s.split === 'train')).toBe(true)
    const all = await buildGenesisDataset({ source: { files }, tokenizer: smallTokenizer(), validationFraction: 1, outDir: join(tmp.dir, 'v') })
    expect(all.manifest.shards.every(s => s.split === 'validation')).toBe(true)
    const big = trainBpe(['a'], { vocabSize: 259 + 65_400, specialTokens: ['<|bos|>', '<|eos|>', '<|pad|>', ...Array.from({ length: 65_400 }, (_, i) => `<|x${i}|>`)] })
    expect(big.vocabSize).toBeGreaterThan(65_536)
    const wide = await buildGenesisDataset({ source: { files }, tokenizer: big, outDir: join(tmp.dir, 'w') })
    expect(wide.manifest.settings.bytesPerToken).toBe(4)
    expect(wide.manifest.shards[0].bytes).toBe(12 + 4 * wide.manifest.shards[0].tokens)
  })

  it('builds the real genesis corpus (all of nlp-corpus) into a dataset that verifies', async () => {
    const outDir = join(tmp.dir, 'genesis')
    const { manifest } = await buildGenesisDataset({ source: 'nlp-corpus', tokenizer: smallTokenizer(), shardTokens: 1 << 20, outDir })
    expect(manifest.source).toMatchObject({ kind: 'nlp-corpus', package: 'nlp-corpus', version: '4.4.0', documents: 100_000 })
    expect(manifest.shards.some(s => s.split === 'validation')).toBe(true)
    const report = await verifyDataset(outDir)
    expect(report.tokens).toBeGreaterThan(2_000_000)
  })

  it('reads the real nlp-corpus package', async () => {
    const c = await readCorpus('nlp-corpus')
    expect(c.documents.length).toBe(100_000)
    expect(c.description).toEqual({ kind: 'nlp-corpus', package: 'nlp-corpus', version: '4.4.0' })
  })

  it('splits .txt files into paragraphs', () => {
    expect(splitParagraphs('one\ntwo\n\nthree\r\n  \r\nfour\n\n\n')).toEqual(['one\ntwo', 'three', 'four'])
  })

  it('refuses bad input with typed errors', async () => {
    const tok = smallTokenizer()
    const outDir = join(tmp.dir, 'o')
    const bad = join(tmp.dir, 'bad.jsonl')
    await writeFile(bad, '{"text":"ok"}\n{"nope":1}\n')
    await expect(buildGenesisDataset({ source: { files: [bad] }, tokenizer: tok, outDir })).rejects.toMatchObject({ name: 'CorpusFormatError', message: expect.stringContaining(':2:') })
    await writeFile(bad, '{"text":"ok"}\nnot json\n')
    await expect(buildGenesisDataset({ source: { files: [bad] }, tokenizer: tok, outDir })).rejects.toMatchObject({ name: 'CorpusFormatError' })
    const csv = join(tmp.dir, 'x.csv')
    await writeFile(csv, 'a,b')
    await expect(buildGenesisDataset({ source: { files: [csv] }, tokenizer: tok, outDir })).rejects.toMatchObject({ name: 'CorpusFormatError' })
    await writeFile(join(tmp.dir, 'latin1.txt'), Uint8Array.from([0x63, 0x61, 0x66, 0xe9]))
    await expect(buildGenesisDataset({ source: { files: [join(tmp.dir, 'latin1.txt')] }, tokenizer: tok, outDir })).rejects.toMatchObject({ name: 'CorpusFormatError' })
    await expect(buildGenesisDataset({ source: { files: [join(tmp.dir, 'missing.txt')] }, tokenizer: tok, outDir })).rejects.toMatchObject({ name: 'CorpusFormatError' })
    await expect(buildGenesisDataset({ source: { files: [] }, tokenizer: tok, outDir })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(buildGenesisDataset({ source: 'nlp-corpus', tokenizer: tok, outDir, shardTokens: 0 })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(buildGenesisDataset({ source: 'nlp-corpus', tokenizer: tok, outDir, validationFraction: 1.5 })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    const noEos = trainBpe(['a'], { vocabSize: 257, specialTokens: ['<|bos|>'] })
    await expect(buildGenesisDataset({ source: 'nlp-corpus', tokenizer: noEos, outDir })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    const ac = new AbortController()
    ac.abort()
    const files = await writeCorpusFiles(tmp.dir, sentences(10))
    await expect(buildGenesisDataset({ source: { files }, tokenizer: tok, outDir, signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' })
  })
})
