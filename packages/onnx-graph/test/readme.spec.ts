import { describe, it, expect } from 'vitest'
import * as ort from 'onnxruntime-node'
import { GraphBuilder, gradients } from '../src/index.js'

describe('README example', () => {
  it('builds, differentiates and runs', async () => {
    const g = new GraphBuilder({ dtype: 'float32' })
    const x = g.input('x', 'float32', ['batch', 'seq', 64])
    const w = g.input('w', 'float32', [64, 128])
    const y = g.matmul(x, w, { name: 'proj' })
    expect(y.shape).toEqual(['batch', 'seq', 128])
    const loss = g.reduceMean(g.mul(y, y), [0, 1, 2], false)
    g.output(y, 'y')
    const other = new GraphBuilder()
    const ox = other.input('x', 'float32', ['batch', 'seq', 64])
    expect(() => other.matmul(ox, other.input('v', 'float32', [32, 8]), { name: 'q_proj' })).toThrow("MatMul 'q_proj': inner dims 64 vs 32 ([batch, seq, 64] @ [32, 8])")
    const forward = await ort.InferenceSession.create(g.toModelProto())
    const b = gradients(g, { of: loss, wrt: [w], alsoOutput: [{ value: loss, name: 'loss' }] })
    const backward = await ort.InferenceSession.create(b.toModelProto())
    const out = await backward.run({
      x: new ort.Tensor('float32', new Float32Array(2 * 3 * 64).fill(0.1), [2, 3, 64]),
      w: new ort.Tensor('float32', new Float32Array(64 * 128).fill(0.01), [64, 128])
    })
    expect(out['grad.w'].dims).toEqual([64, 128])
    // y = 0.1·0.01·64 = 0.064 everywhere; loss = y²; dL/dw_ij = mean over (b,s,j') of 2y·x_i δ_jj' = 2·0.064·0.1/128
    expect((out.loss.data as Float32Array)[0]).toBeCloseTo(0.064 ** 2, 6)
    expect((out['grad.w'].data as Float32Array)[0]).toBeCloseTo(2 * 0.064 * 0.1 / 128, 8)
    expect(forward.inputNames).toEqual(['x', 'w'])
    await forward.release()
    await backward.release()
  })
})
