/**
 * Typed errors of `@neuroshard/trainer`; branch on `err.name`.
 */

/** A training-state checkpoint is malformed, truncated or does not match its recorded hash */
export class TrainStateError extends Error {
  static override name = 'TrainStateError'
  override name = 'TrainStateError'
}

/** Resuming with settings (model, data, batch, schedule, seed) that differ from the checkpoint's run */
export class ResumeMismatchError extends Error {
  static override name = 'ResumeMismatchError'
  override name = 'ResumeMismatchError'
}

/** The data cannot feed the run (no windows of `seqLen + 1` tokens, token ids outside the vocabulary) */
export class DataError extends Error {
  static override name = 'DataError'
  override name = 'DataError'
}
