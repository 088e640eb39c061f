/**
 * Blockwise symmetric int8 quantization (specs/tensor-frame/README.md §int8 quantization).
 *
 * For each block of `blockSize` consecutive elements: `scale = fround(absmax / 127)` (float32),
 * `q = clamp(roundTiesToEven(x × (1 / scale)), −127, 127)` in float64 arithmetic, and
 * dequantization is `fround(q × scale)`. Every step is a single IEEE 754 operation, so any client
 * that follows the spec produces the same bytes.
 */

import { DEFAULT_INT8_BLOCK_SIZE, MAX_INT8_BLOCK_SIZE } from './constants.js'
import { NonFiniteValueError } from './errors.js'
import { InvalidParametersError } from '@neuroshard/interface'
import type { QuantizedInt8 } from './types.js'

export interface QuantizeInt8Options {
  /**
   * Elements per block; one float32 scale per block
   *
   * @default 64
   */
  blockSize?: number
}

/** Largest finite float32 */
const F32_MAX = 3.4028234663852886e38
/** Smallest normal float32, 2^-126 */
const F32_MIN_NORMAL = 1.1754943508222875e-38
/** 1.5·2^52: adding and subtracting it rounds a double of magnitude < 2^51 to an integer, ties to even */
const RNE_MAGIC = 6755399441055744

/**
 * The largest float32 scale whose 127-multiple is still finite in float32. Quantization never writes a larger
 * scale and decoders reject larger ones, so dequantized values are always finite.
 */
export const MAX_INT8_SCALE = largestScale()

function largestScale (): number {
  const f = new Float32Array(1)
  const u = new Uint32Array(f.buffer)
  f[0] = F32_MAX / 127
  while (!Number.isFinite(Math.fround(f[0] * 127))) u[0]--
  for (;;) {
    u[0]++
    if (!Number.isFinite(Math.fround(f[0] * 127))) break
  }
  u[0]--
  return f[0]
}

const SCRATCH_F32 = new Float32Array(1)
const SCRATCH_BITS = new Int32Array(SCRATCH_F32.buffer)

function throwNonFinite (values: Float32Array, start: number, end: number): never {
  for (let i = start; i < end; i++) {
    if (!Number.isFinite(values[i])) throw new NonFiniteValueError(`cannot quantize ${values[i]} at index ${i}`)
  }
  throw new NonFiniteValueError('cannot quantize a non-finite value')
}

/** Validates a block size given by a caller */
export function checkBlockSize (blockSize: number): void {
  if (!Number.isSafeInteger(blockSize) || blockSize < 1 || blockSize > MAX_INT8_BLOCK_SIZE) {
    throw new InvalidParametersError(`int8 block size must be an integer in [1, ${MAX_INT8_BLOCK_SIZE}], got ${blockSize}`)
  }
}

/**
 * Quantizes float32 values to blockwise symmetric int8.
 *
 * Throws `NonFiniteValueError` on NaN or ±Infinity (a single one would wreck its whole block).
 * For every element, `|x − x̂| ≤ int8ErrorBound(scale of its block)` (about `absmax_block / 254`).
 */
export function quantizeInt8 (values: Float32Array, options: QuantizeInt8Options = {}): QuantizedInt8 {
  const blockSize = options.blockSize ?? DEFAULT_INT8_BLOCK_SIZE
  checkBlockSize(blockSize)
  const n = values.length
  const nBlocks = Math.ceil(n / blockSize)
  const data = new Int8Array(n)
  const scales = new Float32Array(nBlocks)
  const bits = new Int32Array(values.buffer, values.byteOffset, n)
  for (let b = 0; b < nBlocks; b++) {
    const start = b * blockSize
    const end = Math.min(start + blockSize, n)
    // absmax on the bit patterns: for non-negative floats (sign cleared) integer order is float order, and a
    // branch-free integer max runs ~3x faster than a float compare on data whose maximum keeps moving.
    // NaN and ±Infinity have the largest patterns, so one test per block finds them.
    let m = 0
    for (let i = start; i < end; i++) {
      const a = bits[i] & 0x7fffffff
      m += (a - m) & ((m - a) >> 31)
    }
    if (m >= 0x7f800000) throwNonFinite(values, start, end)
    SCRATCH_BITS[0] = m
    const absmax = SCRATCH_F32[0]
    let scale = Math.fround(absmax / 127)
    if (scale > MAX_INT8_SCALE) scale = MAX_INT8_SCALE
    scales[b] = scale
    if (scale === 0) continue // all-zero block (or absmax so small its scale underflows): q = 0
    const r = 1 / scale
    if (scale >= F32_MIN_NORMAL) {
      // a normal scale is within 2^-24 of absmax / 127, so |x × r| < 127.5 and no clamp is needed;
      // `| 0` hands V8 an int32 to store, several times faster than storing a double into an Int8Array
      for (let i = start; i < end; i++) data[i] = ((values[i] * r + RNE_MAGIC) - RNE_MAGIC) | 0
    } else {
      // a subnormal scale is coarse: x × r can exceed 127
      for (let i = start; i < end; i++) {
        let q = (values[i] * r + RNE_MAGIC) - RNE_MAGIC
        if (q > 127) q = 127
        else if (q < -127) q = -127
        data[i] = q | 0
      }
    }
  }
  return { data, scales, blockSize }
}

/** Dequantizes blockwise int8 to float32: `x̂[i] = fround(data[i] × scales[floor(i / blockSize)])` */
export function dequantizeInt8 (q: QuantizedInt8, out?: Float32Array): Float32Array {
  const { data, scales, blockSize } = q
  checkBlockSize(blockSize)
  const n = data.length
  if (scales.length !== Math.ceil(n / blockSize)) {
    throw new InvalidParametersError(`expected ${Math.ceil(n / blockSize)} scales for ${n} values in blocks of ${blockSize}, got ${scales.length}`)
  }
  const dst = out ?? new Float32Array(n)
  if (dst.length !== n) throw new RangeError(`out has ${dst.length} elements, expected ${n}`)
  for (let b = 0, start = 0; start < n; b++, start += blockSize) {
    const s = scales[b]
    const end = Math.min(start + blockSize, n)
    for (let i = start; i < end; i++) dst[i] = data[i] * s
  }
  return dst
}

/**
 * The largest error `quantizeInt8` makes on any element of a block whose stored scale is `scale`:
 * `scale × (1/2 + 2^-17) + 2^-143`. The `2^-17` term covers the float32 rounding of the scale and of the
 * dequantized value; the `2^-143` term only matters for subnormal scales. In terms of the block's absmax this
 * is at most `absmax / 254 × (1 + 2^-15) + 2^-142`.
 */
export function int8ErrorBound (scale: number): number {
  return scale * (0.5 + 2 ** -17) + 2 ** -143
}
