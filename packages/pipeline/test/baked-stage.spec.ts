/**
 * Issue 16: serving-only float32 stages with `bakeWeights` (inference sessions with the weights baked in) give the
 * resident stages' greedy tokens and logits within 1e-4 through a 3-host pipeline, and after `setParameters` with
 * other weights they serve those (a baked stage that kept its old session fails the second comparison).
 */
import { describe, it, expect, afterAll } from 'vitest'
import { preset, shardParameters } from '@neuroshard/model'
import { createPipelineStage } from '../src/index.js'
import { hostChain, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'

const config = { ...preset('tiny'), maxSeqLen: 128 }
const L = config.nLayers
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
afterAll(async () => {
  await stopAll(hosts)
  await Promise.all(stages.map(async s => { await s.close() }))
})

const maxDiff = (a: Float32Array, b: Float32Array): number => {
  expect(a.length).toBe(b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

async function generate (spans: PipelineStage[]): Promise<{ ids: number[], logits: Float32Array[] }> {
  const chain = (await hostChain(spans)).hosts
  hosts.push(...chain)
  const driver = chain[0]
  const got = { ids: [] as number[], logits: [] as Float32Array[] }
  for await (const t of driver.services.pipeline.generate([3, 17, 200, 45, 9], { maxNewTokens: 12, returnLogits: true })) {
    got.ids.push(t.id)
    got.logits.push(t.logits!)
  }
  return got
}

describe('baked serving stages', () => {
  it('give the resident stages\' tokens and logits within 1e-4 over 3 hosts, and new weights after setParameters', async () => {
    const w1 = weights(config)
    const w2 = new Map([...w1].map(([k, v]) => [k, v.map((x, i) => x * (1 + 0.5 * Math.sin(i)))]))
    const make = async (w: Map<string, Float32Array>, bakeWeights: boolean): Promise<PipelineStage[]> => {
      const s = await Promise.all([[0, 2], [2, L + 1], [L + 1, L + 2]].map(async ([start, end]) => await createPipelineStage({ config, start, end, parameters: w, training: false, intraOpNumThreads: 1, bakeWeights })))
      stages.push(...s)
      return s
    }
    const baked = await make(w1, true)
    // baked: the blocks' and head's inference sessions take no weight as an input (resident ones do)
    const weightInputs = (s: PipelineStage[]): number => s.flatMap(x => x.executors).filter(e => e.role.kind !== 'embed')
      .flatMap(e => (e as unknown as { sessions: { inference: { inputs: Array<{ name: string }> } } }).sessions.inference.inputs).filter(i => w1.has(i.name)).length
    expect(weightInputs(baked)).toBe(0)
    const resident1 = await make(w1, false)
    expect(weightInputs(resident1)).toBeGreaterThan(0)
    const r1 = await generate(resident1)
    const b1 = await generate(baked)
    expect(b1.ids).toEqual(r1.ids)
    for (let i = 0; i < r1.logits.length; i++) expect(maxDiff(b1.logits[i], r1.logits[i])).toBeLessThan(1e-4)
    const r2 = await generate(await make(w2, false))
    expect(Math.max(...r2.logits.map((l, i) => maxDiff(l, r1.logits[i])))).toBeGreaterThan(1e-2)
    for (const s of baked) {
      for (const e of s.executors) await e.setParameters(new Map(shardParameters(config, e.role).map(p => [p.name, w2.get(p.name)!])))
    }
    const b2 = await generate(baked)
    expect(b2.ids).toEqual(r2.ids)
    for (let i = 0; i < r2.logits.length; i++) expect(maxDiff(b2.logits[i], r2.logits[i])).toBeLessThan(1e-4)
  }, 180_000)
})
