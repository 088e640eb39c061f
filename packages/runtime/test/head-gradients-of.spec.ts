/**
 * A head backward graph restricted to the tied matrix (`buildShardGraph(…, 'backward', { gradientsOf:
 * ['embed.weight'] })`, what a pipeline Driver runs to recompute the Validator's tied gradient) gives the same
 * `grad.embed.weight` bits and loss as the full head backward, without `grad_hidden` or `final_norm.weight`'s gradient.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { buildShardGraph, initParameter, preset, shardParameters } from '@neuroshard/model'
import { createShardExecutor, float32, int64 } from '../src/index.js'
import type { ShardExecutor } from '../src/index.js'

const executors: ShardExecutor[] = []
afterEach(async () => { await Promise.all(executors.splice(0).map(async e => { await e.close() })) })

describe('head backward with respect to the tied matrix only', () => {
  it('the same tied-gradient bits and loss as the full head backward, over two accumulated micro-batches', async () => {
    const config = { ...preset('tiny'), tieEmbeddings: true, vocabSize: 1024 }
    const role = { kind: 'head' as const }
    const parameters = new Map(shardParameters(config, role).map(p => [p.name, initParameter(config, p, 9)]))
    const full = await createShardExecutor({ config, role, parameters, intraOpNumThreads: 1, graphs: { backward: buildShardGraph(config, role, 'backward').bytes } })
    executors.push(full)
    const graph = buildShardGraph(config, role, 'backward', { gradientsOf: ['embed.weight'] })
    expect(graph.outputs.map(o => o.name).sort()).toEqual(['grad.embed.weight', 'loss'])
    const only = await createShardExecutor({ config, role, parameters, intraOpNumThreads: 1, graphs: { backward: graph.bytes } })
    executors.push(only)
    let s = 3
    const rnd = (): number => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 }
    const [B, S, d] = [2, 24, config.dModel]
    for (let mb = 0; mb < 2; mb++) {
      const hidden = float32(Float32Array.from({ length: B * S * d }, () => 4 * rnd() - 2), [B, S, d])
      const targets = int64(BigInt64Array.from({ length: B * S }, () => BigInt(Math.floor(rnd() * config.vocabSize))), [B, S])
      const feeds = { hidden, targets, grad_loss: float32([0.5], []) }
      const a = await full.backward(feeds)
      const b = await only.backward(feeds)
      expect(b.grad_hidden).toBeUndefined()
      expect(Buffer.from((b.loss.data as Float32Array).buffer).equals(Buffer.from((a.loss.data as Float32Array).buffer))).toBe(true)
    }
    const ga = (await full.takeTiedGradients()).get('embed.weight')!
    const gb = (await only.takeTiedGradients()).get('embed.weight')!
    expect(ga.some(x => x !== 0)).toBe(true)
    expect(Buffer.from(gb.buffer, gb.byteOffset, gb.byteLength).equals(Buffer.from(ga.buffer, ga.byteOffset, ga.byteLength))).toBe(true)
    // nothing accumulated for final_norm.weight on the restricted head
    expect((await only.getGradients()).get('final_norm.weight')!.every(x => x === 0)).toBe(true)
  })

  it('refuses a name that is not a head parameter, and an empty list', () => {
    const config = { ...preset('tiny'), tieEmbeddings: true }
    expect(() => buildShardGraph(config, { kind: 'head' }, 'backward', { gradientsOf: ['nope'] })).toThrow(/not a parameter/)
    expect(() => buildShardGraph(config, { kind: 'head' }, 'backward', { gradientsOf: [] })).toThrow(/at least one/)
  })
})
