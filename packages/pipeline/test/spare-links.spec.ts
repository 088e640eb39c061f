/**
 * Spare session streams (warm standby links) kept between sessions (issue 15, testbed node-failover run 21).
 *
 * In the testbed a Worker A of the Validator span is killed while it is hop 1, the routes move to the other replica B,
 * A restarts 30 s later and becomes B's standby, and then B is killed: the failover to A must find a spare session
 * stream to A. Before this change it did not: the spare to A opened before A's kill stayed in the Driver's spares
 * (dead, until its 150-s age limit) and every later `openSpare(A)` saw a spare and opened none, so the replay
 * negotiated a stream on the way (run 21: `link` 109 ms, failover 231 ms after detection).
 *
 * Real hosts on 127.0.0.1. A restart is stood in for by closing the Driver's connection to the peer and dialling it
 * again (what a restart does to the Driver's streams: they die with the old connection, and a new connection comes).
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { staticRouter } from '../src/index.js'
import { peerBytes } from '../src/peer.js'
import { monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage, RecoveryTiming } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'
import type { PeerId, Stream } from '@libp2p/interface'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config, 11)
const stages: PipelineStage[] = []
let reference: ShardExecutor

beforeAll(async () => {
  // the Driver's embedding, and two replicas of the rest (each the Validator of a one-hop route, as in the testbed)
  const spans = [[0, 1], [1, L + 2], [1, L + 2]]
  stages.push(...await Promise.all(spans.map(async ([a, b]) => await stage(config, a, b, params))))
  reference = await monolith(config, params)
}, 60_000)

afterAll(async () => {
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

/** The Driver's spare stream to `peer`, if it has one (the pipeline's private map) */
function spareTo (driver: PipelineHost, peer: PeerId): Stream | undefined {
  const key = Buffer.from(peerBytes(peer)).toString('hex')
  return ((driver.services.pipeline as any).spares as Map<string, { stream: Stream }>).get(key)?.stream
}

async function until (what: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!what()) {
    if (Date.now() > end) return false
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return true
}

async function generate (driver: PipelineHost, prompt: number[], n: number, recoveries?: RecoveryTiming[]): Promise<number[]> {
  const onRecovered = (e: CustomEvent<RecoveryTiming>): void => { recoveries?.push(e.detail) }
  driver.services.pipeline.addEventListener('pipeline:recovered', onRecovered)
  const got: number[] = []
  try {
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n, mirror: false })) got.push(t.id)
  } finally {
    driver.services.pipeline.removeEventListener('pipeline:recovered', onRecovered)
  }
  return got
}

/** A Driver (the embedding) connected to two replicas A and B of the rest, routed A first with B its standby */
async function startTrio (driverOptions: Omit<Parameters<typeof startHost>[0], 'stages' | 'router'> = {}): Promise<{ driver: PipelineHost, a: PipelineHost, b: PipelineHost, hosts: PipelineHost[] }> {
  const a = await startHost({ stages: [stages[1]] })
  const b = await startHost({ stages: [stages[2]] })
  const router = staticRouter([{ peer: a.peerId, start: 1, end: L + 2 }, { peer: b.peerId, start: 1, end: L + 2 }])
  const driver = await startHost({ ...driverOptions, stages: [stages[0]], router })
  await driver.dial(a.getMultiaddrs()[0])
  await driver.dial(b.getMultiaddrs()[0])
  return { driver, a, b, hosts: [driver, a, b] }
}

describe('spare session streams to standbys', () => {
  it('a standby whose connection was replaced gets a new spare: the failover to it negotiates no stream (was: the dead spare kept, link > 0)', async () => {
    const { driver, a, b, hosts } = await startTrio()
    try {
      const prompt = [...new TextEncoder().encode('spares!')]
      const want = await referenceGreedy(reference, prompt, 3)
      // session 1: route A, standby B (warmed, a spare stream to it)
      expect(await generate(driver, prompt, 3)).toEqual(want.ids)
      expect(await until(() => spareTo(driver, b.peerId)?.status === 'open', 5_000)).toBe(true)
      // B "restarts": its connection (and the spare on it) goes, a new one comes
      const old = spareTo(driver, b.peerId)!
      await driver.hangUp(b.peerId)
      expect(await until(() => old.status !== 'open', 5_000)).toBe(true)
      await driver.dial(b.getMultiaddrs()[0])
      // session 2: B is the standby again; the Driver opens a new spare to it
      expect(await generate(driver, prompt, 3)).toEqual(want.ids)
      await until(() => { const s = spareTo(driver, b.peerId); return s != null && s !== old && s.status === 'open' }, 3_000)
      // A dies; session 3 fails at its first request and replays on B
      await a.stop()
      const recoveries: RecoveryTiming[] = []
      expect(await generate(driver, prompt, 3, recoveries)).toEqual(want.ids)
      expect(recoveries.map(r => [r.hop, r.tokens])).toEqual([[1, prompt.length]])
      // the replay adopted a spare (`link` 0), it did not negotiate a session stream to B on the way
      expect(recoveries[0].ms.link).toBe(0)
    } finally {
      await stopAll(hosts)
    }
  }, 60_000)

  it('a spare to a peer still in use is replaced when it reaches its age limit, not only dropped (was: none until the next session asked)', async () => {
    // spares live sessionTtlMs / 2 = 1 s; swept every 100 ms
    const { driver, b, hosts } = await startTrio({ sessionTtlMs: 2_000, sweepIntervalMs: 100 })
    try {
      const prompt = [...new TextEncoder().encode('rotate')]
      const want = await referenceGreedy(reference, prompt, 2)
      expect(await generate(driver, prompt, 2)).toEqual(want.ids)
      expect(await until(() => spareTo(driver, b.peerId)?.status === 'open', 5_000)).toBe(true)
      const first = spareTo(driver, b.peerId)!
      // past its age limit, with no session since: a new spare to the standby, the old one closed
      expect(await until(() => { const s = spareTo(driver, b.peerId); return s != null && s !== first && s.status === 'open' }, 5_000)).toBe(true)
      expect(await until(() => first.status !== 'open', 5_000)).toBe(true)
    } finally {
      await stopAll(hosts)
    }
  }, 60_000)
})
