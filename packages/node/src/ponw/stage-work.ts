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
}

/** A state-changing call on an executor */
export type StageOp =
  | { kind: 'backward', feeds: Record<string, TensorData> }
  | { kind: 'zero' }
  | { kind: 'step', gradNorm?: number }

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

function viewOf (a: Float32Array | BigInt64Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

function encodeMap (blob: Blob, m: Map<string, Float32Array>): Array<[string, Ref]> {
  return [...m.entries()].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0).map(([k, v]) => [k, blob.add(viewOf(v))])
}

export function encodeWitness (w: StageWitness): Uint8Array {
  const blob = new Blob()
  const header = {
    start: w.start,
    end: w.end,
    opsFrom: w.opsFrom,
    states: w.states.map(s => ({ step: s.step, parameters: encodeMap(blob, s.parameters), m: encodeMap(blob, s.m), v: encodeMap(blob, s.v) })),
    ops: w.ops.map(perExecutor => perExecutor.map(step => step.map(op => {
      if (op.kind !== 'backward') return op.kind === 'step' ? { kind: 'step', gradNorm: op.gradNorm ?? null } : { kind: 'zero' }
      const feeds: Record<string, TensorRef> = {}
      for (const name of Object.keys(op.feeds).sort()) {
        const t = op.feeds[name]
        if (t.type !== 'float32' && t.type !== 'int64') throw new TypeError(`feed ${name} has type ${t.type}`)
        feeds[name] = { type: t.type, dims: [...t.dims], at: blob.add(viewOf(t.data as Float32Array | BigInt64Array)) }
      }
      return { kind: 'backward', feeds }
    }))),
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
  const states = arr(h.states, MAX_WITNESS_EXECUTORS).map((s: any) => {
    if (s == null || typeof s !== 'object') throw new Malformed('state')
    return { step: int(s.step), parameters: map(s.parameters), m: map(s.m), v: map(s.v) }
  })
  const ops = arr(h.ops, MAX_WITNESS_EXECUTORS).map(perExecutor => arr(perExecutor, MAX_WITNESS_STEPS).map(step => arr(step, MAX_WITNESS_OPS_PER_STEP).map((op: any): StageOp => {
    if (op == null || typeof op !== 'object') throw new Malformed('op')
    if (op.kind === 'zero') return { kind: 'zero' }
    if (op.kind === 'step') {
      if (op.gradNorm === null || op.gradNorm === undefined) return { kind: 'step' }
      if (typeof op.gradNorm !== 'number' || !Number.isFinite(op.gradNorm) || op.gradNorm < 0) throw new Malformed('gradNorm')
      return { kind: 'step', gradNorm: op.gradNorm }
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

/** An executor's training state; AdamW moments not allocated yet (before the first step) are zeros */
export async function snapshot (e: ShardExecutor): Promise<ExecutorState> {
  const [parameters, { m, v }] = await Promise.all([e.getParameters(), e.getOptimizerState()])
  for (const [name, p] of parameters) {
    if (m.get(name)?.length !== p.length) m.set(name, new Float32Array(p.length))
    if (v.get(name)?.length !== p.length) v.set(name, new Float32Array(p.length))
  }
  return { parameters, m, v, step: e.stepCount }
}

/**
 * Wraps a stage so that every state-changing call on its executors is recorded from the first call of an
 * inner loop (the executors' step count a multiple of `innerSteps`): the state is snapshotted before that
 * call. Calls a replay could not reproduce (tied gradients moved between executors, weights set during the
 * loop) mark the round unprovable. `wanted`, asked when a loop starts, says whether a proof of that loop could be
 * signed (the node proves at most one round per ledger round): when it says no, the loop is not recorded (no
 * snapshot, no copies of the backward feeds).
 */
export class StageRecorder {
  readonly stage: PipelineStage
  readonly #inner: PipelineStage
  readonly #innerSteps: number
  readonly #wanted: () => boolean
  #current?: { opsFrom: number, before: ExecutorState[], ops: StageOp[][][], broken: boolean }
  #beginning?: Promise<void>

  constructor (stage: PipelineStage, innerSteps: number, wanted: () => boolean = () => true) {
    this.#inner = stage
    this.#innerSteps = innerSteps
    this.#wanted = wanted
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
      const before = await Promise.all(this.#inner.executors.map(snapshot))
      this.#current = { opsFrom: step, before, ops: this.#inner.executors.map(() => [[]]), broken: false }
    })().finally(() => { this.#beginning = undefined })
    await this.#beginning
  }

  /** Whether calls are being recorded now (a loop began that may be proved and nothing broke it) */
  #recording (): boolean {
    return this.#current != null && !this.#current.broken
  }

  #push (i: number, op: StageOp): void {
    const c = this.#current
    if (c == null || c.broken) return
    const steps = c.ops[i]
    steps[steps.length - 1].push(op)
    if (op.kind === 'step') steps.push([])
    if (steps.length > this.#innerSteps + 1 || steps[steps.length - 1].length > MAX_WITNESS_OPS_PER_STEP) c.broken = true
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
              return await target.backward(feeds, options)
            }
          case 'zeroGradients':
            return async (options?: any) => {
              this.#push(i, { kind: 'zero' })
              return await target.zeroGradients(options)
            }
          case 'step':
            return async (options: { gradNorm?: number, skip?: string[] } = {}) => {
              await this.#begin()
              this.#push(i, { kind: 'step', ...(options.gradNorm !== undefined ? { gradNorm: options.gradNorm } : {}) })
              // (a tied matrix stepped by its owner, pipeline tiedOwner) a step a replay would not reproduce
              if (options.skip != null && options.skip.length > 0 && this.#current != null) this.#current.broken = true
              return await target.step(options)
            }
          case 'takeTiedGradients':
            // (tied embeddings) the head's tied gradient handed to another shard: not in the replay (nothing taken: a no-op)
            return async (...args: any[]) => {
              const taken: Map<string, Float32Array> = await target.takeTiedGradients(...args)
              if (taken.size > 0 && this.#current != null) this.#current.broken = true
              return taken
            }
          // (tied embeddings) a Validator's replica of the tied matrix seeded or stepped in its worker: not in the replay
          case 'seedTiedReplica':
          case 'stepTiedReplica':
          case 'addGradients':
          case 'setParameterRows':
          case 'setParameters':
          case 'setOptimizerState':
          case 'resetOptimizer':
            return async (...args: any[]) => {
              if (this.#current != null) this.#current.broken = true
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
    const after = await Promise.all(this.#inner.executors.map(snapshot))
    const steps = after[0].step - c.opsFrom
    if (steps !== this.#innerSteps) return undefined
    // every executor took exactly the loop's steps; the trailing (empty) segment is dropped
    const ops = c.ops.map(per => per.slice(0, steps))
    if (c.ops.some(per => per.length !== steps + 1 || per[steps].length !== 0) || after.some(s => s.step !== after[0].step)) return undefined
    return { start: this.#inner.start, end: this.#inner.end, opsFrom: c.opsFrom, before: c.before, after, ops }
  }
}
