/**
 * A serving-only node (training off, int8 weights) joins a training devnet: it takes a span, announces it
 * as quantized and serving, is never paired into a training chain (it would refuse the requests), and the
 * network's DiLoCo rounds go on.
 */
import { constantLr } from '@neuroshard/runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { slotWeightsHash } from '@neuroshard/layer-pool'
import { halfModelMemory } from '../../src/network/devnet.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'

describe('a serving-only quantized node in a training devnet', () => {
  let dir: string
  let devnet: NetworkDevnet
  let server: NetworkNode

  beforeAll(async () => {
    ({ dir, devnet } = await startTestDevnet('serving', 800, {
      nodes: 4,
      node: { innerSteps: 3, batchSize: 2, seqLen: 16, optimizer: { schedule: constantLr(3e-3) }, evalEvery: 0 }
    }))
  }, 300_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('announces its span as int8 serving, stays out of training chains, and the rounds go on', async () => {
    const rounds = (): number => Math.max(...devnet.nodes.slice(0, 4).map(n => n.group(0)?.round ?? n.group(n.heldStages()[0]?.start ?? 0)?.round ?? 0))
    // the devnet trains before the server joins
    const deadline = Date.now() + 300_000
    while (rounds() < 1 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 500))
    expect(rounds()).toBeGreaterThanOrEqual(1)
    server = await devnet.addNode({ training: false, quantization: 'int8', memoryBytes: halfModelMemory(devnet.config, false) })
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => { reject(new Error('the serving node took no span')) }, 240_000)
      if (server.heldStages().length > 0) { clearTimeout(t); resolve(); return }
      server.addEventListener('node:stage', () => { clearTimeout(t); resolve() }, { once: true })
    })
    expect(server.heldStages()[0].stage.quantization).toBe('int8')
    // its record, as a training node sees it: serving, int8
    const me = server.peerId.toString()
    const seen = await (async () => {
      const until = Date.now() + 60_000
      for (;;) {
        const rec = devnet.nodes[0].host.services.layerPool.records().get(me)?.record
        // until node 0 has the record of the loaded span (the server's 'node:stage' can come before its 'serving' record reaches node 0)
        if (rec != null && rec.spans.some(s => s.state === 'serving')) return rec
        if (Date.now() > until) return rec
        await new Promise(resolve => setTimeout(resolve, 250))
      }
    })()
    expect(seen?.spans.some(s => s.state === 'serving' && s.quantization === 'int8')).toBe(true)
    // two more rounds, and the server is in no node's training chain meanwhile
    const target = rounds() + 2
    const until = Date.now() + 300_000
    while (rounds() < target && Date.now() < until) {
      for (const n of devnet.nodes.slice(0, 4)) {
        for (const c of n.chains()) expect(c.hops.map(h => h.peer)).not.toContain(me)
      }
      await new Promise(resolve => setTimeout(resolve, 500))
    }
    expect(rounds()).toBeGreaterThanOrEqual(target)
  }, 900_000)

  it('a serving float32 node follows the training: a slot it serves catches up with its trained replicas (layer-pool §6.1) and its stage serves the new weights', async () => {
    const follower = await devnet.addNode({ training: false, memoryBytes: halfModelMemory(devnet.config, false) })
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => { reject(new Error('the follower took no span')) }, 240_000)
      if (follower.heldStages().length > 0) { clearTimeout(t); resolve(); return }
      follower.addEventListener('node:stage', () => { clearTimeout(t); resolve() }, { once: true })
    })
    const pool = follower.host.services.layerPool
    const { start, end } = follower.heldStages()[0]
    const before = new Map(Array.from({ length: end - start }, (_, i) => [start + i, pool.slotInfo(start + i)!.weightsHash]))
    // the replicas train on: within a few rounds one of the follower's slots is outvoted and fetched again
    const updated = await new Promise<{ slot: number, weightsHash: string }>((resolve, reject) => {
      const t = setTimeout(() => { reject(new Error('no slot of the follower caught up')) }, 400_000)
      pool.addEventListener('layer-pool:updated', (evt) => { clearTimeout(t); resolve(evt.detail) }, { once: true })
    })
    expect(updated.weightsHash).not.toBe(before.get(updated.slot))
    // the stage is rebuilt from the pool's weights: wait until what it runs is what the pool announces (it may catch up again meanwhile)
    const served = async (): Promise<{ stage: string, pool: string }> => {
      const held = follower.heldStages().find(h => h.start <= updated.slot && updated.slot < h.end)!
      const params = new Map<string, Float32Array>()
      for (const e of held.stage.executors) for (const [k, v] of await e.getParameters()) params.set(k, v)
      return { stage: slotWeightsHash(devnet.config, updated.slot, params), pool: pool.slotInfo(updated.slot)!.weightsHash }
    }
    let now = await served()
    const deadline = Date.now() + 120_000
    while ((now.stage !== now.pool || now.stage === before.get(updated.slot)) && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 500))
      now = await served()
    }
    expect(now.stage).toBe(now.pool)
    expect(now.stage).not.toBe(before.get(updated.slot))
  }, 900_000)
})
