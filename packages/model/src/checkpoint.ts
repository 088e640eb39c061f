import { createHash } from 'node:crypto'
import { readFile, writeFile, rename } from 'node:fs/promises'
import { InvalidConfigError, CheckpointHashMismatchError, CheckpointHeaderError, CheckpointMismatchError } from './errors.js'
import { shardParameters } from './params.js'
import { bytesAsFloat32, compareNames, decodeSafetensors, encodeSafetensors, float32AsBytes } from './safetensors.js'
import { validateConfig } from './validate.js'
import type { ModelConfig } from './config.js'
import type { ShardRole } from './params.js'
import type { DecodeSafetensorsOptions, SafetensorsTensor } from './safetensors.js'

/** `__metadata__.format` of a NeuroShard shard checkpoint */
export const CHECKPOINT_FORMAT = 'neuroshard-checkpoint/1'
/** Domain tag that starts the content-hash input */
export const CONTENT_HASH_DOMAIN = 'neuroshard/weights/v1'

/** One shard's weights and where they come from */
export interface ShardCheckpoint {
  config: ModelConfig
  role: ShardRole
  /** Optimizer steps taken to reach these weights */
  step: number
  /** Parameters by name (exactly `shardParameters(config, role)`) */
  parameters: Map<string, Float32Array>
  /** The weights' content hash (lowercase hex sha256, see `contentHash`) */
  contentHash: string
  /** Any other `__metadata__` entries */
  metadata: Record<string, string>
}

export interface NamedTensor {
  name: string
  dtype: string
  shape: readonly number[]
  /** Raw little-endian bytes */
  data: Uint8Array
}

/**
 * The content hash of a set of tensors, the identity that proofs and DiLoCo cite:
 * sha256 over `utf8("neuroshard/weights/v1") ‖ 0x00`, then for each tensor in byte-wise name order
 * `u32le(len(name)) ‖ name ‖ u32le(len(dtype)) ‖ dtype ‖ u32le(rank) ‖ u64le(dim)… ‖ u64le(len(bytes)) ‖ bytes`.
 * Lowercase hex.
 */
export function contentHash (tensors: Iterable<NamedTensor>): string {
  const list = [...tensors].sort((a, b) => compareNames(a.name, b.name))
  const h = createHash('sha256')
  h.update(CONTENT_HASH_DOMAIN, 'utf8').update(Buffer.of(0))
  const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b }
  const u64 = (n: number): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b }
  for (let i = 0; i < list.length; i++) {
    const t = list[i]
    if (i > 0 && list[i - 1].name === t.name) throw new CheckpointHeaderError(`duplicate tensor name ${t.name}`)
    const name = Buffer.from(t.name, 'utf8')
    const dtype = Buffer.from(t.dtype, 'utf8')
    h.update(u32(name.length)).update(name).update(u32(dtype.length)).update(dtype).update(u32(t.shape.length))
    for (const d of t.shape) h.update(u64(d))
    h.update(u64(t.data.byteLength)).update(t.data)
  }
  return h.digest('hex')
}

/** The content hash of a shard's float32 parameters (shapes from the config) */
export function parametersHash (config: ModelConfig, role: ShardRole, parameters: Map<string, Float32Array>): string {
  return contentHash(checkParameters(config, role, parameters).map(p => ({
    name: p.name, dtype: 'F32', shape: p.shape, data: float32AsBytes(parameters.get(p.name)!)
  })))
}

function checkParameters (config: ModelConfig, role: ShardRole, parameters: Map<string, Float32Array>): ReturnType<typeof shardParameters> {
  const specs = shardParameters(config, role)
  for (const spec of specs) {
    const v = parameters.get(spec.name)
    if (v === undefined) throw new CheckpointMismatchError(`missing parameter ${spec.name}`)
    const n = spec.shape.reduce((a, b) => a * b, 1)
    if (!(v instanceof Float32Array) || v.length !== n) {
      throw new CheckpointMismatchError(`parameter ${spec.name}: expected float32 with ${n} elements for shape ${JSON.stringify(spec.shape)}`)
    }
  }
  const known = new Set(specs.map(s => s.name))
  for (const name of parameters.keys()) {
    if (!known.has(name)) throw new CheckpointMismatchError(`unexpected parameter ${name} for shard ${describeRole(role)}`)
  }
  return specs
}

/** A short readable name of a shard role (`embed`, `blocks[0,4)`, `head`) */
export function describeRole (role: ShardRole): string {
  return role.kind === 'blocks' ? `blocks[${role.start},${role.end})` : role.kind
}

export interface EncodeCheckpointInit {
  config: ModelConfig
  role: ShardRole
  parameters: Map<string, Float32Array>
  /** @default 0 */
  step?: number
  /** Extra `__metadata__` entries (string values; reserved keys are overwritten) */
  metadata?: Record<string, string>
}

/** Serialise one shard as safetensors with NeuroShard `__metadata__` (format, architecture, role, step, content_hash) */
export function encodeCheckpoint (init: EncodeCheckpointInit): Uint8Array {
  return encodeWithHash(init).bytes
}

function encodeWithHash (init: EncodeCheckpointInit): { bytes: Uint8Array, hash: string } {
  const config = validateConfig(init.config)
  const specs = checkParameters(config, init.role, init.parameters)
  const tensors = new Map<string, SafetensorsTensor>()
  for (const spec of specs) {
    tensors.set(spec.name, { dtype: 'F32', shape: spec.shape, data: float32AsBytes(init.parameters.get(spec.name)!) })
  }
  const step = init.step ?? 0
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointHeaderError(`step must be a non-negative integer, got ${step}`)
  const hash = parametersHash(config, init.role, init.parameters)
  const bytes = encodeSafetensors(tensors, {
    ...init.metadata,
    format: CHECKPOINT_FORMAT,
    architecture: canonicalConfigJson(config),
    role: JSON.stringify(init.role),
    step: String(step),
    content_hash: hash
  })
  return { bytes, hash }
}

const CONFIG_KEYS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'ffnHidden', 'maxSeqLen', 'ropeTheta', 'normEps', 'tieEmbeddings'] as const

/** The architecture as JSON with a fixed key order (the `architecture` metadata value) */
export function canonicalConfigJson (config: ModelConfig): string {
  const out: Record<string, unknown> = {}
  for (const k of CONFIG_KEYS) out[k] = config[k]
  return JSON.stringify(out)
}

function sameConfig (a: ModelConfig, b: ModelConfig): boolean {
  return CONFIG_KEYS.every(k => a[k] === b[k])
}

function sameRole (a: ShardRole, b: ShardRole): boolean {
  return a.kind === b.kind && (a.kind !== 'blocks' || (b.kind === 'blocks' && a.start === b.start && a.end === b.end))
}

function parseRole (text: string, config: ModelConfig): ShardRole {
  let v: any
  try { v = JSON.parse(text) } catch { throw new CheckpointHeaderError('__metadata__.role is not JSON') }
  if (v?.kind === 'embed' || v?.kind === 'head') return { kind: v.kind }
  if (v?.kind === 'blocks' && Number.isSafeInteger(v.start) && Number.isSafeInteger(v.end) && v.start >= 0 && v.start < v.end && v.end <= config.nLayers) {
    return { kind: 'blocks', start: v.start, end: v.end }
  }
  throw new CheckpointHeaderError(`__metadata__.role is not a valid shard role: ${text}`)
}

export interface DecodeCheckpointOptions extends DecodeSafetensorsOptions {
  /** The architecture the caller expects (mismatch → CheckpointMismatchError) */
  config?: ModelConfig
  /** The shard the caller expects (mismatch → CheckpointMismatchError) */
  role?: ShardRole
  /** The content hash the caller expects, e.g. from a DiLoCo round (mismatch → CheckpointHashMismatchError) */
  contentHash?: string
  /**
   * Copy the weights out of the file buffer (otherwise they are views into it)
   *
   * @default false
   */
  copy?: boolean
}

/**
 * Decode and fully validate a shard checkpoint: the safetensors container (see `decodeSafetensors`), the
 * NeuroShard metadata, the tensor set, dtypes and shapes against the architecture it names (and the
 * expected one), and the recomputed content hash against the recorded (and expected) one.
 */
export function decodeCheckpoint (bytes: Uint8Array, options: DecodeCheckpointOptions = {}): ShardCheckpoint {
  const file = decodeSafetensors(bytes, options)
  const { format, architecture, role: roleText, step: stepText, content_hash: recordedHash, ...rest } = file.metadata
  if (format !== CHECKPOINT_FORMAT) throw new CheckpointHeaderError(`__metadata__.format is ${JSON.stringify(format)}, expected ${CHECKPOINT_FORMAT}`)
  if (architecture === undefined || roleText === undefined || stepText === undefined || recordedHash === undefined) {
    throw new CheckpointHeaderError('__metadata__ needs architecture, role, step and content_hash')
  }
  let config: ModelConfig
  try {
    const parsed = JSON.parse(architecture)
    const picked: Record<string, unknown> = {}
    for (const k of CONFIG_KEYS) picked[k] = parsed?.[k]
    config = validateConfig(picked as unknown as ModelConfig)
  } catch (err: any) {
    throw new CheckpointHeaderError(`__metadata__.architecture is not a valid architecture: ${err instanceof InvalidConfigError ? err.message : 'bad JSON'}`)
  }
  const role = parseRole(roleText, config)
  if (!/^(0|[1-9][0-9]*)$/.test(stepText) || !Number.isSafeInteger(Number(stepText))) throw new CheckpointHeaderError(`__metadata__.step is not a non-negative integer: ${stepText}`)
  if (!/^[0-9a-f]{64}$/.test(recordedHash)) throw new CheckpointHeaderError('__metadata__.content_hash is not 64 lowercase hex digits')
  if (options.config !== undefined && !sameConfig(config, options.config)) {
    throw new CheckpointMismatchError(`checkpoint architecture ${canonicalConfigJson(config)} is not the expected ${canonicalConfigJson(options.config)}`)
  }
  if (options.role !== undefined && !sameRole(role, options.role)) {
    throw new CheckpointMismatchError(`checkpoint holds shard ${describeRole(role)}, expected ${describeRole(options.role)}`)
  }

  const parameters = new Map<string, Float32Array>()
  const specs = shardParameters(config, role)
  for (const spec of specs) {
    const t = file.tensors.get(spec.name)
    if (t === undefined) throw new CheckpointMismatchError(`missing tensor ${spec.name}`)
    if (t.dtype !== 'F32') throw new CheckpointMismatchError(`tensor ${spec.name}: dtype ${t.dtype}, expected F32`)
    if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      throw new CheckpointMismatchError(`tensor ${spec.name}: shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(spec.shape)}`)
    }
    const view = bytesAsFloat32(t.data)
    parameters.set(spec.name, options.copy === true && view.buffer === bytes.buffer ? view.slice() : view)
  }
  for (const name of file.tensors.keys()) {
    if (!parameters.has(name)) throw new CheckpointMismatchError(`unexpected tensor ${name} for shard ${describeRole(role)}`)
  }
  const actual = contentHash(specs.map(s => ({ name: s.name, dtype: 'F32', shape: s.shape, data: file.tensors.get(s.name)!.data })))
  if (actual !== recordedHash) throw new CheckpointHashMismatchError(`weights hash to ${actual} but the checkpoint records ${recordedHash}`)
  if (options.contentHash !== undefined && actual !== options.contentHash.toLowerCase()) {
    throw new CheckpointHashMismatchError(`weights hash to ${actual}, expected ${options.contentHash}`)
  }
  return { config, role, step: Number(stepText), parameters, contentHash: actual, metadata: rest }
}

/** Write a shard checkpoint atomically (temp file + rename) and return its content hash */
export async function saveCheckpoint (path: string, init: EncodeCheckpointInit): Promise<string> {
  const { bytes, hash } = encodeWithHash(init)
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, bytes)
  await rename(tmp, path)
  return hash
}

/** Read and validate a shard checkpoint file (see `decodeCheckpoint`) */
export async function loadCheckpoint (path: string, options: DecodeCheckpointOptions = {}): Promise<ShardCheckpoint> {
  const buf = await readFile(path)
  return decodeCheckpoint(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), options)
}
