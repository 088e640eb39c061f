import { describe, it, expect } from 'vitest'
import { GraphBuilder, activationsToSave, gradients, onnx } from '../src/index.js'
import type { Value } from '../src/index.js'
import { gradCheck, rng, runBytes, t64 } from './helpers.js'
import type { FeedTensor } from './helpers.js'

const TOL = 1e-6

interface Case {
  name: string
  build: (g: GraphBuilder) => { out: Value[], feeds: Record<string, FeedTensor>, wrt?: Value[] }
  tol?: number
}

const r = rng(42)
const pos = (x: number): number => Math.abs(x) + 0.5

function inp (g: GraphBuilder, feeds: Record<string, FeedTensor>, name: string, dims: number[], transform?: (x: number) => number): Value {
  feeds[name] = t64(r, dims, transform)
  return g.input(name, 'float64', dims)
}

const cases: Case[] = [
  {
    name: 'MatMul 3-D @ 2-D',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3, 4]); const b = inp(g, f, 'b', [4, 5]); return { out: [g.matmul(a, b)], feeds: f } }
  },
  {
    name: 'MatMul with broadcast batch dims',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 1, 3, 4]); const b = inp(g, f, 'b', [3, 4, 2]); return { out: [g.matmul(a, b)], feeds: f } }
  },
  {
    name: 'Gemm transA/transB with broadcast C',
    build: g => { const f = {}; const a = inp(g, f, 'a', [4, 3]); const b = inp(g, f, 'b', [5, 4]); const c = inp(g, f, 'c', [5]); return { out: [g.gemm(a, b, c, { transA: true, transB: true, alpha: 0.7, beta: 1.3 })], feeds: f } }
  },
  {
    name: 'Add broadcast [2,3,4] + [3,1]',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3, 4]); const b = inp(g, f, 'b', [3, 1]); return { out: [g.add(a, b)], feeds: f } }
  },
  {
    name: 'Sub broadcast [4] - [2,1,4]',
    build: g => { const f = {}; const a = inp(g, f, 'a', [4]); const b = inp(g, f, 'b', [2, 1, 4]); return { out: [g.sub(a, b)], feeds: f } }
  },
  {
    name: 'Mul broadcast [2,3,4] * [1,3,1]',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3, 4]); const b = inp(g, f, 'b', [1, 3, 1]); return { out: [g.mul(a, b)], feeds: f } }
  },
  {
    name: 'Div broadcast [2,3] / [3] and scalar',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3]); const b = inp(g, f, 'b', [3], pos); const c = inp(g, f, 'c', [], pos); return { out: [g.div(g.div(a, b), c)], feeds: f } }
  },
  {
    name: 'Reshape with 0 and -1',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3, 4]); return { out: [g.mul(g.reshape(a, [0, -1]), g.reshape(a, [2, 12]))], feeds: f } }
  },
  {
    name: 'Transpose',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3, 4]); return { out: [g.transpose(a, [2, 0, 1])], feeds: f } }
  },
  {
    name: 'Slice (negative start, open end, two axes)',
    build: g => { const f = {}; const a = inp(g, f, 'a', [3, 5, 4]); return { out: [g.slice(a, [-3, 1], [Infinity, 3], [1, 2]), g.slice(a, [0], [2], [0])], feeds: f } }
  },
  {
    name: 'Concat',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 1, 3]); const b = inp(g, f, 'b', [2, 2, 3]); return { out: [g.concat([a, b, a], 1)], feeds: f } }
  },
  {
    name: 'Split (one output unused)',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 6]); const [p, , s] = g.split(a, [1, 2, 3], 1); return { out: [p, s], feeds: f } }
  },
  {
    name: 'Gather (embedding, repeated ids) → ScatterND add',
    build: g => {
      const f: Record<string, FeedTensor> = {}
      const w = inp(g, f, 'w', [5, 3])
      f.ids = { data: BigInt64Array.from([1n, 4n, 1n, 0n, 1n, 3n]), dims: [2, 3] }
      const ids = g.input('ids', 'int64', [2, 3])
      return { out: [g.gather(w, ids)], feeds: f, wrt: [w] }
    }
  },
  {
    name: 'GatherElements (target pick, repeated indices) → ScatterElements add',
    build: g => {
      const f: Record<string, FeedTensor> = {}
      const x = inp(g, f, 'x', [2, 3, 5])
      f.t = { data: BigInt64Array.from([4n, 0n, 4n, 2n, 2n, 1n, 0n, 3n, 3n, 1n, 1n, 1n]), dims: [2, 3, 2] }
      const t = g.input('t', 'int64', [2, 3, 2])
      return { out: [g.gatherElements(x, t, -1)], feeds: f, wrt: [x] }
    }
  },
  {
    name: 'Softmax (last axis and axis 1)',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3, 4]); return { out: [g.softmax(a, -1), g.softmax(a, 1)], feeds: f } }
  },
  {
    name: 'LogSoftmax',
    build: g => { const f = {}; const a = inp(g, f, 'a', [3, 5]); return { out: [g.logSoftmax(a, -1)], feeds: f } }
  },
  {
    name: 'ReduceSum keepdims / no keepdims',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3, 4]); return { out: [g.reduceSum(a, [0, 2], true), g.reduceSum(a, [1], false)], feeds: f } }
  },
  {
    name: 'ReduceMean keepdims / no keepdims',
    build: g => { const f = {}; const a = inp(g, f, 'a', [2, 3, 4]); return { out: [g.reduceMean(a, [-1], true), g.reduceMean(a, [0, 1], false)], feeds: f } }
  },
  {
    name: 'Pow / Sqrt / Reciprocal',
    build: g => { const f = {}; const a = inp(g, f, 'a', [3, 4], pos); return { out: [g.pow(a, 3), g.pow(a, 0.5), g.sqrt(a), g.reciprocal(a)], feeds: f } }
  },
  {
    name: 'Sigmoid / SiLU / Tanh / Neg',
    build: g => { const f = {}; const a = inp(g, f, 'a', [3, 4]); return { out: [g.sigmoid(a), g.silu(a), g.tanh(a), g.neg(a)], feeds: f } }
  },
  {
    name: 'Exp / Log / Sin / Cos',
    build: g => { const f = {}; const a = inp(g, f, 'a', [3, 4], pos); return { out: [g.exp(a), g.log(a), g.sin(a), g.cos(a)], feeds: f } }
  },
  {
    name: 'Where with a broadcast causal mask',
    build: g => {
      const f: Record<string, FeedTensor> = {}
      const a = inp(g, f, 'a', [2, 3, 3])
      const b = inp(g, f, 'b', [3])
      const q = g.range(g.scalar(0, 'int64'), g.scalar(3, 'int64'), g.scalar(1, 'int64'), 3)
      const mask = g.lessOrEqual(g.unsqueeze(q, [0]), g.unsqueeze(q, [1]))
      return { out: [g.where(mask, a, b)], feeds: f }
    }
  },
  {
    name: 'Expand / Unsqueeze / Squeeze / Identity',
    build: g => { const f = {}; const a = inp(g, f, 'a', [3, 1]); return { out: [g.expand(a, [2, 3, 4]), g.squeeze(g.unsqueeze(a, [0]), [0, 2]), g.identity(a)], feeds: f } }
  },
  {
    name: 'Cast float64 → float64 (same type)',
    build: g => { const f = {}; const a = inp(g, f, 'a', [3, 4]); return { out: [g.mul(g.cast(a, 'float64'), a)], feeds: f } }
  },
  {
    name: 'symbolic batch: ReduceMean over a runtime dim, MatMul weight grad through a runtime reshape',
    build: g => {
      const f: Record<string, FeedTensor> = {}
      f.x = t64(r, [3, 2, 4])
      const x = g.input('x', 'float64', ['batch', 'seq', 4])
      const w = inp(g, f, 'w', [4, 2])
      const y = g.matmul(x, w)
      return { out: [g.reduceMean(y, [0, 1], true), g.reshape(y, [-1, 2])], feeds: f }
    }
  }
]

describe('VJP rules agree with central finite differences (float64)', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const g = new GraphBuilder({ dtype: 'float64' })
      const { out, feeds, wrt } = c.build(g)
      out.forEach((o, i) => { g.output(o, `y${i}`) })
      const res = await gradCheck(g, feeds, { wrt })
      expect(res.length).toBeGreaterThan(0)
      for (const x of res) {
        expect(x.rel, `${x.input}: fd ${x.fd} vs ad ${x.ad}`).toBeLessThan(c.tol ?? TOL)
      }
    })
  }

  it('Cast float64 → float32 → float64 (float32 rounding: looser bound)', async () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const f: Record<string, FeedTensor> = {}
    const a = inp(g, f, 'a', [3, 4])
    g.output(g.cast(g.mul(g.cast(a, 'float32'), g.cast(a, 'float32')), 'float64'), 'y')
    const res = await gradCheck(g, f, { h: 1e-3 })
    for (const x of res) expect(x.rel).toBeLessThan(1e-3)
  })

  it('SiLU in its float32 form Mul(x, Sigmoid(x)), run in float64 without the QuickGelu fusion', async () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const f: Record<string, FeedTensor> = {}
    const a = inp(g, f, 'a', [3, 4])
    g.output(g.mul(a, g.sigmoid(a)), 'y')
    const res = await gradCheck(g, f, { sessionOptions: { graphOptimizationLevel: 'basic' } })
    for (const x of res) expect(x.rel).toBeLessThan(TOL)
  })

  it('a scalar loss seeds with 1 and can output the loss beside the gradients', async () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const x = g.input('x', 'float64', [3])
    const loss = g.reduceSum(g.mul(x, x), [0], false)
    const b = gradients(g, { of: loss, wrt: [x], alsoOutput: [{ value: loss, name: 'loss' }] })
    const out = await runBytes(b.toModelProto(), { x: { data: Float64Array.from([1, 2, 3]), dims: [3] } })
    expect([...out['grad.x'].data]).toEqual([2, 4, 6])
    expect([...out.loss.data]).toEqual([14])
  })

  it('saved activations: the backward graph reads them instead of recomputing, with the same gradients', async () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const f: Record<string, FeedTensor> = {}
    const x = inp(g, f, 'x', [4, 3])
    const w = inp(g, f, 'w', [3, 5])
    const h = g.matmul(x, w, { name: 'h' })
    const s = g.sigmoid(h, { name: 's' })
    const loss = g.reduceSum(g.mul(s, s), [0, 1], false)
    g.output(loss, 'loss')
    g.output(h, 'act.h')
    g.output(s, 'act.s')
    const fwd = await runBytes(g.toModelProto(), f)
    const plain = gradients(g, { of: loss, wrt: [x, w] })
    const withSaved = gradients(g, { of: loss, wrt: [x, w], saved: [{ value: h, name: 'act.h' }, { value: s, name: 'act.s' }] })
    const ops = (b: GraphBuilder): string[] => onnx.ModelProto.decode(b.toModelProto()).graph?.node.map(n => n.name) ?? []
    expect(ops(plain)).toContain('h')
    expect(ops(withSaved)).not.toContain('h')
    expect(ops(withSaved)).not.toContain('s')
    const a = await runBytes(plain.toModelProto(), f)
    const b = await runBytes(withSaved.toModelProto(), { ...f, 'act.h': { data: fwd['act.h'].data, dims: fwd['act.h'].dims }, 'act.s': { data: fwd['act.s'].data, dims: fwd['act.s'].dims } })
    for (const k of ['grad.x', 'grad.w']) expect([...b[k].data]).toEqual([...a[k].data])
  })

  it('activationsToSave picks what the VJPs read, and the backward graph then replays no forward node', () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const x = g.input('x', 'float64', ['n', 3])
    const w = g.input('w', 'float64', [3, 5])
    const h = g.matmul(x, w, { name: 'h' })
    const s = g.sigmoid(h, { name: 's' })
    const loss = g.reduceMean(g.mul(s, s, { name: 'sq' }), [0, 1], false, { name: 'mean' })
    const opts = { of: loss, wrt: [x, w] }
    const acts = activationsToSave(g, opts)
    // s feeds the Sigmoid and Mul VJPs; h is read by nothing (Sigmoid's VJP uses its output); sq and mean are
    // read for their runtime shapes/sizes by the ReduceMean VJP over the symbolic dim 'n'
    expect(acts).toEqual([s, expect.objectContaining({ name: expect.stringMatching(/^sq/) }), loss])
    expect(acts).not.toContain(h)
    const b = gradients(g, { ...opts, saved: acts.map((a, i) => ({ value: a, name: `act.${i}` })) })
    const names = onnx.ModelProto.decode(b.toModelProto()).graph?.node.map(n => n.name) ?? []
    for (const fwdNode of ['h', 's', 'sq', 'mean']) expect(names).not.toContain(fwdNode)
  })

  it('a wrt value off the path gets zeros; integer wrt is refused', () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const x = g.input('x', 'float64', [3])
    const z = g.input('z', 'float64', [2])
    const ids = g.input('ids', 'int64', [2])
    const loss = g.reduceSum(x, [0], false)
    expect(() => gradients(g, { of: loss, wrt: [ids] })).toThrow(expect.objectContaining({ name: 'AutodiffError' }))
    const b = gradients(g, { of: loss, wrt: [x, z] })
    expect(b.outputs.map(o => o.name)).toEqual(['grad.x', 'grad.z'])
  })

  it('an op without a VJP rule on the path is a readable error', () => {
    const g = new GraphBuilder({ dtype: 'float64' })
    const x = g.input('x', 'float64', [3])
    const y = g.op('Abs', [x], [{ dtype: 'float64', shape: [3] }], {}, { name: 'my_abs' })[0]
    expect(() => gradients(g, { of: g.reduceSum(y, [0], false), wrt: [x] })).toThrow(/no VJP rule for Abs \('my_abs'\)/)
  })
})
