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
import { DEFAULT_BETA1, DEFAULT_BETA2, DEFAULT_EPS, DEFAULT_WEIGHT_DECAY, createShardExecutor } from '@neuroshard/runtime'
import { sha256, snapshot, witnessHash } from './stage-work.js'
import type { ExecutorState, SlotPayload, StageOp, StageWitness } from './stage-work.js'
import type { AbortOptions } from '@libp2p/interface'
import type { AggregatorChoice, CodecName, ResolvedCodec } from '@neuroshard/diloco'
import type { ModelConfig, ShardRole } from '@neuroshard/model'
import type { AggregationQuery, AggregationRecords, TrainingClaim, TrainingModel, TrainingWitness } from '@neuroshard/ponw-ledger'
import type { AdamWOptions, ShardExecutor, StepResult } from '@neuroshard/runtime'

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
    // (1.1.0) a tied head's replica step may follow its optimizer step
    const last = ops?.[ops.length - 1]?.kind === 'tiedStep' ? ops.length - 2 : (ops?.length ?? 0) - 1
    if (ops == null || ops.length === 0 || ops[last]?.kind !== 'step' || ops.filter(o => o.kind === 'step').length !== 1) {
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
    checkTiedCalls(config, roles[e], s, ops, `inner step ${index} of executor ${e}`)
  }
  return roles
}

const fail = (what: string): never => { throw new ReExecutionMismatchError(what) }

/** Strictly increasing row ids in [0, V), `data` one row of `d` per id */
function checkRows (ids: Int32Array, data: Float32Array, V: number, d: number, what: string): void {
  for (let k = 0; k < ids.length; k++) if (!(ids[k] >= 0 && ids[k] < V && (k === 0 || ids[k] > ids[k - 1]))) fail(`${what}: row ${ids[k]} at ${k} is outside [0, ${V}) or not increasing`)
  if (data.length !== ids.length * d) fail(`${what}: ${data.length} floats for ${ids.length} rows of ${d}`)
}

/** Every tensor of `m` is the tied matrix (`vocab × d` floats) */
function checkTiedMap (m: Map<string, Float32Array>, tied: string, n: number, what: string): void {
  if (m.size === 0) fail(`${what}: no tensor`)
  for (const [k, t] of m) if (k !== tied || t.length !== n) fail(`${what}: ${k} (${t.length} floats) is not the tied matrix ${tied} (${n})`)
}

/**
 * (1.1.0, re-execution rule 2) The tied calls of one executor's inner step: allowed only with tied embeddings, on the tied
 * matrix only, each on the executor that makes that call in a pipeline (the embedding owns the matrix: `add`, `rows`,
 * `moments`, a step's `skip`; the head reads it: `take`, `seed`, `tiedStep`; `set` on either), with the model's shapes;
 * the optimizer step followed by nothing but at most one `tiedStep`. A replica's moments only on a tied head.
 */
export function checkTiedCalls (config: ModelConfig, role: ShardRole, s: ExecutorState, ops: StageOp[], what: string): void {
  const tied = config.tieEmbeddings ? 'embed.weight' : undefined
  const V = config.vocabSize
  const d = config.dModel
  const n = V * d
  const head = role.kind === 'head' && tied != null
  const embed = role.kind === 'embed' && tied != null
  if (s.replica != null) {
    if (!head) fail(`${what}: a tied replica's moments on an executor without a tied parameter`)
    checkTiedMap(s.replica.m, tied!, n, `${what}: the replica's m`)
    checkTiedMap(s.replica.v, tied!, n, `${what}: the replica's v`)
  }
  const stepAt = ops.findIndex(o => o.kind === 'step')
  ops.forEach((op, k) => {
    if (k > stepAt && op.kind !== 'tiedStep') fail(`${what}: a ${op.kind} after the optimizer step`)
    switch (op.kind) {
      case 'backward': case 'zero': return
      case 'step':
        if (op.skip != null && op.skip.length > 0 && !(embed && op.skip.every(x => x === tied))) fail(`${what}: a step that skips ${op.skip.join(', ')}`)
        return
      case 'take':
        if (!head) fail(`${what}: a take on an executor without a tied parameter`)
        return
      case 'seed':
        if (!head || op.name !== tied || op.m.length !== n || op.v.length !== n) fail(`${what}: a seed that is not of the head's tied matrix`)
        return
      case 'tiedStep':
        if (!head || op.name !== tied) fail(`${what}: a tiedStep that is not of the head's tied matrix`)
        if (k < stepAt || ops.slice(stepAt + 1).length > 1) fail(`${what}: a tiedStep must follow the optimizer step, once`)
        checkRows(op.gradIds, op.gradRows, V, d, `${what}: the tiedStep's gradient rows`)
        checkRows(op.ids, op.rows, V, d, `${what}: the tiedStep's rows`)
        return
      case 'add':
        if (!embed) fail(`${what}: an add on an executor that does not own the tied matrix`)
        checkTiedMap(op.gradients, tied!, n, `${what}: the added gradient`)
        return
      case 'rows':
        if (!embed || op.name !== tied) fail(`${what}: rows that are not of the embedding's tied matrix`)
        for (let r = 0; r < op.ids.length; r++) if (!(op.ids[r] >= 0 && op.ids[r] < V)) fail(`${what}: row ${op.ids[r]} is outside [0, ${V})`)
        if (op.data.length !== op.ids.length * d) fail(`${what}: ${op.data.length} floats for ${op.ids.length} rows of ${d}`)
        return
      case 'set':
        if (!(head || embed)) fail(`${what}: a set on an executor without the tied matrix`)
        checkTiedMap(op.parameters, tied!, n, `${what}: the set parameters`)
        return
      case 'moments':
        if (!embed) fail(`${what}: moments on an executor that does not own the tied matrix`)
        checkTiedMap(op.m, tied!, n, `${what}: the set m`)
        checkTiedMap(op.v, tied!, n, `${what}: the set v`)
        return
      default:
        fail(`${what}: an op of kind ${(op as any).kind}`)
    }
  })
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

/** A replay's executors and, per executor, the tied gradient its `take`s took since its last step and before it */
interface Held { w: StageWitness, executors: ShardExecutor[], taken: Array<Float32Array | undefined>, pending: Array<Float32Array | undefined> }

/**
 * A pipeline stage as a Proof-of-Learning `TrainingModel` (see the module comment). Stage proofs make no
 * loss claim (a stage without the head has no loss of its own): `lossMicro` is 0 and their claims carry zero
 * losses, so they never earn the quality bonus.
 */
export class StageTrainingModel implements TrainingModel<StageWitness> {
  readonly config: ModelConfig
  readonly #init: StageTrainingModelInit
  #held?: Held

  constructor (init: StageTrainingModelInit) {
    this.config = init.config
    this.#init = init
  }

  hash (w: StageWitness): Uint8Array {
    return witnessHash(w)
  }

  async #executors (w: StageWitness, roles: ShardRole[], options?: AbortOptions): Promise<Held> {
    if (this.#held?.w === w) return this.#held
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
        // (1.1.0) a tied head's replica: its moments next to the committed matrix
        if (s.replica != null) for (const [name, m] of s.replica.m) await ex.seedTiedReplica(name, { m, v: s.replica.v.get(name)! }, options)
      }
    } catch (err) {
      await Promise.allSettled(executors.map(async e => { await e.close() }))
      throw err
    }
    this.#held = { w, executors, taken: executors.map(() => undefined), pending: executors.map(() => undefined) }
    return this.#held
  }

  async step (w: StageWitness, _claim: TrainingClaim, index: number, options?: AbortOptions): Promise<StageWitness> {
    const roles = checkStageStep(this.config, w, index)
    for (let e = 0; e < roles.length; e++) {
      if (roles[e].kind !== 'head' && w.states[e].replica != null) throw new ReExecutionMismatchError(`executor ${e}: a replica without a tied parameter`)
    }
    const held = await this.#executors(w, roles, options)
    const { executors } = held
    try {
      for (let e = 0; e < executors.length; e++) {
        let stepped: StepResult | undefined
        for (const op of w.ops[e][index]) {
          options?.signal?.throwIfAborted()
          stepped = await this.#replay(held, e, op, stepped, options) ?? stepped
        }
      }
    } catch (err: any) {
      await this.close()
      if (err instanceof ReExecutionMismatchError || err?.name === 'AbortError') throw err
      throw new ReExecutionMismatchError(`inner step ${index} could not be replayed: ${err?.message ?? err}`)
    }
    const states = await Promise.all(executors.map(snapshot))
    const next: StageWitness = { start: w.start, end: w.end, states, opsFrom: w.opsFrom, ops: w.ops, evidence: [], payloads: [] }
    this.#held = { ...held, w: next }
    return next
  }

  /** One committed call on executor `e` of the replay (re-execution rule 2); a step answers what it did */
  async #replay (held: Held, e: number, op: StageOp, stepped: StepResult | undefined, options?: AbortOptions): Promise<StepResult | undefined> {
    const ex = held.executors[e]
    const signal = options?.signal
    switch (op.kind) {
      case 'backward': await ex.backward(op.feeds, { signal }); return
      case 'zero': await ex.zeroGradients(options); return
      case 'step': {
        const r = await ex.step({ ...(op.gradNorm !== undefined ? { gradNorm: op.gradNorm } : {}), ...(op.skip != null ? { skip: op.skip } : {}), signal })
        held.pending[e] = held.taken[e]
        held.taken[e] = undefined
        return r
      }
      case 'take': {
        for (const [name, g] of await ex.takeTiedGradients(options)) {
          if (name !== 'embed.weight') continue
          const sum = held.taken[e]
          if (sum == null) held.taken[e] = g
          else for (let k = 0; k < sum.length; k++) sum[k] += g[k]
        }
        return
      }
      case 'add': await ex.addGradients(op.gradients, options); return
      case 'rows': await ex.setParameterRows(op.name, [...op.ids], op.data, options); return
      case 'set': await ex.setParameters(op.parameters, { partial: true, signal }); return
      case 'moments': await ex.setOptimizerState({ m: op.m, v: op.v }, options); return
      case 'seed': await ex.seedTiedReplica(op.name, { m: op.m, v: op.v }, options); return
      case 'tiedStep': {
        // the Driver's numbers must be the network's AdamW of this very step: the same lr, clip scale and t as the
        // executor's own step just replayed, the network's betas, eps and decay
        const a = op.adamw
        const o = this.#init.optimizer ?? {}
        const want = { beta1: o.beta1 ?? DEFAULT_BETA1, beta2: o.beta2 ?? DEFAULT_BETA2, eps: o.eps ?? DEFAULT_EPS, weightDecay: o.weightDecay ?? DEFAULT_WEIGHT_DECAY }
        if (stepped == null || a.lr !== stepped.lr || a.gradScale !== stepped.clipScale || a.t !== ex.stepCount || a.t !== stepped.step + 1 ||
          a.beta1 !== want.beta1 || a.beta2 !== want.beta2 || a.eps !== want.eps || a.weightDecay !== want.weightDecay) {
          throw new ReExecutionMismatchError(`executor ${e}: the tied replica's AdamW numbers ${JSON.stringify(a)} are not the network's at step ${stepped?.step} (lr ${stepped?.lr}, clip scale ${stepped?.clipScale})`)
        }
        const d = this.config.dModel
        const grad = held.pending[e] ?? new Float32Array(this.config.vocabSize * d)
        held.pending[e] = undefined
        op.gradIds.forEach((r, k) => grad.set(op.gradRows.subarray(k * d, (k + 1) * d), r * d))
        const { finite } = await ex.stepTiedReplica(op.name, grad, { ids: op.ids, data: op.rows }, a, options)
        if (!finite) throw new ReExecutionMismatchError(`executor ${e}: the tied replica's step is not finite`)
      }
    }
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
      // (1.1.0) a tied replica's moments, as the executor's own
      if ((x.replica == null) !== (y.replica == null)) return Infinity
      if (x.replica != null && y.replica != null) {
        if (x.replica.m.size !== y.replica.m.size || x.replica.v.size !== x.replica.m.size || y.replica.v.size !== y.replica.m.size) return Infinity
        const r = adamStateDistance({ parameters: x.parameters, ...x.replica }, { parameters: y.parameters, ...y.replica }, x.replica.m.keys())
        if (!(r <= d)) d = r
      }
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
