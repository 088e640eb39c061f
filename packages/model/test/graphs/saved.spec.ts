import { describe, it, expect } from 'vitest'
import { onnx } from '@neuroshard/onnx-graph'
import { buildShardGraph, SHARD_IO } from '../../src/index.js'
import type { ShardRole } from '../../src/index.js'
import { Runner, TINY_TEST, allParams, ids, maxAbs, maxAbsDiff, randn, rng, shardParams } from './helpers.js'
import type { T } from './helpers.js'

describe('saved-activation shard graphs', () => {
  const c = TINY_TEST
  const params = allParams(c, 8, 'float64')
  const r = rng(3)
  const hidden: T = { data: randn(r, 2 * 4 * c.dModel), dims: [2, 4, c.dModel] }
  const cases: Array<[string, ShardRole, Record<string, T>, string, string]> = [
    ['blocks [0, 2)', { kind: 'blocks', start: 0, end: 2 }, { [SHARD_IO.hiddenIn]: hidden }, SHARD_IO.gradHiddenOut, SHARD_IO.hiddenOut],
    ['head', { kind: 'head' }, { [SHARD_IO.hidden]: hidden, [SHARD_IO.targets]: ids(r, 2, 4, c.vocabSize) }, SHARD_IO.gradLoss, SHARD_IO.loss]
  ]
  for (const [label, role, inputs, seedName, outName] of cases) {
    it(`${label}: same outputs and gradients as recomputation, and no forward matmul replayed`, async () => {
      const feeds = { ...inputs, ...shardParams(c, role, params) }
      const fwd = buildShardGraph(c, role, 'forward', { dtype: 'float64', savedActivations: true })
      const bwd = buildShardGraph(c, role, 'backward', { dtype: 'float64', savedActivations: true })
      const plainF = buildShardGraph(c, role, 'forward', { dtype: 'float64' })
      const plainB = buildShardGraph(c, role, 'backward', { dtype: 'float64' })
      const acts = fwd.outputs.filter(o => o.name.startsWith('act.'))
      expect(acts.length).toBeGreaterThan(3)
      expect(bwd.inputs.filter(i => i.name.startsWith('act.')).length).toBeGreaterThan(0)
      // the backward replays no float forward op: what remains of the forward are int64/bool index
      // computations (positions, causal mask, shapes)
      const nodes = (bytes: Uint8Array): onnx.NodeProto[] => onnx.ModelProto.decode(bytes).graph?.node ?? []
      const fwdNames = new Set(nodes(plainF.bytes).map(n => n.name))
      const replayed = nodes(bwd.bytes).filter(n => fwdNames.has(n.name)).map(n => n.opType)
      for (const op of replayed) expect(['Shape', 'Reshape', 'Add', 'Range', 'Unsqueeze', 'LessOrEqual']).toContain(op)
      expect(nodes(plainB.bytes).filter(n => fwdNames.has(n.name)).map(n => n.opType)).toContain('MatMul')

      const run = async (bytes: Uint8Array, f: Record<string, T>): Promise<Record<string, T>> => {
        const s = await Runner.create(bytes)
        try { return await s.run(f) } finally { await s.release() }
      }
      const fo = await run(fwd.bytes, feeds)
      const po = await run(plainF.bytes, feeds)
      expect(maxAbsDiff(fo[outName].data, po[outName].data)).toBe(0)
      const y = po[outName]
      const seed: T = { data: randn(r, y.data.length), dims: y.dims }
      const saved: Record<string, T> = {}
      for (const a of acts) saved[a.name] = fo[a.name]
      const gb = await run(bwd.bytes, { ...feeds, ...saved, [seedName]: seed })
      const pb = await run(plainB.bytes, { ...feeds, [seedName]: seed })
      expect(Object.keys(gb).sort()).toEqual(Object.keys(pb).sort())
      for (const k of Object.keys(pb)) {
        expect(maxAbsDiff(gb[k].data, pb[k].data) / Math.max(maxAbs(pb[k].data), 1e-12), k).toBeLessThan(1e-12)
      }
    })
  }
})
