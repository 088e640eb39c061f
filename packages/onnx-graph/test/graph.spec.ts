import { describe, it, expect } from 'vitest'
import { GraphBuilder, onnx } from '../src/index.js'
import { runBytes } from './helpers.js'

describe('GraphBuilder shape inference', () => {
  it('names the node in a MatMul inner-dim mismatch', () => {
    const g = new GraphBuilder()
    const x = g.input('x', 'float32', ['batch', 'seq', 64])
    const w = g.input('w', 'float32', [32, 128])
    expect(() => g.matmul(x, w, { name: 'blocks.0.attn.q_proj' })).toThrow(expect.objectContaining({
      name: 'ShapeError',
      message: expect.stringContaining("MatMul 'blocks.0.attn.q_proj': inner dims 64 vs 32")
    }))
  })

  it('rejects broadcasting 3 against 4 and names the node', () => {
    const g = new GraphBuilder()
    const a = g.input('a', 'float32', [2, 3])
    const b = g.input('b', 'float32', [4])
    expect(() => g.add(a, b, { name: 'resid' })).toThrow(/Add 'resid': cannot broadcast \[2, 3\] with \[4\]/)
  })

  it('rejects dtype mixes, bad reshapes, bad perms and bad axes', () => {
    const g = new GraphBuilder()
    const a = g.input('a', 'float32', [2, 3])
    const d = g.input('d', 'float64', [2, 3])
    expect(() => g.mul(a, d, { name: 'm' })).toThrow(/Mul 'm': dtype mismatch float32 vs float64/)
    expect(() => g.reshape(a, [4, 2], { name: 'r' })).toThrow(/Reshape 'r': cannot reshape \[2, 3\]/)
    expect(() => g.transpose(a, [0, 0])).toThrow(expect.objectContaining({ name: 'ShapeError' }))
    expect(() => g.softmax(a, 2, { name: 's' })).toThrow(/Softmax 's': axis 2 out of range/)
    expect(() => g.split(a, [1, 1], 1, { name: 'sp' })).toThrow(/Split 'sp': sizes \[1, 1\] sum to 2, axis 1 has 3/)
  })

  it('infers symbolic shapes through reshape, transpose, concat and matmul', () => {
    const g = new GraphBuilder()
    const x = g.input('x', 'float32', ['batch', 'seq', 8])
    const h = g.reshape(x, [0, 0, 2, 4])
    expect(h.shape).toEqual(['batch', 'seq', 2, 4])
    const t = g.transpose(h, [0, 2, 1, 3])
    expect(t.shape).toEqual(['batch', 2, 'seq', 4])
    const flat = g.reshape(x, [-1, 8])
    expect(flat.shape).toEqual(['batch*seq', 8])
    const past = g.input('past', 'float32', ['batch', 2, 'past', 4])
    expect(g.concat([past, t], 2).shape).toEqual(['batch', 2, 'past+seq', 4])
    expect(g.matmul(t, g.transpose(t, [0, 1, 3, 2])).shape).toEqual(['batch', 2, 'seq', 'seq'])
  })

  it('exports a ModelProto with IR 11, opset 23, symbolic dims and raw_data initializers', async () => {
    const g = new GraphBuilder({ dtype: 'float32' })
    const x = g.input('x', 'float32', ['batch', 3])
    const w = g.constant(Float32Array.from([1, 2, 3, 4, 5, 6]), 'float32', [3, 2], 'w')
    g.output(g.matmul(x, w), 'y')
    const bytes = g.toModelProto()
    const m = onnx.ModelProto.decode(bytes)
    expect(m.irVersion).toBe(11n)
    expect(m.opsetImport[0].version).toBe(23n)
    expect(m.graph?.input[0].type?.tensorType?.shape?.dim[0].dimParam).toBe('batch')
    expect(m.graph?.initializer[0].rawData.byteLength).toBe(24)
    const out = await runBytes(bytes, { x: { data: Float32Array.from([1, 0, 0, 0, 1, 1]), dims: [2, 3] } })
    expect([...out.y.data]).toEqual([1, 2, 8, 10])
  })

  it('outputs an input directly or one value under two names via Identity', async () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const x = g.input('x', 'float64', [2])
    const y = g.neg(x)
    g.output(x, 'x_out')
    g.output(y, 'a')
    g.output(y, 'b')
    const out = await runBytes(g.toModelProto(), { x: { data: Float64Array.from([1, -2]), dims: [2] } })
    expect([...out.x_out.data]).toEqual([1, -2])
    expect([...out.a.data]).toEqual([-1, 2])
    expect([...out.b.data]).toEqual([-1, 2])
  })

  it('refuses an output name that another value already has', () => {
    const g = new GraphBuilder()
    const x = g.input('x', 'float32', [2])
    g.output(g.exp(x), 'x')
    expect(() => g.toModelProto()).toThrow(expect.objectContaining({ name: 'GraphError' }))
  })

  it('prunes nodes that do not reach an output', () => {
    const g = new GraphBuilder()
    const x = g.input('x', 'float32', [2])
    g.exp(g.exp(x))
    g.output(g.neg(x), 'y')
    const m = onnx.ModelProto.decode(g.toModelProto())
    expect(m.graph?.node.map(n => n.opType)).toEqual(['Neg'])
  })
})
