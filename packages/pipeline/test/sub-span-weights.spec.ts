/**
 * A sub-span stage (a route naming part of a span) is rebuilt when the parent's inference weights change, not after
 * every training step (issue 15). A training node's parent stage steps every inner step; before, every request for a
 * sub-span after a step rebuilt the sub-span stage on the request's path (testbed node-failover-many run 1: 55-549 ms
 * of a hop's own time on a failover's replay, `slow-hop` lines with `sub` true). A stage that gives `inferenceWeights`
 * (a training node serving a round's weights) has its sub-span stages built from those, rebuilt when their version
 * changes. Real hosts: a Driver holding [0, 2), a server holding [1, 4) routed for [2, 4) only.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const params = weights(config, 19)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
/** the parent's executors' step count as the pipeline sees it (a training stage steps every inner step) */
let step = 0
let version = 1
let reads = 0

beforeAll(async () => {
  stages.push(await stage(config, 0, 2, params), await stage(config, 1, 4, params))
  reference = await monolith(config, params)
  const parent = stages[1]
  const stepping = (e: ShardExecutor): ShardExecutor => new Proxy(e, {
    get: (target, prop) => {
      if (prop === 'stepCount') return step
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const training: PipelineStage = {
    ...parent,
    executors: parent.executors.map(stepping),
    inferenceWeights: () => ({ version, parameters: async () => { reads++; return params } }),
    close: async () => {}
  }
  const server = await startHost({ stages: [training] })
  const driver = await startHost({ stages: [stages[0]], router: staticRouter([{ peer: server.peerId, start: 2, end: 4 }]) })
  hosts.push(driver, server)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

const subStage = (): Promise<PipelineStage> | undefined => ((hosts[1].services.pipeline as any).derived as Map<string, { stage: Promise<PipelineStage> }>).get('2-4')?.stage

async function generate (prompt: number[], n: number): Promise<number[]> {
  const got: number[] = []
  for await (const t of hosts[0].services.pipeline.generate(prompt, { maxNewTokens: n })) got.push(t.id)
  return got
}

describe('sub-span stages follow inferenceWeights', () => {
  it('the parent steps, its inference weights stay: the sub-span stage is kept; their version changes: rebuilt from them', async () => {
    const prompt = [...new TextEncoder().encode('sub-span weights')]
    const want = (await referenceGreedy(reference, prompt, 6)).ids
    expect(await generate(prompt, 6)).toEqual(want)
    const first = subStage()
    expect(first).toBeDefined()
    expect(reads).toBe(1)
    // three training steps on the parent: the sub-span stage is not rebuilt (was: rebuilt at the next request)
    step += 3
    expect(await generate(prompt, 6)).toEqual(want)
    expect(subStage(), 'the sub-span stage rebuilt after a step of the parent').toBe(first)
    expect(reads).toBe(1)
    // a new round's weights: rebuilt once, from inferenceWeights
    version++
    expect(await generate(prompt, 6)).toEqual(want)
    expect(subStage()).not.toBe(first)
    expect(reads).toBe(2)
  }, 60_000)
})
