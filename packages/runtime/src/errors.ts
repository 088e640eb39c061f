/**
 * Typed errors of `@neuroshard/runtime`. Tensor errors carry `.tensorName` so a caller (or a remote peer
 * that sent the activation) learns exactly which tensor was wrong.
 */

/** Base of the errors about one input tensor: `.tensorName` names it */
export abstract class TensorError extends Error {
  readonly tensorName: string

  constructor (tensorName: string, message: string) {
    super(message)
    this.tensorName = tensorName
  }
}

/** A tensor is missing, unknown to the graph, or of the wrong element type */
export class InvalidTensorError extends TensorError {
  static override name = 'InvalidTensorError'
  override name = 'InvalidTensorError'
}

/** A tensor's shape does not match the graph's IO spec (symbolic dimensions must bind consistently) */
export class ShapeMismatchError extends TensorError {
  static override name = 'ShapeMismatchError'
  override name = 'ShapeMismatchError'
}

/** A float tensor (weights or activations) holds NaN or ±Infinity */
export class NonFiniteTensorError extends TensorError {
  static override name = 'NonFiniteTensorError'
  override name = 'NonFiniteTensorError'
}

/** onnxruntime refused the graph or failed while running it */
export class SessionError extends Error {
  static override name = 'SessionError'
  override name = 'SessionError'
}

/** The runtime (its worker thread) was closed, or died, before the call finished */
export class RuntimeClosedError extends Error {
  static override name = 'RuntimeClosedError'
  override name = 'RuntimeClosedError'
}

/**
 * An integer input (token ids, targets) holds a value outside [0, vocabSize). onnxruntime would wrap a
 * negative id to row V − 1 silently, so ids are checked before every run.
 */
export class TokenIdOutOfRangeError extends TensorError {
  static override name = 'TokenIdOutOfRangeError'
  override name = 'TokenIdOutOfRangeError'
}

/**
 * A sequence is longer than the model's `maxSeqLen` (training graphs), or would make a KV cache longer
 * than that. A `ShapeMismatchError` too (`instanceof`), with its own name.
 */
export class SequenceTooLongError extends ShapeMismatchError {
  static override name = 'SequenceTooLongError'
  override name = 'SequenceTooLongError'
}

/**
 * A shard that reads a tied parameter it does not own (the head's `embed.weight` with tied embeddings)
 * still holds that parameter's gradient: `takeTiedGradients()` it (and add it to the owner) before
 * `step()` or `gradNormSquared()`, or it would be lost or counted twice.
 */
export class TiedGradientsPendingError extends Error {
  static override name = 'TiedGradientsPendingError'
  override name = 'TiedGradientsPendingError'
}
