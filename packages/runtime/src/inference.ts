import { InvalidParametersError } from '@neuroshard/interface'
import { SHARD_DIMS, SHARD_IO, TIED_HEAD_WEIGHT, buildInferenceGraph, inferenceParameters, transposeEmbedding, validateConfig } from '@neuroshard/model'
import type { InferenceSpan, ModelConfig, ParameterSpec, ShardGraph, WeightQuantization } from '@neuroshard/model'
import { SessionError } from './errors.js'
import { KvCacheSession } from './executor.js'
import { Runtime } from './runtime.js'
import type { Device, RunOptions, RuntimeInit, RuntimeSession } from './runtime.js'
import type { AbortOptions, TensorData } from './tensor.js'
import { assertFinite } from './validate.js'
import type { DimLimit } from './validate.js'

export interface InferenceEngineInit extends RuntimeInit {
  config: ModelConfig
  /** What the engine serves: the whole model in one graph (one session per token), or one shard @default { kind: 'model' } */
  span?: InferenceSpan
  /** Every parameter of the span (`inferenceParameters(config, span)`), float32 */
  parameters: Map<string, Float32Array>
  /** Weight format: `'fp32'`, or blockwise `'int8'` / `'int4'` (32-value groups, `MatMulNBits`) @default 'fp32' */
  quantization?: WeightQuantization
  /**
   * fp32 only: bake the weights into the graph as initializers (`true`) or keep them resident in the worker
   * and feed them as inputs (`false`, no copy and no rebuild when they change). Quantized graphs always bake.
   * Baked fp32 weights are prepacked by onnxruntime and use a second thread well (`intraOpNumThreads: 2`:
   * `bootstrap` decoded at 0.94–1.01× a native llama.cpp F32 in quiet runs, where resident weights reach ≈ 0.7×),
   * at ≈ 2.2× the resident engine's memory (packages/gguf README); their fp32 graph runs q/k/v and gate/up as one
   * `MatMul` each. @default false
   */
  bakeWeights?: boolean
  /**
   * Attention of the blocks (`buildInferenceGraph`'s `attention`): `'opset'`, the opset-23 `RotaryEmbedding` +
   * `Attention` ops (with `kvCache: 'append'` on 3D tensors, no head reshapes), or `'gqa'`, one `com.microsoft`
   * `GroupQueryAttention` node per block with RoPE inside (its caches are `'present'` only).
   * @default 'opset'
   */
  attention?: 'opset' | 'gqa'
  /**
   * How the cache crosses the graph boundary (`buildInferenceGraph`'s `kvCache`): `'append'` keeps token-major
   * caches in the worker that grow in place and outputs only the new tokens' keys and values (no per-token copy
   * of the whole cache); `'present'` outputs the whole grown cache every call. `'append'` needs
   * `attention: 'opset'`. Measured on `bootstrap` int4 (packages/gguf README): 13–23 % less CPU per decoded
   * token than the GroupQueryAttention graph with `present` caches through this engine, 40 % in a one-thread
   * scratch loop. @default 'append' with `attention: 'opset'`,
   * `'present'` with `'gqa'`
   */
  kvCache?: 'present' | 'append'
  /** Quantized engines: values per quantization block along the input dim (a power of 2 ≥ 16) @default 32 */
  blockSize?: number
}

/**
 * Generation on one machine without training state: an inference graph (whole model or one shard) in one
 * worker, its weights fp32 or quantized. The quantized graph has its packed weights baked in as initializers,
 * so no float32 copy of the quantized matrices is kept, and `setParameters` rebuilds the session. Open a
 * KV-cache session with `openInference()` (same checks as a shard executor's: token ids in [0, vocabSize),
 * batch fixed per cache, position + seq ≤ maxSeqLen).
 */
export class InferenceEngine {
  readonly config: ModelConfig
  readonly span: InferenceSpan
  readonly quantization: WeightQuantization
  readonly runtime: Runtime
  readonly parameterSpecs: readonly ParameterSpec[]
  readonly attention: 'opset' | 'gqa'
  readonly kvCache: 'present' | 'append'
  readonly blockSize: number | undefined
  private readonly bake: boolean
  private session: RuntimeSession | undefined
  /** The graph of an engine whose weights stay resident (built once) */
  private residentGraph: ShardGraph | undefined
  private version = 0

  private constructor (init: InferenceEngineInit, runtime: Runtime) {
    this.config = init.config
    this.span = init.span ?? { kind: 'model' }
    this.quantization = init.quantization ?? 'fp32'
    this.runtime = runtime
    this.parameterSpecs = inferenceParameters(init.config, this.span)
    this.bake = this.quantization !== 'fp32' || init.bakeWeights === true
    this.attention = init.attention ?? 'opset'
    this.kvCache = init.kvCache ?? (this.attention === 'opset' ? 'append' : 'present')
    this.blockSize = init.blockSize
  }

  static async create (init: InferenceEngineInit, options: AbortOptions = {}): Promise<InferenceEngine> {
    validateConfig(init.config)
    const q = init.quantization ?? 'fp32'
    if (q !== 'fp32' && q !== 'int8' && q !== 'int4') throw new InvalidParametersError(`unknown quantization '${String(q)}'`)
    if (init.attention !== undefined && init.attention !== 'gqa' && init.attention !== 'opset') throw new InvalidParametersError(`unknown attention '${String(init.attention)}'`)
    if (init.kvCache !== undefined && init.kvCache !== 'present' && init.kvCache !== 'append') throw new InvalidParametersError(`unknown kvCache '${String(init.kvCache)}'`)
    if (init.kvCache === 'append' && init.attention === 'gqa') throw new InvalidParametersError("kvCache 'append' needs attention 'opset'")
    const span = init.span ?? { kind: 'model' }
    if (span.kind === 'embed' && q !== 'fp32') throw new InvalidParametersError('quantize the embed lookup through the model span; an embed-only engine is fp32')
    const runtime = new Runtime(init)
    try {
      const engine = new InferenceEngine(init, runtime)
      await engine.setParameters(init.parameters, options)
      return engine
    } catch (err) {
      await runtime.close()
      throw err
    }
  }

  /** Execution provider of the session */
  get executionProvider (): Device {
    return this.session?.executionProvider ?? 'cpu'
  }

  /** Replace every weight of the span (float32, finite); a baked or quantized graph is rebuilt */
  async setParameters (parameters: Map<string, Float32Array>, options: AbortOptions = {}): Promise<void> {
    for (const name of parameters.keys()) {
      if (!this.parameterSpecs.some(s => s.name === name)) throw new InvalidParametersError(`${name} is not a parameter of this inference span`)
    }
    const tensors: Record<string, TensorData> = {}
    for (const spec of this.parameterSpecs) {
      const p = parameters.get(spec.name)
      const n = spec.shape.reduce((a, b) => a * b, 1)
      if (!(p instanceof Float32Array) || p.length !== n) {
        throw new InvalidParametersError(`parameter ${spec.name} must be a Float32Array of ${n} elements (shape ${JSON.stringify(spec.shape)})`)
      }
      tensors[spec.name] = { type: 'float32', dims: spec.shape, data: p }
    }
    if (!this.bake) {
      this.residentGraph ??= buildInferenceGraph(this.config, this.span, { bakeWeights: false, attention: this.attention, kvCache: this.kvCache })
      // only what the graph reads stays resident: a tied head reads the embedding transposed (TIED_HEAD_WEIGHT),
      // and then the model span's lookup too, so embed.weight itself is not kept
      const takes = new Set(this.residentGraph.inputs.map(i => i.name))
      const kept: Record<string, TensorData> = {}
      for (const [name, t] of Object.entries(tensors)) {
        if (takes.has(name)) kept[name] = t
        else assertFinite(name, t)
      }
      await this.runtime.setResident(kept, options)
      if (takes.has(TIED_HEAD_WEIGHT)) {
        const data = transposeEmbedding(this.config, tensors['embed.weight'].data as Float32Array)
        await this.runtime.setResident({ [TIED_HEAD_WEIGHT]: { type: 'float32', dims: [this.config.dModel, this.config.vocabSize], data } }, { ...options, transfer: true })
      }
      this.session ??= await this.runtime.createSession(this.residentGraph.bytes, options)
      return
    }
    // same finiteness checks as resident weights, without keeping them
    for (const [name, t] of Object.entries(tensors)) assertFinite(name, t)
    const version = ++this.version
    const bytes = buildInferenceGraph(this.config, this.span, { parameters, quantization: this.quantization, attention: this.attention, kvCache: this.kvCache, ...(this.blockSize !== undefined ? { blockSize: this.blockSize } : {}) }).bytes
    // the graph moves to the runtime, which frees it once onnxruntime has it: nothing here keeps the baked weights
    const session = await this.runtime.createSession(bytes, { ...options, transfer: true })
    if (version !== this.version) { await session.release(); return }
    const old = this.session
    this.session = session
    await old?.release()
  }

  private need (): RuntimeSession {
    if (this.session === undefined) throw new SessionError('the inference engine has no session')
    return this.session
  }

  private checks (options: RunOptions, seqLimit: DimLimit): RunOptions {
    const V = this.config.vocabSize
    return {
      ...options,
      indexBounds: { ...options.indexBounds, [SHARD_IO.inputIds]: V },
      dimLimits: { ...options.dimLimits, [SHARD_DIMS.batch]: { min: 1 }, [SHARD_DIMS.seq]: seqLimit }
    }
  }

  /** A KV-cache generation session (its cache lives in the worker); uses the current session on every run */
  async openInference (options: AbortOptions = {}): Promise<KvCacheSession> {
    this.need()
    const kv = await this.runtime.worker.call<number>({ op: 'kvOpen' }, [], options)
    return new KvCacheSession(this.runtime, () => this.need(), kv, this.config.maxSeqLen, (o, limit) => this.checks(o, limit), this.config.nKvHeads)
  }

  /** Terminate the worker (idempotent) */
  async close (): Promise<void> {
    await this.runtime.close()
  }
}

/** Create an inference engine (see {@link InferenceEngine}) */
export async function createInferenceEngine (init: InferenceEngineInit, options: AbortOptions = {}): Promise<InferenceEngine> {
  return await InferenceEngine.create(init, options)
}
