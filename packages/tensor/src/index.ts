/**
 * @packageDocumentation
 *
 * Binary tensor frames (dtype, shape, optional name, payload) with zero-copy decoding, blockwise int8 and
 * float16 / bfloat16 conversion with documented error bounds, and a SHA-256 content hash.
 * The wire format is specified in `specs/tensor-frame/README.md`.
 */

export * from './constants.js'
export * from './errors.js'
export type * from './types.js'
export {
  decodeTensorFrame, decodeTensorFrameHeader, encodeTensorFrame, encodeTensorFrameParts, validateTensorFrame,
  type DecodeTensorFrameOptions, type TensorFrameHeader
} from './frame.js'
export { quantizeInt8, dequantizeInt8, int8ErrorBound, MAX_INT8_SCALE, type QuantizeInt8Options } from './int8.js'
export {
  toFloat16, fromFloat16, toBFloat16, fromBFloat16, float16ErrorBound, bfloat16ErrorBound, hasNativeFloat16Array,
  type HalfConversionOptions, type OverflowMode
} from './float16.js'
export { tensorHash, tensorHashHex } from './hash.js'
