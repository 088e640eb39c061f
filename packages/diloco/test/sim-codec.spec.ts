/**
 * The bench-only codecs of bench/sim-codec.ts (issue #11): low rank (PowerSGD-style) and top-k with packed indices,
 * and the error feedback the bench applies to them.
 */
import { describe, expect, it } from 'vitest'
import { lowRank, packedSparse, simCompress } from '../bench/sim-codec.js'
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
