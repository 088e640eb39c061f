import { canonicalJson, isSha256Hex, sha256Hex } from './hash.js'
import { MANIFEST_FORMAT, MANIFEST_VERSION } from './constants.js'
import { ManifestError, ManifestIntegrityError } from './errors.js'

export type Split = 'train' | 'validation'

/** One shard of the dataset */
export interface ShardEntry {
  /** sha256 (lowercase hex) of the whole shard file; the file is `shards/<hash>.bin` */
  hash: string
  split: Split
  /** Token ids in the shard */
  tokens: number
  /** Size of the shard file in bytes (header included) */
  bytes: number
}

export type ManifestSource =
  | { kind: 'nlp-corpus', package: string, version: string, documents: number, sha256: string }
  | { kind: 'files', files: Array<{ name: string, sha256: string }>, documents: number, sha256: string }

/** `manifest.json`: everything a verifier needs to check the dataset and recompute assignments */
export interface GenesisManifest {
  format: typeof MANIFEST_FORMAT
  version: typeof MANIFEST_VERSION
  tokenizer: {
    /** Always `tokenizer.json`, next to the manifest */
    file: string
    /** sha256 of the `tokenizer.json` bytes */
    sha256: string
    vocabSize: number
    /** Id appended after every document */
    eosId: number
  }
  source: ManifestSource
  settings: {
    shardTokens: number
    /** 2 when vocabSize ≤ 65536, else 4 */
    bytesPerToken: 2 | 4
    /** A document is in the validation split iff the first 4 bytes of its split hash, as a big-endian u32, are below this */
    validationThreshold: number
  }
  /** Train shards first, then validation shards, each in stream order */
  shards: ShardEntry[]
  /** sha256 of the canonical JSON of this object without `manifestHash` */
  manifestHash: string
}

/** The manifest hash: sha256 of the canonical JSON of the manifest without its `manifestHash` field */
export function computeManifestHash (manifest: Omit<GenesisManifest, 'manifestHash'> & { manifestHash?: string }): string {
  const { manifestHash: _ignored, ...rest } = manifest
  return sha256Hex(new TextEncoder().encode(canonicalJson(rest)))
}

function fail (msg: string): never {
  throw new ManifestError(`invalid manifest: ${msg}`)
}

function isObj (v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function uint (v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) fail(`${what} must be an integer in [0, ${max}]`)
  return v
}

/**
 * Check a parsed manifest against the schema (throws `ManifestError`) and its `manifestHash`
 * (throws `ManifestIntegrityError`).
 */
export function validateManifest (doc: unknown): GenesisManifest {
  if (!isObj(doc)) fail('not an object')
  if (doc.format !== MANIFEST_FORMAT) fail(`format must be "${MANIFEST_FORMAT}"`)
  if (doc.version !== MANIFEST_VERSION) fail(`unsupported version ${String(doc.version)}`)
  const t = doc.tokenizer
  if (!isObj(t) || typeof t.file !== 'string' || !isSha256Hex(t.sha256)) fail('tokenizer must have file and sha256')
  if (t.file !== 'tokenizer.json') fail('tokenizer.file must be "tokenizer.json"')
  const vocabSize = uint(t.vocabSize, 'tokenizer.vocabSize', 2 ** 32)
  if (uint(t.eosId, 'tokenizer.eosId') >= vocabSize) fail('tokenizer.eosId out of range')
  const s = doc.source
  if (!isObj(s) || (s.kind !== 'nlp-corpus' && s.kind !== 'files') || !isSha256Hex(s.sha256)) fail('source must be nlp-corpus or files, with sha256')
  uint(s.documents, 'source.documents')
  const st = doc.settings
  if (!isObj(st)) fail('settings missing')
  if (uint(st.shardTokens, 'settings.shardTokens', 2 ** 32 - 1) === 0) fail('settings.shardTokens must be > 0')
  if (st.bytesPerToken !== 2 && st.bytesPerToken !== 4) fail('settings.bytesPerToken must be 2 or 4')
  if (st.bytesPerToken === 2 && vocabSize > 65536) fail('bytesPerToken 2 cannot hold this vocabulary')
  uint(st.validationThreshold, 'settings.validationThreshold', 2 ** 32)
  if (!Array.isArray(doc.shards)) fail('shards must be an array')
  const seen = new Set<string>()
  for (const [i, e] of doc.shards.entries()) {
    if (!isObj(e) || !isSha256Hex(e.hash)) fail(`shards[${i}].hash must be a lowercase hex sha256`)
    if (e.split !== 'train' && e.split !== 'validation') fail(`shards[${i}].split must be train or validation`)
    const tokens = uint(e.tokens, `shards[${i}].tokens`, st.shardTokens)
    if (uint(e.bytes, `shards[${i}].bytes`) !== 12 + tokens * st.bytesPerToken) fail(`shards[${i}].bytes does not match its token count`)
    if (seen.has(e.hash)) fail(`shard ${e.hash} listed twice`)
    seen.add(e.hash)
  }
  if (!isSha256Hex(doc.manifestHash)) fail('manifestHash must be a lowercase hex sha256')
  const m = doc as unknown as GenesisManifest
  let expected: string
  try {
    expected = computeManifestHash(m)
  } catch (err) {
    fail((err as Error).message)
  }
  if (expected !== m.manifestHash) {
    throw new ManifestIntegrityError(`manifestHash is ${m.manifestHash} but the manifest hashes to ${expected}`)
  }
  return m
}
