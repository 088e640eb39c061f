/**
 * One stream per session link (spec §2): a request sent while the link's stream is still being opened waits for that
 * stream instead of opening a second one, which the server would run beside the first, out of order. The race, made
 * deterministic: the Driver's first session stream to hop 1's mirrored standby is held open-pending until the third
 * token, so the mirrors of the prompt and the next tokens are all sent while it opens. They must go out on one stream,
 * in order: the standby then holds the session in step and is switched in without a replay when hop 1 dies.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { kvBytesPerToken, PIPELINE_SESSION_PROTOCOL, staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { PeerId } from '@libp2p/interface'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config, 17)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor

beforeAll(async () => {
  stages.push(...await Promise.all([[0, 1], [1, L + 1], [1, L + 1], [L + 1, L + 2]].map(async ([a, b]) => await stage(config, a, b, params))))
  reference = await monolith(config, params)
  const servers = await Promise.all(stages.slice(1).map(async s => await startHost({ stages: [s] })))
  // w1a first: hop 1 of the chain; w1b its standby
  const router = staticRouter(servers.map((h, i) => ({ peer: h.peerId, start: stages[i + 1].start, end: stages[i + 1].end })))
  // no WARM and no spare stream to the standby: the mirrors' link must be opened by the mirrors themselves
  const driver = await startHost({ stages: [stages[0]], router, warmStandbys: false })
  hosts.push(driver, ...servers)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

describe('one stream per session link', () => {
  it('mirrors sent while the standby\'s stream opens wait for it: one stream, in order, the standby in step and switched in', async () => {
    const [driver, w1a, w1b] = hosts
    const cm = (driver as any).components.connectionManager
    const open = cm.openStream.bind(cm)
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    let opened = 0 // session streams the Driver opened to the standby
    cm.openStream = async (peer: PeerId, protocol: string | string[], options?: unknown) => {
      if (peer.equals(w1b.peerId) && protocol === PIPELINE_SESSION_PROTOCOL) {
        opened++
        await gate
      }
      return await open(peer, protocol, options)
    }
    const switches: Array<{ standby: string, hop: number, position: number }> = []
    driver.services.pipeline.addEventListener('pipeline:switched', e => { switches.push({ standby: e.detail.standby.toString(), hop: e.detail.hop, position: e.detail.position }) })
    const prompt = [...new TextEncoder().encode('one stream')]
    const n = 12
    const want = await referenceGreedy(reference, prompt, n)
    const got: number[] = []
    const perToken = kvBytesPerToken(stages[2])
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n })) {
      got.push(t.id)
      if (got.length === 3) {
        // the mirrors of the prompt and of tokens 1 and 2 were sent while the stream was opening
        expect(w1b.services.pipeline.sessionStats().bytes).toBe(0)
        release()
      }
      if (got.length === 7) {
        // the standby holds what the chain holds: the prompt and the 6 tokens fed back
        const deadline = Date.now() + 30_000
        while (w1b.services.pipeline.sessionStats().bytes !== perToken * (prompt.length + 6)) {
          if (Date.now() > deadline) throw new Error(`the standby holds ${w1b.services.pipeline.sessionStats().bytes} KV bytes, expected ${perToken * (prompt.length + 6)}`)
          await new Promise(resolve => setTimeout(resolve, 5))
        }
        await w1a.stop()
      }
    }
    expect(opened).toBe(1)
    expect(got).toEqual(want.ids)
    // switched in at the chain's position, nothing replayed: its mirrors arrived in order on the one stream
    expect(switches).toEqual([{ standby: w1b.peerId.toString(), hop: 1, position: prompt.length + 6 }])
  })
})
