/**
 * A Worker killed and restarted must not stay banned for its outage's failures (testbed node-failover run 19: two
 * completions failed with `NoRouteError: no chain of live, unbanned spans covers slots [1, 4) (1 candidates)` from the
 * re-route after a Worker was killed). While a killed Worker's record lives, every session, training micro-batch and
 * ping that tries it reports it, and each report after a ban ends doubles the next (1, 2, 4, 8, 16 s): the count
 * (5 here) outlived the process, so when it came back 30 s later it was still banned, and any later failure of it
 * banned it for 2^count s. When the other replica of its span was then killed, the Driver had no chain.
 *
 * Real pipeline hosts on loopback, the router as their Driver's service, layer-pool-shaped records with their issue
 * and expiry times (a restart shows as a record issued after the one the Worker failed under expired: a whole
 * record lifetime without one), the router's clock a stand-in (the bans' times), the restarted Worker a new
 * host with the same key.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultLogger } from '@libp2p/logger'
import { createNeuroShardHost } from '@neuroshard/host'
import { buildModelGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { createPipelineStage, pipeline } from '@neuroshard/pipeline'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import { swarmRouter } from '../src/index.js'
import type { RecordSource, SwarmRouter } from '../src/index.js'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Pipeline, PipelineStage } from '@neuroshard/pipeline'
import type { ShardExecutor } from '@neuroshard/runtime'

type Host = Libp2p<{ pipeline: Pipeline, swarmRouter: SwarmRouter }>
type Entry = { record: { peerId: PeerId, spans: Array<{ start: number, end: number, state: string, throughput: number }>, issuedAt: number, expiresAt: number } }
const config = preset('tiny')
const params = new Map<string, Float32Array>(modelParameters(config).map(p => [p.name, initParameter(config, p, 23)]))
const hosts: Host[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
const records = new Map<string, Entry>()
const source: RecordSource = { records: () => records }
/** The router's clock, ms */
let clock = 1_000_000
const TTL = 10_000

function announce (peerId: PeerId, start: number, end: number, issuedAt: number): void {
  records.set(peerId.toString(), { record: { peerId, spans: [{ start, end, state: 'serving', throughput: 0 }], issuedAt, expiresAt: issuedAt + TTL } })
}

/** `dataDir`: where the host keeps its key (a restart with the same one has the same peer id) */
async function startHost (stage: PipelineStage | undefined, router: boolean, dataDir?: string): Promise<Host> {
  return await createNeuroShardHost<any>({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    ...(dataDir != null ? { dataDir } : {}),
    services: {
      pipeline: pipeline({ stages: stage != null ? [stage] : [] }),
      ...(router ? { swarmRouter: swarmRouter({ records: source, probeIntervalMs: 0, now: () => clock }) } : {})
    }
  }) as Host
}

async function greedy (prompt: number[], n: number): Promise<number[]> {
  const all = [...prompt]
  for (let i = 0; i < n; i++) {
    const logits = (await reference.forward({ input_ids: int64(BigInt64Array.from(all, BigInt), [1, all.length]) })).logits.data as Float32Array
    const row = logits.subarray((all.length - 1) * config.vocabSize, all.length * config.vocabSize)
    let best = 0
    for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k
    all.push(best)
  }
  return all.slice(prompt.length)
}

const stage = async (start: number, end: number): Promise<PipelineStage> => await createPipelineStage({ config, start, end, parameters: params, intraOpNumThreads: 1 })
const dirA = mkdtempSync(join(tmpdir(), 'swarm-router-restart-'))

beforeAll(async () => {
  // Driver [0,1) · Workers A, B [1,3) · Validator [3,4)
  stages.push(await stage(0, 1), await stage(1, 3), await stage(1, 3), await stage(3, 4))
  reference = await createShardExecutor({ config, role: { kind: 'blocks', start: 0, end: 2 }, parameterSpecs: modelParameters(config), parameters: params, intraOpNumThreads: 1, graphs: { forward: buildModelGraph(config, 'inference').bytes } })
  const a = await startHost(stages[1], false, dirA)
  const b = await startHost(stages[2], false)
  const v = await startHost(stages[3], false)
  const driver = await startHost(stages[0], true)
  hosts.push(driver, a, b, v)
  announce(a.peerId, 1, 3, clock)
  announce(b.peerId, 1, 3, clock)
  announce(v.peerId, 3, 4, clock)
  for (const h of [a, b, v]) await driver.dial(h.getMultiaddrs()[0])
  for (const h of [a, b]) await h.dial(v.getMultiaddrs()[0])
}, 60_000)

afterAll(async () => {
  await Promise.all(hosts.map(async h => { await Promise.resolve(h.stop()).catch(() => {}) }))
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
  rmSync(dirA, { recursive: true, force: true })
})

describe('a restarted Worker', () => {
  it('takes over when the other replica of its span is killed mid-generation (was: still banned for its outage, NoRouteError)', async () => {
    const [driver, a, b, v] = hosts
    const router = driver.services.swarmRouter
    const prompt = [...new TextEncoder().encode('restart')]
    const want = await greedy(prompt, 10)

    // A serves first and is killed mid-generation: the Driver fails over to B
    router.observeRtt(a.peerId, 1)
    router.observeRtt(b.peerId, 5)
    let got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 10 })) {
      got.push(t.id)
      if (got.length === 3) await a.stop()
    }
    expect(got).toEqual(want)
    expect(router.isBanned(a.peerId)).toBe(true)
    // A's record lives on for a while: what used it (sessions, micro-batches, pings) reports it after each ban ends
    for (const after of [1_000, 3_000, 7_000, 15_000]) {
      clock = 1_000_000 + after
      router.reportFailure(a.peerId, new Error('dial refused'))
    }
    clock = 1_000_000 + 30_000
    expect(router.isBanned(a.peerId)).toBe(true) // 16 s from its fifth failure
    // its record lapses (no heartbeat from a dead process): gone from the view
    records.delete(a.peerId.toString())
    expect(router.candidates().some(c => c.peer === a.peerId.toString())).toBe(false)

    // 30 s after the kill A is back, with the same key and a new record (issued after the last one expired)
    const a2 = await startHost(stages[1], false, dirA)
    hosts.push(a2)
    expect(a2.peerId.equals(a.peerId)).toBe(true)
    await a2.dial(v.getMultiaddrs()[0])
    await driver.dial(a2.getMultiaddrs()[0])
    announce(a2.peerId, 1, 3, clock)

    // now B, the chain's hop, is killed mid-generation: A is the only replica of [1, 3)
    router.observeRtt(b.peerId, 1)
    got = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 10 })) {
      got.push(t.id)
      if (got.length === 3) await b.stop()
    }
    expect(got).toEqual(want)
    expect(router.isBanned(b.peerId)).toBe(true)
    expect(router.isBanned(a2.peerId)).toBe(false)
  }, 60_000)
})

describe('bans of a restarted peer (router alone)', () => {
  const logger = defaultLogger()
  const standIn = (id: string): PeerId => ({ toString: () => id, equals: (o: any) => o?.toString() === id }) as unknown as PeerId
  const self = standIn('12D3KooW-driver')
  const peer = standIn('12D3KooW-worker')

  function fixture (): { router: SwarmRouter, set: (issuedAt: number) => void, drop: () => void } {
    const recs = new Map<string, Entry>()
    const router = swarmRouter({ records: { records: () => recs }, probeIntervalMs: 0, now: () => clock })({ peerId: self, logger })
    return {
      router,
      set: (issuedAt) => { recs.set(peer.toString(), { record: { peerId: peer, spans: [{ start: 1, end: 3, state: 'serving', throughput: 0 }], issuedAt, expiresAt: issuedAt + TTL } }) },
      drop: () => { recs.delete(peer.toString()) }
    }
  }

  it('a failure after the restart starts again from the base ban (was: 2^count s from the outage before it)', () => {
    clock = 5_000_000
    const { router, set, drop } = fixture()
    set(clock)
    for (const at of [0, 1_000, 3_000, 7_000, 15_000]) {
      clock = 5_000_000 + at
      router.reportFailure(peer)
    }
    drop()
    clock = 5_000_000 + 40_000 // its last ban (16 s) has ended
    expect(router.isBanned(peer)).toBe(false)
    set(clock) // restarted
    expect(router.candidates().map(c => c.peer)).toEqual([peer.toString()])
    router.reportFailure(peer) // e.g. its stage rebuilt under a session
    clock += 1_001
    expect(router.isBanned(peer)).toBe(false)
  })

  it('a live peer\'s next record (issued before the failed one expired) keeps its ban and count', () => {
    clock = 6_000_000
    const { router, set } = fixture()
    set(clock)
    router.reportFailure(peer)
    clock += 1_000
    router.reportFailure(peer) // 2 s ban
    set(clock) // its heartbeat: the next record, 1 s after the failed one was issued
    clock += 1_500
    expect(router.isBanned(peer)).toBe(true)
    clock += 600
    expect(router.isBanned(peer)).toBe(false)
    router.reportFailure(peer) // third failure: 4 s
    clock += 3_900
    expect(router.isBanned(peer)).toBe(true)
  })
})
