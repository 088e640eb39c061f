import { TINY } from '@neuroshard/model'
import { describe, expect, it } from 'vitest'
import { genesisSlotParameters, slotCount, slotWeightsHash, slotWeightsStep } from '../src/index.js'
import { startPoolHost, stopAll, until } from './helpers.js'
import type { PoolHost } from './helpers.js'

const MiB = 1024 * 1024
const FAST = { heartbeatIntervalMs: 500, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300 }

describe('a replica behind its slot\'s target catches up (spec §6.1)', () => {
  it('a serving replica left on the genesis of a slot its peers trained fetches the trained weights without leaving `serving`; a single replica announcing other weights does not move the rest', async () => {
    const hosts: PoolHost[] = []
    try {
      const init = { ...FAST, config: TINY, memoryBytes: 16 * MiB, minReplicas: 3, reserveFraction: 0, catchUpGraceMs: 1_000 }
      const a = await startPoolHost(init)
      hosts.push(a)
      hosts.push(...await Promise.all([0, 1].map(async () => startPoolHost(init, a))))
      const [, b, c] = hosts
      const holdsAll = (h: PoolHost): boolean => {
        const spans = h.services.layerPool.ownSpans()
        return spans.every(s => s.state === 'serving') && Array.from({ length: slotCount(TINY) }, (_, i) => i).every(i => spans.some(s => s.start <= i && i < s.end))
      }
      await until(() => hosts.every(holdsAll), 120_000, () => hosts.map(h => JSON.stringify(h.services.layerPool.ownSpans())).join(' '))
      const genesisHash = slotWeightsHash(TINY, 1, genesisSlotParameters(TINY, 1, 0))
      for (const h of hosts) expect(h.services.layerPool.slotInfo(1)?.weightsHash).toBe(genesisHash)

      // c's span must never stop serving: count every span event it dispatches from here on
      const spanEvents: string[] = []
      const updates: Array<{ slot: number, weightsHash: string, step: number }> = []
      for (const type of ['layer-pool:assigned', 'layer-pool:released', 'layer-pool:loaded', 'layer-pool:load-failed'] as const) {
        c.services.layerPool.addEventListener(type, () => { spanEvents.push(type) })
      }
      c.services.layerPool.addEventListener('layer-pool:updated', (evt) => { updates.push(evt.detail) })

      const trained = genesisSlotParameters(TINY, 1, 0)
      for (const [name, w] of trained) for (let i = 0; i < w.length; i++) w[i] += 1e-2 * ((i + name.length) % 5)
      const trainedHash = slotWeightsHash(TINY, 1, trained)
      const sees = (h: PoolHost, peer: PoolHost, hash: string): boolean => h.services.layerPool.records().get(peer.peerId.toString())?.record.spans
        .some(s => s.start <= 1 && 1 < s.end && s.slots[1 - s.start].weightsHash === hash) === true

      // one replica of three announces other weights at a larger step: a minority, nobody follows it
      await a.services.layerPool.updateSlotWeights(1, new Map([...trained].map(([k, v]) => [k, v.slice()])), 1)
      await until(() => sees(b, a, trainedHash) && sees(c, a, trainedHash), 30_000, () => 'b and c to hear of a\'s weights')
      // a's span is at step 1 (its most trained slot); every other slot of it lists its own step 0 (spec 1.6.0)
      const aSpan = b.services.layerPool.records().get(a.peerId.toString())!.record.spans.find(s => s.start <= 1 && 1 < s.end)!
      expect(aSpan.weightsStep).toBe(1)
      expect(aSpan.slots.map((x, i) => [aSpan.start + i, x.weightsStep])).toEqual(aSpan.slots.map((_, i) => [aSpan.start + i, aSpan.start + i === 1 ? undefined : 0]))
      expect(slotWeightsStep(aSpan, 1)).toBe(1)
      if (aSpan.end > 2) expect(slotWeightsStep(aSpan, 2)).toBe(0)
      // well past the grace (1 s) and several heartbeats
      await new Promise(resolve => setTimeout(resolve, 4_000))
      expect(b.services.layerPool.slotInfo(1)?.weightsHash).toBe(genesisHash)
      expect(c.services.layerPool.slotInfo(1)?.weightsHash).toBe(genesisHash)
      expect(updates).toEqual([])

      // a second replica trains the same way (c missed the round): now c is outvoted and fetches them
      await b.services.layerPool.updateSlotWeights(1, new Map([...trained].map(([k, v]) => [k, v.slice()])), 1)
      await until(() => c.services.layerPool.slotInfo(1)?.weightsHash === trainedHash, 60_000,
        () => `c still on ${c.services.layerPool.slotInfo(1)?.weightsHash.slice(0, 12)} (genesis ${genesisHash.slice(0, 12)}, trained ${trainedHash.slice(0, 12)})`)
      expect(slotWeightsHash(TINY, 1, c.services.layerPool.slotWeights(1)!)).toBe(trainedHash)
      expect(updates).toEqual([{ slot: 1, weightsHash: trainedHash, step: 1 }])
      expect(spanEvents).toEqual([])
      expect(c.services.layerPool.ownSpans().every(s => s.state === 'serving')).toBe(true)
      // and c announces them: others see three replicas on the trained weights
      await until(() => sees(a, c, trainedHash), 30_000, () => 'a to hear of c\'s new weights')
      // the other slots were not touched
      expect(c.services.layerPool.slotInfo(2)?.weightsHash).toBe(slotWeightsHash(TINY, 2, genesisSlotParameters(TINY, 2, 0)))
    } finally {
      await stopAll(hosts)
    }
  }, 240_000)
})
