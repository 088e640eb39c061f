import { InvalidParametersError } from '@neuroshard/interface'
import { decodeAmount } from './amount.js'
import { challengeIndexes, verifyDataMerkleProof } from './data-challenge.js'
import { DataChallengeError, DataShardMismatchError, ImplausibleProofError, NoVerifierError, PseudoGradientNotAcceptedError, RateLimitedError, ReExecutionMismatchError, ReplayError, ShardAssignmentError, UnpaidInferenceError } from './errors.js'
import { digest, toHex } from './keys.js'
import { assignShards } from './shards.js'
import type { Chain } from './genesis.js'
import type { LedgerTx } from './messages.js'
import type { LedgerState } from './state.js'
import type { AbortOptions } from '@libp2p/interface'

/** What a training re-execution check receives */
export interface TrainingClaim {
  proofId: string
  sender: string
  round: bigint
  modelHash: Uint8Array
  shardIds: number[]
  tokens: bigint
  batches: bigint
  lossBeforeMicro: bigint
  lossAfterMicro: bigint
  pseudoGradientHash: Uint8Array
  batchLossMicro: bigint[]
  /** k: inner steps between committed weights (0 = batches) */
  checkpointInterval: number
  /** hashes of the weights after k, 2k, … steps (the final weights are committed by `pseudoGradientHash`) */
  checkpointHashes: Uint8Array[]
  /** the claim earns the quality bonus (loss_after < loss_before and ≤ the threshold): loss_after must be verified */
  qualityBonus: boolean
}

/** What a re-execution established (the ledger decides from it whether to vote) */
export interface TrainingVerdict {
  /** batches whose claimed starting loss was recomputed within the tolerance */
  batchesChecked: number
  /** committed segments (weights at a checkpoint → the next) re-executed and matched within the tolerance */
  segmentsChecked: number
  /** the final weights were obtained and hash(base − final) is the claimed pseudo-gradient hash */
  pseudoGradientVerified: boolean
  /** loss_after recomputed from the final weights within the tolerance */
  lossAfterVerified: boolean
}

/**
 * Pluggable re-execution: re-run a sampled part of the claimed work and compare within a tolerance.
 * Throw ReExecutionMismatchError when the claim is wrong; return what was checked. A validator votes only
 * if at least one segment was re-executed, the pseudo-gradient was verified, and (when the claim earns the
 * quality bonus) loss_after was verified; a re-executor that returns nothing has checked nothing.
 */
export interface TrainingReExecutor {
  verifyTraining(claim: TrainingClaim, options?: AbortOptions): Promise<TrainingVerdict | void>
}

/** What a DiLoCo round record is asked: did the round's robust aggregation accept this pseudo-gradient? */
export interface AggregationQuery {
  /** the training proof's id (its message id, hex): lets a record source fetch the proof's committed evidence */
  proofId?: string
  round: bigint
  sender: string
  /** the round's base weights (the proof's model hash) */
  baseWeightsHash: Uint8Array
  pseudoGradientHash: Uint8Array
}

/**
 * The DiLoCo round records (base-weights hash, each sender's Δ hash, the aggregator's accept/reject per
 * sender), rebuilt from signed messages by the node. A training proof is rewarded only for a pseudo-gradient
 * the aggregation accepted.
 */
export interface AggregationRecords {
  acceptedPseudoGradient(query: AggregationQuery, options?: AbortOptions): Promise<boolean>
}

/** In-memory {@link AggregationRecords} (tests, devnets): `accept` what the round's aggregation accepted */
export class MemoryAggregationRecords implements AggregationRecords {
  readonly #accepted = new Set<string>()

  accept (query: AggregationQuery): void {
    this.#accepted.add(aggregationKey(query))
  }

  async acceptedPseudoGradient (query: AggregationQuery): Promise<boolean> {
    return this.#accepted.has(aggregationKey(query))
  }
}

function aggregationKey (q: AggregationQuery): string {
  return `${q.round}/${q.sender}/${toHex(q.baseWeightsHash)}/${toHex(q.pseudoGradientHash)}`
}

/** What an uptime check receives */
export interface UptimeClaim {
  proofId: string
  sender: string
  epoch: bigint
  heartbeats: number
}

/** Attests an uptime claim (e.g. from heartbeats this node saw). Throw to refuse the vote. */
export interface UptimeVerifier {
  verifyUptime(claim: UptimeClaim, options?: AbortOptions): Promise<void>
}

/** What an inference check receives */
export interface InferenceClaim {
  proofId: string
  sender: string
  sessionId: Uint8Array
  tokens: bigint
  outputHash: Uint8Array
  startedMs: bigint
  endedMs: bigint
}

/** Attests an inference claim (e.g. against the client's signed receipt and payment). Throw to refuse. */
export interface InferenceVerifier {
  verifyInference(claim: InferenceClaim, options?: AbortOptions): Promise<void>
}

/** What a data check receives */
export interface DataClaim {
  proofId: string
  sender: string
  round: bigint
  shardId: number
  samples: bigint
  dataHash: Uint8Array
}

/** Checks a data claim against the shard list the chain names. Throw to refuse the vote. */
export interface DataVerifier {
  verifyData(claim: DataClaim, options?: AbortOptions): Promise<void>
}

/** One entry of the data-shard manifest: the shard's content hash and its number of samples */
export interface DataShard {
  /** 32 bytes */
  hash: Uint8Array
  samples: bigint
}

/**
 * Hash of a shard manifest (shard i = entry i, totalShards entries):
 * sha256("neuroshard/ledger/v1/shard-manifest" || 0 || hash_0 || u64be(samples_0) || hash_1 || …).
 * The genesis names it (`dataManifestHash`).
 */
export function shardManifestHash (shards: DataShard[]): Uint8Array {
  const parts: Uint8Array[] = []
  for (const s of shards) {
    const n = new Uint8Array(8)
    new DataView(n.buffer).setBigUint64(0, s.samples)
    parts.push(s.hash, n)
  }
  return digest('neuroshard/ledger/v1/shard-manifest', ...parts)
}

/** A validator's challenge to the prover of a data proof: open these leaves of the shard */
export interface DataChallenge {
  proofId: string
  /** the prover's address (the transport finds its libp2p peer, e.g. through its identity binding) */
  sender: string
  round: bigint
  shardId: number
  /** leaf indexes, drawn with a fresh secret of the validator ({@link challengeIndexes}) */
  indexes: number[]
}

/** One opened leaf: the sample bytes and the sibling path to the shard root ({@link dataMerkleProof}) */
export interface DataChallengeAnswer {
  sample: Uint8Array
  path: Uint8Array[]
}

/**
 * The network transport of a data challenge (the node implements it, e.g. a request/response stream to the
 * prover's bound peer): ask the prover to open `challenge.indexes`, give up when `options.signal` aborts
 * (the deadline). Answers come back in the order of `indexes`.
 */
export type DataChallenger = (challenge: DataChallenge, options: AbortOptions) => Promise<DataChallengeAnswer[]>

export interface ShardManifestVerifierInit {
  chain: Chain
  /**
   * the manifest: exactly `totalShards` entries (Merkle root of the shard's samples, number of samples) whose
   * {@link shardManifestHash} is the genesis `dataManifestHash`
   */
  shards: DataShard[]
  /** asks the prover to open leaves; without it every data proof is refused (possession cannot be checked) */
  challenge?: DataChallenger
  /** leaves opened per proof @default 16 */
  challenges?: number
  /** the prover must answer within this @default 10_000 ms */
  timeoutMs?: number
  /** largest sample accepted in an answer @default 65_536 bytes */
  maxSampleBytes?: number
}

/**
 * Data check: the claimed `data_hash` MUST be the manifest's root of the claimed shard, `samples` at most the
 * shard's size, and the prover MUST prove possession by opening `challenges` leaves the validator draws with
 * a fresh secret, in time. (That the shard is assigned to the sender for the round and that (sender, round,
 * shard) is claimed once are checked by {@link ProofVerifier} itself.)
 */
export class ShardManifestVerifier implements DataVerifier {
  readonly #shards: DataShard[]
  readonly #init: ShardManifestVerifierInit

  constructor (init: ShardManifestVerifierInit) {
    const { chain, shards } = init
    if (shards.length !== chain.genesis.params.totalShards) {
      throw new InvalidParametersError(`the manifest has ${shards.length} shards, the chain ${chain.genesis.params.totalShards}`)
    }
    if (shards.some(s => s.hash.byteLength !== 32 || s.samples <= 0n || s.samples > 0xffffffffn)) {
      throw new InvalidParametersError('every shard needs a 32-byte hash and 1..2^32-1 samples')
    }
    if (chain.genesis.dataManifestHash == null) {
      throw new InvalidParametersError('the genesis names no data manifest (dataManifestHash)')
    }
    if (toHex(shardManifestHash(shards)) !== chain.genesis.dataManifestHash) {
      throw new InvalidParametersError('the manifest is not the one the genesis names (dataManifestHash differs)')
    }
    const k = init.challenges ?? 16
    if (!Number.isSafeInteger(k) || k < 1 || k > 256) {
      throw new InvalidParametersError('challenges must be 1..256')
    }
    this.#init = init
    this.#shards = shards.map(s => ({ hash: Uint8Array.from(s.hash), samples: s.samples }))
  }

  async verifyData (claim: DataClaim, options?: AbortOptions): Promise<void> {
    const s = this.#shards[claim.shardId]
    if (s == null) {
      throw new ImplausibleProofError(`shard ${claim.shardId} is not in the manifest`)
    }
    if (toHex(s.hash) !== toHex(claim.dataHash)) {
      throw new DataShardMismatchError(`data hash is not the manifest's hash of shard ${claim.shardId}`)
    }
    if (claim.samples > s.samples) {
      throw new ImplausibleProofError(`${claim.samples} samples claimed from shard ${claim.shardId} of ${s.samples}`)
    }
    const challenge = this.#init.challenge
    if (challenge == null) {
      throw new DataChallengeError('no challenge transport configured: possession of the shard cannot be checked')
    }
    const count = Number(s.samples)
    const indexes = challengeIndexes(claim.proofId, randomSampleSalt(), count, this.#init.challenges ?? 16)
    const deadline = AbortSignal.timeout(this.#init.timeoutMs ?? 10_000)
    const signal = options?.signal == null ? deadline : AbortSignal.any([deadline, options.signal])
    let answers: DataChallengeAnswer[]
    try {
      answers = await Promise.race([
        challenge({ proofId: claim.proofId, sender: claim.sender, round: claim.round, shardId: claim.shardId, indexes }, { signal }),
        new Promise<never>((_resolve, reject) => {
          if (signal.aborted) reject(signal.reason)
          signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
        })
      ])
    } catch (err: any) {
      options?.signal?.throwIfAborted()
      throw new DataChallengeError(`the prover did not answer the challenge in time: ${err?.name ?? err}`)
    }
    const max = this.#init.maxSampleBytes ?? 65_536
    if (!Array.isArray(answers) || answers.length !== indexes.length) {
      throw new DataChallengeError('the prover answered the wrong number of leaves')
    }
    for (let j = 0; j < indexes.length; j++) {
      const a = answers[j]
      if (a == null || !(a.sample instanceof Uint8Array) || a.sample.byteLength > max || !Array.isArray(a.path) || a.path.length > 40 ||
        !verifyDataMerkleProof(s.hash, count, indexes[j], a.sample, a.path)) {
        throw new DataChallengeError(`leaf ${indexes[j]} of shard ${claim.shardId} does not open the manifest's root`)
      }
    }
  }
}

/**
 * One check per proof kind. Inference is checked by the ledger itself (the client's payment). Any other kind
 * whose check is not configured FAILS CLOSED: the validator refuses to
 * vote for it with NoVerifierError (it never mints work nobody checked).
 */
export interface ProofVerifierInit {
  /** re-execution check of training proofs; without one, training proofs are refused */
  training?: TrainingReExecutor
  /** the DiLoCo round records; without them, training proofs are refused */
  aggregation?: AggregationRecords
  /** attestation of uptime proofs; without one, uptime proofs are refused */
  uptime?: UptimeVerifier
  /**
   * extra check of inference proofs (e.g. sampling outputs). Not required: the ledger itself binds every
   * inference proof to the client's final payment (session id = payment id, provider = sender, tokens ≤ paid,
   * reward ≤ the burned part of the fee)
   */
  inference?: InferenceVerifier
  /** data-shard check of data proofs; without one, data proofs are refused */
  data?: DataVerifier
  /**
   * allowed clock skew for inference timestamps, ms
   *
   * @default 30000
   */
  clockSkewMs?: number
  /**
   * Attestation work (re-execution, challenges, heartbeat lookups) costs the validator; identities are free.
   * A sender whose effective stake (bonded − slashed) is at least this is checked without limit; the others
   * share one budget of `unstakedChecksPerSecond` (burst `unstakedBurst`) and are refused with
   * RateLimitedError beyond it
   *
   * @default 10^18 (1 NEURO)
   */
  minStake?: bigint
  /** @default 2 */
  unstakedChecksPerSecond?: number
  /** @default 30 */
  unstakedBurst?: number
}

/**
 * Batch indexes a training verifier re-runs: `samples` distinct indexes from
 * h = sha256("neuroshard/ledger/v1/reexec-sample" || 0 || utf8(proofId) || salt), then h = sha256(domain || 0 || h), …
 *
 * The prover computes its own proof id before it signs, so with an empty salt it can grind the id (vary any
 * free field, e.g. the pseudo-gradient hash) until the sample lands on the few batches it really ran. A
 * verifier therefore passes a secret random salt of its own: validators need not agree on the sample.
 */
export function sampleBatches (proofId: string, batches: number, samples: number, salt: Uint8Array = new Uint8Array(0)): number[] {
  const k = Math.min(batches, samples)
  const picked = new Set<number>()
  let seed = digest('neuroshard/ledger/v1/reexec-sample', new TextEncoder().encode(proofId), salt)
  while (picked.size < k) {
    picked.add(new DataView(seed.buffer, seed.byteOffset).getUint32(0) % batches)
    seed = digest('neuroshard/ledger/v1/reexec-sample', seed)
  }
  return [...picked]
}

/** A fresh 32-byte secret salt for {@link sampleBatches} */
export function randomSampleSalt (): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(32))
}

export function currentEpoch (chain: Chain, nowMs: number): bigint {
  return BigInt(Math.max(0, Math.floor((nowMs - chain.genesis.genesisTimeMs) / chain.genesis.params.epochMs)))
}

export function currentRound (chain: Chain, nowMs: number): bigint {
  return BigInt(Math.max(0, Math.floor((nowMs - chain.genesis.genesisTimeMs) / chain.genesis.params.roundMs)))
}

function within (v: bigint, now: bigint, window: number, what: string): void {
  if (v > now || now - v > BigInt(window)) {
    throw new ImplausibleProofError(`${what} ${v} is outside the window [${now - BigInt(window)}, ${now}]`)
  }
}

/**
 * The checks a validator runs before it signs a proof of neural work: replay, epoch/round windows, rate
 * plausibility, the data-shard assignment, the stake claim, and the re-execution check.
 */
export class ProofVerifier {
  readonly #init: ProofVerifierInit
  #tokens: number
  #refilledAt = performance.now()

  constructor (init: ProofVerifierInit = {}) {
    this.#init = init
    this.#tokens = init.unstakedBurst ?? 30
  }

  /** admits one attestation of a sender with `effective` stake, or throws RateLimitedError */
  #admit (effective: bigint): void {
    if (effective >= (this.#init.minStake ?? 10n ** 18n)) {
      return
    }
    const burst = this.#init.unstakedBurst ?? 30
    const t = performance.now()
    this.#tokens = Math.min(burst, this.#tokens + (t - this.#refilledAt) / 1000 * (this.#init.unstakedChecksPerSecond ?? 2))
    this.#refilledAt = t
    if (this.#tokens < 1) {
      throw new RateLimitedError('proof checks of senders without stake are over their shared budget: stake, or retry later')
    }
    this.#tokens -= 1
  }

  /** The proof kinds this verifier can check (and so vote for) */
  get kinds (): Array<'training' | 'uptime' | 'inference' | 'data'> {
    return (['training', 'uptime', 'inference', 'data'] as const).filter(k => this.#init[k] != null)
  }

  /**
   * Runs every check of the proof. With `attest: false` only the cheap, state-dependent ones (windows, caps,
   * assignment, stake claim, replay): the ledger runs the full check OUTSIDE its lock, then the cheap part
   * again under the lock, so a slow attestation never delays certificates.
   */
  async check (chain: Chain, state: LedgerState, tx: LedgerTx, nowMs: number, options?: AbortOptions & { attest?: boolean }): Promise<void> {
    const attest = options?.attest !== false
    const p = chain.genesis.params
    const epoch = currentEpoch(chain, nowMs)
    const round = currentRound(chain, nowMs)
    const acc = state.get(tx.sender)
    const effective = acc.bonded > acc.slashed ? acc.bonded - acc.slashed : 0n
    const t = tx.tx
    const claim = (b: Uint8Array): void => {
      if (decodeAmount(b) > effective) {
        throw new ImplausibleProofError('stake claim exceeds the effective bonded stake')
      }
    }
    const unused = (key: string): void => {
      if (state.proofKeys.has(key)) {
        throw new ReplayError(`proof ${key} already rewarded`)
      }
    }
    // fail closed before anything else: no configured check for this kind, no vote
    if ((tx.kind === 'training' || tx.kind === 'uptime' || tx.kind === 'data') && this.#init[tx.kind] == null) {
      throw new NoVerifierError(tx.kind)
    }
    if (tx.kind === 'training' && this.#init.aggregation == null) {
      throw new NoVerifierError(tx.kind, 'no DiLoCo round records (aggregation) configured')
    }
    switch (tx.kind) {
      case 'uptime': {
        const u = t.uptime!
        within(u.epoch, epoch, p.epochWindow, 'uptime epoch')
        if (BigInt(u.heartbeats) * BigInt(p.heartbeatSeconds) * 1000n > BigInt(p.epochMs)) {
          throw new ImplausibleProofError('more heartbeats than an epoch holds')
        }
        claim(u.stakeClaim)
        unused(`uptime/${tx.sender}/${u.epoch}`)
        if (!attest) return
        this.#admit(effective)
        await this.#init.uptime!.verifyUptime({ proofId: tx.idHex, sender: tx.sender, epoch: u.epoch, heartbeats: u.heartbeats }, options)
        return
      }
      case 'inference': {
        const i = t.inference!
        const skew = BigInt(this.#init.clockSkewMs ?? 30_000)
        const now = BigInt(nowMs)
        if (i.endedMs > now + skew || i.startedMs + BigInt(p.epochMs * (p.epochWindow + 1)) < now) {
          throw new ImplausibleProofError('inference session outside the time window')
        }
        if (i.tokens * 1000n > BigInt(p.maxInferenceTokensPerSecond) * (i.endedMs - i.startedMs)) {
          throw new ImplausibleProofError('implausible token rate')
        }
        // the session id names the client's final payment to this provider, which covers the tokens
        const paid = state.payments.get(toHex(i.sessionId))
        if (paid == null || paid.provider !== tx.sender) {
          throw new UnpaidInferenceError('the session id is not a final payment of a client to this provider')
        }
        if (i.tokens > paid.tokens) {
          throw new UnpaidInferenceError(`${i.tokens} tokens claimed, ${paid.tokens} paid`)
        }
        claim(i.stakeClaim)
        unused(`inference/${tx.sender}/${toHex(i.sessionId)}`)
        if (!attest) return
        await this.#init.inference?.verifyInference({ proofId: tx.idHex, sender: tx.sender, sessionId: i.sessionId, tokens: i.tokens, outputHash: i.outputHash, startedMs: i.startedMs, endedMs: i.endedMs }, options)
        return
      }
      case 'data': {
        const d = t.data!
        within(d.round, round, p.roundWindow, 'data round')
        if (d.samples > p.maxSamplesPerProof || d.shardId >= p.totalShards) {
          throw new ImplausibleProofError('implausible data contribution')
        }
        // only a shard of the sender's own deterministic assignment for that round: one address cannot
        // claim every shard
        const assigned = assignShards(chain, tx.sender, d.round)
        if (!assigned.includes(d.shardId)) {
          throw new ShardAssignmentError(`shard ${d.shardId} is not in the assignment ${assigned.join(',')} of ${tx.sender} for round ${d.round}`)
        }
        claim(d.stakeClaim)
        unused(`data/${tx.sender}/${d.round}/${d.shardId}`)
        if (!attest) return
        this.#admit(effective)
        await this.#init.data!.verifyData({ proofId: tx.idHex, sender: tx.sender, round: d.round, shardId: d.shardId, samples: d.samples, dataHash: d.dataHash }, options)
        return
      }
      case 'training': {
        const tr = t.training!
        within(tr.round, round, p.roundWindow, 'training round')
        if (tr.tokens > p.maxTrainingTokensPerProof || tr.batches > BigInt(p.maxBatchesPerProof)) {
          throw new ImplausibleProofError('implausible amount of training work')
        }
        const expected = assignShards(chain, tx.sender, tr.round)
        if (expected.length !== tr.shardIds.length || expected.some((s, i) => s !== tr.shardIds[i])) {
          throw new ShardAssignmentError(`shards ${tr.shardIds.join(',')} are not the assignment ${expected.join(',')} of round ${tr.round}`)
        }
        const sum = tr.batchLossMicro.reduce((a, b) => a + b, 0n)
        if (sum / tr.batches !== tr.lossBeforeMicro) {
          throw new ImplausibleProofError('loss_before is not the mean of the batch losses')
        }
        claim(tr.stakeClaim)
        unused(`training/${tx.sender}/${tr.round}`)
        if (!attest) return
        this.#admit(effective)
        // the reward is conditioned on the round's aggregation having accepted this pseudo-gradient
        const accepted = await this.#init.aggregation!.acceptedPseudoGradient({ proofId: tx.idHex, round: tr.round, sender: tx.sender, baseWeightsHash: tr.modelHash, pseudoGradientHash: tr.pseudoGradientHash }, options)
        if (!accepted) {
          throw new PseudoGradientNotAcceptedError(`round ${tr.round}: the aggregation did not accept this pseudo-gradient of ${tx.sender}`)
        }
        const qualityBonus = tr.lossAfterMicro < tr.lossBeforeMicro && tr.lossAfterMicro <= p.qualityLossThresholdMicro
        const verdict = await this.#init.training!.verifyTraining({
          proofId: tx.idHex,
          sender: tx.sender,
          round: tr.round,
          modelHash: tr.modelHash,
          shardIds: tr.shardIds,
          tokens: tr.tokens,
          batches: tr.batches,
          lossBeforeMicro: tr.lossBeforeMicro,
          lossAfterMicro: tr.lossAfterMicro,
          pseudoGradientHash: tr.pseudoGradientHash,
          batchLossMicro: tr.batchLossMicro,
          checkpointInterval: tr.checkpointInterval,
          checkpointHashes: tr.checkpointHashes,
          qualityBonus
        }, options)
        if (verdict == null || verdict.segmentsChecked < 1 || !verdict.pseudoGradientVerified) {
          throw new ReExecutionMismatchError('the re-executor checked no committed segment or not the pseudo-gradient: nothing was verified')
        }
        if (qualityBonus && !verdict.lossAfterVerified) {
          throw new ReExecutionMismatchError('the quality bonus is claimed but loss_after was not verified')
        }
      }
    }
  }
}
