import { describe, expect, it } from 'vitest'
import { normalQuantile } from '../src/index.js'
import { thrown } from './helpers.js'

/** Φ(x) from the Taylor series of erf (accurate to ~1e-13 for |x| ≤ 4) — an independent check of Φ⁻¹ */
function phi (x: number): number {
  const y = x / Math.SQRT2
  let term = y
  let sum = y
  for (let n = 1; n < 200; n++) {
    term *= -y * y / n
    sum += term / (2 * n + 1)
  }
  return 0.5 + sum / Math.sqrt(Math.PI)
}

describe('normalQuantile (AS 241)', () => {
  it('matches tabulated values', () => {
    const table: Array<[number, number]> = [
      [0.5, 0],
      [0.6, 0.2533471031357997],
      [0.75, 0.6744897501960817],
      [0.9, 1.2815515655446004],
      [0.96, 1.7506860712521692],
      [0.975, 1.959963984540054],
      [0.99, 2.3263478740408408],
      [0.999, 3.090232306167813],
      [1e-10, -6.361340902404056],
      [1e-20, -9.262340089798408]
    ]
    for (const [p, z] of table) expect(Math.abs(normalQuantile(p) - z)).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(z)))
  })
  it('is antisymmetric about 1/2 and increasing', () => {
    for (const p of [1e-12, 0.01, 0.1, 0.3, 0.42, 0.4999]) {
      expect(normalQuantile(1 - p)).toBeCloseTo(-normalQuantile(p), p < 1e-10 ? 4 : 10)
    }
    let last = -Infinity
    for (let p = 0.001; p < 1; p += 0.001) {
      const z = normalQuantile(p)
      expect(z).toBeGreaterThan(last)
      last = z
    }
  })
  it('inverts Φ across all three branches of the approximation', () => {
    for (let x = -4; x <= 4; x += 0.0625) {
      expect(normalQuantile(phi(x))).toBeCloseTo(x, 8)
    }
  })
  it('reaches far tails without overflow', () => {
    expect(normalQuantile(1e-300)).toBeCloseTo(-37.0470962993612, 6)
  })
  it('is ±Infinity at the ends and rejects p outside [0, 1]', () => {
    expect(normalQuantile(0)).toBe(-Infinity)
    expect(normalQuantile(1)).toBe(Infinity)
    for (const p of [-0.1, 1.1, NaN]) expect(thrown(() => normalQuantile(p)).name).toBe('InvalidParametersError')
  })
})
