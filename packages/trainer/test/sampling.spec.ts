import { describe, expect, it } from 'vitest'
import { argmax, sampleFrom, sampleToken, samplingDistribution, samplingRng } from '../src/index.js'

const log = (ps: number[]): number[] => ps.map(p => Math.log(p))
const close = (a: ArrayLike<number>, b: number[]): void => {
  expect(a.length).toBe(b.length)
  for (let i = 0; i < b.length; i++) expect(a[i]).toBeCloseTo(b[i], 12)
}

describe('samplingDistribution', () => {
  it('is the softmax at temperature 1 with no filters', () => {
    close(samplingDistribution(log([0.1, 0.2, 0.3, 0.4])), [0.1, 0.2, 0.3, 0.4])
  })

  it('sharpens and flattens with temperature', () => {
    // T = 0.5 squares the probabilities (then renormalises)
    const sq = [0.01, 0.04, 0.09, 0.16]
    const s = sq.reduce((a, b) => a + b)
    close(samplingDistribution(log([0.1, 0.2, 0.3, 0.4]), { temperature: 0.5 }), sq.map(x => x / s))
    // T → large: uniform
    const flat = samplingDistribution(log([0.1, 0.2, 0.3, 0.4]), { temperature: 1e6 })
    for (const p of flat) expect(p).toBeCloseTo(0.25, 5)
    // T = 0: all mass on the argmax
    close(samplingDistribution([1, 5, 3], { temperature: 0 }), [0, 1, 0])
  })

  it('top-k keeps the k most likely tokens, renormalised', () => {
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topK: 2 }), [0, 4 / 7, 0, 3 / 7])
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topK: 1 }), [0, 1, 0, 0])
    // k ≥ vocabulary: no-op
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topK: 10 }), [0.1, 0.4, 0.2, 0.3])
    // ties at the boundary: lower id wins
    close(samplingDistribution(log([0.25, 0.25, 0.25, 0.25]), { topK: 2 }), [0.5, 0.5, 0, 0])
  })

  it('top-p keeps the smallest most-likely set reaching p', () => {
    // sorted: 0.4 (id1), 0.3 (id3), 0.2 (id2), 0.1 (id0)
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topP: 0.4 }), [0, 1, 0, 0])
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topP: 0.41 }), [0, 4 / 7, 0, 3 / 7])
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topP: 0.7 }), [0, 4 / 7, 0, 3 / 7])
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topP: 0.75 }), [0, 4 / 9, 2 / 9, 3 / 9])
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topP: 1 }), [0.1, 0.4, 0.2, 0.3])
  })

  it('top-p applies to the renormalised top-k distribution', () => {
    // top-2 → [4/7, 3/7]; p = 0.5 keeps only id1 (4/7 ≥ 0.5)
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topK: 2, topP: 0.5 }), [0, 1, 0, 0])
    // p = 0.6 needs both
    close(samplingDistribution(log([0.1, 0.4, 0.2, 0.3]), { topK: 2, topP: 0.6 }), [0, 4 / 7, 0, 3 / 7])
  })

  it('refuses bad options and NaN logits with InvalidParametersError', () => {
    for (const o of [{ temperature: -1 }, { temperature: Infinity }, { topK: 1.5 }, { topK: -1 }, { topP: 0 }, { topP: 1.5 }]) {
      expect(() => samplingDistribution([0, 1], o)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    }
    expect(() => samplingDistribution([0, NaN])).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => samplingDistribution([])).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})

describe('sampleFrom / sampleToken', () => {
  it('inverts the CDF and never returns a zero-probability id', () => {
    const p = [0, 0.5, 0, 0.5, 0]
    expect(sampleFrom(p, 0)).toBe(1)
    expect(sampleFrom(p, 0.4999)).toBe(1)
    expect(sampleFrom(p, 0.5)).toBe(3)
    expect(sampleFrom(p, 0.999999999)).toBe(3)
    expect(() => sampleFrom(p, 1)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })

  it('empirical frequencies match the filtered distribution', () => {
    const rng = samplingRng(7)
    const logits = log([0.1, 0.4, 0.2, 0.3])
    const counts = [0, 0, 0, 0]
    const n = 20000
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { topK: 3 }, rng)]++
    expect(counts[0]).toBe(0)
    expect(counts[1] / n).toBeCloseTo(4 / 9, 1)
    expect(counts[2] / n).toBeCloseTo(2 / 9, 1)
    expect(counts[3] / n).toBeCloseTo(3 / 9, 1)
  })

  it('is reproducible with a seed and greedy at temperature 0', () => {
    const a = samplingRng(1)
    const b = samplingRng(1)
    const logits = [0.3, 0.1, 0.2, 0.5, 0.4]
    const xs = Array.from({ length: 50 }, () => sampleToken(logits, {}, a))
    const ys = Array.from({ length: 50 }, () => sampleToken(logits, {}, b))
    expect(xs).toEqual(ys)
    expect(new Set(xs).size).toBeGreaterThan(1)
    expect(sampleToken(logits, { temperature: 0 }, a)).toBe(argmax(logits))
    expect(argmax([1, 3, 3, 2])).toBe(1)
  })
})
