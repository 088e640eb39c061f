import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MAX_INT8_SCALE, decodeTensorFrame, dequantizeInt8, encodeTensorFrame, int8ErrorBound, quantizeInt8 } from '../src/index.js'

const F32_MAX = 3.4028234663852886e38

/** The spec's formulas, written out plainly (ties-to-even by comparison rather than the magic constant) */
function referenceQuantize (x: Float32Array, blockSize: number): { data: number[], scales: number[] } {
  const data: number[] = []
  const scales: number[] = []
  const rne = (v: number): number => {
    const f = Math.floor(v)
    const d = v - f
    if (d < 0.5) return f
    if (d > 0.5) return f + 1
    return f % 2 === 0 ? f : f + 1
  }
  for (let start = 0; start < x.length; start += blockSize) {
    const block = Array.from(x.subarray(start, start + blockSize))
    const absmax = Math.max(0, ...block.map(Math.abs))
    const scale = Math.min(Math.fround(absmax / 127), MAX_INT8_SCALE)
    scales.push(scale)
    for (const v of block) data.push(scale === 0 ? 0 : Math.max(-127, Math.min(127, rne(v * (1 / scale)))) + 0)
  }
  return { data, scales }
}

/** float32 values of every magnitude: zeros, subnormals, tiny, ordinary, huge, the float32 extremes */
const valueArb = fc.oneof(
  fc.float({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 1.401298464324817e-45, -1.401298464324817e-45, 1.1754943508222875e-38, F32_MAX, -F32_MAX, 1, -1),
  fc.float({ min: -1, max: 1, noNaN: true })
)
/** blocks that mix magnitudes, or share one magnitude class (all tiny, all huge) */
const arrayArb = fc.oneof(
  fc.array(valueArb, { maxLength: 300 }),
  fc.tuple(fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { maxLength: 300 }), fc.constantFrom(1e-40, 1e-30, 1, 1e30, 1e38))
    .map(([xs, m]) => xs.map((x) => Math.fround(x * m)))
)

describe('blockwise int8 quantization', () => {
  it('stays inside the documented error bound, for any data and block size', () => {
    fc.assert(fc.property(arrayArb, fc.integer({ min: 1, max: 130 }), (values, blockSize) => {
      const x = new Float32Array(values)
      const q = quantizeInt8(x, { blockSize })
      const y = dequantizeInt8(q)
      expect(q.scales.length).toBe(Math.ceil(x.length / blockSize))
      for (let i = 0; i < x.length; i++) {
        const b = Math.floor(i / blockSize)
        const scale = q.scales[b]
        expect(Math.abs(q.data[i])).toBeLessThanOrEqual(127)
        expect(Number.isFinite(y[i])).toBe(true)
        const err = Math.abs(x[i] - y[i])
        expect(err, `x=${x[i]} y=${y[i]} scale=${scale}`).toBeLessThanOrEqual(int8ErrorBound(scale))
        // the same bound in terms of the block's absmax
        const absmax = Math.max(...Array.from(x.subarray(b * blockSize, (b + 1) * blockSize), Math.abs))
        expect(err).toBeLessThanOrEqual(absmax / 254 * (1 + 2 ** -15) + 2 ** -142)
      }
    }), { numRuns: 500 })
  })

  it('produces exactly what the spec formulas produce', () => {
    fc.assert(fc.property(arrayArb, fc.integer({ min: 1, max: 70 }), (values, blockSize) => {
      const x = new Float32Array(values)
      const q = quantizeInt8(x, { blockSize })
      const ref = referenceQuantize(x, blockSize)
      expect(Array.from(q.data)).toEqual(ref.data)
      expect(Array.from(q.scales)).toEqual(ref.scales)
    }), { numRuns: 300 })
  })

  it('rounds ties to even and maps the block maximum to ±127', () => {
    // absmax 127 → scale 1 exactly; 2.5 → 2, 3.5 → 4, -2.5 → -2
    const q = quantizeInt8(new Float32Array([127, 2.5, 3.5, -2.5, -127, 0.5, 1.5, 0]), { blockSize: 8 })
    expect(q.scales[0]).toBe(1)
    expect(Array.from(q.data)).toEqual([127, 2, 4, -2, -127, 0, 2, 0])
  })

  it('keeps dequantized values finite at the float32 extremes', () => {
    const x = new Float32Array([F32_MAX, -F32_MAX, F32_MAX / 2, 1])
    const q = quantizeInt8(x, { blockSize: 4 })
    expect(q.scales[0]).toBeLessThanOrEqual(MAX_INT8_SCALE)
    const y = dequantizeInt8(q)
    for (let i = 0; i < 4; i++) {
      expect(Number.isFinite(y[i])).toBe(true)
      expect(Math.abs(x[i] - y[i])).toBeLessThanOrEqual(int8ErrorBound(q.scales[0]))
    }
    expect(Number.isFinite(Math.fround(MAX_INT8_SCALE * 127))).toBe(true)
    // the value the spec states, and the next binary32 up really would overflow
    const bits = new Uint32Array(new Float32Array([MAX_INT8_SCALE]).buffer)[0]
    expect(bits).toBe(0x7c010203)
    const next = new Float32Array(new Uint32Array([bits + 1]).buffer)[0]
    expect(Math.fround(next * 127)).toBe(Infinity)
  })

  it('gives an all-zero block scale 0 and values 0', () => {
    const q = quantizeInt8(new Float32Array([0, -0, 0, 0, 5]), { blockSize: 4 })
    expect(Array.from(q.scales)).toEqual([0, 5 / 127].map(Math.fround))
    expect(Array.from(q.data)).toEqual([0, 0, 0, 0, 127])
  })

  it('throws NonFiniteValueError on NaN or ±Infinity', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const x = new Float32Array(100).fill(1)
      x[77] = bad
      expect(() => quantizeInt8(x)).toThrow(expect.objectContaining({ name: 'NonFiniteValueError' }))
    }
  })

  it('rejects invalid block sizes and mismatched scales', () => {
    for (const blockSize of [0, -1, 1.5, 2 ** 24 + 1, NaN]) {
      expect(() => quantizeInt8(new Float32Array(4), { blockSize })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    }
    expect(() => dequantizeInt8({ data: new Int8Array(10), scales: new Float32Array(1), blockSize: 4 }))
      .toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })

  it('uses 64-element blocks by default and survives a frame round trip', () => {
    const x = new Float32Array(1000).map((_, i) => Math.cos(i) * (i % 64 === 0 ? 100 : 1))
    const q = quantizeInt8(x)
    expect(q.blockSize).toBe(64)
    expect(q.scales.length).toBe(16)
    const t = decodeTensorFrame(encodeTensorFrame({ dtype: 'int8', shape: [10, 100], ...q }))
    expect(t.dtype).toBe('int8')
    if (t.dtype === 'int8') expect(dequantizeInt8(t)).toEqual(dequantizeInt8(q))
  })
})
