/**
 * Errors of `@neuroshard/tensor`. Every error about the bytes of a frame extends `TensorFrameError`;
 * an unknown format version raises the shared `UnsupportedProtocolVersionError` from `@neuroshard/interface`.
 * Tests and callers branch on `err.name`.
 */

/** Base class: the bytes are not a valid tensor frame (or a tensor cannot be written as one) */
export class TensorFrameError extends Error {
  static override name = 'TensorFrameError'
  override name = 'TensorFrameError'
}

/** The frame does not start with the magic bytes "NSTF" */
export class InvalidMagicError extends TensorFrameError {
  static override name = 'InvalidMagicError'
  override name = 'InvalidMagicError'
}

/** The dtype code (or dtype name) is not one this format defines */
export class UnknownDtypeError extends TensorFrameError {
  static override name = 'UnknownDtypeError'
  override name = 'UnknownDtypeError'
}

/** Rank above the maximum, a dim that is not a safe integer, an element count that overflows, or data that does not match the shape */
export class InvalidShapeError extends TensorFrameError {
  static override name = 'InvalidShapeError'
  override name = 'InvalidShapeError'
}

/** The number of bytes differs from the length the header declares (truncated or trailing bytes) */
export class FrameLengthError extends TensorFrameError {
  static override name = 'FrameLengthError'
  override name = 'FrameLengthError'
}

/** The frame is (or declares itself) larger than the caller's `maxBytes` cap */
export class FrameTooLargeError extends TensorFrameError {
  static override name = 'FrameTooLargeError'
  override name = 'FrameTooLargeError'
}

/** The name is too long, is not valid UTF-8, or (when encoding) is not a well-formed string */
export class InvalidNameError extends TensorFrameError {
  static override name = 'InvalidNameError'
  override name = 'InvalidNameError'
}

/** Structurally wrong: non-zero reserved bits or padding, bad block size, invalid int8 scales or values */
export class MalformedFrameError extends TensorFrameError {
  static override name = 'MalformedFrameError'
  override name = 'MalformedFrameError'
}

/** Quantization or conversion met a value it cannot represent faithfully (NaN, ±Infinity, or overflow) */
export class NonFiniteValueError extends Error {
  static override name = 'NonFiniteValueError'
  override name = 'NonFiniteValueError'
}

/** This host stores numbers big-endian; the zero-copy views this package hands out would be wrong */
export class UnsupportedPlatformError extends Error {
  static override name = 'UnsupportedPlatformError'
  override name = 'UnsupportedPlatformError'
}
