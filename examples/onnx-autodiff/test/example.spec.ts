import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: onnx-autodiff', () => {
  it('the derived gradient graph matches finite differences on every entry', async () => {
    const r = await main(() => {})
    expect(r.checked).toBe(3 * 4 + 4 * 5)
    expect(r.maxRelativeError).toBeLessThan(1e-7)
    expect(r.backwardInputs).toEqual(['x', 'w'])
    expect(r.backwardOutputs).toEqual(expect.arrayContaining(['y', 'grad.x', 'grad.w']))
    expect(r.shapeError).toBe('ShapeError')
  })

  it('y agrees with the same function computed in plain JavaScript', async () => {
    const r = await main(() => {})
    // the example's deterministic inputs, recomputed here
    const values = (n: number, seed: number): number[] => {
      let s = seed >>> 0
      return Array.from({ length: n }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 31 - 1 })
    }
    const x = values(12, 1)
    const w = values(20, 2)
    let y = 0
    for (let b = 0; b < 3; b++) {
      for (let o = 0; o < 5; o++) {
        let h = 0
        for (let i = 0; i < 4; i++) h += x[b * 4 + i] * w[i * 5 + o]
        y += h / (1 + Math.exp(-h))
      }
    }
    expect(r.y).toBeCloseTo(y, 10)
  })
})
