import { describe, it, expect } from 'vitest'
import { GraphBuilder } from '../src/index.js'
import { runBytes } from './helpers.js'

describe('smoke', () => {
  it('runs the README example', async () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const x = g.input('x', 'float64', ['batch', 'seq', 4])
    const w = g.input('w', 'float64', [4, 3])
    const y = g.matmul(x, w, { name: 'proj' })
    g.output(y, 'y')
    const out = await runBytes(g.toModelProto(), { x: { data: new Float64Array(8).fill(1), dims: [1, 2, 4] }, w: { data: new Float64Array(12).fill(0.5), dims: [4, 3] } })
    expect(out.y.dims).toEqual([1, 2, 3])
    expect([...out.y.data]).toEqual([2, 2, 2, 2, 2, 2])
  })
})
