/**
 * The node's Proof-of-Neural-Work checks of a pipeline stage's training proof (specs/node/ponw.md):
 *
 * - {@link StageTrainingModel}: the `TrainingModel` that `@neuroshard/ponw-ledger`'s
 *   `ProofOfLearningVerifier` re-executes through — fresh onnxruntime executors of the proof's span, loaded
 *   with the committed state, replay the committed calls (backward feeds, gradient resets, optimizer steps
 *   with the chain's gradient norm) and must land on the committed final state; the final payloads must be
 *   the pseudo-gradient base − final as the announced codec carries it;
 * - {@link StageAggregationRecords}: the ledger's `AggregationRecords` — the proof's checkpoint 0 carries
 *   each slot group's signed round record and payloads; the record must verify (every announce signed by
 *   its sender, the accept/reject recomputed from the payloads), its base must be the committed weights,
 *   and the sender's contribution must be accepted with exactly the payloads the proof names.
 */
import { PayloadCodec, decodePayload, flatten, openCommit, resolveCodec, spanLayout, Signed, verifyRoundRecord, weightsHash, codecToWire } from '@neuroshard/diloco'
import { slotParameters } from '@neuroshard/layer-pool'
import { buildShardGraph, shardParameters } from '@neuroshard/model'
import { spanRoles } from '@neuroshard/pipeline'
import { ReExecutionMismatchError, digest, fromHex, toHex } from '@neuroshard/ponw-ledger'
import { adamStateDistance } from '@neuroshard/ponw-verifier'
import { createShardExecutor } from '@neuroshard/runtime'
import { sha256, snapshot, witnessHash } from './stage-work.js'
import type { ExecutorState, SlotPayload, StageWitness } from './stage-work.js'
import type { AbortOptions } from '@libp2p/interface'
import type { AggregatorChoice, CodecName, ResolvedCodec } from '@neuroshard/diloco'
import type { ModelConfig, ShardRole } from '@neuroshard/model'
import type { AggregationQuery, AggregationRecords, TrainingClaim, TrainingModel, TrainingWitness } from '@neuroshard/ponw-ledger'
import type { AdamWOptions, ShardExecutor } from '@neuroshard/runtime'

/** The protobuf numbers of `PayloadCodec` (specs/diloco) and the codec names */
const CODEC_NAME: Record<number, CodecName> = { 1: 'fp32', 2: 'fp16', 3: 'int8', 4: 'sparse' }
const CODEC_NUMBER: Record<string, number> = { [PayloadCodec.FP32]: 1, [PayloadCodec.FP16]: 2, [PayloadCodec.INT8]: 3, [PayloadCodec.SPARSE]: 4 }

/** A codec as the announce carries it, with the codec as its protobuf number */
export function codecTuple (c: ResolvedCodec): SlotPayload['codec'] {
  const w = codecToWire(c)
  return { codec: CODEC_NUMBER[w.codec] ?? 0, blockSize: w.blockSize, chunk: w.chunk, topK: w.topK, bits: w.bits }
}

function u32 (n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}

/**
 * A stage proof's pseudo-gradient hash: sha256("neuroshard/node/v1/stage-pseudo-gradient" ‖ 0 ‖ for each
 * slot in order: u32be(slot) ‖ sha256(payload) ‖ u32be × 5 (codec, block size, chunk, top-k, bits))
 */
export function stagePseudoGradientHash (entries: Array<{ slot: number, payloadHash: Uint8Array, codec: SlotPayload['codec'] }>): Uint8Array {
  const parts: Uint8Array[] = []
  for (const e of [...entries].sort((a, b) => a.slot - b.slot)) {
    if (e.payloadHash.byteLength !== 32) throw new TypeError('a payload hash has 32 bytes')
    parts.push(u32(e.slot), e.payloadHash, u32(e.codec.codec), u32(e.codec.blockSize), u32(e.codec.chunk), u32(e.codec.topK), u32(e.codec.bits))
  }
  return digest('neuroshard/node/v1/stage-pseudo-gradient', ...parts)
}

/** Every parameter of a witness state, merged over its executors */
function allParameters (states: ExecutorState[]): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  for (const s of states) for (const [k, v] of s.parameters) out.set(k, v)
  return out
}

/**
 * The largest |decoded − Δ| a dense codec with error feedback leaves: the residual carried in from the last
 * round plus the one carried out of this one, each at most half a quantization step; a step of the previous
 * round may be a few times this round's (`slack`).
 */
function deltaTolerance (codec: CodecName, decoded: Float32Array, slack: number): number {
  let max = 0
  for (let i = 0; i < decoded.length; i++) { const a = Math.abs(decoded[i]); if (a > max) max = a }
  if (codec === 'int8') return slack * max / 127 + 1e-9
  if (codec === 'fp16') return slack * max * 2 ** -10 + 1e-9
  return 1e-6 * max + 1e-9
}

/**
 * The witness checks of re-execution rule 2 (specs/node/ponw.md §2) before inner step `index` is replayed from
 * `w`, none of which needs the model run: one state and one ops list per executor of the span's roles (the span
 * a non-empty slot range of the model); every state at one step with `step − opsFrom = index`; each executor's
 * ops of that step ending with its only optimizer step; each state holding every parameter of its role with its
 * size in `parameters`, `m` and `v`, and nothing else. Throws `ReExecutionMismatchError`.
 */
export function checkStageStep (config: ModelConfig, w: StageWitness, index: number): ShardRole[] {
  let roles: ShardRole[]
  try {
    roles = spanRoles(config, w.start, w.end)
  } catch (err: any) {
    throw new ReExecutionMismatchError(`the witness's span is not one of the model: ${err?.message ?? err}`)
  }
  if (roles.length !== w.states.length || w.ops.length !== w.states.length) throw new ReExecutionMismatchError(`span [${w.start}, ${w.end}) has ${roles.length} executors; the witness has ${w.states.length}`)
  const at = w.states[0].step - w.opsFrom
  if (at !== index || w.states.some(s => s.step !== w.states[0].step)) throw new ReExecutionMismatchError(`inner step ${index} asked of a state at step ${at}`)
  for (let e = 0; e < roles.length; e++) {
    const ops = w.ops[e][at]
    if (ops == null || ops.length === 0 || ops[ops.length - 1].kind !== 'step' || ops.filter(o => o.kind === 'step').length !== 1) {
      throw new ReExecutionMismatchError(`inner step ${index} of executor ${e}: the committed calls do not end with one optimizer step`)
    }
    const s = w.states[e]
    const specs = shardParameters(config, roles[e])
    for (const spec of specs) {
      const n = spec.shape.reduce((a, b) => a * b, 1)
      for (const t of [s.parameters, s.m, s.v]) {
        if (t.get(spec.name)?.length !== n) throw new ReExecutionMismatchError(`the committed state lacks ${spec.name} (or has another size)`)
      }
    }
    if (s.parameters.size !== specs.length || s.m.size !== specs.length || s.v.size !== specs.length) throw new ReExecutionMismatchError('the committed state has parameters the span does not')
  }
  return roles
}

export interface StageTrainingModelInit {
  config: ModelConfig
  /** The network's inner AdamW settings (the prover's executors used the same) */
  optimizer?: AdamWOptions
  device?: 'cpu' | 'cuda'
  /** onnxruntime intra-op threads (1 keeps the arithmetic order the prover's) @default 1 */
  threads?: number
  /** Linux nice value of the re-execution executors' worker threads (runtime `niceness`) @default 0 */
  niceness?: number
  /** how many of this round's quantization steps the previous round's residual may reach @default 8 */
  residualSlack?: number
}

/**
 * A pipeline stage as a Proof-of-Learning `TrainingModel` (see the module comment). Stage proofs make no
 * loss claim (a stage without the head has no loss of its own): `lossMicro` is 0 and their claims carry zero
 * losses, so they never earn the quality bonus.
 */
export class StageTrainingModel implements TrainingModel<StageWitness> {
  readonly config: ModelConfig
  readonly #init: StageTrainingModelInit
  #held?: { w: StageWitness, executors: ShardExecutor[] }

  constructor (init: StageTrainingModelInit) {
    this.config = init.config
    this.#init = init
  }

  hash (w: StageWitness): Uint8Array {
    return witnessHash(w)
  }

  async #executors (w: StageWitness, roles: ShardRole[], options?: AbortOptions): Promise<ShardExecutor[]> {
    if (this.#held?.w === w) return this.#held.executors
    await this.close()
    const executors: ShardExecutor[] = []
    try {
      // (the committed state's parameters were checked by checkStageStep)
      for (let i = 0; i < roles.length; i++) {
        const role = roles[i]
        const s = w.states[i]
        const ex = await createShardExecutor({
          config: this.config,
          role,
          parameters: s.parameters,
          step: s.step,
          graphs: { backward: buildShardGraph(this.config, role, 'backward').bytes },
          ...(this.#init.optimizer != null ? { optimizer: this.#init.optimizer } : {}),
          device: this.#init.device ?? 'cpu',
          intraOpNumThreads: this.#init.threads ?? 1,
          ...(this.#init.niceness != null ? { niceness: this.#init.niceness } : {})
        })
        executors.push(ex)
        await ex.setOptimizerState({ m: s.m, v: s.v }, options)
      }
    } catch (err) {
      await Promise.allSettled(executors.map(async e => { await e.close() }))
      throw err
    }
    this.#held = { w, executors }
    return executors
  }

  async step (w: StageWitness, _claim: TrainingClaim, index: number, options?: AbortOptions): Promise<StageWitness> {
    const roles = checkStageStep(this.config, w, index)
    const executors = await this.#executors(w, roles, options)
    try {
      for (let e = 0; e < executors.length; e++) {
        for (const op of w.ops[e][index]) {
          options?.signal?.throwIfAborted()
          if (op.kind === 'backward') await executors[e].backward(op.feeds, { signal: options?.signal })
          else if (op.kind === 'zero') await executors[e].zeroGradients(options)
          else await executors[e].step({ ...(op.gradNorm !== undefined ? { gradNorm: op.gradNorm } : {}), signal: options?.signal })
        }
      }
    } catch (err: any) {
      await this.close()
      if (err instanceof ReExecutionMismatchError || err?.name === 'AbortError') throw err
      throw new ReExecutionMismatchError(`inner step ${index} could not be replayed: ${err?.message ?? err}`)
    }
    const states = await Promise.all(executors.map(snapshot))
    const next: StageWitness = { start: w.start, end: w.end, states, opsFrom: w.opsFrom, ops: w.ops, evidence: [], payloads: [] }
    this.#held = { w: next, executors }
    return next
  }

  lossMicro (): bigint {
    return 0n
  }

  /** max |Δ| over weights and first moments, √ max |Δ| over second moments */
  distance (a: StageWitness, b: StageWitness): number {
    if (a.states.length !== b.states.length) return Infinity
    let d = 0
    for (let i = 0; i < a.states.length; i++) {
      const x = a.states[i]
      const y = b.states[i]
      // same tensor sets in both states (each name of x must be in y, and no extra ones)
      if (x.step !== y.step || x.parameters.size !== y.parameters.size || x.m.size !== x.parameters.size ||
        x.v.size !== x.parameters.size || y.m.size !== y.parameters.size || y.v.size !== y.parameters.size) return Infinity
      const e = adamStateDistance(x, y, x.parameters.keys())
      if (!(e <= d)) d = e
    }
    return d
  }


  /**
   * The stage pseudo-gradient hash of the final payloads, after checking that each payload decodes to
   * base − final of its slot (within the codec's error-feedback bound). Throws `ReExecutionMismatchError`.
   */
  pseudoGradientHash (base: StageWitness, final: StageWitness): Uint8Array {
    const slots = final.payloads.map(p => p.slot)
    const want = Array.from({ length: final.end - final.start }, (_, i) => final.start + i)
    if (slots.length !== want.length || want.some((s, i) => slots[i] !== s)) throw new ReExecutionMismatchError(`the final payloads are for slots ${slots.join(',')}, the span holds ${want.join(',')}`)
    const b = allParameters(base.states)
    const f = allParameters(final.states)
    for (const p of final.payloads) {
      const name = CODEC_NAME[p.codec.codec]
      if (name == null || name === 'sparse') throw new ReExecutionMismatchError(`slot ${p.slot}: stage proofs need a dense codec (fp32, fp16, int8), not ${name ?? p.codec.codec}`)
      const layout = spanLayout({ id: `slot-${p.slot}`, parameters: slotParameters(this.config, p.slot) })
      let decoded: Float32Array
      let bf: Float32Array
      let ff: Float32Array
      try {
        decoded = decodePayload(p.bytes, layout.size, resolveCodec({ codec: name, blockSize: p.codec.blockSize, chunk: p.codec.chunk, topK: p.codec.topK, bits: p.codec.bits }))
        bf = flatten(layout, b)
        ff = flatten(layout, f)
      } catch (err: any) {
        throw new ReExecutionMismatchError(`slot ${p.slot}: payload or weights unusable: ${err?.message ?? err}`)
      }
      const tol = deltaTolerance(name, decoded, this.#init.residualSlack ?? 8)
      for (let i = 0; i < decoded.length; i++) {
        const delta = Math.fround(bf[i] - ff[i])
        if (!(Math.abs(decoded[i] - delta) <= tol)) {
          throw new ReExecutionMismatchError(`slot ${p.slot}: the published pseudo-gradient is ${decoded[i]} at ${i}, the training gives ${delta} (tolerance ${tol})`)
        }
      }
    }
    return stagePseudoGradientHash(final.payloads.map(p => ({ slot: p.slot, payloadHash: sha256(p.bytes), codec: p.codec })))
  }

  async close (): Promise<void> {
    const held = this.#held
    this.#held = undefined
    await Promise.allSettled((held?.executors ?? []).map(async e => { await e.close() }))
  }
}


export interface StageAggregationRecordsInit {
  config: ModelConfig
  modelId: string
  /** The committed checkpoint 0 of a proof (the prover over the network, cached) */
  witness: TrainingWitness<StageWitness>
  /** The libp2p peer a wallet address is bound to (heartbeat bindings) */
  peerOf: (address: string) => string | undefined
  /** The aggregator the slot groups run (must match the network's DiLoCo setting) */
  aggregator?: AggregatorChoice
  rejectFactor?: number
}

/** The ledger's `AggregationRecords` for stage proofs (see the module comment) */
export class StageAggregationRecords implements AggregationRecords {
  readonly #init: StageAggregationRecordsInit

  constructor (init: StageAggregationRecordsInit) {
    this.#init = init
  }

  async acceptedPseudoGradient (q: AggregationQuery, options?: AbortOptions): Promise<boolean> {
    const { config, modelId } = this.#init
    if (q.proofId == null) return false
    const peer = this.#init.peerOf(q.sender)
    if (peer == null) return false
    const w0 = await this.#init.witness.fetchWeights({ proofId: q.proofId, sender: q.sender } as TrainingClaim, 0, options)
    if (w0 == null || toHex(witnessHash(w0)) !== toHex(q.baseWeightsHash)) return false
    const params = allParameters(w0.states)
    const entries: Array<{ slot: number, payloadHash: Uint8Array, codec: SlotPayload['codec'] }> = []
    for (let slot = w0.start; slot < w0.end; slot++) {
      const ev = w0.evidence.filter(e => e.slot === slot)
      if (ev.length !== 1) return false
      const { record, payloads } = ev[0]
      if (record.group !== `${modelId}/slot-${slot}` || record.span !== `slot-${slot}`) return false
      const layout = spanLayout({ id: `slot-${slot}`, parameters: slotParameters(config, slot) })
      try {
        await verifyRoundRecord(record, { payloads, elements: layout.size, ...(this.#init.aggregator != null ? { aggregator: this.#init.aggregator } : {}), ...(this.#init.rejectFactor != null ? { rejectFactor: this.#init.rejectFactor } : {}) })
        if (record.baseHash !== toHex(weightsHash(layout, flatten(layout, params)))) return false
      } catch {
        return false
      }
      const mine = record.contributions.find(c => c.sender === peer)
      if (mine == null || !mine.accepted) return false
      const opened = await openCommit(Signed.decode(record.commit))
      const announce = opened.announces.find(a => a.sender === peer)
      if (announce == null) return false
      entries.push({ slot, payloadHash: fromHex(mine.payloadHash), codec: codecTuple(announce.codec) })
    }
    return toHex(stagePseudoGradientHash(entries)) === toHex(q.pseudoGradientHash)
  }
}
