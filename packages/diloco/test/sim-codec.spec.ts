/**
 * The bench-only codecs of bench/sim-codec.ts (issue #11): low rank (PowerSGD-style) and top-k with packed indices,
 * and the error feedback the bench applies to them.
 */
import { describe, expect, it } from 'vitest'
import { lowRank, packedSparse, riceIndexBits, riceSparse, simCompress } from '../bench/sim-codec.js'
import { decodePayload, encodePayload, ErrorFeedback, payloadSize, resolveCodec, spanLayout } from '../src/index.js'

const layout = spanLayout({ id: 's', parameters: [{ name: 'a', shape: [40, 12] }, { name: 'b', shape: [12] }, { name: 'c', shape: [8, 30] }] })

function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 0.5) / 4294967296 - 0.5 }
}

describe('lowRank', () => {
  it('counts rank·(rows + cols) int8 factors and 2·rank scales per matrix, int8 + one scale per vector', () => {
    expect(lowRank(layout, 2, 1).bytes(0)).toBe(2 * (40 + 12) + 16 + 2 * (8 + 30) + 16 + 12 + 4)
    expect(lowRank(layout, 1, 1).bytes(0)).toBe(40 + 12 + 8 + 8 + 30 + 8 + 12 + 4)
  })

  it('sends a rank-2 matrix in one round up to the int8 rounding of its factors', () => {
    const r = rng(1)
    const e = new Float32Array(layout.size)
    const u = [Array.from({ length: 40 }, r), Array.from({ length: 40 }, r)]
    const v = [Array.from({ length: 12 }, r), Array.from({ length: 12 }, r)]
    for (let i = 0; i < 40; i++) for (let c = 0; c < 12; c++) e[i * 12 + c] = u[0][i] * v[0][c] + 0.5 * u[1][i] * v[1][c]
    const dec = lowRank(layout, 2, 1).roundTrip(e, 0, 0)
    let err = 0
    let nrm = 0
    for (let k = 0; k < 480; k++) { err += (dec[k] - e[k]) ** 2; nrm += e[k] ** 2 }
    expect(Math.sqrt(err / nrm)).toBeLessThan(0.02)
    // a rank-1 codec of the same matrix leaves the second component out
    const dec1 = lowRank(layout, 1, 1).roundTrip(e, 0, 0)
    let err1 = 0
    for (let k = 0; k < 480; k++) err1 += (dec1[k] - e[k]) ** 2
    expect(Math.sqrt(err1 / nrm)).toBeGreaterThan(0.05)
  })

  it('keeps one warm start per worker: worker 1 decodes the same as a lone worker 0', () => {
    const e = Float32Array.from({ length: layout.size }, rng(2))
    const two = lowRank(layout, 1, 2)
    const one = lowRank(layout, 1, 1)
    two.roundTrip(Float32Array.from({ length: layout.size }, rng(3)), 0, 0) // worker 0 moves its own Q only
    expect(two.roundTrip(e, 0, 1)).toEqual(one.roundTrip(e, 0, 0))
    expect(() => two.roundTrip(e, 0, 2)).toThrow()
  })
})

describe('simCompress (error feedback of the bench codecs)', () => {
  it('what was sent plus the residual is what was fed, and a constant Δ is sent on average', () => {
    const codec = lowRank(layout, 1, 1)
    const residual = new Float32Array(layout.size)
    const delta = Float32Array.from({ length: layout.size }, rng(4))
    const sent = new Float64Array(layout.size)
    const R = 60
    for (let round = 0; round < R; round++) {
      const dec = simCompress(residual, delta, codec, round, 0)
      for (let k = 0; k < sent.length; k++) sent[k] += dec[k]
    }
    let worst = 0
    let meanErr = 0
    let nrm = 0
    for (let k = 0; k < sent.length; k++) {
      worst = Math.max(worst, Math.abs(sent[k] + residual[k] - R * delta[k]))
      meanErr += (sent[k] / R - delta[k]) ** 2
      nrm += delta[k] ** 2
    }
    expect(worst).toBeLessThan(1e-3) // fp32 rounding of R additions, nothing lost
    // a rank-1 codec of a full-rank Δ: without error feedback the average sent stays a rank-1 approximation
    // (relative error ≈ 0.9 here); with it the residual stays bounded and the average converges to Δ
    expect(Math.sqrt(meanErr / nrm)).toBeLessThan(0.25)
  })

  it('applies the decay as ErrorFeedback does', () => {
    const codec = packedSparse(layout.size, resolveCodec({ codec: 'sparse', chunk: 64, topK: 4 }))
    const wire = resolveCodec({ codec: 'sparse', chunk: 64, topK: 4 })
    const a = new Float32Array(layout.size)
    const b = new ErrorFeedback(layout.size, 0.9)
    for (let round = 0; round < 5; round++) {
      const delta = Float32Array.from({ length: layout.size }, rng(10 + round))
      expect(simCompress(a, delta, codec, round, 0, 0.9)).toEqual(b.compress(delta, wire).decoded)
      expect(a).toEqual(b.residual)
    }
    expect(() => simCompress(a, new Float32Array(3), codec, 0, 0)).toThrow()
  })
})

describe('packedSparse', () => {
  it('decodes what the wire codec decodes, with ⌈log2 chunk⌉-bit indices in the byte count', () => {
    const c = resolveCodec({ codec: 'sparse', topK: 64 })
    const n = 8192 + 100
    const sim = packedSparse(n, c)
    expect(sim.bytes(0)).toBe(2 * (4 + 96 + 16) + (4 + Math.ceil(64 * 12 / 8) + 16))
    expect(payloadSize(n, c)).toBe(3 * (4 + 128 + 16))
    const x = Float32Array.from({ length: n }, rng(5))
    expect(sim.roundTrip(x, 0, 0)).toEqual(decodePayload(encodePayload(x, c), n, c))
  })
})

describe('riceSparse', () => {
  it('counts Rice-coded index gaps with the best parameter (4 bits for it)', () => {
    expect(riceIndexBits([0, 1, 2])).toBe(4 + 3) // p = 0: three gaps of 0, one bit each
    expect(riceIndexBits([100])).toBe(4 + 8) // p = 7: 0 + 1 + 7 (p = 6: 1 + 1 + 6 as well)
    expect(riceIndexBits([3, 7])).toBe(4 + 6) // gaps 3, 3: p = 1 or 2 give 3 bits each (p = 0: 4 each)
  })

  it('2-bit values are the wire codec\'s; sign values are ± the mean |x| of the kept ones; bytes are the largest payload of the round', () => {
    const x = new Float32Array(4096 + 10)
    x[5] = 0.5; x[9] = -2; x[100] = 1; x[4096 + 3] = -0.25; x[4096 + 7] = 0.75
    const two = riceSparse(x.length, 4096, 2, '2bit')
    const wire = resolveCodec({ codec: 'sparse', topK: 2 })
    expect(two.roundTrip(x, 0, 0)).toEqual(decodePayload(encodePayload(x, wire), x.length, wire))
    // chunk 0 keeps 9 and 100 (gaps 9, 90), chunk 1 keeps 3 and 7 (gaps 3, 3)
    const size = 4 + Math.ceil((riceIndexBits([9, 100]) + 4) / 8) + 4 + Math.ceil((riceIndexBits([3, 7]) + 4) / 8)
    expect(two.bytes(0)).toBe(size)
    const sign = riceSparse(x.length, 4096, 2, 'sign')
    const dec = sign.roundTrip(x, 0, 0)
    const nonzero = [...dec.keys()].filter(i => dec[i] !== 0)
    expect(nonzero).toEqual([9, 100, 4096 + 3, 4096 + 7])
    expect([dec[9], dec[100], dec[4099], dec[4103]]).toEqual([-1.5, 1.5, -0.5, 0.5])
    expect(sign.bytes(0)).toBe(4 + Math.ceil((riceIndexBits([9, 100]) + 2) / 8) + 4 + Math.ceil((riceIndexBits([3, 7]) + 2) / 8))
    // a second worker's larger payload in the same round is what counts
    const y = new Float32Array(x.length)
    y[0] = 1; y[4095] = 1; y[4096] = 1; y[4096 + 9] = 1
    sign.roundTrip(y, 0, 1)
    expect(sign.bytes(0)).toBe(Math.max(4 + Math.ceil((riceIndexBits([0, 4095]) + 2) / 8) + 4 + Math.ceil((riceIndexBits([0, 9]) + 2) / 8), 4 + Math.ceil((riceIndexBits([9, 100]) + 2) / 8) + 4 + Math.ceil((riceIndexBits([3, 7]) + 2) / 8)))
    expect(() => sign.bytes(1)).toThrow()
  })
})
