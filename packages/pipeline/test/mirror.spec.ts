/**
 * Mirrored standbys (spec §4.2, revision 1.4.0): every INFER of a session is mirrored to each hop's standby (by the
 * Driver for hop 1, by hop i − 1 for hop i), so a failed hop is replaced by its standby **without a replay**: the
 * next request continues at the current position. Checked on real hosts against the single-process model (tokens
 * and logits), with the standbys' caches inspected while the generation runs, and against the replay path
 * (`mirror: false`) as a control.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { preset } from '@neuroshard/model'
import { kvBytesPerToken } from '../src/index.js'
import { maxAbsDiff, monolith, referenceGreedy, stage, startChain, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage, RecoveryTiming } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const params = weights(config, 13)
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

/** Driver [0,1) · W1a, W1b [1,2) · W2a, W2b [2,3) · Validator [3,4) (b: the standbys, listed after a) */
async function setup (): Promise<{ driver: PipelineHost, w1a: PipelineHost, w1b: PipelineHost, w2a: PipelineHost, w2b: PipelineHost, validator: PipelineHost }> {
  const chain = await startChain(config, params, [[0, 1], [1, 2], [1, 2], [2, 3], [2, 3], [3, 4]])
  hosts = chain.hosts
  stages = chain.stages
  reference = await monolith(config, params)
  const [driver, w1a, w1b, w2a, w2b, validator] = hosts
  return { driver, w1a, w1b, w2a, w2b, validator }
}

interface Seen { failovers: Array<{ peer: string, hop: number }>, switches: Array<{ peer: string, standby: string, hop: number, position: number }> }

function watch (driver: PipelineHost): Seen {
  const seen: Seen = { failovers: [], switches: [] }
  driver.services.pipeline.addEventListener('pipeline:failover', e => { seen.failovers.push({ peer: e.detail.peer.toString(), hop: e.detail.hop }) })
  driver.services.pipeline.addEventListener('pipeline:switched', e => {
    seen.switches.push({ peer: e.detail.peer.toString(), standby: e.detail.standby.toString(), hop: e.detail.hop, position: e.detail.position })
  })
  return seen
}

/** Wait until `host` holds KV bytes for exactly `tokens` tokens of one session of `stage` (its mirrors arrive in the background) */
async function holds (host: PipelineHost, stage: PipelineStage, tokens: number): Promise<void> {
  const want = kvBytesPerToken(stage) * tokens
  const deadline = Date.now() + 30_000
  while (host.services.pipeline.sessionStats().bytes !== want) {
    if (Date.now() > deadline) throw new Error(`standby holds ${host.services.pipeline.sessionStats().bytes} KV bytes, expected ${want} (${tokens} tokens)`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

describe('mirrored standbys', () => {
  it('killing the Driver\'s neighbour, then a Worker two hops away: both standbys take over in step, nothing replayed, output and logits of the single-process model', async () => {
    const { driver, w1a, w1b, w2a, w2b } = await setup()
    const prompt = [...new TextEncoder().encode('Mirror, mirror')]
    const n = 20
    const want = await referenceGreedy(reference!, prompt, n)
    const seen = watch(driver)
    const got: number[] = []
    const logits: Float32Array[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n, returnLogits: true })) {
      got.push(t.id)
      logits.push(t.logits!)
      if (got.length === 6) {
        // both standbys hold the session as far as the chain does: the prompt and the tokens fed back so far
        await holds(w1b, stages[2], prompt.length + 5)
        await holds(w2b, stages[4], prompt.length + 5)
        await w1a.stop() // seen by the Driver (hop 1), whose mirror fed w1b
      }
      if (got.length === 13) {
        await holds(w2b, stages[4], prompt.length + 12)
        await w2a.stop() // seen by w1b (hop 1 now), which reports hop 2; w1b's own mirrors fed w2b after the switch
      }
    }
    expect(got).toEqual(want.ids)
    for (let i = 0; i < n; i++) expect(maxAbsDiff(logits[i], want.logits[i])).toBeLessThan(1e-4)
    expect(seen.failovers).toEqual([{ peer: w1a.peerId.toString(), hop: 1 }, { peer: w2a.peerId.toString(), hop: 2 }])
    // no replay: each switch continued at the position the chain had reached (prompt + the tokens fed back)
    expect(seen.switches).toEqual([
      { peer: w1a.peerId.toString(), standby: w1b.peerId.toString(), hop: 1, position: prompt.length + 5 },
      { peer: w2a.peerId.toString(), standby: w2b.peerId.toString(), hop: 2, position: prompt.length + 12 }
    ])
  })

  it('control: with `mirror: false` the standbys hold nothing and the failed hop is replaced by a replay', async () => {
    const { driver, w1a, w1b, w2b } = await setup()
    const prompt = [...new TextEncoder().encode('Mirror, mirror')]
    const n = 12
    const want = await referenceGreedy(reference!, prompt, n)
    const seen = watch(driver)
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n, mirror: false })) {
      got.push(t.id)
      if (got.length === 6) {
        expect(w1b.services.pipeline.sessionStats().bytes).toBe(0)
        expect(w2b.services.pipeline.sessionStats().bytes).toBe(0)
        await w1a.stop()
      }
    }
    expect(got).toEqual(want.ids)
    expect(seen.failovers).toEqual([{ peer: w1a.peerId.toString(), hop: 1 }])
    expect(seen.switches).toEqual([])
  })

  it('a standby that fell out of step (it rebuilt its stage: the next mirror is refused) is not switched in blind: the Driver replays', async () => {
    const { driver, w1a, w1b } = await setup()
    const prompt = [...new TextEncoder().encode('Mirror, mirror')]
    const n = 14
    const want = await referenceGreedy(reference!, prompt, n)
    const seen = watch(driver)
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n })) {
      got.push(t.id)
      if (got.length === 4) {
        await holds(w1b, stages[2], prompt.length + 3)
        // the standby rebuilds its stage (e.g. after a weight update): its caches of the old stage are no good, the
        // next mirror is refused (UnknownSessionError) and the Driver must not count on it
        const fresh = await stage(config, 1, 2, params)
        stages.push(fresh)
        w1b.services.pipeline.removeStage(w1b.services.pipeline.stages()[0])
        w1b.services.pipeline.addStage(fresh)
      }
      if (got.length === 8) await w1a.stop()
    }
    expect(got).toEqual(want.ids)
    expect(seen.failovers).toEqual([{ peer: w1a.peerId.toString(), hop: 1 }])
    expect(seen.switches).toEqual([]) // the router's new chain (w1b) got the whole sequence again
  })

  it('a deeper hop\'s standby out of step (its mirrors come from hop 1, the Driver cannot know): the blind switch is refused and the Driver replays', async () => {
    const { driver, w2a, w2b } = await setup()
    const prompt = [...new TextEncoder().encode('Mirror, mirror')]
    const n = 14
    const want = await referenceGreedy(reference!, prompt, n)
    const seen = watch(driver)
    const recovered: RecoveryTiming[] = []
    driver.services.pipeline.addEventListener('pipeline:recovered', e => { recovered.push(e.detail) })
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n })) {
      got.push(t.id)
      if (got.length === 4) {
        await holds(w2b, stages[4], prompt.length + 3)
        // hop 2's standby rebuilds its stage: the next mirror from hop 1 is refused, which only hop 1 sees
        const fresh = await stage(config, 2, 3, params)
        stages.push(fresh)
        w2b.services.pipeline.removeStage(w2b.services.pipeline.stages()[0])
        w2b.services.pipeline.addStage(fresh)
      }
      if (got.length === 8) await w2a.stop()
    }
    expect(got).toEqual(want.ids)
    expect(seen.failovers).toEqual([{ peer: w2a.peerId.toString(), hop: 2 }])
    // the Driver switched to the standby it had no reason to doubt, which refused the session (it holds none): the
    // sequence was replayed on that chain, in one recovery of two attempts
    expect(seen.switches.map(s => [s.peer, s.standby, s.hop])).toEqual([[w2a.peerId.toString(), w2b.peerId.toString(), 2]])
    expect(recovered.map(r => [r.hop, r.attempts, r.switched, r.tokens])).toEqual([[2, 2, false, prompt.length + 8]])
  })
})
