import { buildModelGraph, initShardParameters, modelParameters } from '@neuroshard/model'
import { createRuntime, float32, int64 } from '@neuroshard/runtime'
import { ReExecutionMismatchError, digest, randomSampleSalt, sampleBatches, toHex, toMicro } from '@neuroshard/ponw-ledger'
import type { TrainingClaim, TrainingReExecutor, TrainingVerdict } from '@neuroshard/ponw-ledger'
import type { AbortOptions } from '@libp2p/interface'
import type { ModelConfig } from '@neuroshard/model'
import type { Runtime, RuntimeSession } from '@neuroshard/runtime'

/** Model hash of a NeuroLLM parameter set: sha256 over (name, float32 bytes) in canonical parameter order */
export function hashParameters (config: ModelConfig, parameters: Map<string, Float32Array>): Uint8Array {
  const parts: Uint8Array[] = []
  for (const spec of modelParameters(config)) {
    const p = parameters.get(spec.name)
    if (p == null) {
      throw new ReExecutionMismatchError(`parameter ${spec.name} missing`)
    }
    parts.push(new TextEncoder().encode(spec.name), new Uint8Array([0]), new Uint8Array(p.buffer, p.byteOffset, p.byteLength))
  }
  return digest('neuroshard/ledger/v1/neurollm-weights', ...parts)
}

/** Token ids of batch `index` of a claim, for a model with `vocab` tokens (seq + 1 tokens: inputs and targets) */
export function claimTokens (shardIds: number[], round: bigint, index: number, seq: number, vocab: number): BigInt64Array {
  const shard = shardIds[index % shardIds.length]
  const out = new BigInt64Array(seq + 1)
  const r = new Uint8Array(12)
  const dv = new DataView(r.buffer)
  dv.setUint32(0, shard)
  dv.setBigUint64(4, round)
  let pool = digest('neuroshard/ledger/v1/llm-batch', r, new Uint8Array([index >>> 24, index >>> 16, index >>> 8, index]))
  let used = 0
  let x = shard % vocab
  for (let t = 0; t <= seq; t++) {
    if (used + 2 > pool.length) {
      pool = digest('neuroshard/ledger/v1/llm-batch', pool)
      used = 0
    }
    const v = (pool[used] << 8) | pool[used + 1]
    used += 2
    x = v < 52000 ? (7 * x + 3) % vocab : v % vocab
    out[t] = BigInt(x)
  }
  return out
}

export interface NeuroLlmLossInit {
  config: ModelConfig
  /** tokens per batch @default 32 */
  seq?: number
  /** onnxruntime device @default 'cpu' */
  device?: 'cpu' | 'cuda'
}

/**
 * Computes a claimed batch's loss by running the NeuroLLM forward graph (`@neuroshard/model`
 * `buildModelGraph(config, 'forward')`) in an onnxruntime session (`@neuroshard/runtime`, worker thread).
 */
export class NeuroLlmLoss {
  readonly config: ModelConfig
  readonly seq: number
  readonly #device: 'cpu' | 'cuda'
  #runtime?: Runtime
  #session?: RuntimeSession

  constructor (init: NeuroLlmLossInit) {
    this.config = init.config
    this.seq = init.seq ?? 32
    this.#device = init.device ?? 'cpu'
  }

  async #open (options?: AbortOptions): Promise<RuntimeSession> {
    if (this.#session == null) {
      this.#runtime = await createRuntime({ device: this.#device })
      this.#session = await this.#runtime.createSession(buildModelGraph(this.config, 'forward').bytes, options)
    }
    return this.#session
  }

  /** Mean next-token cross-entropy of batch `index` of a claim under `parameters` */
  async batchLoss (parameters: Map<string, Float32Array>, shardIds: number[], round: bigint, index: number, options?: AbortOptions): Promise<number> {
    const session = await this.#open(options)
    const tokens = claimTokens(shardIds, round, index, this.seq, this.config.vocabSize)
    const feeds: Record<string, ReturnType<typeof float32>> = {
      input_ids: int64(tokens.subarray(0, this.seq), [1, this.seq]),
      targets: int64(tokens.subarray(1), [1, this.seq])
    }
    for (const spec of modelParameters(this.config)) {
      feeds[spec.name] = float32(Float32Array.from(parameters.get(spec.name)!), spec.shape)
    }
    const out = await session.run(feeds, { signal: options?.signal, transfer: true })
    return Number((out.loss.data as Float32Array)[0])
  }

  async close (): Promise<void> {
    await this.#runtime?.close()
    this.#runtime = undefined
    this.#session = undefined
  }
}

/** Seeded NeuroLLM parameters (the model's own init), for tests and devnets */
export function neuroLlmParameters (config: ModelConfig, seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  for (const role of [{ kind: 'embed' as const }, { kind: 'blocks' as const, start: 0, end: config.nLayers }, { kind: 'head' as const }]) {
    for (const [k, v] of initShardParameters(config, role, seed)) {
      out.set(k, v)
    }
  }
  return out
}

export interface NeuroLlmVerifierInit {
  loss: NeuroLlmLoss
  /** the parameters a model hash names; unknown → mismatch */
  getParameters(modelHash: Uint8Array): Map<string, Float32Array> | undefined | Promise<Map<string, Float32Array> | undefined>
  /** batches re-run per proof @default 2 */
  samples?: number
  /** allowed |claimed − recomputed| per batch, µ-units @default 2000 */
  toleranceMicro?: bigint
  /** secret salt of the batch sample (see sampleBatches) @default 32 random bytes */
  salt?: Uint8Array
}

/**
 * Re-execution check of the starting losses of training proofs on a real NeuroLLM graph in onnxruntime:
 * samples batches from the proof id and a secret salt, recomputes their loss under the claimed starting
 * weights, compares within the tolerance. It re-executes no committed segment (that needs the inner
 * optimizer steps with their AdamW state), so its verdict alone never earns a vote: the ledger requires a
 * re-executed segment and a verified pseudo-gradient (`ProofOfLearningVerifier` with a NeuroLLM
 * `TrainingModel` is the complete check).
 */
export class NeuroLlmTrainingVerifier implements TrainingReExecutor {
  readonly #init: NeuroLlmVerifierInit
  readonly #salt: Uint8Array

  constructor (init: NeuroLlmVerifierInit) {
    this.#init = init
    this.#salt = init.salt ?? randomSampleSalt()
  }

  async verifyTraining (claim: TrainingClaim, options?: AbortOptions): Promise<TrainingVerdict> {
    const params = await this.#init.getParameters(claim.modelHash)
    if (params == null || toHex(hashParameters(this.#init.loss.config, params)) !== toHex(claim.modelHash)) {
      throw new ReExecutionMismatchError('parameters for the claimed model hash are unknown')
    }
    const n = Number(claim.batches)
    const tol = this.#init.toleranceMicro ?? 2000n
    const picked = sampleBatches(claim.proofId, n, this.#init.samples ?? 2, this.#salt)
    for (const i of picked) {
      options?.signal?.throwIfAborted()
      const got = toMicro(await this.#init.loss.batchLoss(params, claim.shardIds, claim.round, i, options))
      const claimed = claim.batchLossMicro[i]
      if ((got > claimed ? got - claimed : claimed - got) > tol) {
        throw new ReExecutionMismatchError(`batch ${i}: claimed loss ${claimed}µ, re-executed ${got}µ`)
      }
    }
    return { batchesChecked: picked.length, segmentsChecked: 0, pseudoGradientVerified: false, lossAfterVerified: false }
  }
}
export * from './pol.js'
