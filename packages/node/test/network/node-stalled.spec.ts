/**
 * `node:stalled` (specs/diloco 1.3.0 §6 step 5a, as the node wires it): four NetworkNodes (real libp2p hosts on
 * loopback, layer pool, onnxruntime stages) each hold the whole model, so every slot's DiLoCo group is the four of
 * them. Only A's stage trains (the test runs A's inner steps with `localTrainStep`, what a Driver holding the whole
 * model runs; no node has data, so no Driver loop trains by itself): A's own poll sees its inner loop done and
 * announces every slot's pseudo-gradient. B, C and D stay silent, so each slot's round 0 stalls with one of four
 * members, below half of the group: the node reports it once per slot (`node:stalled`) and its stage waits for the
 * round instead of contributing again. B then announces the round too: two of four commit it, A applies it and its
 * stage, trained again, announces round 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { localTrainStep } from '../../src/network/node.js'
import { MICRO_SLOTS as SLOTS, announcesSeen, localStep, microBatch as batch, startFourReplicas, until, waitForWholeModelGroups } from './four-replicas.js'
import type { NetworkNode } from '../../src/network/node.js'

/** A round stalls 8 s after its first announce (well past the 1.5 s deadline and the leader candidates' turns) */
const STALL_MS = 8_000
const H = 2
const DILOCO = { minDeadlineMs: 1500, commitStaggerMs: 1000, codec: 'fp32' as const, stallMs: STALL_MS }

describe('node:stalled: a slot round stalled below half of the group (real hosts)', () => {
  const nodes: NetworkNode[] = []
  let A: NetworkNode, B: NetworkNode, C: NetworkNode, D: NetworkNode
  const stalled: Array<{ slot: number, round: number, reason: string }> = []
  const contributed: Array<{ slot: number, round: number }> = []
  const applied: Array<{ slot: number, round: number }> = []
  /** slot → the rounds in which B accepted an announce of A */
  let announcesOfA: Map<number, number[]>

  beforeAll(async () => {
    [A, B, C, D] = await startFourReplicas(nodes, { innerSteps: H, diloco: DILOCO })
    const all = [A, B, C, D]
    await waitForWholeModelGroups(all)
    A.addEventListener('node:stalled', (e) => stalled.push(e.detail))
    A.addEventListener('node:contributed', (e) => contributed.push(e.detail))
    A.addEventListener('node:round', (e) => applied.push(e.detail))
    announcesOfA = announcesSeen(B, A)
  }, 300_000)

  afterAll(async () => {
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
  }, 120_000)

  it('A alone announces round 0: every slot reports node:stalled once, and the stage does not contribute again', async () => {
    const stage = A.heldStages()[0].stage
    expect(stage.executors[0].stepCount).toBe(0)
    const started = Date.now()
    for (let i = 0; i < H; i++) await localTrainStep(stage, batch(i))
    // A's poll contributes every slot; the rounds stall STALL_MS after A's announces (one of four < half)
    await until(() => stalled.length >= SLOTS, 120_000, () => `node:stalled ${JSON.stringify(stalled)}; announces of A at B ${JSON.stringify([...announcesOfA])}`)
    expect(Date.now() - started).toBeGreaterThanOrEqual(STALL_MS - 500)
    expect(stalled.map(e => e.slot).sort((a, b) => a - b)).toEqual(Array.from({ length: SLOTS }, (_, s) => s))
    for (const e of stalled) {
      expect(e.round).toBe(0)
      expect(e.reason).toMatch(/^round 0 stalled: 1 of 4 members announced it, 2 needed/)
    }
    // the stage waits for the round: 40 more polls of the inner loops (100 ms each) report and announce nothing more
    await new Promise(resolve => setTimeout(resolve, 4_000))
    expect(stalled).toHaveLength(SLOTS)
    expect(contributed).toEqual([])
    for (let s = 0; s < SLOTS; s++) {
      expect(announcesOfA.get(s), `announces of A at B, slot ${s}`).toEqual([0])
      expect(A.group(s)!.round).toBe(0)
    }
    expect(applied).toEqual([])
    expect(stage.executors[0].stepCount).toBe(H)
  }, 180_000)

  it('B announces the stalled round too: two of four commit it, A applies it and its stage contributes round 1', async () => {
    const outs = await Promise.all(Array.from({ length: SLOTS }, async (_, s) => await B.group(s)!.contribute(localStep(B.group(s)!, 1))))
    expect(outs.every(o => o.round === 0 && o.included)).toBe(true)
    await until(() => applied.filter(a => a.round === 1).length === SLOTS, 60_000, () => `node:round ${JSON.stringify(applied)}`)
    for (let s = 0; s < SLOTS; s++) {
      const record = A.group(s)!.record(0)!
      expect(record.contributions.map(c => c.sender).sort()).toEqual([A, B].map(x => x.peerId.toString()).sort())
    }
    // A's announces of round 0 were in the commit, though its contribute() of round 0 was rejected as stalled
    expect(contributed).toEqual([])
    const stage = A.heldStages()[0].stage
    await until(() => stage.executors[0].stepCount === H, 30_000, () => `step count ${stage.executors[0].stepCount}`)
    for (let i = 0; i < H; i++) await localTrainStep(stage, batch(H + i))
    await until(() => [...announcesOfA.values()].every(r => r.includes(1)), 60_000, () => `announces of A at B ${JSON.stringify([...announcesOfA])}`)
    for (let s = 0; s < SLOTS; s++) expect(announcesOfA.get(s)).toEqual([0, 1])
  }, 180_000)
})
