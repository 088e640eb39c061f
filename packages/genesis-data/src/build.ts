import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AbortError, InvalidParametersError } from '@neuroshard/interface'
import type { BpeTokenizer } from '@neuroshard/tokenizer'
import { DEFAULT_SHARD_TOKENS, DEFAULT_VALIDATION_FRACTION, MANIFEST_FORMAT, MANIFEST_VERSION, SPLIT_DOMAIN } from './constants.js'
import { readCorpus } from './corpus.js'
import type { CorpusSource } from './corpus.js'
import { sha256, sha256Hex, sha256Stream } from './hash.js'
import { computeManifestHash } from './manifest.js'
import type { GenesisManifest, ShardEntry, Split } from './manifest.js'
import { encodeShard } from './shard.js'

export interface BuildProgress {
  documents: number
  totalDocuments: number
  shards: number
}

export interface BuildGenesisDatasetOptions {
  source: CorpusSource
  tokenizer: BpeTokenizer
  /** Directory to write `manifest.json`, `tokenizer.json` and `shards/` into */
  outDir: string
  /** @default 65536 */
  shardTokens?: number
  /** Fraction of documents in the validation split, in [0, 1] @default 0.02 */
  validationFraction?: number
  signal?: AbortSignal
  onProgress?(progress: BuildProgress): void
}

export interface BuildResult {
  manifest: GenesisManifest
  /** Path of the written manifest.json */
  manifestPath: string
}

/** Which split a document falls in (see the spec: first 4 bytes of sha256(domain ‖ 0x00 ‖ utf8(doc)) < threshold) */
export function documentSplit (document: string, validationThreshold: number): Split {
  return splitOfBytes(new TextEncoder().encode(document), validationThreshold)
}

const SPLIT_PREFIX = new TextEncoder().encode(`${SPLIT_DOMAIN}\u0000`)

function splitOfBytes (doc: Uint8Array, validationThreshold: number): Split {
  const buf = new Uint8Array(SPLIT_PREFIX.length + doc.length)
  buf.set(SPLIT_PREFIX, 0)
  buf.set(doc, SPLIT_PREFIX.length)
  const h = sha256(buf)
  const u = ((h[0] << 24) >>> 0) + (h[1] << 16) + (h[2] << 8) + h[3]
  return u < validationThreshold ? 'validation' : 'train'
}

/** `floor(fraction · 2^32)`: the integer the manifest stores instead of a float */
export function validationThreshold (fraction: number): number {
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1)) throw new InvalidParametersError('validationFraction must be in [0, 1]')
  return Math.floor(fraction * 2 ** 32)
}

async function writeAtomic (path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, data)
  await rename(tmp, path)
}

/**
 * Build the genesis dataset: tokenize every document (each followed by `<|eos|>`), route it to the
 * train or validation stream by its hash, cut each stream into shards of `shardTokens` tokens, write
 * every shard as `shards/<sha256>.bin`, copy the tokenizer to `tokenizer.json` and write
 * `manifest.json`. Same input and settings → byte-identical output.
 */
export async function buildGenesisDataset (options: BuildGenesisDatasetOptions): Promise<BuildResult> {
  const { tokenizer, outDir } = options
  const shardTokens = options.shardTokens ?? DEFAULT_SHARD_TOKENS
  if (!Number.isSafeInteger(shardTokens) || shardTokens < 1 || shardTokens > 2 ** 32 - 1) throw new InvalidParametersError('shardTokens must be an integer in [1, 2^32 - 1]')
  const threshold = validationThreshold(options.validationFraction ?? DEFAULT_VALIDATION_FRACTION)
  if (typeof outDir !== 'string' || outDir === '') throw new InvalidParametersError('outDir is required')
  const eosId = tokenizer?.eosId
  if (eosId === undefined) throw new InvalidParametersError('the tokenizer needs an <|eos|> token (the document separator)')
  const bytesPerToken: 2 | 4 = tokenizer.vocabSize <= 65536 ? 2 : 4

  const corpus = await readCorpus(options.source)
  const shardDir = join(outDir, 'shards')
  await mkdir(shardDir, { recursive: true })

  const tokenizerJson = new TextEncoder().encode(tokenizer.toTokenizerJson())
  await writeAtomic(join(outDir, 'tokenizer.json'), tokenizerJson)

  const streams: Record<Split, { buf: Uint32Array, fill: number, entries: ShardEntry[] }> = {
    train: { buf: new Uint32Array(shardTokens), fill: 0, entries: [] },
    validation: { buf: new Uint32Array(shardTokens), fill: 0, entries: [] }
  }
  let shards = 0
  const flush = async (split: Split): Promise<void> => {
    const s = streams[split]
    if (s.fill === 0) return
    const bytes = encodeShard(s.buf.subarray(0, s.fill), bytesPerToken)
    const hash = sha256Hex(bytes)
    await writeAtomic(join(shardDir, `${hash}.bin`), bytes)
    s.entries.push({ hash, split, tokens: s.fill, bytes: bytes.length })
    s.fill = 0
    shards++
  }

  // source hash: for each document, u32 LE byte length ‖ UTF-8 bytes
  const enc = new TextEncoder()
  const sourceHasher = sha256Stream()
  let docs = 0
  for (const doc of corpus.documents) {
    if (options.signal?.aborted === true) throw new AbortError('genesis dataset build aborted')
    const bytes = enc.encode(doc)
    const len = new Uint8Array(4)
    new DataView(len.buffer).setUint32(0, bytes.length, true)
    sourceHasher.update(len)
    sourceHasher.update(bytes)
    const split = splitOfBytes(bytes, threshold)
    const s = streams[split]
    const ids = tokenizer.encode(doc)
    ids.push(eosId)
    let i = 0
    while (i < ids.length) {
      const take = Math.min(ids.length - i, shardTokens - s.fill)
      for (let j = 0; j < take; j++) s.buf[s.fill + j] = ids[i + j]
      s.fill += take
      i += take
      if (s.fill === shardTokens) await flush(split)
    }
    docs++
    if ((docs & 4095) === 0) options.onProgress?.({ documents: docs, totalDocuments: corpus.documents.length, shards })
  }
  await flush('train')
  await flush('validation')
  options.onProgress?.({ documents: docs, totalDocuments: corpus.documents.length, shards })

  const sourceHash = sourceHasher.hex()

  const body: Omit<GenesisManifest, 'manifestHash'> = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    tokenizer: { file: 'tokenizer.json', sha256: sha256Hex(tokenizerJson), vocabSize: tokenizer.vocabSize, eosId },
    source: { ...corpus.description, documents: docs, sha256: sourceHash } as GenesisManifest['source'],
    settings: { shardTokens, bytesPerToken, validationThreshold: threshold },
    shards: [...streams.train.entries, ...streams.validation.entries]
  }
  const manifest: GenesisManifest = { ...body, manifestHash: computeManifestHash(body) }
  const manifestPath = join(outDir, 'manifest.json')
  await writeAtomic(manifestPath, JSON.stringify(manifest, null, 2) + '\n')
  return { manifest, manifestPath }
}
