import { describe, it, expect } from 'vitest'
import * as ort from 'onnxruntime-node'
import { buildModelGraph, buildShardGraph, headDim, modelParameters, shardParameters, SHARD_IO } from '../../src/index.js'
import type { ShardRole, ShardVariant } from '../../src/index.js'
import { TINY_TEST } from './helpers.js'

const c = TINY_TEST
const names = (role: ShardRole): string[] => shardParameters(c, role).map(p => p.name)
const grads = (role: ShardRole): string[] => names(role).map(n => SHARD_IO.grad(n))
const blocks: ShardRole = { kind: 'blocks', start: 0, end: 2 }

const CONTRACT: Array<[ShardRole, ShardVariant, string[], string[]]> = [
  [{ kind: 'embed' }, 'forward', ['input_ids', 'embed.weight'], ['hidden']],
  [{ kind: 'embed' }, 'backward', ['input_ids', 'grad_hidden'], ['grad.embed.weight']],
  [{ kind: 'embed' }, 'inference', ['input_ids', 'embed.weight'], ['hidden']],
  [blocks, 'forward', ['hidden_in', ...names(blocks)], ['hidden_out']],
  [blocks, 'backward', ['hidden_in', ...names(blocks), 'grad_hidden_out'], ['grad_hidden_in', ...grads(blocks)]],
  [blocks, 'inference', ['hidden_in', ...names(blocks), 'past_key.0', 'past_value.0', 'past_key.1', 'past_value.1', 'position_offset'],
    ['hidden_out', 'present_key.0', 'present_value.0', 'present_key.1', 'present_value.1']],
  [{ kind: 'head' }, 'forward', ['hidden', 'targets', 'final_norm.weight', 'lm_head.weight'], ['loss']],
  [{ kind: 'head' }, 'backward', ['hidden', 'targets', 'final_norm.weight', 'lm_head.weight', 'grad_loss'], ['grad_hidden', 'grad.final_norm.weight', 'grad.lm_head.weight', 'loss']],
  [{ kind: 'head' }, 'inference', ['hidden', 'final_norm.weight', 'lm_head.weight'], ['logits']]
]

describe('shard graph I/O contract', () => {
  for (const [role, variant, inputs, outputs] of CONTRACT) {
    it(`${role.kind} ${variant}`, async () => {
      const sg = buildShardGraph(c, role, variant)
      expect(sg.inputs.map(i => i.name)).toEqual(inputs)
      expect(sg.outputs.map(o => o.name)).toEqual(outputs)
      // onnxruntime sees the same names
      const s = await ort.InferenceSession.create(sg.bytes)
      expect(s.inputNames).toEqual(inputs)
      expect(s.outputNames).toEqual(outputs)
      await s.release()
    })
  }

  it('declares shapes with symbolic batch/seq/past dims and dtypes', () => {
    const inf = buildShardGraph(c, blocks, 'inference')
    const by = Object.fromEntries([...inf.inputs, ...inf.outputs].map(s => [s.name, s]))
    expect(by.hidden_in).toEqual({ name: 'hidden_in', dtype: 'float32', shape: ['batch', 'seq', c.dModel] })
    expect(by['past_key.0'].shape).toEqual(['batch', c.nKvHeads, 'past', headDim(c)])
    expect(by['present_key.0'].shape).toEqual(['batch', c.nKvHeads, 'past+seq', headDim(c)])
    expect(by.position_offset).toEqual({ name: 'position_offset', dtype: 'int64', shape: [] })
    const head = buildShardGraph(c, { kind: 'head' }, 'backward', { dtype: 'float64' })
    expect(head.outputs.find(o => o.name === 'loss')).toEqual({ name: 'loss', dtype: 'float64', shape: [] })
    expect(head.inputs.find(o => o.name === 'grad_loss')).toEqual({ name: 'grad_loss', dtype: 'float64', shape: [] })
  })

  it('tied embeddings: the head reads embed.weight and returns its gradient', () => {
    const t = { ...c, tieEmbeddings: true }
    const sg = buildShardGraph(t, { kind: 'head' }, 'backward')
    expect(sg.inputs.map(i => i.name)).toContain('embed.weight')
    expect(sg.outputs.map(o => o.name)).toEqual(['grad_hidden', 'grad.final_norm.weight', 'grad.embed.weight', 'loss'])
  })

  it('refuses invalid configs and block ranges with InvalidConfigError', () => {
    expect(() => buildShardGraph({ ...c, nHeads: 3 }, blocks, 'forward')).toThrow(expect.objectContaining({ name: 'InvalidConfigError' }))
    expect(() => buildModelGraph({ ...c, nKvHeads: 0 }, 'forward')).toThrow(expect.objectContaining({ name: 'InvalidConfigError' }))
    for (const [start, end] of [[1, 1], [-1, 1], [0, 3], [2, 1]]) {
      expect(() => buildShardGraph(c, { kind: 'blocks', start, end }, 'forward')).toThrow(expect.objectContaining({ name: 'InvalidConfigError' }))
    }
  })

  it('monolithic graphs take every parameter', () => {
    const all = modelParameters(c).map(p => p.name)
    expect(buildModelGraph(c, 'forward').inputs.map(i => i.name)).toEqual(['input_ids', 'targets', ...all])
    expect(buildModelGraph(c, 'forward').outputs.map(o => o.name)).toEqual(['loss', 'logits'])
    expect(buildModelGraph(c, 'backward').outputs.map(o => o.name)).toEqual([...all.map(n => `grad.${n}`), 'loss'])
    expect(buildModelGraph(c, 'inference').outputs.map(o => o.name)).toEqual(['logits'])
  })
})
