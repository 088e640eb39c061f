/**
 * Typed errors of `@neuroshard/runtime`. Tensor errors carry `.tensorName` so a caller (or a remote peer
 * that sent the activation) learns exactly which tensor was wrong.
 */

/** A tensor is missing, unknown to the graph, or of the wrong element type */
export class InvalidTensorError extends Error {
  static override name = 'InvalidTensorError'
  override name = 'InvalidTensorError'
  readonly tensorName: string
  constructor (tensorName: string, message: string) {
    super(message)
    this.tensorName = tensorName
  }
}

/** A tensor's shape does not match the graph's IO spec (symbolic dimensions must bind consistently) */
export class ShapeMismatchError extends Error {
  static override name = 'ShapeMismatchError'
  override name = 'ShapeMismatchError'
  readonly tensorName: string
  constructor (tensorName: string, message: string) {
    super(message)
    this.tensorName = tensorName
  }
}

/** A float tensor (weights or activations) holds NaN or ±Infinity */
export class NonFiniteTensorError extends Error {
  static override name = 'NonFiniteTensorError'
  override name = 'NonFiniteTensorError'
  readonly tensorName: string
  constructor (tensorName: string, message: string) {
    super(message)
    this.tensorName = tensorName
  }
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
