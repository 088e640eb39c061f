/**
 * Issue 16: serving-only nodes with `bakeWeights` (their blocks' and head's inference sessions with the weights baked
 * in, pipeline's `bakeWeights`) over real hosts: every such executor is baked and no span is fused, the layer pool is
 * offered half the node's memory (each span held twice), and greedy completions through the two nodes give the
 * tokens of a one-process generator on the same genesis weights, with logits within 1e-4 of it.
 */
import { TextGenerator } from '@neuroshard/trainer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { halfModelMemory } from '../../src/network/devnet.js'
import { NetworkNode } from '../../src/network/node.js'
import { genesisWeights, greedyWithLogits, waitForCoverage } from './devnet-wait.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'

describe('serving nodes that bake their weights', () => {
  let dir: string
  let devnet: NetworkDevnet

  beforeAll(async () => {
    ({ dir, devnet } = await startTestDevnet('bake-weights', 400, {
      nodes: 2,
      node: { training: false, bakeWeights: true }
    }))
    await waitForCoverage(devnet, { everyNodeServes: true })
  }, 300_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('bakes every blocks / head executor, fuses none, offers the layer pool half its memory, and serves the one-process tokens and logits', async () => {
    const config = devnet.config
    const L = config.nLayers
    let baked = 0
    for (const n of devnet.nodes) {
      expect(n.host.services.layerPool.memoryBytes).toBe(Math.floor(2 * halfModelMemory(config, false) / 2))
      for (const { stage } of n.heldStages()) {
        expect(stage.fused).toBeUndefined()
        for (const e of stage.executors) {
          expect(e.bakedWeights, `${e.role.kind} executor`).toBe(e.role.kind !== 'embed')
          if (e.bakedWeights) baked++
        }
      }
    }
    expect(baked).toBeGreaterThanOrEqual(2)

    const driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
    expect(devnet.nodes.some(n => n !== driver && n.heldStages().some(h => h.end === L + 2 && h.start > 0))).toBe(true)
    const prompt = [5, 17, 42, 99, 7, 3, 250, 11]
    const n = 12
    const served = await greedyWithLogits(driver, prompt, n)
    expect(served.length).toBe(n)

    const weights = genesisWeights(config)
    const local = await TextGenerator.create({ config, parameters: weights, threads: 1 })
    try {
      const s = await local.session()
      let logits = await s.feed(prompt)
      let worst = 0
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < logits.length; j++) worst = Math.max(worst, Math.abs(logits[j] - served[i].logits[j]))
        let best = 0
        for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j
        expect(served[i].id, `token ${i}`).toBe(best)
        logits = await s.feed([served[i].id])
      }
      expect(worst).toBeLessThan(1e-4)
      await s.close()
    } finally {
      await local.close()
    }
  }, 300_000)

  it('refuses bakeWeights on a training node (typed)', () => {
    expect(() => new NetworkNode({ config: devnet.config, memoryBytes: 1e9, bakeWeights: true })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})
