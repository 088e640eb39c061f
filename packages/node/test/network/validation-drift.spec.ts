/**
 * The network's validation loss when its slot groups are at different rounds. A node measures the network's
 * model after its lowest slot's round and used to need every slot's weights at exactly that round: after kills
 * the testbed's slot groups drifted apart (slot 1 at round 12 while slot 0 was at 9), no holder still had the
 * older weights, and the validation curve stopped after round 3–4. Now the node measures the model as the
 * network serves it (each slot's newest weights) and labels the point with the round of each slot.
 *
 * Two training nodes on loopback, each holding half the model. Their inner loops are far longer than the test,
 * so every slot group stays at round 0 unless the test moves one: the second node then announces its slots'
 * weights at later rounds (real layer records over gossip, real weight transfer), as a holder whose groups
 * moved on does.
 */
import { slotCount, slotWeightsStep } from '@neuroshard/layer-pool'
import { createPipelineStage } from '@neuroshard/pipeline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { modelLoss } from '../../src/network/node.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode, NetworkValidation } from '../../src/network/node.js'

/** Polls `ready` every 200 ms until it holds or `ms` pass */
async function until (ready: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

describe('validation of a network whose slot groups are at different rounds', () => {
  let dir: string
  let devnet: NetworkDevnet
  let slots: number
  /** holds slot 0 (the Driver): measures the validation loss */
  let a: NetworkNode
  /** holds the other half */
  let b: NetworkNode
  const events: NetworkValidation[] = []

  beforeAll(async () => {
    ({ dir, devnet } = await startTestDevnet('val-drift', 400, {
      nodes: 2,
      // no round completes during the test: every group stays at round 0 until the test moves the second node's
      node: { innerSteps: 1_000_000, batchSize: 1, seqLen: 8, evalBatches: 2 }
    }))
    slots = slotCount(devnet.config)
    const covered = (): boolean => Array.from({ length: slots }, (_, s) => s).every(s => devnet.nodes.some(n => n.heldStages().some(h => h.start <= s && s < h.end)))
    await until(covered, 240_000, 'the two nodes to cover the model')
    a = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
    b = devnet.nodes.find(n => n !== a)!
    a.addEventListener('node:validation', (e) => { events.push(e.detail) })
    // every held slot's group is set up, and the Driver's records show the other node's slots
    const held = (n: NetworkNode): number[] => n.heldStages().flatMap(h => Array.from({ length: h.end - h.start }, (_, i) => h.start + i))
    await until(() => devnet.nodes.every(n => held(n).every(s => n.group(s)?.initialized === true)), 120_000, 'the slot groups')
    await until(() => held(b).every(s => a.host.services.layerPool.holders(s).some(p => p.equals(b.peerId))), 120_000, 'the Driver to see the other half')
  }, 400_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('every slot at the round: the exact model; slots past it: the model as served, labelled with each slot\'s round', async () => {
    const own = new Set(a.heldStages().flatMap(h => Array.from({ length: h.end - h.start }, (_, i) => h.start + i)))
    const other = Array.from({ length: slots }, (_, s) => s).filter(s => !own.has(s))
    expect(other.length).toBeGreaterThan(0)

    // all groups at round 0: the model of round 0, every slot's weights of that round
    const exact = await a.validate(0, { timeoutMs: 150_000 })
    expect(exact).toBeDefined()
    expect(exact!.exact).toBe(true)
    expect(exact!.slotRounds).toEqual(Array.from({ length: slots }, () => 0))

    // the other node's slot groups move on (slot i of them to round 2 + i) with new weights: round 0 of those slots
    // is gone from every holder
    const H = a.innerSteps
    const moved = new Map<string, Float32Array>()
    const expectedRounds = Array.from({ length: slots }, () => 0)
    for (const [i, s] of other.entries()) {
      const w = new Map<string, Float32Array>()
      for (const [name, v] of b.group(s)!.parameters()) {
        const x = v.map(y => y * 0.5)
        w.set(name, x)
        moved.set(name, x)
      }
      await b.host.services.layerPool.updateSlotWeights(s, w, (2 + i) * H)
      expectedRounds[s] = 2 + i
    }
    const announced = (): boolean => other.every((s, i) => {
      const span = a.host.services.layerPool.records().get(b.peerId.toString())?.record.spans.find(x => x.start <= s && s < x.end)
      return span != null && slotWeightsStep(span, s) === (2 + i) * H
    })
    await until(announced, 60_000, 'the Driver to see the new steps')

    // generous: one of nine runs on a loaded machine did not get the newest weights within 60 s (cause not found)
    const served = await a.validate(0, { timeoutMs: 150_000 })
    expect(served, 'a validation point although round 0 of some slots is gone').toBeDefined()
    expect(served!.exact).toBe(false)
    expect(served!.slotRounds).toEqual(expectedRounds)
    expect(served!.round).toBe(0)

    // the loss is the one of the Driver's own round-0 slots with the other node's moved weights, computed here
    const weights = new Map<string, Float32Array>(moved)
    for (const s of own) for (const [name, v] of a.group(s)!.parameters()) weights.set(name, v)
    const stage = createPipelineStage({ config: devnet.config, start: 0, end: slots, parameters: weights })
    try {
      const expected = await modelLoss(weights, a.validationBatches(), async () => await stage)
      expect(served!.loss).toBeCloseTo(expected, 4)
    } finally {
      await (await stage).close()
    }
    // and not the round-0 model's
    expect(Math.abs(served!.loss - exact!.loss)).toBeGreaterThan(1e-3)

    // the API's point and the event carry the slots' rounds
    const point = a.recorder.progress().validation.at(-1)
    expect(point?.loss).toBe(served!.loss)
    expect(point?.slotRounds).toEqual(expectedRounds)
    expect(events.at(-1)).toEqual(served)
  }, 480_000)
})
