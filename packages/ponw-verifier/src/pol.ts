/**
 * Proof-of-Learning for NeuroLLM: a `TrainingModel` (the interface `@neuroshard/ponw-ledger`'s
 * `ProofOfLearningVerifier` re-executes through) whose inner step is the real training step — the NeuroLLM
 * backward graph (`@neuroshard/model` `buildModelGraph(config, 'backward')`) and the clipped AdamW update of
 * `@neuroshard/runtime`'s shard executor, in onnxruntime. A committed training state is the weights together
 * with the AdamW moments and the step count, so a verifier can resume the optimizer exactly where the prover
 * committed it.
 */
import { buildModelGraph, modelParameters } from '@neuroshard/model'
import { createRuntime, createShardExecutor, float32, int64 } from '@neuroshard/runtime'
import { digest, toMicro } from '@neuroshard/ponw-ledger'
import { claimTokens, hashParameters } from './index.js'
import type { TrainingClaim, TrainingModel } from '@neuroshard/ponw-ledger'
import type { AbortOptions } from '@libp2p/interface'
import type { ModelConfig } from '@neuroshard/model'
import type { Runtime, RuntimeSession, ShardExecutor } from '@neuroshard/runtime'

/** What a NeuroLLM training proof commits to at each checkpoint (never mutated) */
export interface NeuroLlmTrainingState {
  parameters: Map<string, Float32Array>
  /** AdamW first moments */
  m: Map<string, Float32Array>
  /** AdamW second moments (≥ 0) */
  v: Map<string, Float32Array>
  /** optimizer steps taken (AdamW bias correction and the learning-rate schedule read it) */
  step: number
}

/** The inner optimizer the network's training uses; the verifier must use the same */
export interface NeuroLlmOptimizer {
  beta1: number
  beta2: number
  eps: number
  weightDecay: number
  maxGradNorm: number
  /** learning rate at optimizer step `s` */
  schedule: (step: number) => number
}

/** The DiLoCo inner loop's AdamW settings (`@neuroshard/diloco` InnerLoop), with a constant learning rate of 1e-3 */
export const DEFAULT_NEUROLLM_OPTIMIZER: Readonly<NeuroLlmOptimizer> = Object.freeze({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1, schedule: () => 1e-3 })

function specsOf (config: ModelConfig): ReturnType<typeof modelParameters> {
  return modelParameters(config)
}

function tensorHash (config: ModelConfig, domain: string, t: Map<string, Float32Array>): Uint8Array {
  const parts: Uint8Array[] = []
  for (const s of specsOf(config)) {
    const a = t.get(s.name)
    if (a == null) {
      throw new TypeError(`${s.name} missing`)
    }
    parts.push(new TextEncoder().encode(s.name), new Uint8Array([0]), new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
  }
  return digest(domain, ...parts)
}

/**
 * Commitment to a training state: sha256("neuroshard/ledger/v1/neurollm-training-state" || 0 ||
 * hashParameters(weights) || H(m) || H(v) || u32be(step)), H = sha256 over (name, 0, float32 bytes) in
 * canonical parameter order. A proof's `model_hash` is this hash of the starting state.
 */
export function hashTrainingState (config: ModelConfig, w: NeuroLlmTrainingState): Uint8Array {
  const step = new Uint8Array(4)
  new DataView(step.buffer).setUint32(0, w.step)
  return digest('neuroshard/ledger/v1/neurollm-training-state', hashParameters(config, w.parameters), tensorHash(config, 'neuroshard/ledger/v1/neurollm-adam-m', w.m), tensorHash(config, 'neuroshard/ledger/v1/neurollm-adam-v', w.v), step)
}

/** Hash of the pseudo-gradient Δ = base − final (float32, per parameter in canonical order) */
export function neuroLlmPseudoGradientHash (config: ModelConfig, base: Map<string, Float32Array>, final: Map<string, Float32Array>): Uint8Array {
  const delta = new Map<string, Float32Array>()
  for (const s of specsOf(config)) {
    const a = base.get(s.name)
    const b = final.get(s.name)
    if (a == null || b == null || a.length !== b.length) {
      throw new TypeError(`${s.name} missing or of another size`)
    }
    const d = new Float32Array(a.length)
    for (let i = 0; i < a.length; i++) d[i] = a[i] - b[i]
    delta.set(s.name, d)
  }
  return tensorHash(config, 'neuroshard/ledger/v1/neurollm-pseudo-gradient', delta)
}

/** A fresh training state: the weights with zero moments at step 0 */
export function initialTrainingState (config: ModelConfig, parameters: Map<string, Float32Array>): NeuroLlmTrainingState {
  const m = new Map<string, Float32Array>()
  const v = new Map<string, Float32Array>()
  for (const s of specsOf(config)) {
    const n = s.shape.reduce((a, b) => a * b, 1)
    m.set(s.name, new Float32Array(n))
    v.set(s.name, new Float32Array(n))
  }
  return { parameters, m, v, step: 0 }
}

const MAGIC = 0x4e4c5453 // "NLTS"

/** Wire form of a training state (for the ledger's pol-weights protocol): magic, step, then p, m, v per parameter, float32 little-endian */
export function encodeTrainingState (config: ModelConfig, w: NeuroLlmTrainingState): Uint8Array {
  const specs = specsOf(config)
  const total = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0)
  const out = new Uint8Array(8 + 12 * total)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, MAGIC)
  dv.setUint32(4, w.step)
  let o = 8
  for (const s of specs) {
    for (const t of [w.parameters, w.m, w.v]) {
      const a = t.get(s.name)!
      for (let i = 0; i < a.length; i++, o += 4) dv.setFloat32(o, a[i], true)
    }
  }
  return out
}

/** Parses {@link encodeTrainingState}; undefined for bytes of another size or form, non-finite values or negative v */
export function decodeTrainingState (config: ModelConfig, bytes: Uint8Array): NeuroLlmTrainingState | undefined {
  const specs = specsOf(config)
  const total = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0)
  if (bytes.byteLength !== 8 + 12 * total) return undefined
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (dv.getUint32(0) !== MAGIC) return undefined
  const w: NeuroLlmTrainingState = { parameters: new Map(), m: new Map(), v: new Map(), step: dv.getUint32(4) }
  let o = 8
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1)
    for (const [k, t] of [['p', w.parameters], ['m', w.m], ['v', w.v]] as const) {
      const a = new Float32Array(n)
      for (let i = 0; i < n; i++, o += 4) {
        const x = dv.getFloat32(o, true)
        if (!Number.isFinite(x) || (k === 'v' && x < 0)) return undefined
        a[i] = x
      }
      t.set(s.name, a)
    }
  }
  return w
}

export interface NeuroLlmTrainingModelInit {
  config: ModelConfig
  /** tokens per batch @default 16 */
  seq?: number
  /** the seq + 1 token ids of batch `index` of a claim (inputs and shifted targets) @default claimTokens of the claim's shards and round */
  batch?: (claim: TrainingClaim, index: number, seq: number) => BigInt64Array
  /** the network's inner optimizer @default DEFAULT_NEUROLLM_OPTIMIZER */
  optimizer?: NeuroLlmOptimizer
  /** onnxruntime device @default 'cpu' */
  device?: 'cpu' | 'cuda'
  /** onnxruntime intra-op threads (1 keeps the arithmetic order fixed) @default 1 */
  threads?: number
}

/**
 * NeuroLLM as a Proof-of-Learning `TrainingModel`: `step` runs one real training step (backward graph in
 * onnxruntime, clipped AdamW in the runtime worker) from a committed state, `lossMicro` the forward graph.
 * One executor follows a segment's consecutive steps; a state from elsewhere starts a new one at its step.
 * Give it to `ProofOfLearningVerifier({ model, witness })` and that to the ledger's `ProofVerifier({ training })`.
 */
export class NeuroLlmTrainingModel implements TrainingModel<NeuroLlmTrainingState> {
  readonly config: ModelConfig
  readonly seq: number
  readonly #init: NeuroLlmTrainingModelInit
  readonly #opt: NeuroLlmOptimizer
  #backward?: Uint8Array
  #executor?: ShardExecutor
  /** the state the executor holds (the last one `step` returned) */
  #held?: NeuroLlmTrainingState
  #runtime?: Runtime
  #forward?: RuntimeSession

  constructor (init: NeuroLlmTrainingModelInit) {
    this.config = init.config
    this.seq = init.seq ?? 16
    this.#init = init
    this.#opt = init.optimizer ?? DEFAULT_NEUROLLM_OPTIMIZER
  }

  hash (w: NeuroLlmTrainingState): Uint8Array {
    return hashTrainingState(this.config, w)
  }

  #tokens (claim: TrainingClaim, index: number): BigInt64Array {
    return this.#init.batch?.(claim, index, this.seq) ?? claimTokens(claim.shardIds, claim.round, index, this.seq, this.config.vocabSize)
  }

  #feeds (claim: TrainingClaim, index: number): Record<string, ReturnType<typeof int64>> {
    const t = this.#tokens(claim, index)
    return { input_ids: int64(t.subarray(0, this.seq), [1, this.seq]), targets: int64(t.subarray(1, this.seq + 1), [1, this.seq]) }
  }

  async step (w: NeuroLlmTrainingState, claim: TrainingClaim, index: number, options?: AbortOptions): Promise<NeuroLlmTrainingState> {
    if (this.#executor == null || this.#held !== w || this.#executor.stepCount !== w.step) {
      await this.#executor?.close()
      this.#executor = undefined
      this.#backward ??= buildModelGraph(this.config, 'backward').bytes
      const o = this.#opt
      this.#executor = await createShardExecutor({
        config: this.config,
        role: { kind: 'blocks', start: 0, end: this.config.nLayers },
        parameterSpecs: modelParameters(this.config),
        parameters: w.parameters,
        step: w.step,
        graphs: { backward: this.#backward },
        optimizer: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, maxGradNorm: o.maxGradNorm, schedule: o.schedule },
        device: this.#init.device ?? 'cpu',
        intraOpNumThreads: this.#init.threads ?? 1
      }, options)
      await this.#executor.setOptimizerState({ m: w.m, v: w.v }, options)
    }
    const ex = this.#executor
    await ex.backward(this.#feeds(claim, index), { transfer: true, signal: options?.signal })
    await ex.step({ signal: options?.signal })
    const parameters = await ex.getParameters(options)
    const { m, v } = await ex.getOptimizerState(options)
    const next = { parameters, m, v, step: w.step + 1 }
    this.#held = next
    return next
  }

  async lossMicro (w: NeuroLlmTrainingState, claim: TrainingClaim, index: number, options?: AbortOptions): Promise<bigint> {
    if (this.#forward == null) {
      this.#runtime = await createRuntime({ device: this.#init.device ?? 'cpu', intraOpNumThreads: this.#init.threads ?? 1 })
      this.#forward = await this.#runtime.createSession(buildModelGraph(this.config, 'forward').bytes, options)
    }
    const feeds: Record<string, ReturnType<typeof float32>> = { ...this.#feeds(claim, index) }
    for (const s of specsOf(this.config)) {
      feeds[s.name] = float32(Float32Array.from(w.parameters.get(s.name)!), s.shape)
    }
    const out = await this.#forward.run(feeds, { signal: options?.signal, transfer: true })
    return toMicro(Number((out.loss.data as Float32Array)[0]))
  }

  /** max |Δ| over weights and first moments, and √ max |Δ| over second moments (same scale as the gradients) */
  distance (a: NeuroLlmTrainingState, b: NeuroLlmTrainingState): number {
    if (a.step !== b.step) return Infinity
    return adamStateDistance(a, b, specsOf(this.config).map(s => s.name))
  }

  pseudoGradientHash (base: NeuroLlmTrainingState, final: NeuroLlmTrainingState): Uint8Array {
    return neuroLlmPseudoGradientHash(this.config, base.parameters, final.parameters)
  }

  /** Frees the onnxruntime workers (idempotent) */
  async close (): Promise<void> {
    await this.#executor?.close()
    await this.#runtime?.close()
    this.#executor = undefined
    this.#held = undefined
    this.#runtime = undefined
    this.#forward = undefined
  }
}

/** Weights and AdamW moments by tensor name */
export interface AdamState {
  parameters: Map<string, Float32Array>
  m: Map<string, Float32Array>
  v: Map<string, Float32Array>
}

/**
 * The Proof-of-Learning distance between two training states over tensors `names`: max |Δ| over weights and
 * first moments, √ max |Δ| over second moments (the same scale as the gradients). Infinity when a tensor is
 * missing, has another length, or differs by NaN.
 */
export function adamStateDistance (a: AdamState, b: AdamState, names: Iterable<string>): number {
  let d = 0
  for (const name of names) {
    for (const [x, y, sqrt] of [[a.parameters, b.parameters, false], [a.m, b.m, false], [a.v, b.v, true]] as const) {
      const p = x.get(name)
      const q = y.get(name)
      if (p == null || q == null || p.length !== q.length) return Infinity
      let e = 0
      for (let i = 0; i < p.length; i++) {
        const k = Math.abs(p[i] - q[i])
        if (!(k <= e)) {
          if (Number.isNaN(k)) return Infinity
          e = k
        }
      }
      const v = sqrt ? Math.sqrt(e) : e
      if (!(v <= d)) d = v
    }
  }
  return d
}
