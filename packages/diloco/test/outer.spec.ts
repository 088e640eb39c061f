import { describe, expect, it } from 'vitest'
import { outerStep } from '../src/index.js'

describe('outer Nesterov step', () => {
  it('matches SGD(nesterov) computed in float64 over three steps', () => {
    const theta = Float32Array.from([1, -2, 0.5])
    const mom = new Float32Array(3)
    const gs = [[0.1, -0.2, 0.3], [0.05, 0.05, -0.1], [-0.2, 0.1, 0]]
    const t = [1, -2, 0.5]
    const b = [0, 0, 0]
    for (const g of gs) {
      outerStep(theta, mom, Float32Array.from(g))
      for (let i = 0; i < 3; i++) {
        b[i] = 0.9 * b[i] + g[i]
        t[i] = t[i] - 0.7 * (g[i] + 0.9 * b[i])
      }
    }
    for (let i = 0; i < 3; i++) {
      expect(theta[i]).toBeCloseTo(t[i], 6)
      expect(mom[i]).toBeCloseTo(b[i], 6)
    }
  })

  it('first step is θ − lr·(1 + μ)·g; plain momentum without Nesterov', () => {
    const theta = Float32Array.from([0])
    outerStep(theta, new Float32Array(1), Float32Array.from([1]))
    expect(theta[0]).toBeCloseTo(-1.33, 6)
    const t2 = Float32Array.from([0])
    outerStep(t2, new Float32Array(1), Float32Array.from([1]), { nesterov: false, lr: 1 })
    expect(t2[0]).toBe(-1)
  })

  it('refuses a momentum of 1 or more', () => {
    expect(() => { outerStep(new Float32Array(1), new Float32Array(1), new Float32Array(1), { momentum: 1 }) }).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})
