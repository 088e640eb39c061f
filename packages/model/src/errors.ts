/**
 * Typed errors of `@neuroshard/model`. Each class carries a static `name` so callers (and tests) can
 * branch on `err.name` across package boundaries.
 */

/** A `ModelConfig` that cannot describe a valid NeuroLLM (e.g. width not divisible by the head count) */
export class InvalidConfigError extends Error {
  static override name = 'InvalidConfigError'
  override name = 'InvalidConfigError'
}

/** The checkpoint file ends before the bytes its header promises (or is shorter than the 8-byte prefix) */
export class CheckpointTruncatedError extends Error {
  static override name = 'CheckpointTruncatedError'
  override name = 'CheckpointTruncatedError'
}

/**
 * The safetensors header cannot be used: its length runs past the end of the file or over the size cap,
 * it is not valid UTF-8 JSON, or an entry / the `__metadata__` block is malformed
 */
export class CheckpointHeaderError extends Error {
  static override name = 'CheckpointHeaderError'
  override name = 'CheckpointHeaderError'
}

/** Tensor `data_offsets` out of range, overlapping, leaving holes, or not matching dtype × shape */
export class CheckpointOffsetsError extends Error {
  static override name = 'CheckpointOffsetsError'
  override name = 'CheckpointOffsetsError'
}

/** The checkpoint does not fit the expected model: missing/unexpected tensor, dtype or shape mismatch, other architecture or role */
export class CheckpointMismatchError extends Error {
  static override name = 'CheckpointMismatchError'
  override name = 'CheckpointMismatchError'
}

/** The weights do not hash to the `content_hash` recorded in the checkpoint (or to the hash the caller expects) */
export class CheckpointHashMismatchError extends Error {
  static override name = 'CheckpointHashMismatchError'
  override name = 'CheckpointHashMismatchError'
}
