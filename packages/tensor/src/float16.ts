/**
 * float32 ⇄ float16 (IEEE 754 binary16) and float32 ⇄ bfloat16, both rounding to nearest, ties to even.
 *
 * Half-precision values travel as raw bits in a `Uint16Array`, so the API is the same on Node 22 (no
 * `Float16Array`) and Node 24. Conversions are hand-written bit manipulation (no maintained npm package does
 * bulk, allocation-free conversion with overflow detection); on runtimes with a native `Float16Array`, the
 * float16 paths use it where the benchmark showed it to be faster.
 */

import { NonFiniteValueError } from './errors.js'

/** What to do with a finite float32 whose rounded value does not fit the target format */
export type OverflowMode = 'error' | 'infinity'

export interface HalfConversionOptions {
  /**
   * `'error'` throws `NonFiniteValueError` when a finite input rounds to ±Infinity (|x| ≥ 65520 for
   * float16, |x| ≥ 2^128·(1 − 2^-9) for bfloat16); `'infinity'` returns ±Infinity as IEEE 754 does.
   * NaN and ±Infinity inputs are always carried through (NaN stays NaN, quiet).
   *
   * @default 'error'
   */
  overflow?: OverflowMode
  /** Write into this array (same length as the input) instead of allocating one */
  out?: Uint16Array
}

interface Float16ArrayLike extends ArrayLike<number> { set(src: ArrayLike<number>): void, buffer: ArrayBufferLike }
type Float16ArrayCtor = new (bufferOrLength: ArrayBufferLike | number, byteOffset?: number, length?: number) => Float16ArrayLike

/** The runtime's `Float16Array` (Node ≥ 24), or undefined */
const NativeFloat16Array: Float16ArrayCtor | undefined = (globalThis as { Float16Array?: Float16ArrayCtor }).Float16Array

/** True when this runtime has a native `Float16Array` (Node ≥ 24) */
export const hasNativeFloat16Array = NativeFloat16Array !== undefined

/** Smallest |x| (float32 bits, sign cleared) that rounds to float16 Infinity: 65520 */
const F16_OVERFLOW_BITS = 0x477ff000

function checkOut (n: number, out: Uint16Array | undefined): Uint16Array {
  if (out === undefined) return new Uint16Array(n)
  if (out.length !== n) throw new RangeError(`out has ${out.length} elements, expected ${n}`)
  return out
}

/** The bits of float32 values as int32 (not uint32: V8 keeps int32 arithmetic in registers) */
function i32View (x: Float32Array): Int32Array {
  return new Int32Array(x.buffer, x.byteOffset, x.length)
}

/**
 * float32 → float16 bits with portable integer arithmetic (used on Node 22, and exported for tests).
 * Returns the index of the first finite input that overflowed, or -1.
 *
 * @internal
 */
export function float32ToFloat16Bits (src: Float32Array, out: Uint16Array): number {
  const bits = i32View(src)
  const n = src.length
  let firstOverflow = -1
  for (let i = 0; i < n; i++) {
    const b = bits[i]
    const sign = (b >>> 16) & 0x8000
    const a = b & 0x7fffffff
    let o: number
    if (a >= F16_OVERFLOW_BITS) {
      if (a > 0x7f800000) {
        o = 0x7e00 | ((a >>> 13) & 0x3ff) // NaN: keep the top payload bits, force quiet
      } else {
        if (a < 0x7f800000 && firstOverflow < 0) firstOverflow = i
        o = 0x7c00
      }
    } else if (a < 0x38800000) {
      // |x| < 2^-14: float16 subnormal (or zero), unit 2^-24; the product is exact and the magic
      // constant 1.5·2^52 rounds it to an integer, ties to even. 1024 (= 0x400) is correctly the smallest normal.
      o = (Math.abs(src[i]) * 16777216 + 6755399441055744) - 6755399441055744
    } else {
      // rebias the exponent (-112 << 23), then round the 13 dropped mantissa bits to nearest even
      o = (a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13
    }
    out[i] = o | sign
  }
  return firstOverflow
}

/**
 * float32 values → float16 bits, rounding to nearest, ties to even.
 *
 * Error bound for finite x with |x| < 65520: |x − fromFloat16(toFloat16(x))| ≤ max(|x|·2^-11, 2^-25)
 * (relative 2^-11 in the normal range |x| ≥ 2^-14, absolute 2^-25 below it).
 */
export function toFloat16 (values: Float32Array, options: HalfConversionOptions = {}): Uint16Array {
  const out = checkOut(values.length, options.out)
  const overflow = options.overflow ?? 'error'
  if (NativeFloat16Array !== undefined) {
    new NativeFloat16Array(out.buffer, out.byteOffset, out.length).set(values)
    if (overflow === 'error') {
      const at = firstOverflow(values, out)
      if (at >= 0) throwOverflow('float16', values[at], at)
    }
    return out
  }
  const at = float32ToFloat16Bits(values, out)
  if (at >= 0 && overflow === 'error') throwOverflow('float16', values[at], at)
  return out
}

/** Index of the first float16 infinity that came from a finite input, or -1 */
function firstOverflow (values: Float32Array, out: Uint16Array): number {
  const n = out.length
  let i = 0
  if (out.byteOffset % 4 === 0) {
    // two halves per step: only words holding an all-ones exponent need a closer look
    const words = new Int32Array(out.buffer, out.byteOffset, n >>> 1)
    for (let w = 0; w < words.length; w++) {
      const v = words[w]
      if ((v & 0x7c00) === 0x7c00 || (v & 0x7c000000) === 0x7c000000) {
        for (let j = 2 * w; j < 2 * w + 2; j++) {
          if ((out[j] & 0x7fff) === 0x7c00 && Number.isFinite(values[j])) return j
        }
      }
    }
    i = words.length * 2
  }
  for (; i < n; i++) {
    if ((out[i] & 0x7fff) === 0x7c00 && Number.isFinite(values[i])) return i
  }
  return -1
}

let F16_TABLE: Float32Array | undefined

/** All 65536 float16 values as float32, built on first use (256 KiB) */
function float16Table (): Float32Array {
  if (F16_TABLE !== undefined) return F16_TABLE
  const t = new Float32Array(65536)
  const u = new Uint32Array(t.buffer)
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16
    const e = (h >>> 10) & 0x1f
    const m = h & 0x3ff
    if (e === 0) {
      t[h] = (sign !== 0 ? -1 : 1) * m * 2 ** -24 // zero or subnormal, exact
    } else if (e === 0x1f) {
      u[h] = sign | 0x7f800000 | (m << 13) // Inf or NaN (payload kept)
    } else {
      u[h] = sign | ((e + 112) << 23) | (m << 13)
    }
  }
  F16_TABLE = t
  return t
}

/**
 * float16 bits → float32 by table lookup (used on Node 22, and exported for tests).
 *
 * @internal
 */
export function float16BitsToFloat32 (bits: Uint16Array, out: Float32Array): void {
  const t = float16Table()
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]]
}

/** float16 bits → float32 values (exact: every float16 value is a float32 value) */
export function fromFloat16 (bits: Uint16Array, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(bits.length)
  if (dst.length !== bits.length) throw new RangeError(`out has ${dst.length} elements, expected ${bits.length}`)
  float16BitsToFloat32(bits, dst)
  return dst
}

/**
 * float32 values → bfloat16 bits (the top 16 bits after rounding to nearest, ties to even).
 *
 * Error bound for finite x that does not overflow: |x − fromBFloat16(toBFloat16(x))| ≤ max(|x|·2^-8, 2^-134).
 */
export function toBFloat16 (values: Float32Array, options: HalfConversionOptions = {}): Uint16Array {
  const out = checkOut(values.length, options.out)
  const throwOnOverflow = (options.overflow ?? 'error') === 'error'
  const bits = i32View(values)
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]
    if ((b & 0x7fffffff) > 0x7f800000) {
      out[i] = (b >>> 16) | 0x40 // NaN: force quiet so truncation cannot turn it into Infinity
      continue
    }
    const o = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16
    if (throwOnOverflow && (o & 0x7fff) === 0x7f80 && (b & 0x7fffffff) !== 0x7f800000) throwOverflow('bfloat16', values[i], i)
    out[i] = o
  }
  return out
}

/** bfloat16 bits → float32 values (exact) */
export function fromBFloat16 (bits: Uint16Array, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(bits.length)
  if (dst.length !== bits.length) throw new RangeError(`out has ${dst.length} elements, expected ${bits.length}`)
  const u = i32View(dst)
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16
  return dst
}

/** Largest error `toFloat16` may make on the finite, non-overflowing value `x` */
export function float16ErrorBound (x: number): number {
  return Math.max(Math.abs(x) * 2 ** -11, 2 ** -25)
}

/** Largest error `toBFloat16` may make on the finite, non-overflowing value `x` */
export function bfloat16ErrorBound (x: number): number {
  return Math.max(Math.abs(x) * 2 ** -8, 2 ** -134)
}

function throwOverflow (format: string, value: number, index: number): never {
  throw new NonFiniteValueError(`value ${value} at index ${index} overflows ${format}; pass { overflow: 'infinity' } to accept ±Infinity`)
}
