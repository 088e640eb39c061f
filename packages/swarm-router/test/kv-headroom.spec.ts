/**
 * KV-cache headroom in the route cost, end to end: each node's pipeline says how many tokens of one more session
 * its caches can hold (`kvTokensLeft`), its layer-pool record announces it, and the Driver's router charges a hop
 * `kvPenaltyMs · tokens / headroom` (skipping it when the session does not fit). Two replicas hold the whole
 * model; the one the tie-break would pick (lower peer id) has the smaller KV cache.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNeuroShardHost, loadOrCreateIdentity } from '@neuroshard/host'
import { MemoryWeightStore, layerPool, layerPoolRecordValidator } from '@neuroshard/layer-pool'
import { preset } from '@neuroshard/model'
import { createPipelineStage, kvBytesPerToken, pipeline } from '@neuroshard/pipeline'
import { swarmRouter } from '../src/index.js'
import type { SwarmRouter } from '../src/index.js'
import type { Libp2p } from '@libp2p/interface'
import type { LayerPool } from '@neuroshard/layer-pool'
import type { Pipeline, PipelineStage } from '@neuroshard/pipeline'

type Host = Libp2p<{ pipeline: Pipeline, swarmRouter: SwarmRouter, layerPool: LayerPool }>
const config = preset('tiny')
const L = config.nLayers
const FAST = { heartbeatIntervalMs: 300, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300 }
const hosts: Host[] = []
const stages: PipelineStage[] = []
let tight: Host // lower peer id, room for TIGHT_TOKENS
let roomy: Host // room for 100 × TIGHT_TOKENS
const TIGHT_TOKENS = 48
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

/** What the Driver's records say about `peer`'s span holding slot 1 */
function announced (driver: Host, peer: Host): number | undefined {
  return driver.services.layerPool.records().get(peer.peerId.toString())?.record.spans.find(s => s.start <= 1 && s.end > 1)?.kvTokensLeft
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kv-headroom-'))
  const keys = await Promise.all([0, 1, 2].map(async i => (await loadOrCreateIdentity(join(dir, String(i)))).privateKey))
  // the two servers: the lower peer id (what a cost tie picks) gets the small cache (an Ed25519 key's string is its peer id)
  const servers = keys.slice(1).sort((a, b) => a.publicKey.toString() < b.publicKey.toString() ? -1 : 1)
  const perToken = 2 * L * config.nKvHeads * (config.dModel / config.nHeads) * 4 // a whole-model stage's blocks
  const caps = new Map([[servers[0], TIGHT_TOKENS * perToken], [servers[1], 100 * TIGHT_TOKENS * perToken]])
  const stores = keys.map(() => new MemoryWeightStore())
  for (let i = 0; i < 3; i++) {
    let self: Host | undefined
    const host = await createNeuroShardHost<any>({
      privateKey: keys[i],
      listen: ['/ip4/127.0.0.1/tcp/0'],
      transports: { quic: false, webrtcDirect: false, circuitRelay: false },
      recordValidators: { 'layer-pool': layerPoolRecordValidator() },
      services: {
        layerPool: layerPool({ ...FAST, config, memoryBytes: 4 * 1024 * 1024, weightStore: stores[i], kvTokensLeft: span => self?.services.pipeline.kvTokensLeft(span.start, span.end) }),
        swarmRouter: swarmRouter({ probeIntervalMs: 0 }),
        pipeline: pipeline({ ...(caps.has(keys[i]) ? { maxKvBytes: caps.get(keys[i]) } : {}), warmStandbys: false })
      }
    }) as Host
    self = host
    if (hosts.length > 0) await host.dial(hosts[0].getMultiaddrs()[0])
    hosts.push(host)
  }
  await hosts[1].dial(hosts[2].getMultiaddrs()[0])
  tight = hosts[keys.indexOf(servers[0])]
  roomy = hosts[keys.indexOf(servers[1])]
  expect(tight.peerId.toString() < roomy.peerId.toString()).toBe(true)
  await Promise.all(hosts.map(async h => { await h.services.layerPool.whenServing({ signal: AbortSignal.timeout(60_000) }) }))
  // 4 MiB each: every node holds the whole model; the Driver (host 0) runs only slot 0 and routes the rest
  for (let i = 0; i < 3; i++) {
    const held = hosts[i].services.layerPool.ownSpans().find(s => s.start === 0 && s.end === L + 2)
    if (held == null) throw new Error(`host ${i} should hold the whole model: ${JSON.stringify(hosts[i].services.layerPool.ownSpans())}`)
    const s = await createPipelineStage({ config, start: 0, end: i === 0 ? 1 : L + 2, parameters: spanWeights(stores[i], 0, L + 2), intraOpNumThreads: 1 })
    stages.push(s)
    hosts[i].services.pipeline.addStage(s)
  }
  expect(kvBytesPerToken(stages[1])).toBe(2 * L * config.nKvHeads * (config.dModel / config.nHeads) * 4)
  await until(() => announced(hosts[0], tight) === TIGHT_TOKENS && announced(hosts[0], roomy) === 100 * TIGHT_TOKENS, 30_000,
    `the Driver reads both servers' KV headroom from their records (${String(announced(hosts[0], tight))}, ${String(announced(hosts[0], roomy))})`)
}, 120_000)

afterAll(async () => {
  await Promise.all(hosts.map(async h => { await Promise.resolve(h.stop()).catch(() => {}) }))
  await Promise.all(stages.map(async s => { await s.close() }))
  if (dir != null) await rm(dir, { recursive: true, force: true })
})

describe('KV headroom in the route cost (records → router → pipeline)', () => {
  it('without a session length the replicas tie and the lower peer id (the small cache) wins', () => {
    expect(hosts[0].services.swarmRouter.plan(1, L + 2)!.chain.hops[0].peer).toBe(tight.peerId.toString())
  })

  it('a session that would fill the small cache goes to the roomy replica; one that does not fit is never sent there', async () => {
    const router = hosts[0].services.swarmRouter
    // 40 of 48 tokens: 20 · 40/48 ≈ 16.7 ms on the tight one, 0.17 ms on the roomy one
    const plan = router.plan(1, L + 2, 40)!
    expect(plan.chain.hops[0].peer).toBe(roomy.peerId.toString())
    expect(plan.standbys[0]?.peer).toBe(tight.peerId.toString())
    // 49 tokens do not fit the tight cache at all: no standby there either
    const over = router.plan(1, L + 2, TIGHT_TOKENS + 1)!
    expect(over.chain.hops[0].peer).toBe(roomy.peerId.toString())
    expect(over.standbys[0]).toBeUndefined()
    // what the pipeline warms as the standby of a chain: the tight replica only for a session it can take
    const hop = [{ peer: roomy.peerId, start: 1, end: L + 2 }]
    expect(router.standbys(hop, { tokens: 40 })[0]?.peer.toString()).toBe(tight.peerId.toString())
    expect(router.standbys(hop, { tokens: TIGHT_TOKENS + 1 })[0]).toBeUndefined()

    // the pipeline passes prompt + maxNewTokens: the session runs on the roomy replica (without mirrors: the tight
    // replica, its standby, would hold a mirror of the session otherwise; pipeline's mirror.spec tests those)
    const prompt = [...new TextEncoder().encode('headroom')]
    const seen: Array<{ tight: number, roomy: number }> = []
    for await (const t of hosts[0].services.pipeline.generate(prompt, { maxNewTokens: 40 - prompt.length, mirror: false })) {
      void t
      seen.push({ tight: tight.services.pipeline.sessionStats().sessions, roomy: roomy.services.pipeline.sessionStats().sessions })
    }
    expect(seen.length).toBe(40 - prompt.length)
    expect(seen.every(s => s.tight === 0 && s.roomy === 1)).toBe(true)
  })

  it('a node announces what its caches can still take: fewer tokens while a session holds some', async () => {
    const prompt = [...new TextEncoder().encode('held')]
    // the previous test's session is closed in the background after its last token
    await until(() => roomy.services.pipeline.sessionStats().sessions === 0, 10_000, 'the roomy node closed the last session')
    const full = roomy.services.pipeline.kvTokensLeft(0, L + 2)!
    expect(full).toBe(100 * TIGHT_TOKENS)
    await until(() => announced(hosts[0], roomy) === full, 10_000, 'the Driver sees the idle roomy node\'s full headroom')
    let during: number | undefined
    let announcedDuring: number | undefined
    for await (const t of hosts[0].services.pipeline.generate(prompt, { maxNewTokens: 20 })) {
      if (t.position === prompt.length + 10) {
        during = roomy.services.pipeline.kvTokensLeft(0, L + 2)
        await until(() => announced(hosts[0], roomy) === during, 10_000, `the roomy node announces ${String(during)} tokens while it holds the session (${String(announced(hosts[0], roomy))})`)
        announcedDuring = announced(hosts[0], roomy)
      }
    }
    // the generator is paused at that token: every hop's cache holds the prompt and the 10 tokens before it
    expect(full - during!).toBe(prompt.length + 10)
    expect(announcedDuring).toBe(during)
    // a node with no blocks there (the Driver runs only the embedding): nothing to announce
    expect(hosts[0].services.pipeline.kvTokensLeft(0, 1)).toBeUndefined()
  })
})
