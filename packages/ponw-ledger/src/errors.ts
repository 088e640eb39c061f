/**
 * Typed errors of `@neuroshard/ponw-ledger`. Every rejection names its reason so callers (and tests)
 * branch on `err.name`. A rejected message never changes the ledger state.
 */

/** Bytes that do not decode, are not in canonical form, or carry unknown fields */
export class InvalidMessageError extends Error {
  static override name = 'InvalidMessageError'
  override name = 'InvalidMessageError'
}

/** A signature (account, validator or binding) that does not verify */
export class InvalidSignatureError extends Error {
  static override name = 'InvalidSignatureError'
  override name = 'InvalidSignatureError'
}

/** An amount that is negative, not an integer, or does not fit in 128 bits */
export class InvalidAmountError extends Error {
  static override name = 'InvalidAmountError'
  override name = 'InvalidAmountError'
}

/** A message signed for another chain (genesis) */
export class WrongChainError extends Error {
  static override name = 'WrongChainError'
  override name = 'WrongChainError'
}

/** A message whose (sender, sequence) slot is already taken, or a proof already rewarded */
export class ReplayError extends Error {
  static override name = 'ReplayError'
  override name = 'ReplayError'
}

/** A message whose sequence is ahead of the sender's next sequence (earlier ones are not final yet) */
export class SequenceGapError extends Error {
  static override name = 'SequenceGapError'
  override name = 'SequenceGapError'
}

/** Spending (or bonding, unbonding, paying) more than the account holds */
export class InsufficientFundsError extends Error {
  static override name = 'InsufficientFundsError'
  override name = 'InsufficientFundsError'
}

/** The sender signed another message for the same sequence (evidence attached) */
export class EquivocationError extends Error {
  static override name = 'EquivocationError'
  override name = 'EquivocationError'
}

/**
 * A withdrawal and a slash report that must not both be final: the validator knows evidence against the
 * account (so its stake waits for the slash), or it already voted for the account's withdrawal after the
 * offence (so the stake behind the penalty may have left)
 */
export class EvidenceConflictError extends Error {
  static override name = 'EvidenceConflictError'
  override name = 'EvidenceConflictError'
}

/** A certificate whose valid validator signatures do not hold more than 2/3 of the stake */
export class InsufficientQuorumError extends Error {
  static override name = 'InsufficientQuorumError'
  override name = 'InsufficientQuorumError'
}

/** A proof outside its epoch/round window, or claiming an implausible rate of work */
export class ImplausibleProofError extends Error {
  static override name = 'ImplausibleProofError'
  override name = 'ImplausibleProofError'
}

/**
 * This validator has no verifier configured for the proof kind (`kind`), so it does not vote for it:
 * proofs fail closed instead of minting unchecked work
 */
export class NoVerifierError extends Error {
  static override name = 'NoVerifierError'
  override name = 'NoVerifierError'
  readonly kind: string

  constructor (kind: string, message = `no verifier is configured for ${kind} proofs: this validator does not vote for them`) {
    super(message)
    this.kind = kind
  }
}

/** A training proof whose data shards are not the ones assigned to (sender, round) */
export class ShardAssignmentError extends Error {
  static override name = 'ShardAssignmentError'
  override name = 'ShardAssignmentError'
}

/** A data proof whose data hash is not the hash the chain's shard manifest gives that shard */
export class DataShardMismatchError extends Error {
  static override name = 'DataShardMismatchError'
  override name = 'DataShardMismatchError'
}

/**
 * An inference proof whose session id is not a final payment of the client to this provider, or that claims
 * more tokens than were paid
 */
export class UnpaidInferenceError extends Error {
  static override name = 'UnpaidInferenceError'
  override name = 'UnpaidInferenceError'
}

/** An uptime proof this validator cannot attest: no bound peer, or fewer heartbeats seen than claimed */
export class UptimeNotAttestedError extends Error {
  static override name = 'UptimeNotAttestedError'
  override name = 'UptimeNotAttestedError'
}

/** Re-executing a sample of the claimed work gave a different result */
export class ReExecutionMismatchError extends Error {
  static override name = 'ReExecutionMismatchError'
  override name = 'ReExecutionMismatchError'
}

/** A fraud proof that does not prove anything */
export class InvalidEvidenceError extends Error {
  static override name = 'InvalidEvidenceError'
  override name = 'InvalidEvidenceError'
}

/** A keystore that cannot be opened (wrong passphrase, corrupted, unknown version) */
export class KeystoreError extends Error {
  static override name = 'KeystoreError'
  override name = 'KeystoreError'
}

/** A genesis config that is inconsistent */
export class InvalidGenesisError extends Error {
  static override name = 'InvalidGenesisError'
  override name = 'InvalidGenesisError'
}

/** The stored state differs from a rebuild from the stored messages */
export class StateMismatchError extends Error {
  static override name = 'StateMismatchError'
  override name = 'StateMismatchError'
}

/**
 * A data proof whose prover did not prove possession: it did not answer the validator's unpredictable leaf
 * challenges in time, or an answer does not open the shard's Merkle root (or no challenge transport is configured)
 */
export class DataChallengeError extends Error {
  static override name = 'DataChallengeError'
  override name = 'DataChallengeError'
}

/** A training proof whose pseudo-gradient the DiLoCo round's aggregation did not accept */
export class PseudoGradientNotAcceptedError extends Error {
  static override name = 'PseudoGradientNotAcceptedError'
  override name = 'PseudoGradientNotAcceptedError'
}

/** A slash report from an account that is not the designated reporter of its evidence key for its epoch */
export class NotDesignatedReporterError extends Error {
  static override name = 'NotDesignatedReporterError'
  override name = 'NotDesignatedReporterError'
}

/** A proof from a sender with less than the validator's minimum stake, over the shared budget of such checks */
export class RateLimitedError extends Error {
  static override name = 'RateLimitedError'
  override name = 'RateLimitedError'
}

/**
 * A checkpoint or snapshot that is malformed, for another chain, or whose snapshot bytes do not hash to the
 * certified snapshot hash (a forged checkpoint)
 */
export class InvalidCheckpointError extends Error {
  static override name = 'InvalidCheckpointError'
  override name = 'InvalidCheckpointError'
}

/** A checkpoint proposal this node's own final messages do not give (other base, other state) */
export class CheckpointMismatchError extends Error {
  static override name = 'CheckpointMismatchError'
  override name = 'CheckpointMismatchError'
}

/** A checkpoint proposal names final messages this node does not hold yet (retry after syncing) */
export class CheckpointNotReadyError extends Error {
  static override name = 'CheckpointNotReadyError'
  override name = 'CheckpointNotReadyError'
}

/** A checkpoint that cannot be installed over this node's state (the node is ahead of it somewhere, or already past it) */
export class CheckpointConflictError extends Error {
  static override name = 'CheckpointConflictError'
  override name = 'CheckpointConflictError'
}
