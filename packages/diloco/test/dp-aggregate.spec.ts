import { describe, expect, it } from 'vitest'
import { aggregateRound, GaussianPrivatizer, privacyEpsilon } from '../src/index.js'

describe('differential privacy', () => {
  it('zCDP accountant: ε = ρ + 2√(ρ ln(1/δ)), ρ = T/(2z²)', () => {
    // z = 1, T = 1, δ = 1e-5: ρ = 0.5, ln(1e5) = 11.512925…, ε = 0.5 + 2·√5.7564627 = 5.298526…
    expect(privacyEpsilon(1, 1, 1e-5)).toBeCloseTo(5.298526, 5)
    // z = 4, T = 100: ρ = 3.125; ε = 3.125 + 2√(3.125·11.512925) = 15.119…
    expect(privacyEpsilon(100, 4, 1e-5)).toBeCloseTo(3.125 + 2 * Math.sqrt(3.125 * Math.log(1e5)), 10)
    expect(privacyEpsilon(0, 1)).toBe(0)
  })

  it('clips to C and adds noise of standard deviation z·C', () => {
    const dp = new GaussianPrivatizer({ clipNorm: 1, noiseMultiplier: 0.5, seed: 7 })
    const n = 20000
    const x = new Float32Array(n).fill(1) // norm √n ≫ 1
    const norm = dp.apply(x)
    expect(norm).toBeCloseTo(Math.sqrt(n), 3)
    const clipped = 1 / Math.sqrt(n)
    let s = 0
    let s2 = 0
    for (const v of x) { s += v - clipped; s2 += (v - clipped) ** 2 }
    expect(Math.abs(s / n)).toBeLessThan(0.02)
    expect(Math.sqrt(s2 / n)).toBeGreaterThan(0.48)
    expect(Math.sqrt(s2 / n)).toBeLessThan(0.52)
    expect(dp.rounds).toBe(1)
    expect(dp.epsilon()).toBeCloseTo(privacyEpsilon(1, 0.5), 12)
  })
})

describe('aggregation outcome per sender', () => {
  const honest = [[1, 1], [1.1, 0.9], [0.9, 1.1]]
  const inputs = [...honest, [-50, -50]].map(x => Float32Array.from(x))

  it('mean accepts everyone (it used them all) and is pulled by the outlier', () => {
    const r = aggregateRound(inputs, 'mean')
    expect(r.accepted).toEqual([true, true, true, true])
    expect(r.value[0]).toBeCloseTo((1 + 1.1 + 0.9 - 50) / 4, 5)
  })

  it('trimmed mean rejects the outlier by distance', () => {
    const r = aggregateRound(inputs, 'trimmed-mean')
    expect(r.accepted).toEqual([true, true, true, false])
    // f = 1: per coordinate drop the min and max of four, average the middle two
    expect(r.value[0]).toBeCloseTo((1 + 0.9) / 2, 5)
  })

  it('multi-krum on 5 inputs selects the honest ones', () => {
    const five = [...honest, [1.05, 1.0], [-50, -50]].map(x => Float32Array.from(x))
    const r = aggregateRound(five, 'multi-krum')
    expect(r.accepted).toEqual([true, true, true, true, false])
  })
})
