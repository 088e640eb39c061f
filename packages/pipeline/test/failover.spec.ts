/**
 * Kill Workers mid-generation while replicas exist: the Driver switches to the replica, replays the
 * session's tokens to rebuild the caches, and the generation completes with the same output as the
 * single-process model.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { staticRouter } from '../src/index.js'
import { monolith, referenceGreedy, startChain, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage, RecoveryTiming } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const params = weights(config, 11)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
let router: ReturnType<typeof staticRouter>

beforeAll(async () => {
  // Driver [0,1) · W1a, W1b [1,2) · W2a, W2b [2,3) · Validator [3,4)
  const chain = await startChain(config, params, [[0, 1], [1, 2], [1, 2], [2, 3], [2, 3], [3, 4]])
  hosts.push(...chain.hosts)
  stages.push(...chain.stages)
  router = chain.router
  reference = await monolith(config, params)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

describe('failover', () => {
  it('a generation survives killing a Worker two hops away and then the Driver\'s neighbour', async () => {
    const prompt = [...new TextEncoder().encode('Once upon a time')]
    const n = 20
    const want = await referenceGreedy(reference, prompt, n)
    const [driver, w1a, , w2a] = hosts
    const failovers: Array<{ peer: string, hop: number }> = []
    driver.services.pipeline.addEventListener('pipeline:failover', (e) => { failovers.push({ peer: e.detail.peer.toString(), hop: e.detail.hop }) })
    // the phase times of each recovery, with the number of tokens produced before it
    const recoveries: Array<RecoveryTiming & { at: number }> = []
    const got: number[] = []
    driver.services.pipeline.addEventListener('pipeline:recovered', (e) => { recoveries.push({ ...e.detail, at: got.length }) })
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n })) {
      got.push(t.id)
      if (got.length === 5) await w2a.stop() // the failure is seen by W1a, which reports hop 2
      if (got.length === 12) await w1a.stop() // the failure is seen by the Driver itself (hop 1)
    }
    expect(got).toEqual(want.ids)
    expect(failovers).toEqual([{ peer: w2a.peerId.toString(), hop: 2 }, { peer: w1a.peerId.toString(), hop: 1 }])
    // one recovery per failure, reported with the token that ended it: a switch sends the one token, a replay the sequence
    expect(recoveries.map(r => [r.hop, r.at, r.attempts])).toEqual([[2, 5, 1], [1, 12, 1]])
    for (const r of recoveries) {
      expect(r.tokens).toBe(r.switched ? 1 : prompt.length + r.at)
      const { detect, reroute, embed, link, chain, total } = r.ms
      for (const v of [detect, reroute, embed, link, chain]) expect(v).toBeGreaterThanOrEqual(0)
      expect(link).toBeLessThanOrEqual(chain)
      expect(detect + reroute + embed + chain).toBeLessThanOrEqual(total + 1e-6)
    }
    expect([...router.failed].sort()).toEqual([w1a.peerId.toString(), w2a.peerId.toString()].sort())
  })
})
