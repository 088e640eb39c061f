import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost, generateSwarmKey } from '../src/index.js'
import { dialWithRetry, peerCount, waitFor, waitUntil } from './fixtures.js'
import type { NeuroShardHost, NeuroShardHostOptions } from '../src/index.js'

// Crowds of hosts on 127.0.0.1. They live in one file so that vitest runs them one after another: two
// 32-host crowds at once on a 2-core machine starve each other's event loops (dials and libp2p's
// connection-monitor pings time out). TCP only keeps each host light; nothing here depends on the transport.
const TCP_ONLY = { quic: false, webrtcDirect: false, circuitRelay: false }
const CROWD = 32
const SMALL_CROWD = 16
// the target the joiners are given (the default, JOIN_MIN_PEERS, is the same value)
const TARGET = 4
// in the gossip crowd every host dials its next 8 hosts on a ring, so each has about 16 peers, all on
// 127.0.0.1: more than the 10 peers per IP address that gossipsub's stock IP-colocation penalty tolerates
const RING_REACH = 8
const STOCK_COLOCATION_THRESHOLD = 10
const TOPIC = '/neuroshard/test/1/crowd'
// How long a crowd may take to converge. The 33 hosts share one event loop: a CPU profile of the 32-host
// join shows libp2p's own work (Noise, Yamux, identify, DHT, peer store, GC) saturating it, with event-loop
// lag up to 2.6 s. With other suites loading the 2 cores (load average 7-10) the join took 20-114 s and
// the gossip crowd 18-30 s; at load 12-16 a fixed 150 s bound failed the 32-host join once (#15). Load slows a
// crowd down, it does not stop it: the joins wait as long as some host keeps gaining peers (`allReach`), and
// fail when none has for STALL_MS (joiners that gave up, a refused crowd) or after CONVERGE_MS in all
const STALL_MS = 120_000
const CONVERGE_MS = 420_000
// creating, starting and stopping 33 hosts comes on top of that
const CROWD_TEST_TIMEOUT_MS = CONVERGE_MS + 120_000
// a dozen hosts around one or two: their gossip views settle within a few heartbeats (1 s) on an idle machine
const SMALL_SETTLE_MS = 120_000

/**
 * Resolves once every host has at least `n` peers; re-checked on each new connection and every second. Rejects
 * when no host has reached a new highest peer count for `stallMs` (connections that open and close again are
 * no progress), or after `maxMs`, saying how many hosts are short.
 */
async function allReach (hosts: NeuroShardHost[], n: number, stallMs: number, maxMs: number): Promise<void> {
  const started = Date.now()
  let progressAt = started
  const best = hosts.map(h => peerCount(h))
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      const counts = hosts.map(h => peerCount(h))
      counts.forEach((c, i) => { if (c > best[i]) { best[i] = c; progressAt = Date.now() } })
      if (counts.every(c => c >= n)) { finish(); resolve(); return }
      const now = Date.now()
      const short = counts.filter(c => c < n).length
      if (now - progressAt > stallMs) { finish(); reject(new Error(`${short} of ${hosts.length} hosts below ${n} peers; no host gained a peer for ${stallMs} ms (counts ${counts.join(',')})`)) }
      else if (now - started > maxMs) { finish(); reject(new Error(`${short} of ${hosts.length} hosts below ${n} peers after ${maxMs} ms (counts ${counts.join(',')})`)) }
    }
    const timer = setInterval(check, 1_000)
    for (const h of hosts) h.addEventListener('connection:open', check)
    function finish (): void {
      clearInterval(timer)
      for (const h of hosts) h.removeEventListener('connection:open', check)
    }
    check()
  })
}

describe(`crowds of up to ${CROWD} hosts on one IP address`, () => {
  let hosts: NeuroShardHost[] = []

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
  })

  async function host (options: NeuroShardHostOptions = {}): Promise<NeuroShardHost> {
    const h = await createNeuroShardHost({ listen: ['/ip4/127.0.0.1/tcp/0'], transports: TCP_ONLY, ...options })
    hosts.push(h)
    return h
  }

  it(`${CROWD} hosts started at once against one bootstrap peer all reach ${TARGET} peers`, async () => {
    const boot = await host()
    const bootstrap = boot.getMultiaddrs().map(String)
    const crowd = await Promise.all(Array.from({ length: CROWD }, async () => host({ start: false, bootstrap, join: { minPeers: TARGET } })))
    await Promise.all(crowd.map(async h => h.start()))
    await allReach(crowd, TARGET, STALL_MS, CONVERGE_MS)
    for (const h of crowd) {
      expect(peerCount(h)).toBeGreaterThanOrEqual(TARGET)
    }
  }, CROWD_TEST_TIMEOUT_MS)

  it(`hosts refused by a throttling bootstrap peer retry with backoff until all ${SMALL_CROWD} reach ${TARGET} peers`, async () => {
    // the bootstrap host runs libp2p's stock inbound limits (5 connections per second per IP, 10 pending):
    // most of the crowd is refused at first and only retries get it in
    const boot = await host({ inboundConnectionThreshold: 5, maxIncomingPendingConnections: 10 })
    const bootstrap = boot.getMultiaddrs().map(String)
    const crowd = await Promise.all(Array.from({ length: SMALL_CROWD }, async () => host({ start: false, bootstrap, join: { minPeers: TARGET } })))
    const retried = new Set<string>()
    const delays: number[] = []
    for (const h of crowd) {
      h.services.join?.addEventListener('join:retry', (evt) => {
        delays.push(evt.detail.delayMs)
        retried.add(h.peerId.toString())
      })
    }
    await Promise.all(crowd.map(async h => h.start()))
    await allReach(crowd, TARGET, STALL_MS, CONVERGE_MS)
    expect(retried.size).toBeGreaterThan(0)
    expect(Math.min(...delays)).toBeGreaterThan(0)
    // every joiner has settled: no retry pending
    await Promise.all(crowd.map(async h => waitUntil(h.services.join!, 'join:joined', () => h.services.join!.attempt === 0, CONVERGE_MS)))
  }, CROWD_TEST_TIMEOUT_MS)

  it(`every mesh is non-empty and a message published by one host reaches all ${CROWD}`, async () => {
    const ring = await Promise.all(Array.from({ length: CROWD }, async () => host()))
    // explicit dials, one ring step at a time (each host receives one dial per step), so the topology does
    // not depend on the joiner; a dial that times out on a starved event loop is tried again
    for (let step = 1; step <= RING_REACH; step++) {
      await Promise.all(ring.map(async (h, i) => dialWithRetry(h, ring[(i + step) % CROWD].getMultiaddrs()[0], 60_000)))
    }
    for (const h of ring) {
      expect(new Set(h.getConnections().map(c => c.remotePeer.toString())).size).toBeGreaterThan(STOCK_COLOCATION_THRESHOLD)
    }

    for (const h of ring) {
      h.services.pubsub.subscribe(TOPIC)
    }
    await Promise.all(ring.map(async h => waitUntil(h.services.pubsub, 'gossipsub:heartbeat',
      () => h.services.pubsub.getMeshPeers(TOPIC).length > 0, CONVERGE_MS)))
    for (const h of ring) {
      expect(h.services.pubsub.getMeshPeers(TOPIC).length).toBeGreaterThan(0)
    }

    const data = new TextEncoder().encode('to all 32')
    const received = ring.slice(1).map(async h => waitFor(h.services.pubsub, 'message', evt => evt.detail.topic === TOPIC, CONVERGE_MS))
    const result = await ring[0].services.pubsub.publish(TOPIC, data)
    expect(result.recipients.length).toBeGreaterThan(0)
    for (const evt of await Promise.all(received)) {
      expect(new Uint8Array(evt.detail.data)).toEqual(data)
    }
  }, CROWD_TEST_TIMEOUT_MS)

  it('peers sharing a non-exempt address still pay the IP-colocation penalty; loopback peers do not', async () => {
    // `strict` exempts nothing, as if its 12 peers shared one public address
    const [strict, profile] = await Promise.all([host({ gossipsubScoring: { ipColocationExempt: [] } }), host()])
    const peers = await Promise.all(Array.from({ length: 12 }, async () => host()))
    await Promise.all(peers.flatMap(p => [dialWithRetry(p, strict.getMultiaddrs()[0], 60_000), dialWithRetry(p, profile.getMultiaddrs()[0], 60_000)]))
    for (const h of [strict, profile]) {
      await waitUntil(h.services.pubsub, 'gossipsub:heartbeat', () => peers.every(p => h.services.pubsub.getPeers().some(id => id.equals(p.peerId))), SMALL_SETTLE_MS)
    }
    // at least 12 peers on 127.0.0.1 (the DHT may add more), threshold 10, weight −5: −5 · (n − 10)² ≤ −20,
    // below the gossip threshold (−10): out of meshes and out of gossip
    for (const p of peers) {
      expect(strict.services.pubsub.getScore(p.peerId.toString())).toBeLessThanOrEqual(-20)
      expect(profile.services.pubsub.getScore(p.peerId.toString())).toBe(0)
    }
  }, 2 * SMALL_SETTLE_MS + 60_000)

  it('a private swarm does not apply the IP-colocation penalty at all', async () => {
    const swarmKey = generateSwarmKey()
    // no exempt ranges: only the swarm key keeps these loopback peers from being penalised
    const strict = await host({ swarmKey, gossipsubScoring: { ipColocationExempt: [] } })
    const peers = await Promise.all(Array.from({ length: 12 }, async () => host({ swarmKey })))
    await Promise.all(peers.map(async p => dialWithRetry(p, strict.getMultiaddrs()[0], 60_000)))
    await waitUntil(strict.services.pubsub, 'gossipsub:heartbeat', () => peers.every(p => strict.services.pubsub.getPeers().some(id => id.equals(p.peerId))), SMALL_SETTLE_MS)
    for (const p of peers) {
      expect(strict.services.pubsub.getScore(p.peerId.toString())).toBe(0)
    }
  }, SMALL_SETTLE_MS + 120_000)
})
