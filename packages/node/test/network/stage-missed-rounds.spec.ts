/**
 * A stage that misses DiLoCo rounds (issue 15/12: soak run 6, a head stage outside the training chain rebuilt 149
 * times, new worker threads and onnxruntime sessions each round) is brought to each round in place (real libp2p hosts
 * on loopback, layer pool, onnxruntime stages). Four NetworkNodes hold the whole model, so each slot's DiLoCo group is
 * the four of them; A's stage never trains while B and C commit rounds 0 and 1 (no node has data, so no Driver loop
 * trains by itself). At each round A's stage keeps its executors (same objects), its step count is round·H and its
 * weights are the groups' base; one step on it then equals, bit for bit (weights and AdamW moments), one step of a
 * stage built fresh at that step from the groups' weights (what the rebuild gave), and its inner loop of round 2 ends
 * with A announcing round 2 for every slot.
 */
import { createPipelineStage } from '@neuroshard/pipeline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { localTrainStep } from '../../src/network/node.js'
import { MICRO_CONFIG, MICRO_SLOTS as SLOTS, announcesSeen, localStep, microBatch as batch, startFourReplicas, until, waitForWholeModelGroups } from './four-replicas.js'
import type { NetworkNode } from '../../src/network/node.js'
import type { PipelineStage } from '@neuroshard/pipeline'

const H = 2
const DILOCO = { minDeadlineMs: 1500, commitStaggerMs: 1000, codec: 'fp32' as const, stallMs: 8_000 }

function bytes (a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength)
}

/** Every slot's base weights in A's groups, as one map */
function groupWeights (node: NetworkNode): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  for (let s = 0; s < SLOTS; s++) for (const [name, w] of node.group(s)!.parameters()) out.set(name, w)
  return out
}

describe('a stage that misses rounds is brought to each round in place, not rebuilt (real hosts)', () => {
  const nodes: NetworkNode[] = []
  let A: NetworkNode, B: NetworkNode, C: NetworkNode, D: NetworkNode
  const applied: Array<{ slot: number, round: number }> = []
  let announcesOfA: Map<number, number[]>
  let fresh: PipelineStage | undefined

  beforeAll(async () => {
    [A, B, C, D] = await startFourReplicas(nodes, { innerSteps: H, diloco: DILOCO })
    await waitForWholeModelGroups([A, B, C, D])
    A.addEventListener('node:round', (e) => applied.push(e.detail))
    announcesOfA = announcesSeen(B, A)
  }, 300_000)

  afterAll(async () => {
    await fresh?.close()
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
  }, 120_000)

  it('B and C commit rounds 0 and 1 without A: A\'s stage keeps its executors at step round·H with the groups\' weights, then trains as a fresh stage would', async () => {
    const stage = A.heldStages()[0].stage
    const executors = [...stage.executors]
    expect(stage.executors[0].stepCount).toBe(0)
    for (const round of [0, 1]) {
      const outs = await Promise.all([B, C].flatMap((n, w) => Array.from({ length: SLOTS }, async (_, s) => await n.group(s)!.contribute(localStep(n.group(s)!, w + 1)))))
      expect(outs.every(o => o.round === round && o.included)).toBe(true)
      await until(() => applied.filter(a => a.round === round + 1).length === SLOTS, 60_000, () => `node:round ${JSON.stringify(applied)}`)
      const now = A.heldStages()[0].stage
      expect(now === stage, `the stage after round ${round + 1} is the one A held`).toBe(true)
      expect(now.executors.every((e, i) => e === executors[i]), 'the same executors').toBe(true)
      for (const e of now.executors) expect(e.stepCount).toBe((round + 1) * H)
      const want = groupWeights(A)
      for (const e of now.executors) {
        const got = await e.getParameters()
        for (const [name, w] of got) expect(bytes(w).equals(bytes(want.get(name)!)), `round ${round + 1} ${name}`).toBe(true)
        expect((await e.getOptimizerState()).m.size, 'no AdamW moments').toBe(0)
      }
    }
    // one step on A's stage equals one step of a stage built at step 2H from the groups' weights (what a rebuild gave)
    fresh = await createPipelineStage({ config: MICRO_CONFIG, start: 0, end: SLOTS, parameters: groupWeights(A), step: 2 * H, training: true, intraOpNumThreads: 1, device: 'cpu', inThread: false })
    const a = await localTrainStep(stage, batch(2 * H))
    const f = await localTrainStep(fresh, batch(2 * H))
    expect(a).toEqual(f)
    expect(fresh.executors.length).toBe(stage.executors.length)
    for (const [i, e] of stage.executors.entries()) {
      const fe = fresh.executors[i]
      expect(e.stepCount).toBe(fe.stepCount)
      const [p, fp] = [await e.getParameters(), await fe.getParameters()]
      for (const [name, w] of fp) expect(bytes(p.get(name)!).equals(bytes(w)), `stepped ${name}`).toBe(true)
      const [o, fo] = [await e.getOptimizerState(), await fe.getOptimizerState()]
      expect([...o.m.keys()].sort()).toEqual([...fo.m.keys()].sort())
      for (const [name, m] of fo.m) expect(bytes(o.m.get(name)!).equals(bytes(m)), `m of ${name}`).toBe(true)
      for (const [name, v] of fo.v) expect(bytes(o.v.get(name)!).equals(bytes(v)), `v of ${name}`).toBe(true)
    }
    // the rest of round 2's inner loop: A announces round 2 for every slot
    for (let i = 1; i < H; i++) await localTrainStep(stage, batch(2 * H + i))
    await until(() => [...announcesOfA.values()].every(r => r.includes(2)), 60_000, () => `announces of A at B ${JSON.stringify([...announcesOfA])}`)
    for (let s = 0; s < SLOTS; s++) expect(announcesOfA.get(s)).toEqual([2])
    expect(A.heldStages()[0].stage === stage).toBe(true)
  }, 300_000)
})
