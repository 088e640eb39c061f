/**
 * Issue 16: float32 blocks / head executors with `bakeWeights` (weights baked into the inference session, rebuilt
 * when they change) decode the same logits as resident ones, and serve new weights after setParameters.
 */
import { describe, it, expect } from 'vitest'
import { buildShardGraph, initParameter, modelParameters, preset, shardParameters } from '@neuroshard/model'
import type { ShardRole } from '@neuroshard/model'
import { createShardExecutor, int64 } from '../src/index.js'
import type { ShardExecutor } from '../src/index.js'

const config = preset('tiny')
const weights = (seed: number): Map<string, Float32Array> => new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, seed)]))
const only = (w: Map<string, Float32Array>, role: ShardRole): Map<string, Float32Array> => new Map(shardParameters(config, role).map(s => [s.name, w.get(s.name)!.slice()]))
const blocks: ShardRole = { kind: 'blocks', start: 0, end: config.nLayers }
const head: ShardRole = { kind: 'head' }

async function chain (w: Map<string, Float32Array>, bakeWeights: boolean): Promise<ShardExecutor[]> {
  return [
    await createShardExecutor({ config, role: { kind: 'embed' }, parameters: only(w, { kind: 'embed' }), graphs: { forward: buildShardGraph(config, { kind: 'embed' }, 'forward').bytes } }),
    await createShardExecutor({ config, role: blocks, parameters: only(w, blocks), graphs: { inference: buildShardGraph(config, blocks, 'inference').bytes }, bakeWeights }),
    await createShardExecutor({ config, role: head, parameters: only(w, head), graphs: { inference: buildShardGraph(config, head, 'inference').bytes }, bakeWeights })
  ]
}

/** Logits of a 5-token prompt then 3 single tokens, through embed → blocks (KV cache) → head */
async function decode (ex: ShardExecutor[]): Promise<Float32Array[]> {
  const kvB = await ex[1].openInference()
  const kvH = await ex[2].openInference()
  const out: Float32Array[] = []
  for (const ids of [[1, 2, 3, 4, 5], [6], [7], [8]]) {
    const h = (await ex[0].forward({ input_ids: int64(ids, [1, ids.length]) })).hidden
    const y = (await kvB.run({ hidden_in: h })).hidden_out
    out.push((await kvH.run({ hidden: y })).logits.data as Float32Array)
  }
  await kvB.close?.()
  await kvH.close?.()
  return out
}

const maxDiff = (a: Float32Array[], b: Float32Array[]): number => {
  let m = 0
  a.forEach((x, i) => { expect(x.length).toBe(b[i].length); for (let j = 0; j < x.length; j++) m = Math.max(m, Math.abs(x[j] - b[i][j])) })
  return m
}

describe('float32 executors with baked weights', () => {
  it('decode the resident logits within 1e-4, and the new weights after setParameters', async () => {
    const w1 = weights(1)
    const w2 = weights(2)
    const resident1 = await chain(w1, false)
    const resident2 = await chain(w2, false)
    const baked = await chain(w1, true)
    try {
      const r1 = await decode(resident1)
      const r2 = await decode(resident2)
      expect(maxDiff(r1, r2)).toBeGreaterThan(1e-2)
      // baked: the inference sessions take no weight as an input (resident ones take every one)
      const inputs = (e: ShardExecutor): string[] => (e as unknown as { sessions: { inference: { inputs: Array<{ name: string }> } } }).sessions.inference.inputs.map(i => i.name)
      for (const i of [1, 2]) {
        expect(inputs(baked[i]).filter(n => w1.has(n))).toEqual([])
        expect(inputs(resident1[i]).filter(n => w1.has(n)).length).toBeGreaterThan(0)
      }
      expect(maxDiff(await decode(baked), r1)).toBeLessThan(1e-4)
      for (const [i, role] of [[1, blocks], [2, head]] as const) await baked[i].setParameters(only(w2, role))
      await baked[0].setParameters(only(w2, { kind: 'embed' }))
      expect(maxDiff(await decode(baked), r2)).toBeLessThan(1e-4)
    } finally {
      await Promise.all([...resident1, ...resident2, ...baked].map(async e => { await e.close() }))
    }
  })
})
