import { TINY } from '@neuroshard/model'
import { describe, expect, it } from 'vitest'
import { MemoryWeightStore, genesisSlotParameters, slotWeightsHash } from '../src/index.js'
import { startPoolHost, startTrainedHolder, stopAll, until } from './helpers.js'
import type { PoolHost } from './helpers.js'

const MiB = 1024 * 1024
const FAST = { heartbeatIntervalMs: 500, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300 }

describe('a joiner never takes the genesis of a trained slot', () => {
  it('when the records of the trained holders lapse just before it loads the slot, it waits for them and fetches the trained weights', async () => {
    const hosts: PoolHost[] = []
    try {
      const { host: a, trainedHash } = await startTrainedHolder(FAST, (i, name) => 1e-2 * ((i + name.length) % 5))
      hosts.push(a)
      const genesisHash = slotWeightsHash(TINY, 1, genesisSlotParameters(TINY, 1, 0))

      // j's clock is ours plus `skew`; its store jumps the clock past every record's lifetime while the first
      // slot of j's span is stored, as an event loop blocked longer than a record's lifetime does (heartbeats
      // wait unread in the sockets while the table is pruned), then puts the clock back
      let skew = 0
      let jumped = false
      const store = new MemoryWeightStore()
      const lapseRecordsOnce = (): void => {
        if (jumped) return
        jumped = true
        skew = FAST.recordTtlMs + 1_000
        j.services.layerPool.view() // prunes j's table on the jumped clock
        skew = 0
      }
      const put = store.put.bind(store)
      store.put = (slot, parameters) => {
        if (slot < 1) lapseRecordsOnce()
        put(slot, parameters)
      }
      const j = await startPoolHost({ ...FAST, config: TINY, memoryBytes: 16 * MiB, minReplicas: 2, autoAssign: false, reserveFraction: 0, weightStore: store, now: () => Date.now() + skew }, a)
      hosts.push(j)
      const aKey = a.peerId.toString()
      const current = (): boolean => j.services.layerPool.records().get(aKey)?.record.spans.some(s => s.start <= 1 && 1 < s.end && s.slots[1 - s.start].weightsHash === trainedHash) === true
      await until(current, 60_000, () => 'j to see the trained record of a', async () => { await j.services.layerPool.syncFromDht().catch(() => 0) })

      await j.services.layerPool.evaluate()
      const span = j.services.layerPool.ownSpans()[0]
      // j's span starts with the embed slot, so a's record lapses before j resolves slot 1
      expect(span?.start).toBe(0)
      expect(span?.end).toBeGreaterThan(1)
      await j.services.layerPool.whenServing({ signal: AbortSignal.timeout(90_000) })
      expect(jumped).toBe(true)
      // on the code before this test, j found no live holder of slot 1 at that moment and initialised the genesis
      expect(j.services.layerPool.slotInfo(1)?.weightsHash).not.toBe(genesisHash)
      expect(j.services.layerPool.slotInfo(1)?.weightsHash).toBe(trainedHash)
      expect(slotWeightsHash(TINY, 1, j.services.layerPool.slotWeights(1)!)).toBe(trainedHash)
    } finally {
      await stopAll(hosts)
    }
  }, 180_000)

  it('a joiner that heard no record of a trained slot\'s holders asks the DHT before it takes the genesis', async () => {
    const hosts: PoolHost[] = []
    try {
      const { host: a, trainedHash } = await startTrainedHolder(FAST, (i, name) => 1e-2 * ((i + name.length) % 3))
      hosts.push(a)

      // an observer that reads only the DHT tells when a's trained record is there
      const observer = await startPoolHost({ ...FAST, config: TINY, memoryBytes: 16 * MiB, autoAssign: false }, a)
      hosts.push(observer)
      observer.services.pubsub.unsubscribe(observer.services.layerPool.topic)
      const aKey = a.peerId.toString()
      const listsTrained = (h: PoolHost): boolean => h.services.layerPool.records().get(aKey)?.record.spans.some(s => s.start <= 1 && 1 < s.end && s.slots[1 - s.start].weightsHash === trainedHash) === true
      await until(() => listsTrained(observer), 60_000, () => 'the trained record of a in the DHT', async () => { await observer.services.layerPool.syncFromDht({ signal: AbortSignal.timeout(10_000) }).catch(() => 0) })

      // j listens on no topic: only the DHT can tell it who holds what
      const j = await startPoolHost({ ...FAST, config: TINY, memoryBytes: 16 * MiB, autoAssign: false, reserveFraction: 0 }, a)
      hosts.push(j)
      j.services.pubsub.unsubscribe(j.services.layerPool.topic)
      expect(j.services.layerPool.records().has(aKey)).toBe(false)
      await j.services.layerPool.evaluate()
      expect(j.services.layerPool.ownSpans().some(s => s.start <= 1 && 1 < s.end)).toBe(true)
      await j.services.layerPool.whenServing({ signal: AbortSignal.timeout(90_000) })
      // on the code before this test, j took every slot from the genesis
      expect(j.services.layerPool.slotInfo(1)?.weightsHash).toBe(trainedHash)
    } finally {
      await stopAll(hosts)
    }
  }, 180_000)

  it('a record that arrives while the span loads, listing trained weights for a slot just taken from the genesis, makes the joiner fetch that slot before it serves', async () => {
    const hosts: PoolHost[] = []
    try {
      const { host: a, trainedHash } = await startTrainedHolder(FAST, (i, name) => -1e-2 * ((i + name.length) % 4))
      hosts.push(a)
      const aKey = a.peerId.toString()

      // j starts alone (no peer, no gossip, nothing in its DHT), so it takes slot 1 from the genesis; right after
      // storing it, it meets a and gets a's record by gossip, while the rest of the span loads
      const store = new MemoryWeightStore()
      const put = store.put.bind(store)
      let met = false
      store.put = async (slot, parameters) => {
        put(slot, parameters)
        if (slot !== 1 || met) return
        met = true
        await j.dial(a.getMultiaddrs()[0], { signal: AbortSignal.timeout(30_000) })
        j.services.pubsub.subscribe(j.services.layerPool.topic)
        await until(() => j.services.layerPool.records().has(aKey), 60_000, () => 'a\'s record by gossip')
      }
      const j = await startPoolHost({ ...FAST, config: TINY, memoryBytes: 16 * MiB, autoAssign: false, reserveFraction: 0, weightStore: store })
      hosts.push(j)
      j.services.pubsub.unsubscribe(j.services.layerPool.topic)
      await j.services.layerPool.evaluate()
      expect(j.services.layerPool.ownSpans().some(s => s.start <= 1 && 1 < s.end)).toBe(true)
      await j.services.layerPool.whenServing({ signal: AbortSignal.timeout(90_000) })
      expect(met).toBe(true)
      // on the code before this test, j served the genesis of slot 1
      expect(j.services.layerPool.slotInfo(1)?.weightsHash).toBe(trainedHash)
    } finally {
      await stopAll(hosts)
    }
  }, 180_000)
})
