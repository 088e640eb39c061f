/**
 * Format constants of the tensor frame (specs/tensor-frame/README.md) and the package's defaults.
 */

/** The four magic bytes every tensor frame starts with: ASCII "NSTF" (specs/tensor-frame/README.md §Header) */
export const TENSOR_FRAME_MAGIC = new Uint8Array([0x4e, 0x53, 0x54, 0x46])

/** The only format version this package reads and writes (specs/tensor-frame/README.md §Versioning) */
export const TENSOR_FRAME_VERSION = 1

/** Size in bytes of the fixed part of the header, before the shape dims and the name */
export const TENSOR_FRAME_FIXED_HEADER_BYTES = 16

/** The payload starts at a multiple of this many bytes from the start of the frame */
export const TENSOR_FRAME_ALIGNMENT = 8

/** Largest rank a frame may declare */
export const MAX_RANK = 8

/** Largest name, in UTF-8 bytes, a frame may carry */
export const MAX_NAME_BYTES = 1024

/**
 * Cap on the size of one frame that `decodeTensorFrame` accepts unless the caller passes `maxBytes`.
 *
 * @default 268435456 (256 MiB)
 */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024

/**
 * Elements per int8 quantization block (one float32 scale per block). 64 keeps the error bound tight
 * (an outlier only coarsens its own 64 neighbours) for a 6.25 % scale overhead.
 *
 * @default 64
 */
export const DEFAULT_INT8_BLOCK_SIZE = 64

/** Largest block size a frame may declare */
export const MAX_INT8_BLOCK_SIZE = 1 << 24

/** Wire codes of the dtypes (specs/tensor-frame/README.md §Dtypes) */
export const DTYPE_CODES = {
  float32: 1,
  float16: 2,
  bfloat16: 3,
  int8: 4,
  int32: 5,
  int64: 6
} as const

/** Bytes per element of each dtype (int8 scales are counted separately) */
export const DTYPE_BYTES = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int8: 1,
  int32: 4,
  int64: 8
} as const
