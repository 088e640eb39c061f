import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { AbortError, InvalidParametersError } from '@neuroshard/interface'
import { MAX_MANIFEST_BYTES, MAX_SHARD_BYTES } from './constants.js'
import { ManifestError, ManifestIntegrityError, ShardFormatError, ShardIntegrityError, ShardNotFoundError } from './errors.js'
import { isSha256Hex, sha256Hex } from './hash.js'
import { validateManifest } from './manifest.js'
import type { GenesisManifest, ShardEntry, Split } from './manifest.js'
import { decodeShard } from './shard.js'
import type { TokenArray } from './shard.js'

/** A verified shard in memory */
export interface Shard {
  hash: string
  split?: Split
  tokens: TokenArray
}

export interface LoadOptions {
  signal?: AbortSignal
}

async function readCapped (path: string, cap: number, missing: (msg: string) => Error): Promise<Uint8Array> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing(`${path} does not exist`)
    throw err
  }
  try {
    const { size } = await fh.stat()
    if (size > cap) throw new ShardFormatError(`${path} is ${size} bytes, over the ${cap}-byte cap`)
    return new Uint8Array(await fh.readFile())
  } finally {
    await fh.close()
  }
}

/** Read and verify `manifest.json` in `dir` (schema → `ManifestError`, hash → `ManifestIntegrityError`) */
export async function readManifest (dir: string, options: LoadOptions = {}): Promise<GenesisManifest> {
  if (options.signal?.aborted === true) throw new AbortError('manifest read aborted')
  const bytes = await readCapped(join(dir, 'manifest.json'), MAX_MANIFEST_BYTES, msg => new ManifestError(msg))
  let doc: unknown
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (err) {
    throw new ManifestError(`manifest.json is not UTF-8 JSON: ${(err as Error).message}`)
  }
  return validateManifest(doc)
}

/** Read `tokenizer.json` next to the manifest and check it is the one the manifest names */
export async function readDatasetTokenizerJson (dir: string, manifest: GenesisManifest): Promise<string> {
  const bytes = await readCapped(join(dir, manifest.tokenizer.file), MAX_MANIFEST_BYTES, msg => new ManifestError(msg))
  const got = sha256Hex(bytes)
  if (got !== manifest.tokenizer.sha256) throw new ManifestIntegrityError(`tokenizer.json hashes to ${got}, the manifest says ${manifest.tokenizer.sha256}`)
  return new TextDecoder().decode(bytes)
}

/**
 * Load one shard, `dir/shards/<hash>.bin`, and verify it before use: its sha256 must equal its name
 * (`ShardIntegrityError`), it must parse (`ShardFormatError`), and when a manifest is given, it must
 * be listed there with the same token count and size and hold only ids below the vocabulary size.
 */
export async function loadShard (dir: string, hash: string, manifest?: GenesisManifest, options: LoadOptions = {}): Promise<Shard> {
  if (!isSha256Hex(hash)) throw new InvalidParametersError(`shard hash must be 64 lowercase hex digits, got ${JSON.stringify(hash)}`)
  if (options.signal?.aborted === true) throw new AbortError('shard load aborted')
  let entry: ShardEntry | undefined
  if (manifest !== undefined) {
    entry = manifest.shards.find(s => s.hash === hash)
    if (entry === undefined) throw new ShardNotFoundError(`shard ${hash} is not in the manifest`)
  }
  const path = join(dir, 'shards', `${hash}.bin`)
  const bytes = await readCapped(path, MAX_SHARD_BYTES, msg => new ShardNotFoundError(msg))
  const got = sha256Hex(bytes)
  if (got !== hash) throw new ShardIntegrityError(`shard ${hash} hashes to ${got}: tampered or corrupt, refused`)
  const tokens = decodeShard(bytes)
  if (entry !== undefined && manifest !== undefined) {
    if (entry.bytes !== bytes.length || entry.tokens !== tokens.length) {
      throw new ShardIntegrityError(`shard ${hash} has ${tokens.length} tokens / ${bytes.length} bytes, the manifest says ${entry.tokens} / ${entry.bytes}`)
    }
    const bpt = bytes[5]
    if (bpt !== manifest.settings.bytesPerToken) throw new ShardFormatError(`shard ${hash} uses ${bpt} bytes per token, the manifest says ${manifest.settings.bytesPerToken}`)
    const vocab = manifest.tokenizer.vocabSize
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i] >= vocab) throw new ShardFormatError(`shard ${hash} holds token ${tokens[i]} at ${i}, outside the vocabulary of ${vocab}`)
    }
  }
  return { hash, split: entry?.split, tokens }
}

export interface LoadDatasetOptions extends LoadOptions {
  /** Only this split @default both */
  split?: Split
  /** Only these shards (hashes), e.g. the output of `assignShards` */
  shards?: readonly string[]
}

/** Read the manifest and load (and verify) its shards */
export async function loadDataset (dir: string, options: LoadDatasetOptions = {}): Promise<{ manifest: GenesisManifest, shards: Shard[] }> {
  const manifest = await readManifest(dir, options)
  const wanted = options.shards ?? manifest.shards.filter(s => options.split === undefined || s.split === options.split).map(s => s.hash)
  const shards: Shard[] = []
  for (const h of wanted) shards.push(await loadShard(dir, h, manifest, options))
  return { manifest, shards }
}

export interface VerifyReport {
  manifest: GenesisManifest
  shards: number
  tokens: number
  bytes: number
}

/** Verify a whole dataset: manifest hash, tokenizer hash and every shard; throws the first typed error */
export async function verifyDataset (dir: string, options: LoadOptions = {}): Promise<VerifyReport> {
  const manifest = await readManifest(dir, options)
  await readDatasetTokenizerJson(dir, manifest)
  let tokens = 0
  let bytes = 0
  for (const e of manifest.shards) {
    const s = await loadShard(dir, e.hash, manifest, options)
    tokens += s.tokens.length
    bytes += e.bytes
  }
  return { manifest, shards: manifest.shards.length, tokens, bytes }
}
