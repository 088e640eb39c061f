import { SMALL, TINY } from '@neuroshard/model'
import { afterEach, describe, expect, it } from 'vitest'
import { MemoryWeightStore, fetchSpanWeights, genesisSlotParameters, slotCount, slotWeightsHash } from '../src/index.js'
import { liveReplicas, startPoolHost, startTrainedHolder, stopAll, until } from './helpers.js'
import type { PoolHost } from './helpers.js'
import type { ModelConfig } from '@neuroshard/model'

const MiB = 1024 * 1024
const FAST = { heartbeatIntervalMs: 500, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300 }

describe('layer pool over real libp2p hosts', () => {
  let hosts: PoolHost[] = []
  afterEach(async () => {
    await stopAll(hosts)
    hosts = []
  })

  it('8 hosts with different budgets cover every slot of `small` twice; after 2 leave (one gracefully, one silently) coverage is restored without a restart; a joiner fetches trained weights whose hash matches the records', async () => {
    const budgets = [96, 110, 120, 130, 140, 104, 116, 126]
    const first = await startPoolHost({ ...FAST, config: SMALL, memoryBytes: budgets[0] * MiB })
    hosts.push(first)
    hosts.push(...await Promise.all(budgets.slice(1).map(async (mb, i) =>
      startPoolHost({ ...FAST, config: SMALL, memoryBytes: mb * MiB, announceLeave: i !== 3 }, first))))
    const observer = first.services.layerPool
    const settled = (list: PoolHost[]): boolean => list.every(h => h.services.layerPool.ownSpans().every(s => s.state === 'serving'))
    await until(() => liveReplicas(observer).every(n => n >= 2) && settled(hosts), 150_000, () => `replicas ${liveReplicas(observer).join(',')} spans ${hosts.map(h => JSON.stringify(h.services.layerPool.ownSpans())).join(' ')}`)

    // every holder serves the hash a fresh genesis init gives (no transfer was needed at genesis)
    for (const host of hosts) {
      for (const span of host.services.layerPool.ownSpans()) {
        expect(span.state).toBe('serving')
        const slot = span.start
        expect(host.services.layerPool.slotInfo(slot)?.weightsHash).toBe(slotWeightsHash(SMALL, slot, genesisSlotParameters(SMALL, slot, 0)))
      }
    }

    // two of them go: hosts[3] gracefully (announces `leaving`), hosts[4] silently (announceLeave: false; the liveness probe finds it gone)
    const victims = [hosts[4], hosts[3]]
    await Promise.all(victims.map(async h => h.stop()))
    const survivors = hosts.filter(h => !victims.includes(h))
    await until(() => survivors.every(h => liveReplicas(h.services.layerPool).every(n => n >= 2)) && settled(survivors), 120_000,
      () => survivors.map(h => liveReplicas(h.services.layerPool).join(',')).join(' | '))
    for (const host of survivors) {
      // nothing was restarted: the same libp2p node, still running, still holding spans
      expect(host.status).toBe('started')
      expect(host.services.layerPool.ownSpans().length).toBeGreaterThan(0)
    }

    // train slot 1 (block 0) on its holders: they all step to the same new weights and announce them
    const trained = genesisSlotParameters(SMALL, 1, 0)
    for (const [name, w] of trained) for (let i = 0; i < w.length; i++) w[i] += 1e-3 * ((i + name.length) % 7)
    const trainedHash = slotWeightsHash(SMALL, 1, trained)
    expect(trainedHash).not.toBe(slotWeightsHash(SMALL, 1, genesisSlotParameters(SMALL, 1, 0)))
    const holdersOf1 = survivors.filter(h => h.services.layerPool.ownSpans().some(s => s.state === 'serving' && s.start <= 1 && 1 < s.end))
    expect(holdersOf1.length).toBeGreaterThanOrEqual(2)
    await Promise.all(holdersOf1.map(async h => h.services.layerPool.updateSlotWeights(1, new Map([...trained].map(([k, v]) => [k, v.slice()])), 1)))

    // a joiner with room for the whole model takes it; slot 1 must come over the wire, the rest from genesis
    const joiner = await startPoolHost({ ...FAST, config: SMALL, memoryBytes: 400 * MiB, minReplicas: 3 }, survivors[0])
    hosts.push(joiner)
    await until(() => joiner.services.layerPool.ownSpans().some(s => s.state === 'serving' && s.start <= 1 && 1 < s.end), 120_000,
      () => JSON.stringify(joiner.services.layerPool.ownSpans()))
    expect(joiner.services.layerPool.slotInfo(1)?.weightsHash).toBe(trainedHash)
    // every live holder of slot 1, as the joiner's records show them, comes to announce the trained hash (holders
    // may have dropped slot 1 as surplus meanwhile: it now has more replicas than it needs). Two fresh-clone CI runs
    // saw one holder still on another hash here, most likely a survivor that loaded slot 1 from the genesis while
    // it was trained (records that came after its last check); such a holder catches up (spec §6.1)
    const announced = (): Array<string | undefined> => {
      const records = joiner.services.layerPool.records()
      return joiner.services.layerPool.holders(1).map(peer => {
        const span = records.get(peer.toString())?.record.spans.find(s => s.start <= 1 && 1 < s.end)
        return span?.slots[1 - span.start].weightsHash
      })
    }
    await until(() => announced().length >= 2 && announced().every(h => h === trainedHash), 90_000,
      () => `slot 1 holders announce ${announced().map(h => h?.slice(0, 12)).join(', ')} (trained ${trainedHash.slice(0, 12)})`)
  }, 400_000)

  it('5 nodes joining at the same instant end with a valid, balanced assignment', async () => {
    const config: ModelConfig = { ...TINY, nLayers: 6 }
    const blockBytes = 4 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 176 + 2 * 64)
    const first = await startPoolHost({ ...FAST, config, memoryBytes: 4 * blockBytes + 1024, autoAssign: false, reserveFraction: 0 })
    hosts.push(first)
    hosts.push(...await Promise.all([0, 1, 2, 3, 4].map(async () => startPoolHost({ ...FAST, config, memoryBytes: 4 * blockBytes + 1024, autoAssign: false, reserveFraction: 0 }, first))))
    const joiners = hosts.slice(1)
    // let the mesh form, then every joiner starts deciding at the same moment
    await until(() => joiners.every(h => h.services.pubsub.getSubscribers(h.services.layerPool.topic).length > 0), 30_000, () => 'subscriptions')
    await Promise.all(joiners.map(async h => h.services.layerPool.evaluate()))
    await Promise.all(joiners.map(async h => h.services.layerPool.whenServing({ signal: AbortSignal.timeout(150_000) })))
    await until(() => liveReplicas(first.services.layerPool).reduce((a, b) => a + b, 0) === joiners.reduce((n, h) => n + h.services.layerPool.ownSpans().reduce((m, s) => m + s.end - s.start, 0), 0), 10_000, () => 'records')
    const replicas = liveReplicas(first.services.layerPool)
    expect(replicas.length).toBe(slotCount(config))
    // valid: every slot at least twice (20 slot places for 8 slots); balanced: no slot more than one above another
    expect(Math.min(...replicas)).toBeGreaterThanOrEqual(2)
    expect(Math.max(...replicas) - Math.min(...replicas)).toBeLessThanOrEqual(1)
    for (const h of joiners) {
      const spans = h.services.layerPool.ownSpans()
      expect(spans.length).toBe(1)
      expect(spans[0].state).toBe('serving')
    }
  }, 180_000)

  it('a node announcing more memory than it can hold stays `loading`; others do not route to it and cover its slots', async () => {
    const config = TINY
    const full = 4 * 1024 * 1024
    const liar = await startPoolHost({ ...FAST, config, memoryBytes: full, loadingGraceMs: 3_000, weightStore: new MemoryWeightStore({ capacityBytes: 10_000 }) })
    hosts.push(liar)
    await until(() => liar.services.layerPool.ownSpans().length > 0, 30_000, () => 'liar claim')
    const honest = await Promise.all([0, 1].map(async () => startPoolHost({ ...FAST, config, memoryBytes: full, loadingGraceMs: 3_000 }, liar)))
    hosts.push(...honest)
    await until(() => liveReplicas(honest[0].services.layerPool).every(n => n >= 2), 60_000, () => liveReplicas(honest[0].services.layerPool).join(','))
    expect(liar.services.layerPool.ownSpans().every(s => s.state === 'loading')).toBe(true)
    const liarId = liar.peerId.toString()
    for (let slot = 0; slot < slotCount(config); slot++) {
      const holders = honest[0].services.layerPool.holders(slot).map(String)
      expect(holders).not.toContain(liarId)
      expect(holders.length).toBeGreaterThanOrEqual(2)
    }
    const seen = honest[0].services.layerPool.records().get(liarId)
    expect(seen?.record.spans.every(s => s.state === 'loading')).toBe(true)
  }, 120_000)
})

describe('late joiners read the DHT', () => {
  let hosts: PoolHost[] = []
  afterEach(async () => {
    await stopAll(hosts)
    hosts = []
  })

  it('a node that missed every gossip message finds every holder\'s record through the membership CID', async () => {
    const first = await startPoolHost({ ...FAST, config: TINY, memoryBytes: 4 * MiB })
    hosts.push(first)
    hosts.push(...await Promise.all([0, 1].map(async () => startPoolHost({ ...FAST, config: TINY, memoryBytes: 4 * MiB }, first))))
    await Promise.all(hosts.map(async h => h.services.layerPool.whenServing({ signal: AbortSignal.timeout(60_000) })))
    // listens on another topic, so only the DHT can tell it about the holders
    const late = await startPoolHost({ ...FAST, config: TINY, memoryBytes: 4 * MiB, autoAssign: false, modelId: 'devnet' }, first)
    hosts.push(late)
    late.services.pubsub.unsubscribe(late.services.layerPool.topic)
    const holders = hosts.slice(0, 3).map(h => h.peerId.toString()).sort()
    let found: string[] = []
    await until(() => found.length === 3, 60_000, () => `found ${found.join(',')}`, async () => {
      await late.services.layerPool.syncFromDht({ signal: AbortSignal.timeout(10_000) }).catch(() => 0)
      found = [...late.services.layerPool.records().keys()].filter(k => k !== late.peerId.toString()).sort()
    })
    expect(found).toEqual(holders)
    for (let slot = 0; slot < slotCount(TINY); slot++) expect(late.services.layerPool.holders(slot).length).toBeGreaterThanOrEqual(2)
  }, 120_000)
})

describe('rebalancing', () => {
  let hosts: PoolHost[] = []
  afterEach(async () => {
    await stopAll(hosts)
    hosts = []
  })

  it('a node moves to the slowest part of the swarm when that lifts the bottleneck past the balance quality (Petals\' rule)', async () => {
    // tiny: slots embed (65 KB), block 0 (185 KB), block 1 (185 KB), head (66 KB); a budget of 260 KB holds
    // [0,2) or [2,4) but not both, so every node holds one half
    const budget = 260_000
    const speed = new Map<string, number>()
    const rate = (name: string) => () => speed.get(name) ?? 1
    const init = (name: string): Parameters<typeof startPoolHost>[0] => ({ ...FAST, config: TINY, memoryBytes: budget, reserveFraction: 0, throughput: rate(name), rebalanceIntervalMs: 1_000 })
    const a = await startPoolHost(init('a'))
    hosts.push(a)
    for (const name of ['b', 'c', 'd']) {
      const h = await startPoolHost(init(name), a)
      hosts.push(h)
      await h.services.layerPool.whenServing({ signal: AbortSignal.timeout(30_000) })
    }
    await until(() => liveReplicas(a.services.layerPool).every(n => n === 2), 30_000, () => liveReplicas(a.services.layerPool).join(','))
    const half = (h: PoolHost): string => { const s = h.services.layerPool.ownSpans()[0]; return `${s.start}-${s.end}` }
    const names = new Map(hosts.map((h, i) => [h, 'abcd'[i]]))
    // the half that e will join first is the one whose holders are slow now; they speed up afterwards
    const firstHalf = half(a)
    for (const h of hosts) speed.set(names.get(h)!, half(h) === firstHalf ? 1 : 100)
    const e = await startPoolHost(init('e'), a)
    speed.set('e', 10)
    hosts.push(e)
    await e.services.layerPool.whenServing({ signal: AbortSignal.timeout(30_000) })
    expect(half(e)).toBe(firstHalf)
    // now the other half is the bottleneck: 1 + 1 there against 100 + 100 + 10 here; one of the fast
    // nodes whose half keeps two replicas without it moves over (which one is the rule's choice)
    for (const h of hosts.slice(0, 4)) speed.set(names.get(h)!, half(h) === firstHalf ? 100 : 1)
    const bottleneck = (): number => Math.min(...a.services.layerPool.view().map(v => v.throughput))
    // the fast half (firstHalf, 3 holders) gives one to the slow half: 2 and 3 holders afterwards
    const fast = firstHalf === '0-2' ? [0, 1] : [2, 3]
    const slow = firstHalf === '0-2' ? [2, 3] : [0, 1]
    await until(() => {
      const r = liveReplicas(a.services.layerPool)
      return bottleneck() >= 10 && fast.every(i => r[i] === 2) && slow.every(i => r[i] === 3) &&
        hosts.every(h => h.services.layerPool.ownSpans().every(s => s.state === 'serving'))
    }, 60_000, () => `bottleneck ${bottleneck()}, replicas ${liveReplicas(a.services.layerPool).join(',')}`)
    // and it stays that way: nobody moves back (the rule does not oscillate)
    await new Promise(resolve => setTimeout(resolve, 4_000))
    const r = liveReplicas(a.services.layerPool)
    expect(fast.map(i => r[i])).toEqual([2, 2])
    expect(slow.map(i => r[i])).toEqual([3, 3])
  }, 150_000)
})

describe('clock skew', () => {
  let hosts: PoolHost[] = []
  afterEach(async () => {
    await stopAll(hosts)
    hosts = []
  })

  it('peers whose clocks are 25 s apart (more than the 4 s record lifetime, less than the 30 s bound) count each other; a peer 40 s behind is not counted', async () => {
    const init = { ...FAST, config: TINY, memoryBytes: 4 * MiB }
    const ahead = await startPoolHost({ ...init, now: () => Date.now() + 25_000 })
    hosts.push(ahead)
    const honest = await startPoolHost(init, ahead)
    hosts.push(honest)
    const behind = await startPoolHost({ ...init, now: () => Date.now() - 40_000 }, ahead)
    hosts.push(behind)
    const counts = (h: PoolHost, other: PoolHost): boolean => h.services.layerPool.records().has(other.peerId.toString())
    await until(() => counts(ahead, honest) && counts(honest, ahead), 90_000,
      () => `ahead counts honest: ${counts(ahead, honest)}, honest counts ahead: ${counts(honest, ahead)}`)
    // the records keep counting across heartbeats, not just the instant one arrives
    for (let i = 0; i < 10; i++) {
      await new Promise(resolve => setTimeout(resolve, 300))
      expect(counts(ahead, honest) && counts(honest, ahead)).toBe(true)
    }
    // beyond the bound: the node 40 s behind sends records that expired 36 s ago on the others' clocks
    await until(() => behind.services.pubsub.getSubscribers(behind.services.layerPool.topic).length > 0, 30_000, () => 'behind subscribed')
    await new Promise(resolve => setTimeout(resolve, 3 * FAST.heartbeatIntervalMs))
    expect(counts(honest, behind)).toBe(false)
    expect(counts(ahead, behind)).toBe(false)
  }, 180_000)
})

describe('restart', () => {
  it('a pool stopped and started again with its host joins again and serves', async () => {
    const a = await startPoolHost({ ...FAST, config: TINY, memoryBytes: 4 * MiB })
    try {
      await a.services.layerPool.whenServing({ signal: AbortSignal.timeout(60_000) })
      await a.stop()
      expect(a.services.layerPool.ownSpans()).toEqual([])
      await a.start()
      await a.services.layerPool.whenServing({ signal: AbortSignal.timeout(60_000) })
      expect(a.services.layerPool.ownSpans().every(s => s.state === 'serving')).toBe(true)
    } finally {
      await a.stop()
    }
  }, 150_000)
})

describe('slot transfer destination', () => {
  it('a node taking a trained slot fetches it into new memory, one buffer per tensor, and serves those very buffers', async () => {
    const hosts: PoolHost[] = []
    try {
      const { host: a, trainedHash } = await startTrainedHolder(FAST, (i, name) => 1e-2 * ((i + name.length) % 5))
      hosts.push(a)

      // b decides only once it has a's current record (the DHT copy may lag: see the 8-host test)
      const b = await startPoolHost({ ...FAST, config: TINY, memoryBytes: 16 * MiB, autoAssign: false }, a)
      hosts.push(b)
      const fetched = new Map<number, Map<string, Float32Array>>()
      b.services.layerPool.setSlotFetcher(async (request, options) => {
        const slotConfig = b.services.layerPool.config
        const result = await fetchSpanWeights(b, request.replicas, {
          modelId: b.services.layerPool.modelId, version: b.services.layerPool.version, start: request.slot, end: request.slot + 1,
          part: 'weights', config: slotConfig, chunksRoot: request.chunksRoot, weightsHash: request.weightsHash
        }, { ...options, timeout: 60_000 })
        fetched.set(request.slot, result.tensors)
        return result.tensors
      })
      const aKey = a.peerId.toString()
      const current = (): boolean => b.services.layerPool.records().get(aKey)?.record.spans.some(s => s.start <= 1 && 1 < s.end && s.slots[1 - s.start].weightsHash === trainedHash) === true
      await until(current, 60_000, () => 'b to see the trained record of a', async () => { await b.services.layerPool.syncFromDht().catch(() => 0) })
      await b.services.layerPool.evaluate()
      await b.services.layerPool.whenServing({ signal: AbortSignal.timeout(60_000) })

      expect(b.services.layerPool.slotInfo(1)?.weightsHash).toBe(trainedHash)
      // only the trained slot came over the wire: a's record says step 1 for its whole span (a span's step is its
      // most trained slot's), but the other slots list their genesis hashes, which the genesis init gives
      expect([...fetched.keys()]).toEqual([1])
      // the slot serves the very tensors the transfer wrote (nothing copied after it), each in a buffer of its
      // own (one allocation per tensor: small enough for the allocator to reuse memory it already touched)
      const served = b.services.layerPool.slotWeights(1)!
      for (const [name, w] of fetched.get(1)!) {
        expect(served.get(name)).toBe(w)
        expect(w.buffer.byteLength).toBe(w.byteLength)
      }
      expect(new Set([...served.values()].map(w => w.buffer)).size).toBe(served.size)
    } finally {
      await stopAll(hosts)
    }
  }, 150_000)
})
