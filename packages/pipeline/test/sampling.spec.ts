/** The fast order of sampling candidates is the comparator order of spec §6 (descending logit, ties by lower id) */
import { describe, it, expect } from 'vitest'
import { descendingOrder, nucleus, sampleToken, uniformDraw } from '../src/index.js'
import type { SamplingOptions } from '../src/index.js'

/** The reference: the comparator sort (what sampling used before) */
function reference (logits: Float32Array): number[] {
  return Array.from(logits.keys()).sort((a, b) => (logits[b] - logits[a]) || (a - b))
}

function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 }
}

describe('descendingOrder', () => {
  it('equals the comparator order on random logits, with ties, ±0, ±Infinity, negatives and subnormals', () => {
    const r = rng(1)
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(r() * 600)
      const logits = new Float32Array(n)
      for (let i = 0; i < n; i++) {
        const k = r()
        // few distinct values make many ties; the rest spread over signs and magnitudes
        logits[i] = k < 0.3
          ? Math.round(r() * 6) - 3
          : k < 0.35 ? [0, -0, Infinity, -Infinity, 1e-40, -1e-40, 3.4e38, -3.4e38][Math.floor(r() * 8)] : (r() - 0.5) * 10 ** Math.floor(r() * 8 - 3)
      }
      expect(descendingOrder(logits)).toEqual(reference(logits))
    }
  })

  it('samples the same tokens as the comparator order at a 4096-entry vocabulary', () => {
    const r = rng(7)
    const logits = Float32Array.from({ length: 4096 }, () => (r() - 0.5) * 8)
    const order = reference(logits)
    for (let pos = 0; pos < 50; pos++) {
      const options = { temperature: 0.7, topK: pos % 3 === 0 ? 40 : 0, topP: pos % 2 === 0 ? 0.9 : 1, seed: 11 }
      // the reference draw, written out from spec §6 over the comparator order
      const k = options.topK > 0 ? options.topK : order.length
      const w = order.slice(0, k).map(i => Math.exp((logits[i] - logits[order[0]]) / options.temperature))
      let n = k
      if (options.topP < 1) {
        const sum = w.reduce((a, b) => a + b, 0)
        let acc = 0
        for (let i = 0; i < k; i++) { acc += w[i] / sum; if (acc >= options.topP) { n = i + 1; break } }
      }
      let total = 0
      for (let i = 0; i < n; i++) total += w[i]
      const u = Number(splitmix(BigInt(options.seed) + BigInt(pos)) >> 11n) / 2 ** 53 * total
      let acc = 0
      let want = order[n - 1]
      for (let i = 0; i < n; i++) { acc += w[i]; if (u < acc) { want = order[i]; break } }
      expect(sampleToken(logits, options, pos)).toBe(want)
    }
  })

  it('sampleToken (sorting order keys only) draws what the candidate-order sampler drew, on every kind of logits', () => {
    // the sampler before: nucleus() (ids in descending order, their weights) and the draw loop over them
    const before = (logits: Float32Array, options: SamplingOptions, position: number): number => {
      const { order, weights, n, total } = nucleus(logits, options)
      const u = uniformDraw(options.seed ?? 0, position) * total
      let acc = 0
      for (let i = 0; i < n; i++) {
        acc += weights[i]
        if (u < acc) return order[i]
      }
      return order[n - 1]
    }
    const r = rng(3)
    let draws = 0
    let tied = 0
    for (let trial = 0; trial < 300; trial++) {
      const n = trial < 20 ? 4096 : 1 + Math.floor(r() * 700)
      const logits = new Float32Array(n)
      const kind = trial % 4
      for (let i = 0; i < n; i++) {
        const k = r()
        logits[i] = kind === 0
          ? (r() - 0.5) * 8 // an untrained model's spread
          : kind === 1
            ? Math.round(r() * 4) - 2 // few values: many ties
            : kind === 2
              ? (k < 0.1 ? [0, -0, 1e-40, -1e-40, 3.4e38, -3.4e38][Math.floor(r() * 6)] : (r() - 0.5) * 10 ** Math.floor(r() * 6 - 2))
              : (k < 0.02 ? [Infinity, -Infinity][Math.floor(r() * 2)] : (r() - 0.5) * 30) // ±Infinity among them
      }
      for (let pos = 0; pos < 8; pos++) {
        const options = { temperature: [1, 0.7, 1.3, 0.05][pos % 4], topK: [0, 0, 1, 5, 40, n + 3][(trial + pos) % 6], topP: [1, 0.9, 0.5, 0][(trial + 2 * pos) % 4], seed: trial * 31 + pos }
        const want = before(logits, options, 1000 + pos)
        const got = sampleToken(logits, options, 1000 + pos)
        expect(got).toBe(want)
        draws++
        if (logits.filter(x => x === logits[want]).length > 1) tied++
      }
    }
    expect(draws).toBe(2400)
    // the id mapping for tied logits was exercised (kind 1 draws tied values nearly always)
    expect(tied).toBeGreaterThan(300)
  })

  it('keeps the comparator for NaN logits', () => {
    const logits = Float32Array.of(1, NaN, 2, 0)
    expect(descendingOrder(logits)).toEqual(reference(logits))
  })
})

function splitmix (x: bigint): bigint {
  const M = (1n << 64n) - 1n
  let z = (x + 0x9e3779b97f4a7c15n) & M
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M
  return z ^ (z >> 31n)
}
