/**
 * Proof-of-Learning (Jia et al. 2021) check of a training proof, independent of the model: the proof commits
 * to the base weights (model hash), the weights every k inner steps (checkpoint hashes) and the final
 * weights (through the pseudo-gradient hash Δ = base − final). The verifier fetches committed weights from
 * the prover, re-executes randomly chosen segments from a checkpoint and checks that it lands within a
 * tolerance of the next committed weights; the last segment is always checked (it links the final weights,
 * i.e. the published pseudo-gradient, to the chain), and loss_after is recomputed from the final weights when
 * the claim earns the quality bonus. The model and the transport are interfaces the node implements.
 */
import { ReExecutionMismatchError } from './errors.js'
import { toHex } from './keys.js'
import { trainingSegments } from './messages.js'
import { randomSampleSalt, sampleBatches } from './verify.js'
import type { TrainingClaim, TrainingReExecutor, TrainingVerdict } from './verify.js'
import type { AbortOptions } from '@libp2p/interface'

/** The model a training claim ran, as a verifier re-runs it. `W` is a weights value; never mutate one. */
export interface TrainingModel<W> {
  /** the commitment hash of weights (the model hash of the base, the checkpoint hashes) */
  hash(w: W): Uint8Array
  /** the claimed inner step `index` (0-based) from `w`: its batch and optimizer update; returns new weights */
  step(w: W, claim: TrainingClaim, index: number, options?: AbortOptions): W | Promise<W>
  /** loss of batch `index` of the claim under `w`, in µ-units (floor(loss · 10^6)) */
  lossMicro(w: W, claim: TrainingClaim, index: number, options?: AbortOptions): bigint | Promise<bigint>
  /** distance between re-executed and committed weights (compared with `distanceTolerance`) */
  distance(a: W, b: W): number
  /** the pseudo-gradient hash of a run from `base` to `final` (hash of Δ = base − final) */
  pseudoGradientHash(base: W, final: W): Uint8Array
}

/** Where committed weights come from (the prover over the network, or a local re-execution) */
export interface TrainingWitness<W> {
  /**
   * the weights after `checkpoint · k` steps as the prover committed them: 0 = the base weights, the last
   * (= number of segments) the final weights. The verifier checks each against its commitment.
   */
  fetchWeights(claim: TrainingClaim, checkpoint: number, options?: AbortOptions): Promise<W | undefined>
}

export interface ProofOfLearningVerifierInit<W> {
  model: TrainingModel<W>
  witness: TrainingWitness<W>
  /** random segments re-executed besides the last one @default 2 */
  segments?: number
  /** batches whose starting loss is recomputed @default 2 */
  lossSamples?: number
  /** allowed distance between re-executed and committed weights @default 1e-4 */
  distanceTolerance?: number
  /** allowed |claimed − recomputed| loss, µ-units @default 1000 */
  toleranceMicro?: bigint
  /** secret salt of the samples @default 32 random bytes */
  salt?: Uint8Array
}

/**
 * The checks of the final weights (specs/ponw-ledger §8 rule 3), in order: `hash(base − final)` is the claim's
 * `pseudo_gradient_hash`, and the final weights are not the base (`model.hash(final)` ≠ `model_hash`). Throws
 * `ReExecutionMismatchError`. `base` is checkpoint 0, already checked against `model_hash`.
 */
export function checkFinalWeights<W> (model: TrainingModel<W>, claim: Pick<TrainingClaim, 'modelHash' | 'pseudoGradientHash'>, base: W, final: W): void {
  if (toHex(model.pseudoGradientHash(base, final)) !== toHex(claim.pseudoGradientHash)) {
    throw new ReExecutionMismatchError('the final weights do not give the claimed pseudo-gradient hash')
  }
  if (toHex(model.hash(final)) === toHex(claim.modelHash)) {
    throw new ReExecutionMismatchError('the final weights are the base weights: no training happened')
  }
}

/** Model-independent Proof-of-Learning re-executor (see the module comment) */
export class ProofOfLearningVerifier<W> implements TrainingReExecutor {
  readonly #init: ProofOfLearningVerifierInit<W>
  readonly #salt: Uint8Array

  constructor (init: ProofOfLearningVerifierInit<W>) {
    this.#init = init
    this.#salt = init.salt ?? randomSampleSalt()
  }

  async verifyTraining (claim: TrainingClaim, options?: AbortOptions): Promise<TrainingVerdict> {
    const { model, witness } = this.#init
    const n = Number(claim.batches)
    const k = claim.checkpointInterval === 0 ? n : claim.checkpointInterval
    const m = Number(trainingSegments(claim.batches, claim.checkpointInterval))
    const tol = this.#init.toleranceMicro ?? 1000n
    const dtol = this.#init.distanceTolerance ?? 1e-4
    const cache = new Map<number, W>()
    const fetch = async (j: number): Promise<W> => {
      const hit = cache.get(j)
      if (hit != null) return hit
      options?.signal?.throwIfAborted()
      const w = await witness.fetchWeights(claim, j, options)
      if (w == null) {
        throw new ReExecutionMismatchError(`the prover did not provide the weights of checkpoint ${j}`)
      }
      if (j < m) {
        const want = j === 0 ? claim.modelHash : claim.checkpointHashes[j - 1]
        if (toHex(model.hash(w)) !== toHex(want)) {
          throw new ReExecutionMismatchError(`weights of checkpoint ${j} do not match the committed hash`)
        }
      } else {
        checkFinalWeights(model, claim, await fetch(0), w)
      }
      cache.set(j, w)
      return w
    }
    const base = await fetch(0)
    const picked = sampleBatches(claim.proofId, n, this.#init.lossSamples ?? 2, this.#salt)
    for (const i of picked) {
      const got = await model.lossMicro(base, claim, i, options)
      const claimed = claim.batchLossMicro[i]
      if ((got > claimed ? got - claimed : claimed - got) > tol) {
        throw new ReExecutionMismatchError(`batch ${i}: claimed loss ${claimed}µ, re-executed ${got}µ`)
      }
    }
    const segs = new Set(sampleBatches(`${claim.proofId}/segments`, m, this.#init.segments ?? 2, this.#salt))
    segs.add(m - 1)
    for (const j of [...segs].sort((a, b) => a - b)) {
      let w = await fetch(j)
      for (let i = j * k; i < Math.min((j + 1) * k, n); i++) {
        options?.signal?.throwIfAborted()
        w = await model.step(w, claim, i, options)
      }
      const next = await fetch(j + 1)
      const d = model.distance(w, next)
      if (!(d <= dtol)) {
        throw new ReExecutionMismatchError(`segment ${j}: re-executed weights are ${d} from the committed ones (tolerance ${dtol})`)
      }
    }
    let lossAfterVerified = false
    if (claim.qualityBonus) {
      const final = await fetch(m)
      let sum = 0n
      for (let i = 0; i < n; i++) {
        sum += await model.lossMicro(final, claim, i, options)
      }
      const mean = sum / BigInt(n)
      if ((mean > claim.lossAfterMicro ? mean - claim.lossAfterMicro : claim.lossAfterMicro - mean) > tol) {
        throw new ReExecutionMismatchError(`loss_after: claimed ${claim.lossAfterMicro}µ, re-executed ${mean}µ`)
      }
      lossAfterVerified = true
    }
    return { batchesChecked: picked.length, segmentsChecked: segs.size, pseudoGradientVerified: true, lossAfterVerified }
  }
}

/** What {@link networkWitness} needs of the ledger service (`PonwLedger.fetchWeights`) */
export interface WeightsFetcher {
  fetchWeights(sender: string, proofId: string, checkpoint: number, options: AbortOptions & { maxBytes?: number }): Promise<Uint8Array>
}

/**
 * A {@link TrainingWitness} that fetches committed weights from the prover over the network
 * (`/neuroshard/ledger/pol-weights/1.0.0`) and decodes them with the model's own `decode`
 */
export function networkWitness<W> (fetcher: WeightsFetcher | (() => WeightsFetcher), decode: (bytes: Uint8Array) => W | undefined, options: { maxBytes?: number, timeoutMs?: number } = {}): TrainingWitness<W> {
  return {
    fetchWeights: async (claim, checkpoint, o) => {
      const f = typeof fetcher === 'function' ? fetcher() : fetcher
      const deadline = AbortSignal.timeout(options.timeoutMs ?? 60_000)
      const signal = o?.signal == null ? deadline : AbortSignal.any([deadline, o.signal])
      try {
        return decode(await f.fetchWeights(claim.sender, claim.proofId, checkpoint, { signal, maxBytes: options.maxBytes }))
      } catch (err: any) {
        throw new ReExecutionMismatchError(`weights of checkpoint ${checkpoint} could not be fetched from the prover: ${err?.message ?? err}`)
      }
    }
  }
}
