/**
 * A record that overstates its KV headroom (spec pipeline §4.2 "a full hop", swarm-router 1.2.0 exclusions): a
 * replica announces far more room than its cache has, so the router prefers it. Its `KvCacheFullError` must not end
 * the generation and must not ban it (it is healthy): the session leaves it out (`exclude`) and goes on at a replica
 * with room, by its mirrored standby at the current position or by a new chain and a replay. The output is the
 * single-process model's.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNeuroShardHost, loadOrCreateIdentity } from '@neuroshard/host'
import { MemoryWeightStore, layerPool, layerPoolRecordValidator } from '@neuroshard/layer-pool'
import { buildModelGraph, modelParameters, preset } from '@neuroshard/model'
import { createPipelineStage, pipeline } from '@neuroshard/pipeline'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import { swarmRouter } from '../src/index.js'
import type { SwarmRouter } from '../src/index.js'
import type { Libp2p } from '@libp2p/interface'
import type { LayerPool } from '@neuroshard/layer-pool'
import type { Pipeline, PipelineStage } from '@neuroshard/pipeline'
import type { ShardExecutor } from '@neuroshard/runtime'

type Host = Libp2p<{ pipeline: Pipeline, swarmRouter: SwarmRouter, layerPool: LayerPool }>
const config = preset('tiny')
const L = config.nLayers
const FAST = { heartbeatIntervalMs: 300, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300 }
/** What the liar's cache really holds, in tokens of one session; it announces LIE */
const REAL_TOKENS = 24
const LIE = 1_000_000
const hosts: Host[] = []
const stages: PipelineStage[] = []
let liar: Host // lower peer id (wins a tie too), announces LIE, holds REAL_TOKENS
let honest: Host // room for 100 × REAL_TOKENS, announces it
let reference: ShardExecutor
let dir: string

async function until (condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

function spanWeights (store: MemoryWeightStore, start: number, end: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  for (let slot = start; slot < end; slot++) for (const [k, v] of store.get(slot) ?? []) out.set(k, v)
  return out
}

function announced (driver: Host, peer: Host): number | undefined {
  return driver.services.layerPool.records().get(peer.peerId.toString())?.record.spans.find(s => s.start <= 1 && s.end > 1)?.kvTokensLeft
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

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'overstated-headroom-'))
  const keys = await Promise.all([0, 1, 2].map(async i => (await loadOrCreateIdentity(join(dir, String(i)))).privateKey))
  const servers = keys.slice(1).sort((a, b) => a.publicKey.toString() < b.publicKey.toString() ? -1 : 1)
  const perToken = 2 * L * config.nKvHeads * (config.dModel / config.nHeads) * 4 // a whole-model stage's blocks
  const caps = new Map([[servers[0], REAL_TOKENS * perToken], [servers[1], 100 * REAL_TOKENS * perToken]])
  const stores = keys.map(() => new MemoryWeightStore())
  for (let i = 0; i < 3; i++) {
    let self: Host | undefined
    const lies = keys[i] === servers[0]
    const host = await createNeuroShardHost<any>({
      privateKey: keys[i],
      listen: ['/ip4/127.0.0.1/tcp/0'],
      transports: { quic: false, webrtcDirect: false, circuitRelay: false },
      recordValidators: { 'layer-pool': layerPoolRecordValidator() },
      services: {
        layerPool: layerPool({ ...FAST, config, memoryBytes: 4 * 1024 * 1024, weightStore: stores[i], kvTokensLeft: span => lies ? LIE : self?.services.pipeline.kvTokensLeft(span.start, span.end) }),
        // no load penalty: the session's own count on the liar would otherwise steer its next chain away from the liar
        // by itself, and the test would not see whether the full hop is excluded
        swarmRouter: swarmRouter({ probeIntervalMs: 0, loadPenaltyMs: 0 }),
        pipeline: pipeline({ ...(caps.has(keys[i]) ? { maxKvBytes: caps.get(keys[i]) } : {}), warmStandbys: false })
      }
    }) as Host
    self = host
    if (hosts.length > 0) await host.dial(hosts[0].getMultiaddrs()[0])
    hosts.push(host)
  }
  await hosts[1].dial(hosts[2].getMultiaddrs()[0])
  liar = hosts[keys.indexOf(servers[0])]
  honest = hosts[keys.indexOf(servers[1])]
  await Promise.all(hosts.map(async h => { await h.services.layerPool.whenServing({ signal: AbortSignal.timeout(60_000) }) }))
  for (let i = 0; i < 3; i++) {
    const held = hosts[i].services.layerPool.ownSpans().find(s => s.start === 0 && s.end === L + 2)
    if (held == null) throw new Error(`host ${i} should hold the whole model: ${JSON.stringify(hosts[i].services.layerPool.ownSpans())}`)
    const s = await createPipelineStage({ config, start: 0, end: i === 0 ? 1 : L + 2, parameters: spanWeights(stores[i], 0, L + 2), intraOpNumThreads: 1 })
    stages.push(s)
    hosts[i].services.pipeline.addStage(s)
  }
  reference = await createShardExecutor({ config, role: { kind: 'blocks', start: 0, end: L }, parameterSpecs: modelParameters(config), parameters: spanWeights(stores[0], 0, L + 2), intraOpNumThreads: 1, graphs: { forward: buildModelGraph(config, 'inference').bytes } })
  await until(() => announced(hosts[0], liar) === LIE && announced(hosts[0], honest) === 100 * REAL_TOKENS, 30_000,
    `the Driver reads both servers' records (${String(announced(hosts[0], liar))}, ${String(announced(hosts[0], honest))})`)
  // the liar's real room
  expect(liar.services.pipeline.kvTokensLeft(0, L + 2)).toBe(REAL_TOKENS)
}, 120_000)

afterAll(async () => {
  await Promise.all(hosts.map(async h => { await Promise.resolve(h.stop()).catch(() => {}) }))
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
  if (dir != null) await rm(dir, { recursive: true, force: true })
})

interface Seen { failovers: number, switches: Array<{ peer: string, standby: string, position: number }> }

function watch (driver: Host): { seen: Seen, stop: () => void } {
  const seen: Seen = { failovers: 0, switches: [] }
  const onFailover = (): void => { seen.failovers++ }
  const onSwitch = (e: CustomEvent<{ peer: { toString(): string }, standby: { toString(): string }, position: number }>): void => {
    seen.switches.push({ peer: e.detail.peer.toString(), standby: e.detail.standby.toString(), position: e.detail.position })
  }
  driver.services.pipeline.addEventListener('pipeline:failover', onFailover)
  driver.services.pipeline.addEventListener('pipeline:switched', onSwitch as any)
  return {
    seen,
    stop: () => {
      driver.services.pipeline.removeEventListener('pipeline:failover', onFailover)
      driver.services.pipeline.removeEventListener('pipeline:switched', onSwitch as any)
    }
  }
}

/** Generate greedily from the Driver, noting which server held the session at each token */
async function run (prompt: number[], n: number, mirror: boolean): Promise<{ ids: number[], on: Array<{ liar: number, honest: number }>, seen: Seen }> {
  const w = watch(hosts[0])
  const ids: number[] = []
  const on: Array<{ liar: number, honest: number }> = []
  try {
    for await (const t of hosts[0].services.pipeline.generate(prompt, { maxNewTokens: n, mirror })) {
      ids.push(t.id)
      on.push({ liar: liar.services.pipeline.sessionStats().sessions, honest: honest.services.pipeline.sessionStats().sessions })
    }
  } finally {
    w.stop()
  }
  return { ids, on, seen: w.seen }
}

describe('a record that overstates its KV headroom', () => {
  it('the router believes it: the liar is the chain\'s hop for a session it cannot hold', () => {
    const plan = hosts[0].services.swarmRouter.plan(1, L + 2, 3 * REAL_TOKENS)!
    expect(plan.chain.hops[0].peer).toBe(liar.peerId.toString())
    expect(plan.standbys[0]?.peer).toBe(honest.peerId.toString())
  })

  it('a prompt the liar cannot take: KvCacheFullError at the prefill, the session goes to the honest replica (new chain, from position 0), no ban', async () => {
    const prompt = Array.from({ length: REAL_TOKENS + 6 }, (_, i) => 97 + (i % 26))
    const n = 10
    const want = await greedy(prompt, n)
    const { ids, on, seen } = await run(prompt, n, true)
    expect(ids).toEqual(want)
    // every token came from the honest replica; the liar never held the session
    expect(on.every(s => s.liar === 0 && s.honest === 1)).toBe(true)
    expect(seen.failovers).toBe(0)
    expect(seen.switches).toEqual([])
    expect(hosts[0].services.swarmRouter.isBanned(liar.peerId)).toBe(false)
    // the next session is routed to the liar again (its record still says so): it was not banned
    expect(hosts[0].services.swarmRouter.plan(1, L + 2, 3 * REAL_TOKENS)!.chain.hops[0].peer).toBe(liar.peerId.toString())
  })

  it('a session that outgrows the liar mid-generation moves to the mirrored standby at that position (or, without mirrors, by a replay), no ban', async () => {
    const prompt = [...new TextEncoder().encode('overstated')]
    const n = 3 * REAL_TOKENS - prompt.length
    const want = await greedy(prompt, n)
    for (const mirror of [true, false]) {
      await until(() => liar.services.pipeline.sessionStats().sessions === 0 && honest.services.pipeline.sessionStats().sessions === 0, 10_000, 'the previous sessions are closed')
      const { ids, on, seen } = await run(prompt, n, mirror)
      expect(ids, `mirror: ${String(mirror)}`).toEqual(want)
      // the liar held the session while it had room (its cache is full after REAL_TOKENS tokens: the token after
      // that is refused), the honest replica after it
      // (token k is answered with the prompt and k tokens in the cache: tokens 0 … REAL_TOKENS − prompt fit)
      const moved = REAL_TOKENS - prompt.length + 1
      expect(on.slice(0, moved).every(s => s.liar === 1), JSON.stringify(on)).toBe(true)
      expect(on.slice(moved).every(s => s.honest === 1), JSON.stringify(on)).toBe(true)
      await until(() => liar.services.pipeline.sessionStats().sessions === 0, 10_000, 'the Driver closed the liar\'s session')
      expect(seen.failovers).toBe(0)
      expect(seen.switches).toEqual(mirror ? [{ peer: liar.peerId.toString(), standby: honest.peerId.toString(), position: REAL_TOKENS }] : [])
      expect(hosts[0].services.swarmRouter.isBanned(liar.peerId)).toBe(false)
    }
  })
})
