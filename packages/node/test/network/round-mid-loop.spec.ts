/**
 * A stage of several slots whose slot groups commit a round one after the other (real libp2p hosts on loopback,
 * layer pool, onnxruntime stages). Four NetworkNodes hold the whole model, so each slot's DiLoCo group is the four of
 * them; only A's stage trains (the test runs its inner steps with `localTrainStep`, what a Driver holding the whole
 * model runs; no node has data, so no Driver loop trains by itself). B announces slot 0's round 0 at once and the
 * other slots' rounds later: A applies slot 0's round 1 first, its stage takes its first step of round 1 (its step
 * count is then H + 1, in round 1's inner loop), and only then the other slots' round 1 arrives. That round changes
 * nothing but their base weights: A must keep its stage (same executors, step count H + 1, the AdamW moments it has),
 * not rebuild it at step H as if it had missed a round (the rebuild the 30-minute soak saw at about every round:
 * 2–3 new worker threads with new onnxruntime sessions each). The stage then finishes round 1's inner loop and
 * announces round 1 for every slot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { localTrainStep } from '../../src/network/node.js'
import { MICRO_SLOTS as SLOTS, announcesSeen, localStep, microBatch as batch, startFourReplicas, until, waitForWholeModelGroups } from './four-replicas.js'
import type { NetworkNode } from '../../src/network/node.js'

const H = 3
const DILOCO = { minDeadlineMs: 1500, commitStaggerMs: 1000, codec: 'fp32' as const, stallMs: 8_000 }

describe('a round that reaches a stage\'s slots one after the other does not rebuild the stage (real hosts)', () => {
  const nodes: NetworkNode[] = []
  let A: NetworkNode, B: NetworkNode, C: NetworkNode, D: NetworkNode
  const applied: Array<{ slot: number, round: number }> = []
  /** slot → the rounds in which B accepted an announce of A */
  let announcesOfA: Map<number, number[]>

  beforeAll(async () => {
    [A, B, C, D] = await startFourReplicas(nodes, { innerSteps: H, diloco: DILOCO })
    const all = [A, B, C, D]
    await waitForWholeModelGroups(all)
    A.addEventListener('node:round', (e) => applied.push(e.detail))
    announcesOfA = announcesSeen(B, A)
  }, 300_000)

  afterAll(async () => {
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
  }, 120_000)

  it('slot 0 applies round 1, the stage steps on, the other slots\' round 1 keeps the stage and its step count', async () => {
    expect(SLOTS).toBeGreaterThanOrEqual(2)
    const stage = A.heldStages()[0].stage
    expect(stage.executors[0].stepCount).toBe(0)
    for (let i = 0; i < H; i++) await localTrainStep(stage, batch(i))
    // A announces round 0 of every slot; B only slot 0's: two of four commit slot 0's round
    await until(() => [...announcesOfA.values()].every(r => r.includes(0)), 60_000, () => `announces of A at B ${JSON.stringify([...announcesOfA])}`)
    const first = await B.group(0)!.contribute(localStep(B.group(0)!, 1))
    expect(first.round === 0 && first.included).toBe(true)
    await until(() => applied.some(a => a.slot === 0 && a.round === 1), 60_000, () => `node:round ${JSON.stringify(applied)}`)
    expect(applied.filter(a => a.slot !== 0 && a.round > 0)).toEqual([])
    expect(A.heldStages()[0].stage === stage, 'the stage after slot 0\'s round 1 is the one that trained').toBe(true)
    expect(stage.executors[0].stepCount).toBe(H)
    // the stage's round is 1 now (its highest slot group's): its first step of round 1
    await localTrainStep(stage, batch(H))
    expect(stage.executors[0].stepCount).toBe(H + 1)
    // the other slots' round 0 commits now, with B's announces
    const rest = await Promise.all(Array.from({ length: SLOTS - 1 }, async (_, i) => await B.group(i + 1)!.contribute(localStep(B.group(i + 1)!, 1))))
    expect(rest.every(o => o.round === 0 && o.included)).toBe(true)
    await until(() => applied.filter(a => a.round === 1).length === SLOTS, 60_000, () => `node:round ${JSON.stringify(applied)}`)
    // the same stage, its step count where it was: not rebuilt at step H
    expect(A.heldStages()[0].stage === stage, `the stage after every slot's round 1 is the one that trained (a stage at step ${A.heldStages()[0].stage.executors[0].stepCount} serves)`).toBe(true)
    expect(stage.executors[0].stepCount).toBe(H + 1)
    // every slot's weights in the stage are its group's round-1 base, except slot 0's, one step on from it
    for (let s = 1; s < SLOTS; s++) {
      const base = A.group(s)!.parameters()
      const exec = s === SLOTS - 1 ? stage.head! : stage.blocks!
      const got = await exec.getParameters()
      for (const [name, w] of base) expect(got.get(name), `slot ${s} ${name}`).toEqual(w)
    }
    // the stage finishes round 1's inner loop and announces round 1 for every slot
    for (let i = 1; i < H; i++) await localTrainStep(stage, batch(H + i))
    await until(() => [...announcesOfA.values()].every(r => r.includes(1)), 60_000, () => `announces of A at B ${JSON.stringify([...announcesOfA])}`)
    for (let s = 0; s < SLOTS; s++) expect(announcesOfA.get(s)).toEqual([0, 1])
    expect(A.heldStages()[0].stage === stage, 'the stage after round 1\'s inner loop is the one that trained').toBe(true)
  }, 240_000)
})
