/**
 * Typed errors of the DiLoCo service. Every pseudo-gradient or message refused from the network is refused
 * with one of these (tests and callers assert on `.name`).
 */

/** A message or pseudo-gradient payload that does not decode or breaks a format rule (sizes, values, hashes) */
export class MalformedPseudoGradientError extends Error {
  static override name = 'MalformedPseudoGradientError'
  override name = 'MalformedPseudoGradientError'
}

/** A message, payload or chunk larger than this node accepts */
export class OversizedPseudoGradientError extends Error {
  static override name = 'OversizedPseudoGradientError'
  override name = 'OversizedPseudoGradientError'
}

/** A pseudo-gradient for a round this node is not collecting */
export class WrongRoundError extends Error {
  static override name = 'WrongRoundError'
  override name = 'WrongRoundError'
}

/** A pseudo-gradient computed from other base weights than the round's */
export class BaseHashMismatchError extends Error {
  static override name = 'BaseHashMismatchError'
  override name = 'BaseHashMismatchError'
}

/** A pseudo-gradient of another replica group or span (or of the wrong element count for the span) */
export class WrongSpanError extends Error {
  static override name = 'WrongSpanError'
  override name = 'WrongSpanError'
}

/** A second pseudo-gradient of one sender in one round, or a payload already seen */
export class ReplayedPseudoGradientError extends Error {
  static override name = 'ReplayedPseudoGradientError'
  override name = 'ReplayedPseudoGradientError'
}

/** A signature that does not verify, or a signer other than the sender the message names */
export class InvalidSignatureError extends Error {
  static override name = 'InvalidSignatureError'
  override name = 'InvalidSignatureError'
}

/** A round commit that breaks the rules (announces of other rounds, duplicates, wrong leader key) */
export class InvalidCommitError extends Error {
  static override name = 'InvalidCommitError'
  override name = 'InvalidCommitError'
}

/** A state download (join / resync) that failed or did not match the hash it was promised */
export class StateSyncError extends Error {
  static override name = 'StateSyncError'
  override name = 'StateSyncError'
}

/** A payload this node needs for a committed round could not be fetched from anyone */
export class PayloadUnavailableError extends Error {
  static override name = 'PayloadUnavailableError'
  override name = 'PayloadUnavailableError'
}

/**
 * A round that stalled (specs/diloco §6 step 5a) and cannot commit even without its silent members: fewer than
 * half of the group announced it. `contribute()` of that round rejects with it; the round stays open (it commits
 * once enough members announce, or once the replica set drops the silent ones)
 */
export class RoundStalledError extends Error {
  static override name = 'RoundStalledError'
  override name = 'RoundStalledError'
}
