/**
 * A Worker that stops serving a span mid-generation (its node moved the span, or rebuilt the stage) answers the
 * next request with InvalidRouteError: the Driver must treat that hop as failed, switch to the replica and replay,
 * as for a dead Worker (the testbed's node-failover run saw the error end completions instead).
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { monolith, referenceGreedy, startChain, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const params = weights(config, 11)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor

beforeAll(async () => {
  // Driver [0,1) · W1 [1,2) · W2a, W2b [2,3) · Validator [3,4)
  const chain = await startChain(config, params, [[0, 1], [1, 2], [2, 3], [2, 3], [3, 4]])
  hosts.push(...chain.hosts)
  stages.push(...chain.stages)
  reference = await monolith(config, params)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

describe('a Worker that no longer serves its span', () => {
  it('is failed over like a dead one: the generation completes on the replica with the single-process output', async () => {
    const prompt = [...new TextEncoder().encode('Once upon a time')]
    const n = 16
    const want = await referenceGreedy(reference, prompt, n)
    const [driver, , w2a] = hosts
    const failovers: Array<{ peer: string, hop: number, error: string }> = []
    driver.services.pipeline.addEventListener('pipeline:failover', (e) => { failovers.push({ peer: e.detail.peer.toString(), hop: e.detail.hop, error: e.detail.error.name }) })
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n })) {
      got.push(t.id)
      // the first route takes the first replica (W2a); it stays up but drops the span
      if (got.length === 5) w2a.services.pipeline.removeStage(stages[2])
    }
    expect(got).toEqual(want.ids)
    expect(failovers).toEqual([{ peer: w2a.peerId.toString(), hop: 2, error: 'InvalidRouteError' }])
  })
})
