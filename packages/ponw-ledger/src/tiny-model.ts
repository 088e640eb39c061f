import { ReExecutionMismatchError } from './errors.js'
import { digest, toHex } from './keys.js'
import { trainingSegments } from './messages.js'
import { ProofOfLearningVerifier } from './pol.js'
import type { TrainingModel, TrainingWitness } from './pol.js'
import type { TrainingClaim, TrainingReExecutor, TrainingVerdict } from './verify.js'
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
  /** k as claimed (0 = no intermediate commitment) */
  checkpointInterval: number
  /** weights after k, 2k, … steps (not the final ones) */
  checkpoints: Float32Array[]
  /** their hashes: the proof's `checkpointHashes` */
  checkpointHashes: Uint8Array[]
}

/** One claimed SGD step of the tiny model on `batch`; returns new weights */
export function tinyStep (w: Float32Array, batch: Int32Array, lr: number): Float32Array {
  const out = Float32Array.from(w)
  const g = new Float32Array(w.length)
  tinyLoss(w, batch, g)
  for (let k = 0; k < w.length; k++) {
    out[k] -= lr * g[k]
  }
  return out
}

/** hash of Δ = base − final (the pseudo-gradient a DiLoCo round publishes) */
export function tinyPseudoGradientHash (base: Float32Array, final: Float32Array): Uint8Array {
  const delta = new Float32Array(base.length)
  for (let k = 0; k < base.length; k++) {
    delta[k] = base[k] - final[k]
  }
  return hashWeights(delta)
}

/**
 * Runs the claimed work honestly (what a worker does, and what a full re-execution repeats), committing to
 * the weights every `checkpointInterval` steps (0: none)
 */
export function runTinyTraining (start: Float32Array, shardIds: number[], round: bigint, batches: number, lr = 0.5, checkpointInterval = 0): TinyTrainingResult {
  let w: Float32Array = Float32Array.from(start)
  const batchLossMicro: bigint[] = []
  const data: Int32Array[] = []
  for (let i = 0; i < batches; i++) {
    const b = tinyBatch(shardIds, round, i)
    data.push(b)
    batchLossMicro.push(toMicro(tinyLoss(start, b)))
  }
  const checkpoints: Float32Array[] = []
  for (let i = 0; i < batches; i++) {
    w = tinyStep(w, data[i], lr)
    if (checkpointInterval > 0 && (i + 1) % checkpointInterval === 0 && i + 1 < batches) {
      checkpoints.push(Float32Array.from(w))
    }
  }
  const after = data.reduce((a, b) => a + tinyLoss(w, b), 0) / batches
  return {
    batchLossMicro,
    lossBeforeMicro: batchLossMicro.reduce((a, b) => a + b, 0n) / BigInt(batches),
    lossAfterMicro: toMicro(after),
    pseudoGradientHash: tinyPseudoGradientHash(start, w),
    tokens: BigInt(batches * TINY_SEQ),
    finalWeights: w,
    checkpointInterval,
    checkpoints,
    checkpointHashes: checkpoints.map(hashWeights)
  }
}

/** The tiny model as a Proof-of-Learning {@link TrainingModel} (SGD with learning rate `lr`, max-abs distance) */
export function tinyTrainingModel (lr = 0.5): TrainingModel<Float32Array> {
  return {
    hash: hashWeights,
    step: (w, claim, i) => tinyStep(w, tinyBatch(claim.shardIds, claim.round, i), lr),
    lossMicro: (w, claim, i) => toMicro(tinyLoss(w, tinyBatch(claim.shardIds, claim.round, i))),
    distance: (a, b) => {
      let d = 0
      for (let k = 0; k < a.length; k++) {
        d = Math.max(d, Math.abs(a[k] - b[k]))
      }
      return a.length === b.length ? d : Infinity
    },
    pseudoGradientHash: tinyPseudoGradientHash
  }
}

export interface TinyModelVerifierInit {
  /** the base weights a model hash names (a verifier fetches or keeps them); unknown hash → mismatch */
  getWeights(modelHash: Uint8Array): Float32Array | undefined | Promise<Float32Array | undefined>
  /**
   * the prover's committed checkpoints and final weights (fetched over the network). Without a witness and
   * without `full`, only the base is known and every proof is refused (nothing beyond the starting losses
   * could be checked)
   */
  witness?: TrainingWitness<Float32Array>
  /** batches whose starting loss is re-run @default 2 */
  samples?: number
  /** random segments re-executed besides the last @default 2 */
  segments?: number
  /** allowed |claimed − recomputed| loss, in micro-units @default 1000 (0.001) */
  toleranceMicro?: bigint
  /**
   * re-run the whole claimed training locally instead of fetching the prover's weights (the tiny model is
   * exactly deterministic): every segment, the pseudo-gradient and loss_after are checked
   *
   * @default false
   */
  full?: boolean
  /** learning rate of the claimed SGD steps @default 0.5 */
  lr?: number
  /** secret salt of the samples @default 32 random bytes */
  salt?: Uint8Array
}

/**
 * Proof-of-Learning check of training proofs on the tiny reference model ({@link ProofOfLearningVerifier}
 * over {@link tinyTrainingModel}): the base weights from `getWeights`, the committed checkpoints and final
 * weights from the `witness` (or a full local re-execution with `full`).
 */
export class TinyModelTrainingVerifier implements TrainingReExecutor {
  readonly #pol: ProofOfLearningVerifier<Float32Array>

  constructor (init: TinyModelVerifierInit) {
    const lr = init.lr ?? 0.5
    const model = tinyTrainingModel(lr)
    const base = async (claim: TrainingClaim): Promise<Float32Array | undefined> => {
      const w = await init.getWeights(claim.modelHash)
      return w != null && toHex(hashWeights(w)) === toHex(claim.modelHash) ? w : undefined
    }
    let witness: TrainingWitness<Float32Array>
    if (init.full === true) {
      witness = {
        fetchWeights: async (claim, j) => {
          let w = await base(claim)
          if (w == null) return undefined
          const n = Number(claim.batches)
          const k = claim.checkpointInterval === 0 ? n : claim.checkpointInterval
          for (let i = 0; i < Math.min(j * k, n); i++) {
            w = tinyStep(w, tinyBatch(claim.shardIds, claim.round, i), lr)
          }
          return w
        }
      }
    } else {
      const remote = init.witness
      witness = { fetchWeights: async (claim, j, options) => j === 0 ? base(claim) : remote?.fetchWeights(claim, j, options) }
    }
    this.#pol = new ProofOfLearningVerifier({
      model,
      witness,
      lossSamples: init.samples ?? 2,
      segments: init.full === true ? Number.MAX_SAFE_INTEGER : init.segments,
      toleranceMicro: init.toleranceMicro ?? 1000n,
      distanceTolerance: init.full === true ? 0 : 1e-5,
      salt: init.salt
    })
  }

  async verifyTraining (claim: TrainingClaim, options?: AbortOptions): Promise<TrainingVerdict> {
    options?.signal?.throwIfAborted()
    if (Number(trainingSegments(claim.batches, claim.checkpointInterval)) < 1) {
      throw new ReExecutionMismatchError('no segment to check')
    }
    return this.#pol.verifyTraining(claim, options)
  }
}

/** Serialized tiny-model weights (float32, little-endian), as served over the Proof-of-Learning weights protocol */
export function tinyWeightsToBytes (w: Float32Array): Uint8Array {
  const out = new Uint8Array(w.length * 4)
  const dv = new DataView(out.buffer)
  w.forEach((x, i) => { dv.setFloat32(i * 4, x, true) })
  return out
}

/** {@link tinyWeightsToBytes} back; undefined unless exactly TINY_VOCAB² floats */
export function tinyWeightsFromBytes (b: Uint8Array): Float32Array | undefined {
  if (b.byteLength !== TINY_VOCAB * TINY_VOCAB * 4) {
    return undefined
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  return Float32Array.from({ length: TINY_VOCAB * TINY_VOCAB }, (_, i) => dv.getFloat32(i * 4, true))
}
