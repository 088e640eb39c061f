import { InvalidParametersError } from '@neuroshard/interface'
import { QUANT_BLOCK_SIZE, QUANT_BLOCK_SIZES, SHARD_DIMS, SHARD_IO, buildInferenceGraph, encodeCheckpoint, initParameter, shardParameters, validateConfig, describeRole } from '@neuroshard/model'
import { DEFAULT_BETA1, DEFAULT_BETA2, DEFAULT_EPS, DEFAULT_LR, DEFAULT_MAX_GRAD_NORM, DEFAULT_WEIGHT_DECAY } from './constants.js'
import { InvalidTensorError, NonFiniteTensorError, SessionError, TiedGradientsPendingError } from './errors.js'
import { constantLr } from './optim.js'
import { assertFinite } from './validate.js'
import type { DimLimit } from './validate.js'
import { Runtime, isKvCacheInput } from './runtime.js'
import type { LrSchedule } from './optim.js'
import type { AdamWHyperParameters, AdamWResult, TiedReplicaStepResult } from './protocol.js'
import { clipScaleOf } from './worker.js'
import type { Device, RunOptions, RuntimeInit, RuntimeSession } from './runtime.js'
import type { TensorData } from './tensor.js'
import type { AbortOptions } from './tensor.js'
import type { ModelConfig, ShardRole, ParameterSpec, QuantBlockSize, WeightQuantization } from '@neuroshard/model'

/** AdamW settings of a shard executor */
export interface AdamWOptions {
  /** @default 0.9 */
  beta1?: number
  /** @default 0.95 */
  beta2?: number
  /** @default 1e-8 */
  eps?: number
  /** Decoupled weight decay, not applied to norm weights. @default 0.1 */
  weightDecay?: number
  /** Clip the gradient norm to this (0 = off). @default 1.0 */
  maxGradNorm?: number
  /** Learning rate per step (e.g. `warmupCosine(...)`). @default constant 3e-4 */
  schedule?: LrSchedule
}

/** ONNX graphs of one shard (ModelProto bytes), per the model's shard I/O contract */
export interface ShardGraphs {
  /** Training forward (embed: input_ids → hidden; blocks: hidden_in → hidden_out; head: hidden, targets → loss) */
  forward?: Uint8Array
  /** Backward: activations + upstream gradient → downstream gradient and `grad.<param>` per parameter */
  backward?: Uint8Array
  /** Inference (blocks: with past/present KV cache and position_offset; head: hidden → logits) */
  inference?: Uint8Array
}

export interface ShardExecutorInit extends RuntimeInit {
  config: ModelConfig
  role: ShardRole
  graphs: ShardGraphs
  /** Initial weights (copied); when absent the seeded init of `@neuroshard/model` is used */
  parameters?: Map<string, Float32Array>
  /** Init seed when `parameters` is absent. @default 0 */
  seed?: number | bigint
  /** Optimizer steps already taken (e.g. from a checkpoint). @default 0 */
  step?: number
  optimizer?: AdamWOptions
  /**
   * The parameters the graphs take as resident inputs (for custom graphs)
   *
   * @default shardParameters(config, role)
   */
  parameterSpecs?: ParameterSpec[]
  /**
   * Serve inference with `'int8'` or `'int4'` weights (blockwise, 32-value groups; `@neuroshard/model`'s
   * `buildInferenceGraph`): the executor builds its inference graph itself with the quantized weights baked
   * in (`graphs.inference` is then ignored; its KV caches are `append` caches, token-major in the worker) and
   * rebuilds that session whenever `setParameters` changes the weights. The float32 weights stay resident for training graphs, `getParameters` and checkpoints.
   * An embed shard's inference graph is the lookup in the quantized table (rows dequantized in the graph, `infer()`), so
   * embed → blocks → head executors compute the same quantized model as a whole-model `InferenceEngine` (every matrix
   * quantized, the embedding table included; layer-pool §2.4). @default 'fp32'
   */
  quantization?: WeightQuantization
  /**
   * Float32 blocks / head executors: build the inference session with the weights baked in as initializers
   * (`buildInferenceGraph`, q/k/v and gate/up fused, `append` caches; `graphs.inference` is then ignored), rebuilt
   * whenever `setParameters` or a step changes the weights, as a quantized executor's. onnxruntime prepacks baked
   * weights, which use a second intra-op thread well (packages/gguf README: `bootstrap` 0.94–1.01× a native llama.cpp
   * F32 on 2 threads, resident ≈ 0.7×). Price: the float32 weights stay resident too (training graphs,
   * `getParameters`), so about twice the weights' memory, and a rebuild per weight change. Ignored by embed
   * executors. @default false
   */
  bakeWeights?: boolean
  /**
   * Quantized executors: values per quantization group along each matrix's input dim, 32, 64 or 128
   * (`MatMulNBits` `block_size`; declare it with the span's format in the layer-pool record,
   * `LayerSpan.quantBlockSize`). Larger groups read fewer scale bytes per weight. @default 32
   */
  quantBlockSize?: QuantBlockSize
}

/** What one optimizer step did */
export interface StepResult {
  /** 0-based index of the step just taken */
  step: number
  lr: number
  /** Gradient norm used for clipping (before clipping) */
  gradNorm: number
  /** Factor the gradients were scaled by (1 = not clipped) */
  clipScale: number
}

export interface StepOptions extends AbortOptions {
  /** Clip against this norm instead of the shard's own (e.g. the pipeline-global norm) */
  gradNorm?: number
  /**
   * Parameters this step leaves as they are (weights and moments; their gradients are zeroed with the others'), e.g. a
   * pipeline Driver's tied `embed.weight` that the Validator steps (pipeline spec §4.4 rule 7). The step count advances.
   */
  skip?: readonly string[]
}

/**
 * One shard of NeuroLLM on this machine: its parameters, gradients and AdamW state live in a worker
 * thread next to its onnxruntime sessions; calls pass only activations.
 */
export class ShardExecutor {
  readonly config: ModelConfig
  readonly role: ShardRole
  readonly runtime: Runtime
  /** Parameter specs in canonical order */
  readonly parameterSpecs: readonly ParameterSpec[]
  /**
   * Parameters this shard reads but another shard owns: with tied embeddings the head's `embed.weight`
   * (owned by the embed shard). This shard never steps them and leaves them out of `gradNormSquared()`;
   * their gradients are exported with `takeTiedGradients()` for the owner to add.
   */
  readonly tiedParameters: readonly string[]
  private readonly sessions: { forward?: RuntimeSession, backward?: RuntimeSession, inference?: RuntimeSession }
  private readonly optimizer: Required<Omit<AdamWOptions, 'schedule'>> & { schedule: LrSchedule }
  private steps: number
  private readonly quantization: WeightQuantization
  private readonly blockSize: QuantBlockSize
  /** Quantized, or float32 with `bakeWeights`: the inference session is built here with the weights baked in */
  private readonly bakeInference: boolean
  /** Bumped by every rebuild of a baked (quantized or float32) inference session */
  private inferenceVersion = 0
  /** The backward left gradients of tied parameters that `takeTiedGradients()` has not taken yet */
  private tiedPending = false

  private constructor (init: ShardExecutorInit, runtime: Runtime, sessions: ShardExecutor['sessions']) {
    this.config = init.config
    this.role = init.role
    this.runtime = runtime
    this.sessions = sessions
    this.parameterSpecs = init.parameterSpecs ?? shardParameters(init.config, init.role)
    this.tiedParameters = init.role.kind === 'head' && init.config.tieEmbeddings && this.parameterSpecs.some(s => s.name === 'embed.weight')
      ? ['embed.weight']
      : []
    this.steps = init.step ?? 0
    this.quantization = init.quantization ?? 'fp32'
    this.blockSize = init.quantBlockSize ?? QUANT_BLOCK_SIZE
    this.bakeInference = this.quantization !== 'fp32' || (init.bakeWeights === true && init.role.kind !== 'embed')
    const o = init.optimizer ?? {}
    this.optimizer = {
      beta1: o.beta1 ?? DEFAULT_BETA1,
      beta2: o.beta2 ?? DEFAULT_BETA2,
      eps: o.eps ?? DEFAULT_EPS,
      weightDecay: o.weightDecay ?? DEFAULT_WEIGHT_DECAY,
      maxGradNorm: o.maxGradNorm ?? DEFAULT_MAX_GRAD_NORM,
      schedule: o.schedule ?? constantLr(DEFAULT_LR)
    }
  }

  /** Start a worker, load the graphs and make the parameters resident */
  static async create (init: ShardExecutorInit, options: AbortOptions = {}): Promise<ShardExecutor> {
    validateConfig(init.config)
    if (init.role.kind === 'blocks' && !(init.role.start >= 0 && init.role.start < init.role.end && init.role.end <= init.config.nLayers)) {
      throw new InvalidParametersError(`block range [${init.role.start}, ${init.role.end}) is outside the model's ${init.config.nLayers} blocks`)
    }
    const quantized = init.quantization !== undefined && init.quantization !== 'fp32'
    if (init.quantBlockSize !== undefined) {
      if (!QUANT_BLOCK_SIZES.includes(init.quantBlockSize)) throw new InvalidParametersError(`quantBlockSize must be one of ${QUANT_BLOCK_SIZES.join(', ')}, got ${String(init.quantBlockSize)}`)
      if (!quantized) throw new InvalidParametersError('quantBlockSize needs a quantized executor (quantization int8 or int4)')
    }
    const runtime = new Runtime(init)
    try {
      const sessions: ShardExecutor['sessions'] = {}
      for (const kind of ['forward', 'backward', 'inference'] as const) {
        const bytes = init.graphs[kind]
        if (kind === 'inference' && (quantized || (init.bakeWeights === true && init.role.kind !== 'embed'))) continue
        if (bytes !== undefined) sessions[kind] = await runtime.createSession(bytes, options)
      }
      const ex = new ShardExecutor(init, runtime, sessions)
      const seed = init.seed ?? 0
      await ex.setParameters(init.parameters ?? new Map(ex.parameterSpecs.map(s => [s.name, initParameter(init.config, s, seed)])), options)
      return ex
    } catch (err) {
      await runtime.close()
      throw err
    }
  }

  /** Execution provider of the shard's sessions */
  get executionProvider (): Device {
    return (this.sessions.forward ?? this.sessions.backward ?? this.sessions.inference)?.executionProvider ?? 'cpu'
  }

  /** Optimizer steps taken so far */
  get stepCount (): number {
    return this.steps
  }

  /**
   * Replace the weights (copied into the worker; float32, finite). Every parameter must be present unless
   * `partial` is set. With `transfer` the arrays that span a whole ArrayBuffer move to the worker instead of being
   * copied (detached here afterwards; views into larger buffers are still copied).
   */
  async setParameters (parameters: Map<string, Float32Array>, options: AbortOptions & { partial?: boolean, transfer?: boolean } = {}): Promise<void> {
    const tensors: Record<string, TensorData> = {}
    for (const name of parameters.keys()) {
      if (!this.parameterSpecs.some(s => s.name === name)) throw new InvalidParametersError(`${name} is not a parameter of shard ${describeRole(this.role)}`)
    }
    for (const spec of this.parameterSpecs) {
      const p = parameters.get(spec.name)
      if (p === undefined && options.partial === true) continue
      const n = spec.shape.reduce((a, b) => a * b, 1)
      if (!(p instanceof Float32Array) || p.length !== n) {
        throw new InvalidParametersError(`parameter ${spec.name} must be a Float32Array of ${n} elements (shape ${JSON.stringify(spec.shape)})`)
      }
      tensors[spec.name] = { type: 'float32', dims: spec.shape, data: p }
    }
    await this.runtime.setResident(tensors, options)
    if (this.bakeInference) await this.rebuildQuantized(options)
  }

  /** Build the inference graph with the resident weights baked in (quantized or float32) and swap it in for later runs */
  private async rebuildQuantized (options: AbortOptions): Promise<void> {
    const version = ++this.inferenceVersion
    const parameters = await this.getParameters(options)
    // append caches: the graph takes only the new tokens' keys and values out (see InferenceEngine's kvCache)
    const graph = buildInferenceGraph(this.config, this.role, { parameters, quantization: this.quantization, ...(this.quantization !== 'fp32' ? { blockSize: this.blockSize } : {}), kvCache: 'append' })
    // moved to the runtime, which frees it once onnxruntime has the session
    const session = await this.runtime.createSession(graph.bytes, { ...options, transfer: true })
    if (version !== this.inferenceVersion) {
      // a later setParameters overtook this one; its session wins
      await session.release()
      return
    }
    const old = this.sessions.inference
    this.sessions.inference = session
    await old?.release()
  }

  /** Whether the inference session has the weights baked in (quantized, or float32 with `bakeWeights`) */
  get bakedWeights (): boolean {
    return this.bakeInference
  }

  /** Weight format of the inference session (`'fp32'` unless created with `quantization`) */
  get weightFormat (): WeightQuantization {
    return this.quantization
  }

  /** Values per quantization group of a quantized inference session (32 unless created with `quantBlockSize`) */
  get quantBlockSize (): QuantBlockSize {
    return this.blockSize
  }

  /**
   * How the inference session's KV caches leave the graph, read from its outputs: `'append'` (only the new tokens'
   * keys and values, `append_*`; the worker keeps token-major caches written in place), `'present'` (the whole
   * grown cache, `present_*`), or undefined when the shard has no cached inference graph (embed, head).
   */
  get kvCache (): 'append' | 'present' | undefined {
    const outputs = this.sessions.inference?.outputs ?? []
    if (outputs.some(o => o.name.startsWith('append_'))) return 'append'
    if (outputs.some(o => o.name.startsWith('present_'))) return 'present'
    return undefined
  }

  /** Copies of the current weights, by name in canonical order */
  async getParameters (options: AbortOptions = {}): Promise<Map<string, Float32Array>> {
    const got = await this.runtime.getResident(this.parameterSpecs.map(s => s.name), options)
    return new Map(this.parameterSpecs.map(s => [s.name, got[s.name].data as Float32Array]))
  }

  /** The shard as a safetensors checkpoint (see `@neuroshard/model`'s `encodeCheckpoint`) */
  async checkpoint (options: AbortOptions = {}): Promise<Uint8Array> {
    return encodeCheckpoint({ config: this.config, role: this.role, parameters: await this.getParameters(options), step: this.steps })
  }

  private need (kind: 'forward' | 'backward' | 'inference'): RuntimeSession {
    const s = this.sessions[kind]
    if (s === undefined) throw new SessionError(`shard ${describeRole(this.role)} was created without a ${kind} graph`)
    return s
  }

  /**
   * What every run of this shard checks besides names, types and shapes: token ids and targets in
   * [0, vocabSize), batch ≥ 1, 1 ≤ seq ≤ maxSeqLen. The caller's own bounds and limits on other tensors
   * and dims are kept; these replace any the caller gave for the same names.
   */
  private checks (options: RunOptions, seqLimit: DimLimit = { min: 1, max: this.config.maxSeqLen, sequence: true, reason: `maxSeqLen ${this.config.maxSeqLen}` }): RunOptions {
    const V = this.config.vocabSize
    return {
      ...options,
      indexBounds: { ...options.indexBounds, [SHARD_IO.inputIds]: V, [SHARD_IO.targets]: V },
      dimLimits: { ...options.dimLimits, [SHARD_DIMS.batch]: { min: 1 }, [SHARD_DIMS.seq]: seqLimit }
    }
  }

  /**
   * Run the training forward graph on activations; parameters are resident. Token ids and targets must
   * lie in [0, vocabSize) (`TokenIdOutOfRangeError`), batch and seq be ≥ 1 (`ShapeMismatchError`) and
   * seq ≤ maxSeqLen (`SequenceTooLongError`), float feeds be finite (`NonFiniteTensorError`).
   */
  async forward (feeds: Record<string, TensorData>, options: RunOptions = {}): Promise<Record<string, TensorData>> {
    return await this.need('forward').run(feeds, this.checks(options))
  }

  /**
   * Run the backward graph (feeds checked as in `forward`). `grad.<param>` outputs are added to the
   * shard's gradient accumulators (not returned); the other outputs (the gradient for the previous shard)
   * are returned.
   */
  async backward (feeds: Record<string, TensorData>, options: RunOptions = {}): Promise<Record<string, TensorData>> {
    const session = this.need('backward')
    const out = await this.runtime.runSession(session, feeds, { ...this.checks(options), accumulateGrads: true })
    if (this.tiedParameters.some(p => session.outputs.some(o => o.name === `grad.${p}`))) this.tiedPending = true
    return out
  }

  private assertNoTiedPending (what: string): void {
    if (this.tiedPending) {
      throw new TiedGradientsPendingError(`shard ${describeRole(this.role)} holds gradients of ${this.tiedParameters.join(', ')}, which it does not own: call takeTiedGradients() and add them to the owner's shard before ${what}`)
    }
  }

  /**
   * Σ‖g‖² over the gradients of the parameters this shard owns (tied ones are counted by their owner), so
   * the sum over a pipeline's shards is the global ‖g‖². Refused while tied gradients are pending.
   */
  async gradNormSquared (options: AbortOptions = {}): Promise<number> {
    this.assertNoTiedPending('gradNormSquared()')
    return await this.runtime.worker.call<number>({ op: 'gradNormSquared', names: this.ownedNames() }, [], options)
  }

  private ownedNames (): string[] {
    return this.parameterSpecs.map(s => s.name).filter(n => !this.tiedParameters.includes(n))
  }

  /** Copies of the accumulated gradients (tied parameters included, as long as they were not taken) */
  async getGradients (options: AbortOptions = {}): Promise<Map<string, Float32Array>> {
    const names = this.parameterSpecs.map(s => `grad.${s.name}`)
    const got = await this.runtime.getResident(names, options)
    return new Map(this.parameterSpecs.map(s => [s.name, got[`grad.${s.name}`].data as Float32Array]))
  }

  /**
   * Hand over the gradients of the tied parameters (`tiedParameters`: the head's `embed.weight` with tied
   * embeddings) and drop them here. The caller adds them to the owner (`embed.addGradients(map)`) before
   * the pipeline's global norm and `step()`; after the owner's step it copies the stepped weight back
   * (`head.setParameters(embedParams, { partial: true })`). Empty when nothing is tied or accumulated.
   */
  async takeTiedGradients (options: AbortOptions = {}): Promise<Map<string, Float32Array>> {
    if (this.tiedParameters.length === 0) return new Map()
    const got = await this.runtime.worker.call<Record<string, Float32Array>>({ op: 'takeGrads', names: [...this.tiedParameters] }, [], options)
    this.tiedPending = false
    return new Map(Object.entries(got))
  }

  /**
   * Copies of some rows of a 2-D parameter's accumulated gradient, `[rows.length, width]` row-major in the order given
   * (zeros while nothing is accumulated): e.g. the embedding rows of a step's input ids, without copying the whole
   * `vocab × d` gradient out of the worker.
   */
  async getGradientRows (name: string, rows: readonly number[], options: AbortOptions = {}): Promise<Float32Array> {
    const spec = this.parameterSpecs.find(s => s.name === name)
    if (spec === undefined || spec.shape.length !== 2) throw new InvalidParametersError(`${name} is not a 2-D parameter of shard ${describeRole(this.role)}`)
    const [height, width] = spec.shape
    const r = Int32Array.from(rows)
    for (let i = 0; i < r.length; i++) {
      if (!(r[i] === rows[i] && r[i] >= 0 && r[i] < height)) throw new InvalidParametersError(`row ${rows[i]} of ${name} is outside [0, ${height})`)
    }
    return await this.runtime.worker.call<Float32Array>({ op: 'gradRows', name, rows: r, width }, [], options)
  }

  /**
   * Copies of some rows of a 2-D parameter's current weight, `[rows.length, width]` row-major in the order given (e.g. a
   * tied matrix's rows a pipeline Driver's embedding will look up), without copying the whole matrix out of the worker.
   */
  async getParameterRows (name: string, rows: readonly number[], options: AbortOptions = {}): Promise<Float32Array> {
    const [, width] = this.rowShape(name, rows)
    return await this.runtime.worker.call<Float32Array>({ op: 'residentRows', name, rows: Int32Array.from(rows), width }, [], options)
  }

  /**
   * Overwrite some rows of a 2-D parameter's weight in place (`data`: `[rows.length, width]` row-major, finite), the
   * rest unchanged; the optimizer state is not touched.
   */
  async setParameterRows (name: string, rows: readonly number[], data: Float32Array, options: AbortOptions = {}): Promise<void> {
    const [, width] = this.rowShape(name, rows)
    if (!(data instanceof Float32Array) || data.length !== rows.length * width) throw new InvalidParametersError(`rows of ${name}: ${width} floats per row`)
    assertFinite(name, { type: 'float32', dims: [rows.length, width], data })
    await this.runtime.worker.call({ op: 'setResidentRows', name, rows: Int32Array.from(rows), width, data }, [], options)
    if (this.bakeInference) await this.rebuildQuantized(options)
  }

  private rowShape (name: string, rows: readonly number[]): readonly number[] {
    const spec = this.parameterSpecs.find(s => s.name === name)
    if (spec === undefined || spec.shape.length !== 2) throw new InvalidParametersError(`${name} is not a 2-D parameter of shard ${describeRole(this.role)}`)
    for (const r of rows) if (!(Number.isInteger(r) && r >= 0 && r < spec.shape[0])) throw new InvalidParametersError(`row ${r} of ${name} is outside [0, ${spec.shape[0]})`)
    return spec.shape
  }

  /** Copies of a tied replica's AdamW moments (`seedTiedReplica`, `stepTiedReplica`), undefined when none is seeded */
  async getTiedReplicaState (name: string, options: AbortOptions = {}): Promise<{ m: Float32Array, v: Float32Array } | undefined> {
    this.tiedSize(name)
    return (await this.runtime.worker.call<{ m: Float32Array, v: Float32Array } | null>({ op: 'replicaState', name }, [], options)) ?? undefined
  }

  /**
   * Add gradients computed elsewhere into this shard's accumulators (checked for shape and NaN/Inf):
   * with tied embeddings, the head's `takeTiedGradients()` into the embed shard. A tied parameter this
   * shard does not own is refused. With `transfer` the arrays that span a whole ArrayBuffer move to the worker instead
   * of being copied (detached here afterwards; views are copied); one that finds no accumulator there becomes it.
   */
  async addGradients (gradients: Map<string, Float32Array>, options: AbortOptions & { transfer?: boolean } = {}): Promise<void> {
    const grads: Record<string, Float32Array> = {}
    for (const [name, g] of gradients) {
      const spec = this.parameterSpecs.find(s => s.name === name)
      const n = spec?.shape.reduce((a, b) => a * b, 1)
      if (spec === undefined || !(g instanceof Float32Array) || g.length !== n) {
        throw new InvalidParametersError(`gradient ${name} does not match a parameter of shard ${describeRole(this.role)}`)
      }
      if (this.tiedParameters.includes(name)) {
        throw new InvalidParametersError(`${name} is tied: shard ${describeRole(this.role)} does not own it, add its gradient to the owner's shard`)
      }
      assertFinite(`grad.${name}`, { type: 'float32', dims: spec.shape, data: g })
      grads[name] = g
    }
    const transfer = options.transfer === true
      ? [...new Set(Object.values(grads).filter(g => g.buffer instanceof ArrayBuffer && g.byteOffset === 0 && g.byteLength === g.buffer.byteLength).map(g => g.buffer as ArrayBuffer))]
      : []
    await this.runtime.worker.call({ op: 'addGrads', grads }, transfer, options)
  }

  /** Drop the accumulated gradients (tied ones included) */
  async zeroGradients (options: AbortOptions = {}): Promise<void> {
    await this.runtime.worker.call({ op: 'zeroGrads' }, [], options)
    this.tiedPending = false
  }

  /**
   * One AdamW step on the accumulated gradients (clip by global norm, bias-corrected moments, decoupled
   * weight decay except on norm weights, lr from the schedule), then zero the gradients. Runs in the
   * worker as one fused loop per parameter.
   */
  async step (options: StepOptions = {}): Promise<StepResult> {
    this.assertNoTiedPending('step()')
    if (options.gradNorm !== undefined && !(Number.isFinite(options.gradNorm) && options.gradNorm >= 0)) {
      throw new InvalidParametersError(`gradNorm must be a finite number ≥ 0, got ${options.gradNorm}`)
    }
    const step = this.steps
    const lr = this.optimizer.schedule(step)
    const o = this.optimizer
    const r = await this.runtime.worker.call<AdamWResult>({
      op: 'adamw',
      names: this.ownedNames().filter(n => options.skip?.includes(n) !== true),
      noDecay: this.parameterSpecs.filter(s => s.shape.length === 1).map(s => s.name),
      lr,
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      weightDecay: o.weightDecay,
      t: step + 1,
      maxGradNorm: o.maxGradNorm,
      ...(options.gradNorm !== undefined ? { gradNorm: options.gradNorm } : {})
    }, [], options)
    this.steps++
    if (r.nonFinite !== undefined) {
      throw new NonFiniteTensorError(r.nonFinite, `parameter ${r.nonFinite} became non-finite in optimizer step ${step}`)
    }
    return { step, lr, gradNorm: r.gradNorm, clipScale: r.clipScale }
  }

  /**
   * The learning rate and clip scale that the next `step({ gradNorm })` will use (the schedule at this step count,
   * clipping by `gradNorm` against `maxGradNorm`), known before it runs: e.g. for a replica that steps in parallel.
   */
  nextStep (gradNorm: number): { lr: number, clipScale: number } {
    if (!(Number.isFinite(gradNorm) && gradNorm >= 0)) throw new InvalidParametersError(`gradNorm must be a finite number ≥ 0, got ${gradNorm}`)
    return { lr: this.optimizer.schedule(this.steps), clipScale: clipScaleOf(gradNorm, this.optimizer.maxGradNorm) }
  }

  /** SHA-256 of one parameter's float32 bytes, computed in the worker (the parameter does not leave it) */
  async parameterHash (name: string, options: AbortOptions = {}): Promise<Uint8Array> {
    if (!this.parameterSpecs.some(s => s.name === name)) throw new InvalidParametersError(`${name} is not a parameter of shard ${describeRole(this.role)}`)
    return await this.runtime.worker.call<Uint8Array>({ op: 'hashResident', name }, [], options)
  }

  /**
   * Seed a replica of a tied parameter (`tiedParameters`: a pipeline Validator's copy of the tied matrix, stepped
   * like its owner's) with its AdamW moments, kept in the worker apart from this shard's own optimizer state (copied;
   * finite, `v` ≥ 0). The replica's matrix is this shard's resident weight (`setParameters`).
   */
  async seedTiedReplica (name: string, state: { m: Float32Array, v: Float32Array }, options: AbortOptions = {}): Promise<void> {
    const n = this.tiedSize(name)
    const { m, v } = state
    if (!(m instanceof Float32Array) || !(v instanceof Float32Array) || m.length !== n || v.length !== n) {
      throw new InvalidParametersError(`the replica's moments of ${name} must be Float32Arrays of ${n} elements`)
    }
    assertFinite(`m.${name}`, { type: 'float32', dims: [n], data: m })
    assertFinite(`v.${name}`, { type: 'float32', dims: [n], data: v })
    for (let i = 0; i < n; i++) {
      if (v[i] < 0) throw new InvalidParametersError(`the replica's v of ${name} is negative (${v[i]}) at index ${i}`)
    }
    await this.runtime.worker.call({ op: 'replicaSeed', name, m, v }, [], options)
  }

  /**
   * One AdamW step of a tied replica (`seedTiedReplica`) in the worker, in place on the resident weight: `grad` (the
   * whole `vocab × d` gradient, e.g. this shard's `takeTiedGradients()`, moved there: detached here afterwards) plus
   * `rows` (`[ids.length, width]`, added at those rows), with those AdamW numbers; answers whether every stepped value
   * is finite and the SHA-256 of the stepped weight's bytes. The same arithmetic as `adamwKernel` on a copy, without
   * the weight crossing threads. Not finite: the replica's moments are dropped and the weight keeps the non-finite
   * values until it is set again (`setParameters`).
   */
  async stepTiedReplica (name: string, grad: Float32Array, rows: { ids: Int32Array, data: Float32Array }, adamw: AdamWHyperParameters & { gradScale: number }, options: AbortOptions = {}): Promise<TiedReplicaStepResult> {
    const n = this.tiedSize(name)
    const spec = this.parameterSpecs.find(s => s.name === name)!
    const [height, width] = spec.shape
    if (!(grad instanceof Float32Array) || grad.length !== n) throw new InvalidParametersError(`the replica's gradient of ${name} must be a Float32Array of ${n} elements`)
    const { ids, data } = rows
    if (!(ids instanceof Int32Array) || !(data instanceof Float32Array) || data.length !== ids.length * width) {
      throw new InvalidParametersError(`rows of ${name}: Int32Array ids and ${width} floats per id`)
    }
    for (let i = 0; i < ids.length; i++) if (!(ids[i] >= 0 && ids[i] < height)) throw new InvalidParametersError(`row ${ids[i]} of ${name} is outside [0, ${height})`)
    const whole = grad.buffer instanceof ArrayBuffer && grad.byteOffset === 0 && grad.byteLength === grad.buffer.byteLength
    const r = await this.runtime.worker.call<TiedReplicaStepResult>({
      op: 'replicaStep',
      name,
      grad,
      ids,
      rows: data,
      width,
      lr: adamw.lr,
      beta1: adamw.beta1,
      beta2: adamw.beta2,
      eps: adamw.eps,
      weightDecay: adamw.weightDecay,
      t: adamw.t,
      gradScale: adamw.gradScale
    }, whole ? [grad.buffer as ArrayBuffer] : [], options)
    if (this.bakeInference) await this.rebuildQuantized(options)
    return r
  }

  /** Elements of a tied parameter of this shard (refused for any other name) */
  private tiedSize (name: string): number {
    const spec = this.parameterSpecs.find(s => s.name === name)
    if (spec === undefined || !this.tiedParameters.includes(name) || spec.shape.length !== 2) {
      throw new InvalidParametersError(`${name} is not a tied parameter of shard ${describeRole(this.role)}`)
    }
    return spec.shape[0] * spec.shape[1]
  }

  /** AdamW moments (copies) for checkpointing the optimizer */
  async getOptimizerState (options: AbortOptions = {}): Promise<{ m: Map<string, Float32Array>, v: Map<string, Float32Array> }> {
    const r = await this.runtime.worker.call<{ m: Record<string, Float32Array>, v: Record<string, Float32Array> }>({ op: 'getOptimizerState', names: this.parameterSpecs.map(s => s.name) }, [], options)
    return { m: new Map(Object.entries(r.m)), v: new Map(Object.entries(r.v)) }
  }

  /**
   * Put the optimizer where a freshly created executor at step `step` has it, keeping the weights, sessions and KV
   * caches: the AdamW moments of every parameter (tied replicas' included) and the pending gradients are dropped, and
   * the step count (the lr schedule's position, AdamW's bias correction) is set to `step`. E.g. a stage that missed
   * DiLoCo rounds brought to a round in place (its base weights with `setParameters`) instead of rebuilt.
   */
  async resetOptimizer (step: number, options: AbortOptions = {}): Promise<void> {
    if (!(Number.isSafeInteger(step) && step >= 0)) throw new InvalidParametersError(`step must be a non-negative integer, got ${step}`)
    await this.runtime.worker.call({ op: 'resetOptimizer', names: this.parameterSpecs.map(s => s.name) }, [], options)
    this.steps = step
    this.tiedPending = false
  }

  /**
   * Restore AdamW moments (copied). Each name must be a parameter of the shard with both `m` and `v`, of
   * its size, finite, and `v` ≥ 0.
   */
  async setOptimizerState (state: { m: Map<string, Float32Array>, v: Map<string, Float32Array> }, options: AbortOptions = {}): Promise<void> {
    for (const name of new Set([...state.m.keys(), ...state.v.keys()])) {
      const spec = this.parameterSpecs.find(s => s.name === name)
      if (spec === undefined) throw new InvalidParametersError(`optimizer state for ${name}, which is not a parameter of shard ${describeRole(this.role)}`)
      const n = spec.shape.reduce((a, b) => a * b, 1)
      const m = state.m.get(name)
      const v = state.v.get(name)
      if (!(m instanceof Float32Array) || !(v instanceof Float32Array) || m.length !== n || v.length !== n) {
        throw new InvalidParametersError(`optimizer state of ${name} needs m and v as Float32Arrays of ${n} elements`)
      }
      assertFinite(`m.${name}`, { type: 'float32', dims: spec.shape, data: m })
      assertFinite(`v.${name}`, { type: 'float32', dims: spec.shape, data: v })
      for (let i = 0; i < n; i++) {
        if (v[i] < 0) throw new InvalidParametersError(`optimizer state v of ${name} is negative (${v[i]}) at index ${i}`)
      }
    }
    await this.runtime.worker.call({ op: 'setOptimizerState', m: Object.fromEntries(state.m), v: Object.fromEntries(state.v) }, [], options)
  }

  /**
   * One inference run of a shard that keeps no KV cache: the embed shard's lookup (`input_ids` → `hidden`; a quantized
   * embed shard reads its quantized table, a float32 one runs its forward graph, the same lookup) or the head's
   * (`hidden` → `logits`). Same checks as `forward` (token ids in [0, vocabSize), 1 ≤ seq ≤ maxSeqLen). Blocks keep
   * a cache: `openInference()`.
   */
  async infer (feeds: Record<string, TensorData>, options: RunOptions = {}): Promise<Record<string, TensorData>> {
    if (this.role.kind === 'blocks') throw new SessionError(`shard ${describeRole(this.role)} keeps a KV cache: run it through openInference()`)
    const session = this.role.kind === 'embed' ? this.sessions.inference ?? this.need('forward') : this.need('inference')
    return await session.run(feeds, this.checks(options))
  }

  /** Open a KV-cache inference session over the inference graph (its cache lives in the worker) */
  async openInference (options: AbortOptions = {}): Promise<KvCacheSession> {
    this.need('inference')
    const kv = await this.runtime.worker.call<number>({ op: 'kvOpen' }, [], options)
    // the session is looked up per run: a quantized one is rebuilt when the weights change
    return new KvCacheSession(this.runtime, () => this.need('inference'), kv, this.config.maxSeqLen, (o, limit) => this.checks(o, limit), this.config.nKvHeads)
  }

  /** Terminate the worker and free everything (idempotent) */
  async close (): Promise<void> {
    await this.runtime.close()
  }
}

/**
 * One generation's state on a shard: `run()` the prompt (prefill), then one token at a time (decode).
 * Past keys/values stay in the worker and `position_offset` is the cache's own length: a caller that
 * feeds `position_offset` or a `past_*` tensor is refused (`InvalidTensorError`). Every chunk must keep
 * the batch size of the first, hold ≥ 1 token (`ShapeMismatchError`) and fit in `maxSeqLen` with the
 * cache (`SequenceTooLongError`).
 */
export class KvCacheSession {
  private readonly runtime: Runtime
  private readonly sessionOf: () => RuntimeSession
  private readonly id: number
  private readonly maxSeqLen: number
  private readonly checks: (options: RunOptions, seq: DimLimit) => RunOptions
  private readonly kvHeads: number | undefined
  private pos = 0
  private batch: number | undefined
  private closed = false

  /** @internal */
  constructor (runtime: Runtime, session: RuntimeSession | (() => RuntimeSession), id: number, maxSeqLen: number, checks: (options: RunOptions, seq: DimLimit) => RunOptions, kvHeads?: number) {
    this.runtime = runtime
    this.kvHeads = kvHeads
    this.sessionOf = typeof session === 'function' ? session : () => session
    this.id = id
    this.maxSeqLen = maxSeqLen
    this.checks = checks
  }

  /** Tokens already in the cache */
  get position (): number {
    return this.pos
  }

  /** Run the next chunk (the whole prompt first, then single tokens); returns the non-cache outputs */
  async run (feeds: Record<string, TensorData>, options: RunOptions = {}): Promise<Record<string, TensorData>> {
    if (this.closed) throw new SessionError('KV-cache session is closed')
    for (const name of Object.keys(feeds)) {
      if (isKvCacheInput(name)) {
        throw new InvalidTensorError(name, `${name} is the KV cache's own state (position ${this.pos}); it cannot be fed`)
      }
    }
    const room = this.maxSeqLen - this.pos
    const opts = this.checks(options, { min: 1, max: room, sequence: true, reason: `the KV cache holds ${this.pos} of maxSeqLen ${this.maxSeqLen} tokens` })
    if (this.batch !== undefined) {
      opts.dimLimits = { ...opts.dimLimits, [SHARD_DIMS.batch]: { min: this.batch, max: this.batch, reason: `the KV cache holds batch ${this.batch}` } }
    }
    const session = this.sessionOf()
    const batchOf = this.batchOf(session, feeds)
    const { outputs: out, position } = await this.runtime.runKv(session, feeds, { ...opts, kv: this.id })
    this.pos = position
    if (this.pos > 0 && this.batch === undefined) this.batch = batchOf
    return out
  }

  /** The batch size the feeds bind (the first dim named `batch` of a fed input) */
  private batchOf (session: RuntimeSession, feeds: Record<string, TensorData>): number | undefined {
    for (const info of session.inputs) {
      const i = info.shape.indexOf(SHARD_DIMS.batch)
      const f = feeds[info.name]
      if (i >= 0 && f !== undefined) return f.dims[i]
    }
    return undefined
  }

  /**
   * Roll the cache back to its first `position` tokens (speculative decoding drops rejected draft tokens this
   * way); what the cache holds for those tokens is kept as it was. `position` must be an integer in
   * [0, this.position] (`InvalidParametersError`); 0 empties the cache (a later chunk may use another batch).
   */
  async truncate (position: number, options: AbortOptions = {}): Promise<number> {
    if (this.closed) throw new SessionError('KV-cache session is closed')
    if (!Number.isSafeInteger(position) || position < 0 || position > this.pos) {
      throw new InvalidParametersError(`cannot truncate a KV cache of ${this.pos} tokens to ${position}`)
    }
    this.pos = await this.runtime.worker.call<number>({ op: 'kvTruncate', kv: this.id, position }, [], options)
    if (this.pos === 0) this.batch = undefined
    return this.pos
  }

  /** A copy of the cache: its length and every `past_*` tensor ([batch, kvHeads, position, headDim]) */
  async state (options: AbortOptions = {}): Promise<{ position: number, past: Record<string, TensorData> }> {
    if (this.closed) throw new SessionError('KV-cache session is closed')
    return await this.runtime.worker.call({ op: 'kvState', kv: this.id, ...(this.kvHeads !== undefined ? { kvHeads: this.kvHeads } : {}) }, [], options)
  }

  /** Free the cache */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (!this.runtime.worker.isClosed) await this.runtime.worker.call({ op: 'kvClose', kv: this.id })
  }
}

/** Create a shard executor (see `ShardExecutor`) */
export async function createShardExecutor (init: ShardExecutorInit, options: AbortOptions = {}): Promise<ShardExecutor> {
  return await ShardExecutor.create(init, options)
}
