/**
 * A hop whose KV cache cannot take the session (KvCacheFullError, spec §4.2 revision 1.4.0) does not end the
 * generation: the Driver leaves that peer out of the session's routes (without banning it) and the session continues
 * on a replica with room — its mirrored standby without a replay when the cache filled mid-generation, otherwise a
 * new route and a replay. Real hosts; outputs checked against the single-process model.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { preset } from '@neuroshard/model'
import { kvBytesPerToken, staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config, 17)
let hosts: PipelineHost[] = []
let stages: PipelineStage[] = []
let reference: ShardExecutor | undefined

afterEach(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
  hosts = []
  stages = []
  reference = undefined
})

/** Driver [0,1) · `small` [1, L+1) with a KV cap of `tokens` tokens · `roomy` [1, L+1) (cap: `roomyTokens`, default 512 MiB) · Validator [L+1, L+2); the router lists `small` first */
async function setup (tokens: number, roomyTokens?: number): Promise<{ driver: PipelineHost, small: PipelineHost, roomy: PipelineHost, router: ReturnType<typeof staticRouter> }> {
  stages = await Promise.all([[0, 1], [1, L + 1], [1, L + 1], [L + 1, L + 2]].map(async ([a, b]) => await stage(config, a, b, params)))
  const perToken = kvBytesPerToken(stages[1])
  const small = await startHost({ stages: [stages[1]], maxKvBytes: tokens * perToken })
  const roomy = await startHost({ stages: [stages[2]], ...(roomyTokens != null ? { maxKvBytes: roomyTokens * perToken } : {}) })
  const validator = await startHost({ stages: [stages[3]] })
  const router = staticRouter([{ peer: small.peerId, start: 1, end: L + 1 }, { peer: roomy.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }])
  const driver = await startHost({ stages: [stages[0]], router })
  hosts = [driver, small, roomy, validator]
  await mesh(hosts)
  reference = await monolith(config, params)
  return { driver, small, roomy, router }
}

function watch (driver: PipelineHost): { failovers: number, switches: Array<{ hop: number, position: number }> } {
  const seen = { failovers: 0, switches: [] as Array<{ hop: number, position: number }> }
  driver.services.pipeline.addEventListener('pipeline:failover', () => { seen.failovers++ })
  driver.services.pipeline.addEventListener('pipeline:switched', e => { seen.switches.push({ hop: e.detail.hop, position: e.detail.position }) })
  return seen
}

describe('a hop with a full KV cache', () => {
  const prompt = [...new TextEncoder().encode('Full caches')] // 11 tokens

  it('that cannot take the prompt: the session goes to the replica with room from the start (not banned)', async () => {
    const { driver, small, roomy, router } = await setup(4)
    const want = await referenceGreedy(reference!, prompt, 10)
    const seen = watch(driver)
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 10 })) {
      got.push(t.id)
      expect(roomy.services.pipeline.sessionStats().sessions).toBe(1)
      expect(small.services.pipeline.sessionStats().sessions).toBe(0)
    }
    expect(got).toEqual(want.ids)
    expect(seen.failovers).toBe(0)
    expect(router.failed.size).toBe(0) // a full cache is not a failure
  })

  it('that fills up mid-generation: its mirrored standby takes over at the current position, nothing replayed', async () => {
    const { driver, small, router } = await setup(prompt.length + 5)
    const want = await referenceGreedy(reference!, prompt, 12)
    const seen = watch(driver)
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 12 })) got.push(t.id)
    expect(got).toEqual(want.ids)
    // the cache held the prompt and 5 tokens; the 6th fed back (position prompt + 5) did not fit
    expect(seen.switches).toEqual([{ hop: 1, position: prompt.length + 5 }])
    expect(seen.failovers).toBe(0)
    expect(router.failed.size).toBe(0)
    // the Driver closed the full hop's session when it moved off it
    const deadline = Date.now() + 10_000
    while (small.services.pipeline.sessionStats().sessions !== 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    expect(small.services.pipeline.sessionStats().sessions).toBe(0)
  })

  it('that fills up mid-generation without mirrors: a new route without it and a replay', async () => {
    const { driver, router } = await setup(prompt.length + 5)
    const want = await referenceGreedy(reference!, prompt, 12)
    const seen = watch(driver)
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 12, mirror: false })) got.push(t.id)
    expect(got).toEqual(want.ids)
    expect(seen.switches).toEqual([])
    expect(router.failed.size).toBe(0)
  })

  it('with no replica that has room: KvCacheFullError once every replica was tried, none banned', async () => {
    const { driver, small, roomy, router } = await setup(4, 4)
    await expect((async () => {
      for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 4 })) void t
    })()).rejects.toThrow(expect.objectContaining({ name: 'KvCacheFullError' }))
    expect(router.failed.size).toBe(0)
    expect(small.services.pipeline.sessionStats().sessions).toBe(0)
    expect(roomy.services.pipeline.sessionStats().sessions).toBe(0)
  })
})
