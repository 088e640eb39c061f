import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  bfloat16ErrorBound, float16ErrorBound, fromBFloat16, fromFloat16, hasNativeFloat16Array, toBFloat16, toFloat16
} from '../src/index.js'
import { float16BitsToFloat32, float32ToFloat16Bits } from '../src/float16.js'

const ALL_HALVES = new Uint16Array(65536).map((_, i) => i)
const f32FromBits = (bits: number[]): Float32Array => new Float32Array(new Uint32Array(bits).buffer)

/** Decodes binary16 bits by the textbook formula, independently of the implementation */
function halfValue (h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const e = (h >>> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return sign * m * 2 ** -24
  if (e === 31) return m === 0 ? sign * Infinity : NaN
  return sign * (1 + m / 1024) * 2 ** (e - 15)
}

/** Nearest value of a sorted list of candidate (value, bits) pairs, ties to the even bit pattern */
function nearest (x: number, candidates: Array<[number, number]>): number {
  let best = candidates[0]
  for (const c of candidates) {
    const d = Math.abs(c[0] - x)
    const bd = Math.abs(best[0] - x)
    if (d < bd || (d === bd && (c[1] & 1) === 0)) best = c
  }
  return best[1]
}

/** Reference float16 rounding: the nearest finite binary16 (ties to even), Infinity past 65520 */
function referenceHalf (x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0
  const a = Math.abs(x)
  if (a >= 65520) return sign | 0x7c00
  // candidates: the two binary16 magnitudes around a
  let lo = 0
  let hi = 0x7bff
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1
    if (halfValue(mid) <= a) lo = mid
    else hi = mid
  }
  return sign | nearest(a, [[halfValue(lo), lo], [halfValue(hi), hi]])
}

const finiteF32 = fc.float({ noNaN: true, noDefaultInfinity: true })
const anyF32Bits = fc.integer({ min: 0, max: 0xffffffff })

describe('float16', () => {
  it('decodes all 65536 bit patterns exactly (table path)', () => {
    const out = new Float32Array(65536)
    float16BitsToFloat32(ALL_HALVES, out)
    for (let h = 0; h < 65536; h++) {
      const expected = halfValue(h)
      if (Number.isNaN(expected)) expect(Number.isNaN(out[h])).toBe(true)
      else expect(Object.is(out[h], expected), `bits ${h.toString(16)}`).toBe(true)
    }
    expect(fromFloat16(ALL_HALVES)).toEqual(out)
  })

  it('round-trips every non-NaN float16 through float32 unchanged, on both paths', () => {
    const values = fromFloat16(ALL_HALVES)
    const native = toFloat16(values, { overflow: 'infinity' })
    const portable = new Uint16Array(65536)
    float32ToFloat16Bits(values, portable)
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(values[h])) {
        expect((native[h] & 0x7c00) === 0x7c00 && (native[h] & 0x3ff) !== 0).toBe(true)
        expect((portable[h] & 0x7c00) === 0x7c00 && (portable[h] & 0x3ff) !== 0).toBe(true)
      } else {
        expect(native[h]).toBe(h)
        expect(portable[h]).toBe(h)
      }
    }
  })

  it('rounds any float32 to the nearest float16, ties to even (portable and native paths agree with a reference)', () => {
    fc.assert(fc.property(fc.array(anyF32Bits, { minLength: 1, maxLength: 64 }), (bits) => {
      const x = f32FromBits(bits)
      const portable = new Uint16Array(x.length)
      float32ToFloat16Bits(x, portable)
      const viaApi = toFloat16(x, { overflow: 'infinity' })
      for (let i = 0; i < x.length; i++) {
        if (Number.isNaN(x[i])) {
          expect(Number.isNaN(halfValue(portable[i]))).toBe(true)
          expect(Number.isNaN(halfValue(viaApi[i]))).toBe(true)
        } else {
          const ref = referenceHalf(x[i])
          expect(portable[i], `x=${x[i]}`).toBe(ref)
          expect(viaApi[i], `x=${x[i]}`).toBe(ref)
        }
      }
    }), { numRuns: 300 })
  })

  it('rounds exact ties to even', () => {
    // 1 + 2^-11 sits halfway between 1 and 1 + 2^-10 → 1; 1 + 3·2^-11 → 1 + 2^-9
    const ties = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, -(1 + 3 * 2 ** -11), 65504 + 16])
    const expected = [0x3c00, 0x3c02, 0x0000, 0x0002, 0xbc02, 0x7c00]
    expect(Array.from(toFloat16(ties, { overflow: 'infinity' }))).toEqual(expected)
    const portable = new Uint16Array(ties.length)
    float32ToFloat16Bits(ties, portable)
    expect(Array.from(portable)).toEqual(expected)
    // every tie between consecutive normal halves: the midpoint of h and h+1 rounds to whichever is even
    const mids = new Float32Array(0x7bff - 0x0400).map((_, i) => (halfValue(0x0400 + i) + halfValue(0x0401 + i)) / 2)
    const out = new Uint16Array(mids.length)
    float32ToFloat16Bits(mids, out)
    for (let i = 0; i < mids.length; i++) expect(out[i]).toBe((0x0400 + i) % 2 === 0 ? 0x0400 + i : 0x0401 + i)
    expect(Array.from(toFloat16(mids))).toEqual(Array.from(out))
  })

  it('stays inside max(|x|·2^-11, 2^-25) for every finite value in range', () => {
    fc.assert(fc.property(fc.array(finiteF32.filter((x) => Math.abs(x) < 65520), { maxLength: 100 }), (xs) => {
      const x = new Float32Array(xs)
      const y = fromFloat16(toFloat16(x))
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i])).toBeLessThanOrEqual(float16ErrorBound(x[i]))
    }), { numRuns: 300 })
  })

  it('throws on overflow by default, or gives ±Infinity when asked; NaN and ±Infinity pass through', () => {
    expect(() => toFloat16(new Float32Array([1, 65520]))).toThrow(expect.objectContaining({ name: 'NonFiniteValueError' }))
    expect(() => toFloat16(new Float32Array([-1e10]))).toThrow(expect.objectContaining({ name: 'NonFiniteValueError' }))
    expect(Array.from(toFloat16(new Float32Array([65519, 65520, -1e10]), { overflow: 'infinity' }))).toEqual([0x7bff, 0x7c00, 0xfc00])
    const special = toFloat16(new Float32Array([Infinity, -Infinity, NaN]))
    expect(Array.from(special.subarray(0, 2))).toEqual([0x7c00, 0xfc00])
    expect(Number.isNaN(fromFloat16(special)[2])).toBe(true)
    const portable = new Uint16Array(2)
    expect(float32ToFloat16Bits(new Float32Array([1, 70000]), portable)).toBe(1)
    // the overflow is found wherever it sits: odd lengths, last element, an output at a 2-byte offset
    for (const [len, offset] of [[5, 0], [5, 2], [8, 2], [1, 0]]) {
      for (let at = 0; at < len; at++) {
        const x = new Float32Array(len).fill(Infinity)
        x[at] = 1e6
        const out = new Uint16Array(new ArrayBuffer(offset + 2 * len), offset, len)
        expect(() => toFloat16(x, { out }), `len ${len} offset ${offset} at ${at}`)
          .toThrow(expect.objectContaining({ name: 'NonFiniteValueError', message: expect.stringContaining(`index ${at}`) }))
      }
    }
  })

  it('writes into a caller-given array', () => {
    const out = new Uint16Array(2)
    expect(toFloat16(new Float32Array([1, 2]), { out })).toBe(out)
    expect(Array.from(out)).toEqual([0x3c00, 0x4000])
    expect(() => toFloat16(new Float32Array(3), { out })).toThrow(RangeError)
  })

  it('reports whether the runtime has a native Float16Array', () => {
    expect(hasNativeFloat16Array).toBe(typeof (globalThis as { Float16Array?: unknown }).Float16Array === 'function')
  })
})

describe('bfloat16', () => {
  /** Reference: nearest of the two bfloat16 values around x (truncation and the next one up), ties to even */
  function referenceBf16 (x: number): number {
    const b = new Uint32Array(new Float32Array([x]).buffer)[0]
    const t = b >>> 16
    const value = (h: number): number => new Float32Array(new Uint32Array([h << 16]).buffer)[0]
    if ((t & 0x7fff) === 0x7f7f && value(t + 1) === Infinity) return nearest(x, [[value(t), t], [3.3961775292304787e38, t + 1]])
    return nearest(x, [[value(t), t], [value(t + 1), t + 1]])
  }

  it('rounds to nearest, ties to even, and stays inside max(|x|·2^-8, 2^-134)', () => {
    fc.assert(fc.property(fc.array(finiteF32.filter((x) => Math.abs(x) < 3.3e38), { maxLength: 100 }), (xs) => {
      const x = new Float32Array(xs)
      const h = toBFloat16(x)
      const y = fromBFloat16(h)
      for (let i = 0; i < x.length; i++) {
        expect(h[i], `x=${x[i]}`).toBe(referenceBf16(x[i]))
        expect(Math.abs(x[i] - y[i])).toBeLessThanOrEqual(bfloat16ErrorBound(x[i]))
      }
    }), { numRuns: 300 })
    expect(Array.from(toBFloat16(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8])))).toEqual([0x3f80, 0x3f82])
  })

  it('round-trips every non-NaN bfloat16 exactly', () => {
    const values = fromBFloat16(ALL_HALVES)
    const back = toBFloat16(values, { overflow: 'infinity' })
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(values[h])) expect(Number.isNaN(fromBFloat16(back.subarray(h, h + 1))[0])).toBe(true)
      else expect(back[h]).toBe(h)
    }
  })

  it('keeps NaN a NaN (even one whose payload sits in the dropped bits) and detects overflow', () => {
    const nan = f32FromBits([0x7f800001, 0xff800001])
    const out = toBFloat16(nan)
    expect(Number.isNaN(fromBFloat16(out)[0])).toBe(true)
    expect(Number.isNaN(fromBFloat16(out)[1])).toBe(true)
    expect(() => toBFloat16(new Float32Array([3.4028234663852886e38]))).toThrow(expect.objectContaining({ name: 'NonFiniteValueError' }))
    expect(Array.from(toBFloat16(new Float32Array([3.4028234663852886e38, -Infinity]), { overflow: 'infinity' }))).toEqual([0x7f80, 0xff80])
  })
})
