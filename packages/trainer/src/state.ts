import { open, readdir, readFile, rename, unlink, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { bytesAsFloat32, canonicalConfigJson, contentHash, decodeSafetensors, encodeSafetensors, float32AsBytes, modelParameters, validateConfig } from '@neuroshard/model'
import { CHECKPOINT_FILE_RE, TRAIN_STATE_FORMAT } from './constants.js'
import { TrainStateError } from './errors.js'
import type { DataPosition } from './data.js'
import type { ModelConfig, SafetensorsTensor } from '@neuroshard/model'

/**
 * Everything that determines a run's trajectory. Resuming requires the same settings (else
 * `ResumeMismatchError`); `totalSteps` of a time-budgeted run is fixed once, early, and kept here.
 */
export interface TrainSettings {
  config: ModelConfig
  /** Init seed of the weights */
  seed: number
  /** Seed of the data order */
  dataSeed: number
  seqLen: number
  batchSize: number
  gradAccumulation: number
  /** Warmup + cosine schedule */
  schedule: { peakLr: number, minLr: number, warmupSteps: number, totalSteps: number }
  optimizer: { beta1: number, beta2: number, eps: number, weightDecay: number, maxGradNorm: number }
  /** onnxruntime intra-op threads (results are bit-reproducible only at a fixed thread count) */
  threads: number
  /** Identity of the training data (e.g. the genesis manifest hash) */
  dataId: string
}

/** One point of the validation curve */
export interface EvalPoint {
  step: number
  loss: number
  /** Training tokens seen when it was measured */
  tokens: number
  elapsedMs: number
}

/** A full training state: enough to continue the run bit-for-bit */
export interface TrainState {
  settings: TrainSettings
  /** Optimizer steps taken */
  step: number
  /** Position of the next micro-batch */
  data: DataPosition
  /** Training tokens consumed so far */
  tokens: number
  /** Training wall time so far (sum over sessions), for time budgets and reports */
  elapsedMs: number
  /** Validation curve so far */
  evals: EvalPoint[]
  parameters: Map<string, Float32Array>
  /** AdamW first/second moments (empty before the first step) */
  m: Map<string, Float32Array>
  v: Map<string, Float32Array>
}

const M_PREFIX = 'optimizer.m.'
const V_PREFIX = 'optimizer.v.'

/** File name of the checkpoint of step `step` */
export function checkpointFileName (step: number): string {
  return `step-${String(step).padStart(8, '0')}.safetensors`
}

/**
 * Serialise a training state as one safetensors file: the weights under their own names (so the file
 * is also a plain weights file), AdamW moments as `optimizer.m.<name>` / `optimizer.v.<name>`, and the
 * rest as JSON in `__metadata__` together with the content hashes of the weights and of the whole state.
 */
export function encodeTrainState (state: TrainState): Uint8Array {
  const config = validateConfig(state.settings.config)
  const specs = modelParameters(config)
  const tensors = new Map<string, SafetensorsTensor>()
  const named: Array<{ name: string, dtype: string, shape: number[], data: Uint8Array }> = []
  for (const s of specs) {
    const p = state.parameters.get(s.name)
    if (p === undefined || p.length !== s.shape.reduce((a, b) => a * b, 1)) throw new TrainStateError(`parameter ${s.name} is missing or has the wrong size`)
    const t = { dtype: 'F32' as const, shape: s.shape, data: float32AsBytes(p) }
    tensors.set(s.name, t)
    named.push({ name: s.name, ...t })
    const m = state.m.get(s.name)
    const v = state.v.get(s.name)
    if ((m === undefined) !== (v === undefined)) throw new TrainStateError(`optimizer state of ${s.name} is incomplete`)
    if (m !== undefined && v !== undefined) {
      tensors.set(M_PREFIX + s.name, { dtype: 'F32', shape: s.shape, data: float32AsBytes(m) })
      tensors.set(V_PREFIX + s.name, { dtype: 'F32', shape: s.shape, data: float32AsBytes(v) })
    }
  }
  const weightsHash = contentHash(named)
  const json = JSON.stringify({ settings: state.settings, step: state.step, data: state.data, tokens: state.tokens, elapsedMs: state.elapsedMs, evals: state.evals })
  const stateHash = contentHash([...tensors].map(([name, t]) => ({ name, ...t })).concat([{ name: '__state__', dtype: 'U8', shape: [json.length], data: new TextEncoder().encode(json) }]))
  return encodeSafetensors(tensors, {
    format: TRAIN_STATE_FORMAT,
    architecture: canonicalConfigJson(config),
    step: String(state.step),
    content_hash: weightsHash,
    state: json,
    state_hash: stateHash
  })
}

/** Decode and verify a training state (structure, shapes, both hashes) → `TrainStateError` on any problem */
export function decodeTrainState (bytes: Uint8Array): TrainState & { contentHash: string } {
  let file
  try {
    file = decodeSafetensors(bytes)
  } catch (err: any) {
    throw new TrainStateError(`not a valid safetensors file: ${err.message}`)
  }
  const md = file.metadata
  if (md.format !== TRAIN_STATE_FORMAT) throw new TrainStateError(`__metadata__.format is ${JSON.stringify(md.format)}, expected ${TRAIN_STATE_FORMAT}`)
  let parsed: any
  try {
    parsed = JSON.parse(md.state ?? '')
  } catch {
    throw new TrainStateError('__metadata__.state is not JSON')
  }
  let config: ModelConfig
  try {
    config = validateConfig(parsed.settings.config)
  } catch (err: any) {
    throw new TrainStateError(`invalid architecture in the state: ${err.message}`)
  }
  const parameters = new Map<string, Float32Array>()
  const m = new Map<string, Float32Array>()
  const v = new Map<string, Float32Array>()
  const named: Array<{ name: string, dtype: string, shape: number[], data: Uint8Array }> = []
  const specs = modelParameters(config)
  const known = new Set<string>()
  const take = (name: string, shape: number[]): Float32Array | undefined => {
    const t = file.tensors.get(name)
    if (t === undefined) return undefined
    known.add(name)
    if (t.dtype !== 'F32' || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new TrainStateError(`tensor ${name} has dtype ${t.dtype} shape ${JSON.stringify(t.shape)}, expected F32 ${JSON.stringify(shape)}`)
    return bytesAsFloat32(t.data).slice()
  }
  for (const s of specs) {
    const p = take(s.name, s.shape)
    if (p === undefined) throw new TrainStateError(`missing tensor ${s.name}`)
    parameters.set(s.name, p)
    named.push({ name: s.name, dtype: 'F32', shape: s.shape, data: file.tensors.get(s.name)!.data })
    const mm = take(M_PREFIX + s.name, s.shape)
    const vv = take(V_PREFIX + s.name, s.shape)
    if ((mm === undefined) !== (vv === undefined)) throw new TrainStateError(`optimizer state of ${s.name} is incomplete`)
    if (mm !== undefined && vv !== undefined) { m.set(s.name, mm); v.set(s.name, vv) }
  }
  for (const name of file.tensors.keys()) if (!known.has(name)) throw new TrainStateError(`unexpected tensor ${name}`)
  const weightsHash = contentHash(named)
  if (weightsHash !== md.content_hash) throw new TrainStateError(`weights hash to ${weightsHash}, the checkpoint records ${md.content_hash}`)
  const stateHash = contentHash([...file.tensors].map(([name, t]) => ({ name, ...t })).concat([{ name: '__state__', dtype: 'U8', shape: [md.state.length], data: new TextEncoder().encode(md.state) }]))
  if (stateHash !== md.state_hash) throw new TrainStateError('training state does not match its recorded state_hash')
  const step = parsed.step
  if (!Number.isSafeInteger(step) || step < 0 || String(step) !== md.step) throw new TrainStateError('invalid step')
  return {
    settings: { ...parsed.settings, config },
    step,
    data: parsed.data,
    tokens: parsed.tokens,
    elapsedMs: parsed.elapsedMs,
    evals: parsed.evals,
    parameters,
    m,
    v,
    contentHash: weightsHash
  }
}

/** Write a file durably and atomically: temp file, fsync, rename, fsync of the directory */
export async function writeFileAtomic (path: string, data: Uint8Array | string, dir: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  const fh = await open(tmp, 'w')
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  try {
    const d = await open(dir, 'r')
    try { await d.sync() } finally { await d.close() }
  } catch {
    // fsync of a directory is not supported everywhere (Windows); the rename is still atomic
  }
}

/** Save a training state into `dir` as `step-<n>.safetensors`; keeps the newest `keep` checkpoints. Returns the path. */
export async function saveTrainState (dir: string, state: TrainState, keep = 2): Promise<string> {
  await mkdir(dir, { recursive: true })
  const path = join(dir, checkpointFileName(state.step))
  await writeFileAtomic(path, encodeTrainState(state), dir)
  if (keep > 0) {
    const steps = await listCheckpoints(dir)
    for (const s of steps.slice(0, Math.max(0, steps.length - keep))) {
      await unlink(join(dir, checkpointFileName(s))).catch(() => {})
    }
  }
  return path
}

/** Steps of the checkpoints in `dir`, ascending (missing dir → []) */
export async function listCheckpoints (dir: string): Promise<number[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err: any) {
    if (err.code === 'ENOENT') return []
    throw err
  }
  return names.map(n => CHECKPOINT_FILE_RE.exec(n)).filter((m): m is RegExpExecArray => m !== null).map(m => Number(m[1])).sort((a, b) => a - b)
}

/** Load a checkpoint file */
export async function loadTrainState (path: string): Promise<TrainState & { contentHash: string }> {
  const buf = await readFile(path)
  return decodeTrainState(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength))
}

/**
 * Load the newest valid checkpoint in `dir` (a corrupt newest file is skipped in favour of the one
 * before it), or `undefined` when there is none.
 */
export async function loadLatestTrainState (dir: string): Promise<(TrainState & { contentHash: string, path: string }) | undefined> {
  const steps = await listCheckpoints(dir)
  let lastErr: unknown
  for (let i = steps.length - 1; i >= 0; i--) {
    const path = join(dir, checkpointFileName(steps[i]))
    try {
      return { ...(await loadTrainState(path)), path }
    } catch (err) {
      lastErr = err
    }
  }
  if (lastErr !== undefined) throw lastErr
  return undefined
}
