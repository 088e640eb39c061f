/**
 * A replay after a Worker is lost at a generation's first request goes `direct` while the session's tokens stream is
 * still being negotiated (spec 1.7.2, reference behaviour). The testbed's node-failover runs lost the Worker at the
 * generation's first request (the probe and the kills share a 5-s grid): on 50 ms links its failure is seen about when
 * the tokens stream's negotiation ends, and the replays that found it not written yet came back through the new
 * chain (run 19: 308 and 317 ms after detection, the three direct ones 170-192 ms).
 *
 * Real hosts on 127.0.0.1. The Driver's tokens streams take 150 ms to open (a stand-in for the negotiation's round
 * trip), hop 1 of the first route is a stopped host (its failure is seen at once), and the standby Worker holds each
 * request 300 ms before it forwards it (a stand-in for the two link delays to the Validator): TOKENS is written long
 * before the replay reaches the Validator, which then answers on the tokens stream.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { PIPELINE_TOKENS_PROTOCOL, staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage, RecoveryTiming } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config, 9)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
let driver: PipelineHost, dead: PipelineHost, standby: PipelineHost, validator: PipelineHost

beforeAll(async () => {
  const spans = [[0, 1], [1, L + 1], [1, L + 1], [L + 1, L + 2]]
  stages.push(...await Promise.all(spans.map(async ([a, b]) => await stage(config, a, b, params))))
  reference = await monolith(config, params)
  dead = await startHost({ stages: [stages[1]] })
  standby = await startHost({ stages: [stages[2]] })
  validator = await startHost({ stages: [stages[3]] })
  driver = await startHost({ stages: [stages[0]], router: staticRouter([]) })
  hosts.push(driver, standby, validator)
  await mesh([driver, dead, standby, validator])
  await dead.stop()
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

describe('a replay while the tokens stream is opening', () => {
  it('goes direct: its token comes on the tokens stream, not back through the new chain (was: on the route)', async () => {
    // the Driver's tokens streams open 150 ms late
    const cm = (driver.services.pipeline as any).components.connectionManager
    const openStream = cm.openStream.bind(cm)
    cm.openStream = async (peer: unknown, protocol: string | string[], options?: unknown) => {
      if ([protocol].flat().includes(PIPELINE_TOKENS_PROTOCOL)) await new Promise(resolve => setTimeout(resolve, 150))
      return await openStream(peer, protocol, options)
    }
    // the standby forwards each request 300 ms late
    const p = standby.services.pipeline as any
    const forward = p.forwardHop.bind(p)
    p.forwardHop = async (...args: unknown[]) => {
      await new Promise(resolve => setTimeout(resolve, 300))
      return await forward(...args)
    }
    driver.services.pipeline.setRouter(staticRouter([
      { peer: dead.peerId, start: 1, end: L + 1 },
      { peer: standby.peerId, start: 1, end: L + 1 },
      { peer: validator.peerId, start: L + 1, end: L + 2 }
    ]))
    const prompt = [...new TextEncoder().encode('replay')]
    const want = await referenceGreedy(reference, prompt, 4)
    const recoveries: RecoveryTiming[] = []
    const onRecovered = (e: CustomEvent<RecoveryTiming>): void => { recoveries.push(e.detail) }
    driver.services.pipeline.addEventListener('pipeline:recovered', onRecovered)
    const got: number[] = []
    try {
      for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 4, mirror: false })) got.push(t.id)
    } finally {
      driver.services.pipeline.removeEventListener('pipeline:recovered', onRecovered)
      cm.openStream = openStream
      p.forwardHop = forward
    }
    expect(got).toEqual(want.ids)
    // one recovery: the replay of the prompt at the first request, its token straight from the Validator
    expect(recoveries.map(r => [r.hop, r.tokens, r.direct])).toEqual([[1, prompt.length, true]])
  }, 30_000)
})
