/** A layer record that fails its format, size, field or time checks */
export class InvalidLayerRecordError extends Error {
  static override name = 'InvalidLayerRecordError'
  override name = 'InvalidLayerRecordError'
}

/** A layer record whose signature does not verify, or whose signer is not the peer it names */
export class ForgedLayerRecordError extends Error {
  static override name = 'ForgedLayerRecordError'
  override name = 'ForgedLayerRecordError'
}

/** A layer record whose lifetime is over */
export class ExpiredLayerRecordError extends Error {
  static override name = 'ExpiredLayerRecordError'
  override name = 'ExpiredLayerRecordError'
}

/** A layer record larger than MAX_RECORD_SIZE */
export class OversizedLayerRecordError extends Error {
  static override name = 'OversizedLayerRecordError'
  override name = 'OversizedLayerRecordError'
}

/** A record, span or architecture of a model version this node cannot run */
export class UnsupportedArchitectureError extends Error {
  static override name = 'UnsupportedArchitectureError'
  override name = 'UnsupportedArchitectureError'
}

/** The node's memory budget cannot hold even one slot */
export class InsufficientMemoryError extends Error {
  static override name = 'InsufficientMemoryError'
  override name = 'InsufficientMemoryError'
}

/** Weights for a span could not be loaded (no replica had them, the store refused them, ...) */
export class SpanLoadError extends Error {
  static override name = 'SpanLoadError'
  override name = 'SpanLoadError'
}
