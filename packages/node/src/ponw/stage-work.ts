/**
 * What a pipeline stage commits to in a training proof (specs/node/ponw.md): its executors' training
 * state (weights, AdamW moments, step count) at the start of a DiLoCo round, every state-changing call its
 * executors received during the round's inner steps (backward feeds — the activations and gradients its
 * neighbours sent —, gradient resets, optimizer steps with the chain-wide gradient norm), the slot groups'
 * signed round records with their payloads, and the state and payloads at the end.
 *
 * A stage cannot re-run its inner steps alone (its inputs come from other nodes), so the proof commits to
 * those inputs: a verifier replays them on fresh executors and must land on the committed final weights,
 * whose difference from the base must be what the node published to its DiLoCo groups.
 *
 * The encoding is `"NSW1" ‖ u32be(header length) ‖ header (UTF-8 JSON) ‖ blob`; the header locates every
 * tensor in the blob. A commitment is sha256 of the exact bytes served.
 */
import { createHash } from 'node:crypto'
import type { RoundRecord } from '@neuroshard/diloco'
import type { PipelineStage } from '@neuroshard/pipeline'
import type { ShardExecutor, TensorData } from '@neuroshard/runtime'

/** One executor's training state */
export interface ExecutorState {
  parameters: Map<string, Float32Array>
  m: Map<string, Float32Array>
  v: Map<string, Float32Array>
  /** optimizer steps taken */
  step: number
  /**
   * (1.1.0, tied embeddings) the AdamW moments of the tied replicas this executor keeps (a pipeline Validator's head:
   * `seedTiedReplica`, `stepTiedReplica`), by parameter name; absent when it keeps none
   */
  replica?: { m: Map<string, Float32Array>, v: Map<string, Float32Array> }
}

/** The AdamW numbers a tied replica's step used (the pipeline's `TiedAdamW`: the Driver's step of the tied matrix) */
export interface TiedAdamWNumbers { lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, t: number, gradScale: number }

/**
 * A state-changing call on an executor. 1.0: backward, zero, step. (1.1.0) The calls that move the tied matrix of a tied
 * model between a pipeline's Driver (its embedding owns `embed.weight`) and Validator (its head reads it): their inputs
 * come from the other node and are committed like a backward's feeds (specs/node/ponw.md §2.1).
 */
export type StageOp =
  | { kind: 'backward', feeds: Record<string, TensorData> }
  | { kind: 'zero' }
  /** `skip`: tied parameters the step leaves (a Driver whose Validator owns the tied matrix) */
  | { kind: 'step', gradNorm?: number, skip?: string[] }
  /** `takeTiedGradients()`: the head's tied gradient taken out of its accumulators (kept for the next `tiedStep`) */
  | { kind: 'take' }
  /** `addGradients()`: a tied gradient from the other node added to the owner's accumulators */
  | { kind: 'add', gradients: Map<string, Float32Array> }
  /** `setParameterRows()`: rows of the tied matrix fetched from its owner (or put back) */
  | { kind: 'rows', name: string, ids: Int32Array, data: Float32Array }
  /** `setParameters(…, { partial })` of the tied matrix (SET_TIED, GET_TIED, a round's weights of slot 0) */
  | { kind: 'set', parameters: Map<string, Float32Array> }
  /** `setOptimizerState()` of the tied matrix's moments (GET_TIED) */
  | { kind: 'moments', m: Map<string, Float32Array>, v: Map<string, Float32Array> }
  /** `seedTiedReplica()`: the replica's moments (SET_TIED) */
  | { kind: 'seed', name: string, m: Float32Array, v: Float32Array }
  /**
   * `stepTiedReplica()` right after the executor's optimizer step: the gradient is what the `take`s before that step
   * took, with rows `gradIds` replaced by `gradRows` (the Driver's rows an owner summed in); `ids` / `rows` the rows
   * added by the call, `adamw` its numbers
   */
  | { kind: 'tiedStep', name: string, gradIds: Int32Array, gradRows: Float32Array, ids: Int32Array, rows: Float32Array, adamw: TiedAdamWNumbers }

/** A slot group's round: the signed record and every payload it aggregated (by sha256 hex) */
export interface SlotEvidence {
  slot: number
  record: RoundRecord
  payloads: Map<string, Uint8Array>
}

/** A payload this node published, with the codec it announced (a `PayloadCodec` wire tuple) */
export interface SlotPayload {
  slot: number
  codec: { codec: number, blockSize: number, chunk: number, topK: number, bits: number }
  bytes: Uint8Array
}

/** A committed point of a stage's round: checkpoint 0 (state, ops, evidence) or the final one (state, payloads) */
export interface StageWitness {
  start: number
  end: number
  /** per executor, in slot order */
  states: ExecutorState[]
  /** optimizer step the ops start at (= the states' step at checkpoint 0) */
  opsFrom: number
  /** ops[executor][step − opsFrom] = the calls of that inner step, ending with its `step` */
  ops: StageOp[][][]
  evidence: SlotEvidence[]
  payloads: SlotPayload[]
  /** the bytes this witness was decoded from (its commitment is their sha256) */
  bytes?: Uint8Array
}

/** Upper bounds a decoder enforces (a witness comes from a peer) */
export const MAX_WITNESS_EXECUTORS = 3
export const MAX_WITNESS_STEPS = 1000
export const MAX_WITNESS_OPS_PER_STEP = 256
/** (1.1.0) the largest row id a tied op may name (a decoder bound; the verifier checks the model's vocabulary) */
const MAX_ROW = 1 << 24
const MAGIC = new TextEncoder().encode('NSW1')
const MAX_HEADER_BYTES = 16 * 1024 * 1024

export function sha256 (...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

export function witnessHash (w: StageWitness): Uint8Array {
  return sha256(w.bytes ?? encodeWitness(w))
}

// ---- encoding ----------------------------------------------------------------------------------------

type Ref = [number, number] // [offset, byteLength] in the blob
interface TensorRef { type: 'float32' | 'int64', dims: number[], at: Ref }

class Blob {
  readonly parts: Uint8Array[] = []
  size = 0
  add (bytes: Uint8Array): Ref {
    const at: Ref = [this.size, bytes.byteLength]
    this.parts.push(bytes)
    this.size += bytes.byteLength
    return at
  }
}

function viewOf (a: Float32Array | BigInt64Array | Int32Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

function encodeMap (blob: Blob, m: Map<string, Float32Array>): Array<[string, Ref]> {
  return [...m.entries()].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0).map(([k, v]) => [k, blob.add(viewOf(v))])
}

function encodeOp (blob: Blob, op: StageOp): object {
  switch (op.kind) {
    case 'zero': return { kind: 'zero' }
    case 'take': return { kind: 'take' }
    case 'step': return op.skip != null && op.skip.length > 0 ? { kind: 'step', gradNorm: op.gradNorm ?? null, skip: [...op.skip] } : { kind: 'step', gradNorm: op.gradNorm ?? null }
    case 'add': return { kind: 'add', gradients: encodeMap(blob, op.gradients) }
    case 'rows': return { kind: 'rows', name: op.name, ids: blob.add(viewOf(op.ids)), data: blob.add(viewOf(op.data)) }
    case 'set': return { kind: 'set', parameters: encodeMap(blob, op.parameters) }
    case 'moments': return { kind: 'moments', m: encodeMap(blob, op.m), v: encodeMap(blob, op.v) }
    case 'seed': return { kind: 'seed', name: op.name, m: blob.add(viewOf(op.m)), v: blob.add(viewOf(op.v)) }
    case 'tiedStep': {
      const a = op.adamw
      return {
        kind: 'tiedStep',
        name: op.name,
        gradIds: blob.add(viewOf(op.gradIds)),
        gradRows: blob.add(viewOf(op.gradRows)),
        ids: blob.add(viewOf(op.ids)),
        rows: blob.add(viewOf(op.rows)),
        adamw: { lr: a.lr, beta1: a.beta1, beta2: a.beta2, eps: a.eps, weightDecay: a.weightDecay, t: a.t, gradScale: a.gradScale }
      }
    }
    case 'backward': {
      const feeds: Record<string, TensorRef> = {}
      for (const name of Object.keys(op.feeds).sort()) {
        const t = op.feeds[name]
        if (t.type !== 'float32' && t.type !== 'int64') throw new TypeError(`feed ${name} has type ${t.type}`)
        feeds[name] = { type: t.type, dims: [...t.dims], at: blob.add(viewOf(t.data as Float32Array | BigInt64Array)) }
      }
      return { kind: 'backward', feeds }
    }
  }
}

export function encodeWitness (w: StageWitness): Uint8Array {
  const blob = new Blob()
  const header = {
    start: w.start,
    end: w.end,
    opsFrom: w.opsFrom,
    states: w.states.map(s => {
      const state = { step: s.step, parameters: encodeMap(blob, s.parameters), m: encodeMap(blob, s.m), v: encodeMap(blob, s.v) }
      // (1.1.0) written only when the executor keeps a tied replica: a 1.0 witness is unchanged
      return s.replica != null ? { ...state, replica: { m: encodeMap(blob, s.replica.m), v: encodeMap(blob, s.replica.v) } } : state
    }),
    ops: w.ops.map(perExecutor => perExecutor.map(step => step.map(op => encodeOp(blob, op)))),
    evidence: w.evidence.map(e => ({
      slot: e.slot,
      record: { ...e.record, commit: blob.add(e.record.commit) },
      payloads: [...e.payloads.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([k, v]) => [k, blob.add(v)])
    })),
    payloads: w.payloads.map(p => ({ slot: p.slot, codec: p.codec, at: blob.add(p.bytes) }))
  }
  const head = new TextEncoder().encode(JSON.stringify(header))
  const out = new Uint8Array(8 + head.byteLength + blob.size)
  out.set(MAGIC, 0)
  new DataView(out.buffer).setUint32(4, head.byteLength)
  out.set(head, 8)
  let at = 8 + head.byteLength
  for (const p of blob.parts) { out.set(p, at); at += p.byteLength }
  return out
}

// ---- decoding (untrusted bytes: every shape and bound is checked, anything else gives undefined) -------

class Malformed extends Error {}

function int (v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new Malformed('not an integer in range')
  return v
}

function arr (v: unknown, max: number): unknown[] {
  if (!Array.isArray(v) || v.length > max) throw new Malformed('not an array in bounds')
  return v
}

function str (v: unknown, max = 256): string {
  if (typeof v !== 'string' || v.length > max) throw new Malformed('not a string')
  return v
}

/** Decode a witness; undefined when the bytes are not a well-formed witness within the bounds */
export function decodeWitness (bytes: Uint8Array): StageWitness | undefined {
  try {
    return decode(bytes)
  } catch (err) {
    if (err instanceof Malformed || err instanceof SyntaxError || err instanceof RangeError || err instanceof TypeError) return undefined
    throw err
  }
}

function decode (bytes: Uint8Array): StageWitness {
  if (bytes.byteLength < 8 || MAGIC.some((b, i) => bytes[i] !== b)) throw new Malformed('magic')
  const headLen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4)
  if (headLen > MAX_HEADER_BYTES || 8 + headLen > bytes.byteLength) throw new Malformed('header length')
  const h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headLen)))
  if (h == null || typeof h !== 'object') throw new Malformed('header')
  const blobAt = 8 + headLen
  const blobLen = bytes.byteLength - blobAt
  const slice = (r: unknown): Uint8Array => {
    const [off, len] = arr(r, 2)
    const o = int(off, 0, blobLen)
    const l = int(len, 0, blobLen - o)
    return bytes.slice(blobAt + o, blobAt + o + l)
  }
  const f32 = (r: unknown): Float32Array => {
    const b = slice(r)
    if (b.byteLength % 4 !== 0) throw new Malformed('float32 length')
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)
  }
  const map = (v: unknown): Map<string, Float32Array> => {
    const out = new Map<string, Float32Array>()
    for (const e of arr(v, 4096)) {
      const [k, r] = arr(e, 2)
      const name = str(k)
      if (out.has(name)) throw new Malformed('duplicate tensor')
      out.set(name, f32(r))
    }
    return out
  }
  const start = int(h.start, 0, 1 << 20)
  const end = int(h.end, start + 1, 1 << 20)
  const opsFrom = int(h.opsFrom)
  const i32 = (r: unknown): Int32Array => {
    const b = slice(r)
    if (b.byteLength % 4 !== 0) throw new Malformed('int32 length')
    const out = new Int32Array(b.byteLength / 4)
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
    for (let i = 0; i < out.length; i++) {
      out[i] = view.getInt32(4 * i, true)
      if (out[i] < 0 || out[i] > MAX_ROW) throw new Malformed('row id')
    }
    return out
  }
  const rowsOf = (ids: Int32Array, data: Float32Array): void => {
    if (ids.length === 0 ? data.length !== 0 : data.length % ids.length !== 0) throw new Malformed('rows')
  }
  const num = (v: unknown, min = -Infinity): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new Malformed('number')
    return v
  }
  const states = arr(h.states, MAX_WITNESS_EXECUTORS).map((s: any): ExecutorState => {
    if (s == null || typeof s !== 'object') throw new Malformed('state')
    const state: ExecutorState = { step: int(s.step), parameters: map(s.parameters), m: map(s.m), v: map(s.v) }
    if (s.replica !== undefined) {
      if (s.replica == null || typeof s.replica !== 'object' || Array.isArray(s.replica)) throw new Malformed('replica')
      state.replica = { m: map(s.replica.m), v: map(s.replica.v) }
    }
    return state
  })
  const ops = arr(h.ops, MAX_WITNESS_EXECUTORS).map(perExecutor => arr(perExecutor, MAX_WITNESS_STEPS).map(step => arr(step, MAX_WITNESS_OPS_PER_STEP).map((op: any): StageOp => {
    if (op == null || typeof op !== 'object') throw new Malformed('op')
    if (op.kind === 'zero') return { kind: 'zero' }
    if (op.kind === 'step') {
      let skip: string[] | undefined
      if (op.skip !== undefined) {
        skip = arr(op.skip, 8).map(n => str(n))
        if (skip.length === 0) skip = undefined
      }
      if (op.gradNorm === null || op.gradNorm === undefined) return skip != null ? { kind: 'step', skip } : { kind: 'step' }
      if (typeof op.gradNorm !== 'number' || !Number.isFinite(op.gradNorm) || op.gradNorm < 0) throw new Malformed('gradNorm')
      return skip != null ? { kind: 'step', gradNorm: op.gradNorm, skip } : { kind: 'step', gradNorm: op.gradNorm }
    }
    // (1.1.0) the tied calls
    if (op.kind === 'take') return { kind: 'take' }
    if (op.kind === 'add') return { kind: 'add', gradients: map(op.gradients) }
    if (op.kind === 'set') return { kind: 'set', parameters: map(op.parameters) }
    if (op.kind === 'moments') return { kind: 'moments', m: map(op.m), v: map(op.v) }
    if (op.kind === 'seed') return { kind: 'seed', name: str(op.name), m: f32(op.m), v: f32(op.v) }
    if (op.kind === 'rows') {
      const ids = i32(op.ids)
      const data = f32(op.data)
      rowsOf(ids, data)
      return { kind: 'rows', name: str(op.name), ids, data }
    }
    if (op.kind === 'tiedStep') {
      const gradIds = i32(op.gradIds)
      const gradRows = f32(op.gradRows)
      const ids = i32(op.ids)
      const rows = f32(op.rows)
      rowsOf(gradIds, gradRows)
      rowsOf(ids, rows)
      const a = op.adamw
      if (a == null || typeof a !== 'object' || Array.isArray(a)) throw new Malformed('adamw')
      const adamw = { lr: num(a.lr), beta1: num(a.beta1), beta2: num(a.beta2), eps: num(a.eps), weightDecay: num(a.weightDecay), t: int(a.t, 1), gradScale: num(a.gradScale, 0) }
      return { kind: 'tiedStep', name: str(op.name), gradIds, gradRows, ids, rows, adamw }
    }
    if (op.kind !== 'backward' || op.feeds == null || typeof op.feeds !== 'object' || Array.isArray(op.feeds)) throw new Malformed('op kind')
    const feeds: Record<string, TensorData> = {}
    const names = Object.keys(op.feeds)
    if (names.length > 8) throw new Malformed('feeds')
    for (const name of names) {
      const t = op.feeds[name]
      if (t == null || typeof t !== 'object') throw new Malformed('feed')
      const dims = arr(t.dims, 8).map(d => int(d, 0, 1 << 24))
      const n = dims.reduce((a, b) => a * b, 1)
      const b = slice(t.at)
      let data: Float32Array | BigInt64Array
      if (t.type === 'float32' && b.byteLength === 4 * n) data = new Float32Array(b.buffer, b.byteOffset, n)
      else if (t.type === 'int64' && b.byteLength === 8 * n) data = new BigInt64Array(b.buffer, b.byteOffset, n)
      else throw new Malformed('feed type or size')
      feeds[str(name)] = { type: t.type, dims, data }
    }
    return { kind: 'backward', feeds }
  })))
  const evidence = arr(h.evidence, 64).map((e: any): SlotEvidence => {
    if (e == null || typeof e !== 'object' || e.record == null || typeof e.record !== 'object') throw new Malformed('evidence')
    const r = e.record
    const record: RoundRecord = {
      group: str(r.group),
      span: str(r.span),
      round: int(r.round),
      baseHash: str(r.baseHash, 64),
      leader: str(r.leader),
      commit: slice(r.commit),
      aggregator: str(r.aggregator),
      contributions: arr(r.contributions, 1024).map((c: any) => {
        if (c == null || typeof c !== 'object' || typeof c.accepted !== 'boolean' || typeof c.distance !== 'number') throw new Malformed('contribution')
        return { sender: str(c.sender), payloadHash: str(c.payloadHash, 64), dataShards: arr(c.dataShards, 64).map(s => str(s, 128)), innerSteps: int(c.innerSteps), tokens: int(c.tokens), accepted: c.accepted, distance: c.distance }
      }),
      resultHash: str(r.resultHash, 64)
    }
    const payloads = new Map<string, Uint8Array>()
    for (const p of arr(e.payloads, 1024)) {
      const [k, ref] = arr(p, 2)
      payloads.set(str(k, 64), slice(ref))
    }
    return { slot: int(e.slot, 0, 1 << 20), record, payloads }
  })
  const payloads = arr(h.payloads, 64).map((p: any): SlotPayload => {
    if (p == null || typeof p !== 'object' || p.codec == null || typeof p.codec !== 'object') throw new Malformed('payload')
    const c = p.codec
    return { slot: int(p.slot, 0, 1 << 20), codec: { codec: int(c.codec, 0, 16), blockSize: int(c.blockSize), chunk: int(c.chunk), topK: int(c.topK), bits: int(c.bits, 0, 32) }, bytes: slice(p.at) }
  })
  return { start, end, opsFrom, states, ops, evidence, payloads, bytes }
}

// ---- recording a stage's round ------------------------------------------------------------------------

function copyTensor (t: TensorData): TensorData {
  return { type: t.type, dims: [...t.dims], data: t.data.slice() as TensorData['data'] }
}

/** A stage's recorded inner loop, from the start of a round to the moment it contributes */
export interface RecordedRound {
  start: number
  end: number
  opsFrom: number
  before: ExecutorState[]
  after: ExecutorState[]
  ops: StageOp[][][]
}

/** An executor's training state; AdamW moments not allocated yet (before the first step) are zeros; a tied replica's moments */
export async function snapshot (e: ShardExecutor): Promise<ExecutorState> {
  const [parameters, { m, v }] = await Promise.all([e.getParameters(), e.getOptimizerState()])
  for (const [name, p] of parameters) {
    if (m.get(name)?.length !== p.length) m.set(name, new Float32Array(p.length))
    if (v.get(name)?.length !== p.length) v.set(name, new Float32Array(p.length))
  }
  const state: ExecutorState = { parameters, m, v, step: e.stepCount }
  const rm = new Map<string, Float32Array>()
  const rv = new Map<string, Float32Array>()
  for (const name of e.tiedParameters ?? []) {
    const r = await e.getTiedReplicaState(name)
    if (r != null) { rm.set(name, r.m); rv.set(name, r.v) }
  }
  if (rm.size > 0) state.replica = { m: rm, v: rv }
  return state
}

/** The parameters a stage's tied calls may touch: `embed.weight` of a model with tied embeddings */
function tiedNames (stage: PipelineStage): string[] {
  return stage.config.tieEmbeddings === true ? ['embed.weight'] : []
}

const copyMap = (m: Map<string, Float32Array>): Map<string, Float32Array> => new Map([...m].map(([k, v]) => [k, v.slice()]))

/**
 * Wraps a stage so that every state-changing call on its executors is recorded from the first call of an
 * inner loop (the executors' step count a multiple of `innerSteps`): the state is snapshotted before that
 * call. (1.1.0) With tied embeddings the calls that move the tied matrix between the Driver and the Validator are
 * recorded too (`take`, `add`, `rows`, `set`, `moments`, `seed`, `tiedStep`, a step's `skip`). Calls a replay could
 * not reproduce (weights other than the tied matrix set during the loop, the optimizer reset, a replica step that does
 * not follow the executor's own step) mark the round unprovable. `wanted`, asked when a loop starts, says whether a
 * proof of that loop could be signed (the node proves at most one round per ledger round): when it says no, the loop is
 * not recorded (no snapshot, no copies of the backward feeds).
 */
export class StageRecorder {
  readonly stage: PipelineStage
  readonly #inner: PipelineStage
  readonly #innerSteps: number
  readonly #wanted: () => boolean
  readonly #tied: string[]
  #current?: { opsFrom: number, before: ExecutorState[], ops: StageOp[][][], broken: boolean }
  #beginning?: Promise<void>
  /** per executor: what its `take`s took since its last step, and what they took before it (for a `tiedStep`) */
  readonly #taken: Array<Float32Array | undefined>
  readonly #pending: Array<Float32Array | undefined>
  /** recorded calls still running (a snapshot waits for them) */
  readonly #inflight = new Set<Promise<unknown>>()

  constructor (stage: PipelineStage, innerSteps: number, wanted: () => boolean = () => true) {
    this.#inner = stage
    this.#innerSteps = innerSteps
    this.#wanted = wanted
    this.#tied = tiedNames(stage)
    this.#taken = stage.executors.map(() => undefined)
    this.#pending = stage.executors.map(() => undefined)
    const wrapped = stage.executors.map((e, i) => this.#wrap(e, i))
    const at = (e?: ShardExecutor): ShardExecutor | undefined => e == null ? undefined : wrapped[stage.executors.indexOf(e)]
    this.stage = {
      // every other field as the stage has it (the pipeline may add fields of its own)
      ...stage,
      embed: at(stage.embed),
      blocks: at(stage.blocks),
      head: at(stage.head),
      executors: wrapped,
      close: async () => { await stage.close() }
    }
  }

  /** The recorded round so far is dropped (e.g. the stage's weights were replaced) */
  reset (): void {
    this.#current = undefined
  }

  async #begin (): Promise<void> {
    // the stage's step: the executors step one after the other, so the lowest count is the step in progress
    const step = Math.min(...this.#inner.executors.map(e => e.stepCount))
    const c = this.#current
    if (c != null && c.opsFrom <= step && step < c.opsFrom + this.#innerSteps) return
    if (step % this.#innerSteps !== 0) {
      // a loop this recorder did not see start (the stage was built mid-round): nothing provable until the next
      this.#current = undefined
      return
    }
    if (this.#beginning == null && !this.#wanted()) {
      // a loop whose proof could not be signed: marked as unprovable for its steps, nothing kept
      this.#current = { opsFrom: step, before: [], ops: [], broken: true }
      return
    }
    this.#beginning ??= (async () => {
      await this.#settled()
      const before = await Promise.all(this.#inner.executors.map(snapshot))
      this.#current = { opsFrom: step, before, ops: this.#inner.executors.map(() => [[]]), broken: false }
    })().finally(() => { this.#beginning = undefined })
    await this.#beginning
  }

  /** Whether calls are being recorded now (a loop began that may be proved and nothing broke it) */
  #recording (): boolean {
    return this.#current != null && !this.#current.broken
  }

  #break (): void {
    if (this.#current != null) this.#current.broken = true
  }

  #push (i: number, op: StageOp): void {
    const c = this.#current
    if (c == null || c.broken) return
    const steps = c.ops[i]
    steps[steps.length - 1].push(op)
    if (op.kind === 'step') steps.push([])
    if (steps.length > this.#innerSteps + 1 || steps[steps.length - 1].length > MAX_WITNESS_OPS_PER_STEP) c.broken = true
  }

  /** A tied replica's step belongs to the inner step whose optimizer step came right before it */
  #pushAfterStep (i: number, op: StageOp): void {
    const c = this.#current
    if (c == null || c.broken) return
    const steps = c.ops[i]
    const last = steps[steps.length - 2]
    if (steps[steps.length - 1].length !== 0 || last == null || last[last.length - 1]?.kind !== 'step') c.broken = true
    else last.push(op)
  }

  /**
   * A write of executor `i`'s state (`op`: the recordable tied call, undefined for any other): nothing to do before a loop
   * is recorded (the loop's snapshot will hold it); within the recorded loop's steps it is recorded (or breaks the loop
   * when not recordable); after them (the loop done, not finished yet) it breaks the loop, whose final state it changes
   */
  #write (i: number, op: (() => StageOp) | undefined): void {
    const c = this.#current
    if (c == null || c.broken) return
    const step = Math.min(...this.#inner.executors.map(e => e.stepCount))
    if (op == null || step < c.opsFrom || step >= c.opsFrom + this.#innerSteps) c.broken = true
    else this.#push(i, op())
  }

  async #settled (): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
  }

  /** Run a recorded call, known to a snapshot until it settles */
  async #run<T> (call: () => Promise<T>): Promise<T> {
    const p = call()
    this.#inflight.add(p)
    try {
      return await p
    } finally {
      this.#inflight.delete(p)
    }
  }

  #onlyTied (names: Iterable<string>): boolean {
    for (const n of names) if (!this.#tied.includes(n)) return false
    return true
  }

  #wrap (e: ShardExecutor, i: number): ShardExecutor {
    return new Proxy(e, {
      get: (target, prop) => {
        switch (prop) {
          case 'backward':
            return async (feeds: Record<string, TensorData>, options?: any) => {
              await this.#begin()
              if (this.#recording()) {
                const copy: Record<string, TensorData> = {}
                for (const [k, t] of Object.entries(feeds)) copy[k] = copyTensor(t)
                this.#push(i, { kind: 'backward', feeds: copy })
              }
              return await this.#run(async () => await target.backward(feeds, options))
            }
          case 'zeroGradients':
            return async (options?: any) => {
              this.#push(i, { kind: 'zero' })
              return await this.#run(async () => await target.zeroGradients(options))
            }
          case 'step':
            return async (options: { gradNorm?: number, skip?: string[] } = {}) => {
              await this.#begin()
              const skip = options.skip ?? []
              // (a tied matrix stepped by its owner, pipeline tiedOwner) only the tied matrix may be left out
              if (!this.#onlyTied(skip)) this.#break()
              this.#push(i, { kind: 'step', ...(options.gradNorm !== undefined ? { gradNorm: options.gradNorm } : {}), ...(skip.length > 0 ? { skip: [...skip] } : {}) })
              this.#pending[i] = this.#taken[i]
              this.#taken[i] = undefined
              return await this.#run(async () => await target.step(options))
            }
          case 'takeTiedGradients':
            // (tied embeddings) the head's tied gradient taken: a replay takes the same (a no-op when nothing is tied)
            return async (...args: any[]) => {
              if (target.tiedParameters.length === 0) return await target.takeTiedGradients(...args)
              await this.#begin()
              this.#push(i, { kind: 'take' })
              const taken: Map<string, Float32Array> = await this.#run(async () => await target.takeTiedGradients(...args))
              if (!this.#recording()) { this.#taken[i] = undefined; return taken }
              // what a replay's taken gradient will be (the caller may change the arrays it got: copied now)
              for (const [name, g] of taken) {
                if (name !== this.#tied[0]) { this.#break(); continue }
                const sum = this.#taken[i]
                if (sum == null) this.#taken[i] = g.slice()
                else for (let k = 0; k < sum.length; k++) sum[k] += g[k]
              }
              return taken
            }
          case 'stepTiedReplica':
            // (tied embeddings) a Validator's replica of the tied matrix stepped in its worker, after the head's own step
            return async (name: string, grad: Float32Array, rows: { ids: Int32Array, data: Float32Array }, adamw: TiedAdamWNumbers, options?: any) => {
              if (this.#recording()) {
                // (before the call: the gradient moves to the worker) the rows where it is not what the takes took
                const d = this.#inner.config.dModel
                const base = this.#pending[i]
                const ids: number[] = []
                if (grad.length % d !== 0 || (base != null && base.length !== grad.length)) this.#break()
                else {
                  for (let r = 0; r < grad.length / d; r++) {
                    for (let j = r * d; j < (r + 1) * d; j++) {
                      if (!Object.is(grad[j], base != null ? base[j] : 0)) { ids.push(r); break }
                    }
                  }
                }
                const gradRows = new Float32Array(ids.length * d)
                ids.forEach((r, k) => gradRows.set(grad.subarray(r * d, (r + 1) * d), k * d))
                const a = { lr: adamw.lr, beta1: adamw.beta1, beta2: adamw.beta2, eps: adamw.eps, weightDecay: adamw.weightDecay, t: adamw.t, gradScale: adamw.gradScale }
                if (!this.#tied.includes(name)) this.#break()
                this.#pushAfterStep(i, { kind: 'tiedStep', name, gradIds: Int32Array.from(ids), gradRows, ids: rows.ids.slice(), rows: rows.data.slice(), adamw: a })
              }
              this.#pending[i] = undefined
              return await this.#run(async () => await target.stepTiedReplica(name, grad, rows, adamw, options))
            }
          // (tied embeddings) the calls that write the tied matrix, its moments or its gradient: recorded within a loop; one
          // that comes before a loop begins is in that loop's starting state (its snapshot comes later); any other write breaks
          case 'seedTiedReplica':
            return async (name: string, state: { m: Float32Array, v: Float32Array }, options?: any) => {
              this.#write(i, this.#tied.includes(name) ? () => ({ kind: 'seed', name, m: state.m.slice(), v: state.v.slice() }) : undefined)
              return await this.#run(async () => await target.seedTiedReplica(name, state, options))
            }
          case 'addGradients':
            return async (gradients: Map<string, Float32Array>, options?: any) => {
              // (copied before the call: `transfer` detaches them)
              this.#write(i, this.#onlyTied(gradients.keys()) ? () => ({ kind: 'add', gradients: copyMap(gradients) }) : undefined)
              return await this.#run(async () => await target.addGradients(gradients, options))
            }
          case 'setParameterRows':
            return async (name: string, rows: readonly number[], data: Float32Array, options?: any) => {
              this.#write(i, this.#tied.includes(name) ? () => ({ kind: 'rows', name, ids: Int32Array.from(rows), data: data.slice() }) : undefined)
              return await this.#run(async () => await target.setParameterRows(name, rows, data, options))
            }
          case 'setParameters':
            return async (parameters: Map<string, Float32Array>, options?: any) => {
              // the tied matrix alone (SET_TIED, GET_TIED, slot 0's round weights), never a whole shard's weights
              this.#write(i, options?.partial === true && this.#onlyTied(parameters.keys()) ? () => ({ kind: 'set', parameters: copyMap(parameters) }) : undefined)
              return await this.#run(async () => await target.setParameters(parameters, options))
            }
          case 'setOptimizerState':
            return async (state: { m: Map<string, Float32Array>, v: Map<string, Float32Array> }, options?: any) => {
              this.#write(i, this.#onlyTied(state.m.keys()) && this.#onlyTied(state.v.keys()) ? () => ({ kind: 'moments', m: copyMap(state.m), v: copyMap(state.v) }) : undefined)
              return await this.#run(async () => await target.setOptimizerState(state, options))
            }
          case 'resetOptimizer':
            return async (...args: any[]) => {
              this.#break()
              this.#taken[i] = undefined
              this.#pending[i] = undefined
              return await (target as any)[prop](...args)
            }
        }
        const v = Reflect.get(target, prop, target)
        return typeof v === 'function' ? v.bind(target) : v
      }
    })
  }

  /**
   * The round recorded since the last loop start, with the state now (call when the inner loop is done);
   * undefined when no complete loop was recorded
   */
  async finish (): Promise<RecordedRound | undefined> {
    const c = this.#current
    this.#current = undefined
    if (c == null || c.broken) return undefined
    // (a tied replica steps right after its head's step: the state is taken once recorded calls are done)
    await this.#settled()
    const after = await Promise.all(this.#inner.executors.map(snapshot))
    const steps = after[0].step - c.opsFrom
    if (steps !== this.#innerSteps) return undefined
    // every executor took exactly the loop's steps; the trailing (empty) segment is dropped
    const ops = c.ops.map(per => per.slice(0, steps))
    if (c.ops.some(per => per.length !== steps + 1 || per[steps].length !== 0) || after.some(s => s.step !== after[0].step)) return undefined
    return { start: this.#inner.start, end: this.#inner.end, opsFrom: c.opsFrom, before: c.before, after, ops }
  }
}
