import { ReExecutionMismatchError } from './errors.js'
import { digest, toHex } from './keys.js'
import { randomSampleSalt, sampleBatches } from './verify.js'
import type { TrainingClaim, TrainingReExecutor } from './verify.js'
import type { AbortOptions } from '@libp2p/interface'

/**
 * A tiny deterministic reference model (a bigram softmax language model, vocab V, weights V×V float32)
 * that a verifier can re-run exactly. The claimed work is: start from weights W (hash = model hash),
 * take batch i from the assigned shards, record its loss under W, then take one SGD step per batch;
 * loss_after is the mean loss of the final weights over the same batches.
 */
export const TINY_VOCAB = 32
export const TINY_SEQ = 64

function u32 (n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n >>> 0)
  return b
}

function u64 (n: bigint): Uint8Array {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, n)
  return b
}

/** Batch `index` of a claim: TINY_SEQ tokens of a noisy Markov chain seeded by (shard, round, index) */
export function tinyBatch (shardIds: number[], round: bigint, index: number): Int32Array {
  const shard = shardIds[index % shardIds.length]
  const out = new Int32Array(TINY_SEQ)
  let x = shard % TINY_VOCAB
  let pool = digest('neuroshard/ledger/v1/tiny-batch', u32(shard), u64(round), u32(index))
  let used = 0
  for (let t = 0; t < TINY_SEQ; t++) {
    if (used === pool.length) {
      pool = digest('neuroshard/ledger/v1/tiny-batch', pool)
      used = 0
    }
    const r = pool[used++]
    // mostly deterministic structure (learnable), some noise
    x = r < 200 ? (3 * x + 1 + (shard % 5)) % TINY_VOCAB : r % TINY_VOCAB
    out[t] = x
  }
  return out
}

export function hashWeights (w: Float32Array): Uint8Array {
  return digest('neuroshard/ledger/v1/tiny-weights', new Uint8Array(w.buffer, w.byteOffset, w.byteLength))
}

/** Deterministic initial weights from a seed */
export function tinyInit (seed: string): Float32Array {
  const w = new Float32Array(TINY_VOCAB * TINY_VOCAB)
  let pool = digest('neuroshard/ledger/v1/tiny-init', new TextEncoder().encode(seed))
  for (let i = 0; i < w.length; i++) {
    if (i % 32 === 0 && i > 0) {
      pool = digest('neuroshard/ledger/v1/tiny-init', pool)
    }
    w[i] = (pool[i % 32] / 255 - 0.5) * 0.1
  }
  return w
}

/** Mean next-token cross-entropy of `batch` under `w`; optionally accumulates the gradient into `grad` */
export function tinyLoss (w: Float32Array, batch: Int32Array, grad?: Float32Array): number {
  const V = TINY_VOCAB
  let total = 0
  const n = batch.length - 1
  const p = new Float64Array(V)
  for (let t = 0; t < n; t++) {
    const x = batch[t]
    const y = batch[t + 1]
    let max = -Infinity
    for (let j = 0; j < V; j++) {
      max = Math.max(max, w[x * V + j])
    }
    let z = 0
    for (let j = 0; j < V; j++) {
      p[j] = Math.exp(w[x * V + j] - max)
      z += p[j]
    }
    total += -(w[x * V + y] - max - Math.log(z))
    if (grad != null) {
      for (let j = 0; j < V; j++) {
        grad[x * V + j] += (p[j] / z - (j === y ? 1 : 0)) / n
      }
    }
  }
  return total / n
}

export function toMicro (loss: number): bigint {
  if (!Number.isFinite(loss) || loss < 0) {
    throw new ReExecutionMismatchError(`loss ${loss} is not a finite non-negative number`)
  }
  return BigInt(Math.floor(loss * 1e6))
}

export interface TinyTrainingResult {
  batchLossMicro: bigint[]
  lossBeforeMicro: bigint
  lossAfterMicro: bigint
  pseudoGradientHash: Uint8Array
  tokens: bigint
  finalWeights: Float32Array
}

/** Runs the claimed work honestly (what a worker does, and what a full re-execution repeats) */
export function runTinyTraining (start: Float32Array, shardIds: number[], round: bigint, batches: number, lr = 0.5): TinyTrainingResult {
  const w = Float32Array.from(start)
  const batchLossMicro: bigint[] = []
  const data: Int32Array[] = []
  for (let i = 0; i < batches; i++) {
    const b = tinyBatch(shardIds, round, i)
    data.push(b)
    batchLossMicro.push(toMicro(tinyLoss(start, b)))
  }
  for (const b of data) {
    const g = new Float32Array(w.length)
    tinyLoss(w, b, g)
    for (let k = 0; k < w.length; k++) {
      w[k] -= lr * g[k]
    }
  }
  const after = data.reduce((a, b) => a + tinyLoss(w, b), 0) / batches
  const delta = new Float32Array(w.length)
  for (let k = 0; k < w.length; k++) {
    delta[k] = start[k] - w[k]
  }
  return {
    batchLossMicro,
    lossBeforeMicro: batchLossMicro.reduce((a, b) => a + b, 0n) / BigInt(batches),
    lossAfterMicro: toMicro(after),
    pseudoGradientHash: hashWeights(delta),
    tokens: BigInt(batches * TINY_SEQ),
    finalWeights: w
  }
}

export interface TinyModelVerifierInit {
  /** the weights a model hash names (a verifier fetches or keeps them); unknown hash → mismatch */
  getWeights(modelHash: Uint8Array): Float32Array | undefined | Promise<Float32Array | undefined>
  /**
   * how many batches to re-run
   *
   * @default 2
   */
  samples?: number
  /**
   * allowed |claimed − recomputed| loss, in micro-units
   *
   * @default 1000 (0.001)
   */
  toleranceMicro?: bigint
  /**
   * also re-run the whole training and compare loss_after and the pseudo-gradient hash
   *
   * @default false
   */
  full?: boolean
  /** learning rate of the claimed SGD steps @default 0.5 */
  lr?: number
  /** secret salt of the batch sample (see sampleBatches) @default 32 random bytes */
  salt?: Uint8Array
}

/**
 * Real re-execution check for training proofs on the tiny reference model: picks `samples` batch
 * indexes from the proof id and this verifier's secret salt (so the prover can neither predict nor grind
 * them), recomputes each batch's loss
 * under the claimed starting weights and compares within `toleranceMicro`.
 */
export class TinyModelTrainingVerifier implements TrainingReExecutor {
  readonly #init: TinyModelVerifierInit
  readonly #salt: Uint8Array

  constructor (init: TinyModelVerifierInit) {
    this.#init = init
    this.#salt = init.salt ?? randomSampleSalt()
  }

  async verifyTraining (claim: TrainingClaim, options?: AbortOptions): Promise<void> {
    options?.signal?.throwIfAborted()
    const w = await this.#init.getWeights(claim.modelHash)
    if (w == null || toHex(hashWeights(w)) !== toHex(claim.modelHash)) {
      throw new ReExecutionMismatchError('weights for the claimed model hash are unknown')
    }
    const n = Number(claim.batches)
    const tol = this.#init.toleranceMicro ?? 1000n
    for (const i of sampleBatches(claim.proofId, n, this.#init.samples ?? 2, this.#salt)) {
      const got = toMicro(tinyLoss(w, tinyBatch(claim.shardIds, claim.round, i)))
      const claimed = claim.batchLossMicro[i]
      const diff = got > claimed ? got - claimed : claimed - got
      if (diff > tol) {
        throw new ReExecutionMismatchError(`batch ${i}: claimed loss ${claimed}µ, re-executed ${got}µ`)
      }
    }
    if (this.#init.full === true) {
      const r = runTinyTraining(w, claim.shardIds, claim.round, n, this.#init.lr ?? 0.5)
      const d = r.lossAfterMicro > claim.lossAfterMicro ? r.lossAfterMicro - claim.lossAfterMicro : claim.lossAfterMicro - r.lossAfterMicro
      if (d > tol) {
        throw new ReExecutionMismatchError(`loss_after: claimed ${claim.lossAfterMicro}µ, re-executed ${r.lossAfterMicro}µ`)
      }
      if (toHex(r.pseudoGradientHash) !== toHex(claim.pseudoGradientHash)) {
        throw new ReExecutionMismatchError('pseudo-gradient hash differs from the re-execution')
      }
    }
  }
}
