/**
 * Issue 15 (testbed soak-home-links run 5): a slot whose layer-pool holders are not all trainers. A training devnet
 * (four NetworkNodes, real libp2p hosts on loopback, layer pool, onnxruntime stages, Drivers training on data) pairs
 * into two chains, Driver [0, 2) → Validator [2, 4). One more training node joins with memory for one end slot and
 * takes [3, 4) (the pool's tie-break is steered to it: [0, 1) and [3, 4) both fit): it is in no chain, so it never
 * trains slot 3 and never announces its rounds, as run 5's [3, 4) stages of the two Drivers (in a chain through
 * their [0, 2) only). In run 5 two such holders made slot 3's group 4 with 2 trainers (f = 1, 2f + 1 = 3): every
 * round of slot 3 waited for the stall (3 minutes), the Validators' contribution (both slots of their stage) stayed
 * open that long and they refused the Drivers' training requests ("may not send training requests here", about 500
 * times per Driver), and slot 3 fell behind slot 2. Here one such holder does the same with a deadline quorum of
 * 0.75 (a group of 3 needs 3 announces; the stall rule too: the round stays stalled, `node:stalled`).
 * The group is now the slot's holders that train it (`slotTrainers`): the 2 Validators, and rounds go on at the
 * commit deadline.
 */
import { constantLr } from '@neuroshard/runtime'
import { slotMemory, TRAINING_BYTES_PER_PARAMETER } from '@neuroshard/layer-pool'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from './four-replicas.js'
import { waitForCoverage } from './devnet-wait.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'
import type { PeerId } from '@libp2p/interface'

/** A round is stalled this long after its first announce */
const STALL_MS = 20_000
/** Slot 3's rounds the test waits for */
const ROUNDS = 3
const WINDOW_MS = 120_000

describe('a slot held by nodes outside the training chains does not stall its rounds (real hosts)', () => {
  let dir: string
  let devnet: NetworkDevnet
  let validators: NetworkNode[] = []
  const stalled: Array<{ slot: number, round: number }> = []
  const extras: NetworkNode[] = []
  /** Training requests the Validators refused while set up and in the test window */
  let refused = 0

  beforeAll(async () => {
    ({ dir, devnet } = await startTestDevnet('behind-slot', 800, {
      nodes: 4,
      node: {
        innerSteps: 2,
        batchSize: 2,
        seqLen: 16,
        optimizer: { schedule: constantLr(3e-3) },
        evalEvery: 0,
        diloco: { minDeadlineMs: 1500, commitStaggerMs: 1000, codec: 'fp32', stallMs: STALL_MS, quorum: 0.75 }
      }
    }))
    await waitForCoverage(devnet, { everyNodeServes: true })
    const [first] = devnet.nodes
    // two chains Driver [0, 2) → Validator [2, 4)
    await until(() => first.chains().length === 2 && first.chains().every(c => c.driverEnd === 2 && c.hops.length === 1 && c.hops[0].start === 2 && c.hops[0].end === 4), 120_000,
      () => `chains ${JSON.stringify(first.chains())}`)
    const validatorIds = new Set(first.chains().map(c => c.hops[0].peer))
    validators = devnet.nodes.filter(n => validatorIds.has(n.peerId.toString()))
    expect(validators).toHaveLength(2)
    for (const v of validators) {
      const self = v as unknown as { allowTraining: (peer: PeerId) => boolean }
      const allow = self.allowTraining.bind(v)
      self.allowTraining = (peer) => {
        const ok = allow(peer)
        if (!ok) refused++
        return ok
      }
    }
    // memory for one end slot: [0, 1) and [3, 4) both fit, equally replicated; the tie-break (drawn per candidate in
    // slot order) is steered to the later one
    for (const v of validators) v.addEventListener('node:stalled', (e) => stalled.push(e.detail))
    const memoryBytes = Math.ceil(1.05 * slotMemory(devnet.config, 3, TRAINING_BYTES_PER_PARAMETER))
    expect(memoryBytes).toBeLessThan(slotMemory(devnet.config, 0, TRAINING_BYTES_PER_PARAMETER) + slotMemory(devnet.config, 1, TRAINING_BYTES_PER_PARAMETER))
    let draw = 0.999
    extras.push(await devnet.addNode({ memoryBytes, layerPool: { random: () => (draw *= 0.5) } }))
    await until(() => extras.every(n => n.heldStages().length === 1 && n.heldStages()[0].start === 3 && n.heldStages()[0].end === 4) &&
      validators.every(v => v.host.services.layerPool.holders(3).length === 3), 180_000,
    () => `extras hold ${extras.map(n => JSON.stringify(n.heldStages().map(h => [h.start, h.end]))).join(', ')}; slot 3 holders at the Validators ${validators.map(v => v.host.services.layerPool.holders(3).length).join(', ')}`)
  }, 600_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('the Validators\' slot 3 group is its two trainers, and its rounds go on at the deadline, level with slot 2', async () => {
    // the chains stay as they were: the extra [3, 4) holders are in none
    const chains = validators[0].chains()
    expect(chains).toHaveLength(2)
    for (const n of extras) expect(chains.some(c => c.driver === n.peerId.toString() || c.hops.some(h => h.peer === n.peerId.toString()))).toBe(false)
    const v = validators[0]
    const from = v.group(3)!.round
    const refusedBefore = refused
    const started = Date.now()
    await until(() => v.group(3)!.round >= from + ROUNDS, WINDOW_MS,
      () => `slot 3 at round ${v.group(3)!.round} (from ${from}), slot 2 at ${v.group(2)!.round}; ${refused - refusedBefore} training requests refused by the Validators; node:stalled ${JSON.stringify(stalled)}`)
    const took = Date.now() - started
    // no round waited for the stall: slot 3 keeps up with slot 2 of the same stage
    expect(Math.abs(v.group(2)!.round - v.group(3)!.round)).toBeLessThanOrEqual(1)
    for (const x of validators) expect(Math.abs(x.group(2)!.round - x.group(3)!.round)).toBeLessThanOrEqual(1)
    // the group of slot 3 is the two Validators (the trainers), not the three holders
    for (const x of validators) {
      expect(x.slotReplicas(3).map(String).sort()).toEqual(validators.map(y => y.peerId.toString()).sort())
    }
    expect(stalled).toEqual([])
    console.log(`slot 3: ${ROUNDS} rounds in ${took} ms; the Validators refused ${refused - refusedBefore} training requests meanwhile (${refused} since the set-up)`)
  }, 180_000)
})
