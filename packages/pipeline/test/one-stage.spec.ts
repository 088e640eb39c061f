/**
 * A generation whose route is the Driver's stage alone: the node holds every slot (embedding, blocks, head), so the
 * router finds no hop after it. `generate` read the route's hop 1 and threw a TypeError (the node's devnet with every
 * node holding the whole tiny model failed every completion); now the stage samples the token itself, as a Validator
 * would. Real host, real onnxruntime stages, the single-process model as the reference.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { preset } from '@neuroshard/model'
import { createPipelineStage, ngramDrafter, staticRouter } from '../src/index.js'
import { maxAbsDiff, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config, 5)
let reference: ShardExecutor
const stages: PipelineStage[] = []
const hosts: PipelineHost[] = []

beforeAll(async () => {
  reference = await monolith(config, params)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

async function generate (host: PipelineHost, prompt: number[], n: number, options: Record<string, unknown> = {}): Promise<Array<{ id: number, logits?: Float32Array }>> {
  const got: Array<{ id: number, logits?: Float32Array }> = []
  for await (const t of host.services.pipeline.generate(prompt, { maxNewTokens: n, ...options })) got.push(t)
  return got
}

describe('a one-stage route (the Driver holds every slot)', () => {
  for (const fused of [false, true]) {
    it(`greedy tokens and logits of the single-process model (${fused ? 'embedding and head fused into the blocks session' : 'separate executors'})`, async () => {
      const s = fused
        ? await createPipelineStage({ config, start: 0, end: L + 2, parameters: params, intraOpNumThreads: 1, training: false, fuseInference: true })
        : await stage(config, 0, L + 2, params)
      stages.push(s)
      const host = await startHost({ stages: [s], router: staticRouter([]) })
      hosts.push(host)
      const prompt = [...new TextEncoder().encode('one stage')]
      const want = await referenceGreedy(reference, prompt, 6)
      const got = await generate(host, prompt, 6, { returnLogits: true })
      expect(got.map(t => t.id)).toEqual(want.ids)
      for (const [i, t] of got.entries()) expect(maxAbsDiff(t.logits!, want.logits[i])).toBeLessThan(1e-4)
      // sampling with a seed: the same tokens twice (the sampler's position-keyed draws), and stop tokens end it
      const a = await generate(host, prompt, 5, { temperature: 0.9, topK: 20, seed: 3 })
      const b = await generate(host, prompt, 5, { temperature: 0.9, topK: 20, seed: 3 })
      expect(b.map(t => t.id)).toEqual(a.map(t => t.id))
      const stopped = await generate(host, prompt, 6, { stopTokens: [want.ids[1]] })
      expect(stopped.map(t => t.id)).toEqual(want.ids.slice(0, 2))
      // a draft option on a one-stage route decodes plainly (no hop to verify drafts against): the same tokens
      const drafted = await generate(host, prompt, 6, { draft: ngramDrafter() })
      expect(drafted.map(t => t.id)).toEqual(want.ids)
    }, 120_000)
  }
})
