/**
 * Issue 12: a training node serves inference from a baked snapshot of its spans' last finished DiLoCo round
 * (NetworkNode `serveRoundWeights`, on by default), not from its training executors (weights changing every inner step).
 * Two NetworkNodes on loopback (real libp2p hosts, layer pool, onnxruntime stages, DiLoCo groups, the Driver loop on
 * genesis data), a micro model split Driver [0, k) → Validator [k, L + 2), the Driver's training held mid-round by
 * the test:
 * - a greedy generation through the pipeline is `neuroshard generate`'s engine (TextGenerator, baked) of the round's
 *   base weights: the same tokens, logits within 1e-4, while the training executors are two inner steps past them (the
 *   engine of those weights is checked to differ, so the comparison tells the two apart);
 * - a generation running while the next round's snapshot is swapped in stays on the weights it began with on every hop
 *   (its old snapshot kept until the generation closes it), and the snapshot served after the round is that round's;
 * - `yieldTraining`: while a generation is open the Driver takes no training step for up to YIELD_TRAINING_MAX_MS, then
 *   one; after it, training goes on.
 * - `trainingNiceness` (Linux): the training executors' worker threads, and the onnxruntime threads they start, run at
 *   nice DEFAULT_TRAINING_NICENESS and do the training's compute; the node's own thread (its in-thread serving
 *   snapshots) keeps the process's nice value.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { slotCount } from '@neuroshard/layer-pool'
import { constantLr } from '@neuroshard/runtime'
import { TextGenerator } from '@neuroshard/trainer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MICRO_CONFIG, until } from './four-replicas.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import { DEFAULT_TRAINING_NICENESS, YIELD_TRAINING_MAX_MS } from '../../src/network/node.js'
import type { NetworkNode } from '../../src/network/node.js'
import type { GeneratedToken } from '@neuroshard/pipeline'

const H = 6
const N = 8
const TOLERANCE = 1e-4

describe('a training node serves the last finished round\'s weights (real hosts, micro model)', () => {
  let dir: string
  let devnet: NetworkDevnet
  let slots: number
  let driver: NetworkNode
  let validator: NetworkNode
  /** the Driver's training refuses the step it is at while this is its step count (the Driver loop retries) */
  let holdAt = H + 2
  let held = false

  beforeAll(async () => {
    ({ dir, devnet } = await startTestDevnet('round-serving', 300, {
      nodes: 2,
      config: { ...MICRO_CONFIG, nLayers: 2 },
      node: { innerSteps: H, batchSize: 2, seqLen: 16, evalEvery: 0, optimizer: { schedule: constantLr(2e-2) }, diloco: { minDeadlineMs: 1500, codec: 'fp32' } }
    }))
    slots = slotCount(devnet.config)
    const covered = (): boolean => Array.from({ length: slots }, (_, s) => s).every(s => devnet.nodes.some(n => n.heldStages().some(h => h.start <= s && s < h.end)))
    await until(covered, 240_000, () => 'the two nodes to cover the model')
    driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
    validator = devnet.nodes.find(n => n !== driver)!
    expect(validator.heldStages().some(h => h.end === slots), 'a split model: the Validator holds the head').toBe(true)
    expect(driver.heldStages().some(h => h.end === slots), 'a split model: the Driver does not').toBe(false)
    const pipeline = driver.host.services.pipeline as any
    const trainStep = pipeline.trainStep.bind(pipeline)
    pipeline.trainStep = async (...args: any[]) => {
      const stage = pipeline.stages().find((s: any) => s.start === 0)
      if (stage.embed.stepCount === holdAt) {
        held = true
        throw new Error('held by the test')
      }
      held = false
      return await trainStep(...args)
    }
  }, 400_000)

  afterAll(async () => {
    holdAt = -1
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  const nodes = (): NetworkNode[] => [driver, validator]
  /** every training stage of both nodes serves `round` */
  const serving = (round: number): boolean => nodes().every(n => n.servingRounds().length > 0 && n.servingRounds().every(s => s.round === round))
  const describeState = (): string => JSON.stringify({ held, step: driver.heldStages()[0]?.stage.executors[0].stepCount, serving: nodes().map(n => n.servingRounds()), groups: nodes().map(n => Array.from({ length: slots }, (_, s) => n.group(s)?.round)) })

  /** The model of `round`: each slot's group base weights, from the node holding it (every group at `round`) */
  function roundWeights (round: number): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>()
    for (let s = 0; s < slots; s++) {
      const g = nodes().map(n => n.group(s)).find(g => g?.initialized === true)!
      expect(g.round, `slot ${s}'s group`).toBe(round)
      for (const [k, v] of g.parameters()) out.set(k, v)
    }
    return out
  }

  /** The training executors' weights now */
  async function liveWeights (): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>()
    for (const n of nodes()) for (const h of n.heldStages()) for (const e of h.stage.executors) for (const [k, v] of await e.getParameters()) out.set(k, v)
    return out
  }

  /** `neuroshard generate`'s engine (one process, weights baked): greedy tokens of `prompt` with their logits */
  async function engine (weights: Map<string, Float32Array>, prompt: number[]): Promise<Array<{ id: number, logits: Float32Array }>> {
    const gen = await TextGenerator.create({ config: devnet.config, parameters: weights, bakeWeights: true, threads: 1 })
    try {
      const session = await gen.session()
      const out: Array<{ id: number, logits: Float32Array }> = []
      let logits = await session.feed(prompt)
      for (let i = 0; i < N; i++) {
        let id = 0
        for (let v = 1; v < logits.length; v++) if (logits[v] > logits[id]) id = v
        out.push({ id, logits })
        if (i < N - 1) logits = await session.feed([id])
      }
      await session.close()
      return out
    } finally {
      await gen.close()
    }
  }

  const maxDiff = (a: Array<{ logits: Float32Array }>, b: Array<{ logits: Float32Array }>): number => {
    let worst = 0
    for (let i = 0; i < Math.min(a.length, b.length); i++) for (let v = 0; v < a[i].logits.length; v++) worst = Math.max(worst, Math.abs(a[i].logits[v] - b[i].logits[v]))
    return worst
  }

  const prompt = [5, 17, 42, 9, 3, 21]

  it('a generation through the pipeline is the one-process engine of the round\'s weights (tokens, logits within 1e-4), not of the training weights', async () => {
    await until(() => held && serving(1), 150_000, describeState)
    const served: GeneratedToken[] = []
    for await (const t of driver.host.services.pipeline.generate(prompt, { maxNewTokens: N, temperature: 0, returnLogits: true })) served.push(t)
    const got = served.map(t => ({ id: t.id, logits: t.logits! }))
    const expected = await engine(roundWeights(1), prompt)
    expect(got.map(t => t.id)).toEqual(expected.map(t => t.id))
    expect(maxDiff(got, expected)).toBeLessThanOrEqual(TOLERANCE)
    // the training executors are two inner steps into round 1: their model is another one
    const training = await engine(await liveWeights(), prompt)
    expect(maxDiff(training, expected), 'the training weights\' logits differ from the round\'s').toBeGreaterThan(100 * TOLERANCE)
  }, 300_000)

  it('a generation across the next round\'s swap stays on its round\'s weights on every hop; the next generation is the new round\'s', async () => {
    await until(() => held && serving(1), 150_000, describeState)
    const round1 = await engine(roundWeights(1), prompt)
    const gen = driver.host.services.pipeline.generate(prompt, { maxNewTokens: N, temperature: 0, returnLogits: true })[Symbol.asyncIterator]()
    const got: Array<{ id: number, logits: Float32Array }> = []
    const next = async (): Promise<void> => {
      const r = await gen.next()
      if (r.done !== true) got.push({ id: r.value.id, logits: r.value.logits! })
    }
    for (let i = 0; i < 3; i++) await next()
    // training goes on to round 2 and is held again two steps into it; every stage swaps to round 2's snapshot
    holdAt = 2 * H + 2
    await until(() => held && serving(2), 150_000, describeState)
    // the generation's KV sessions (prefilled at round 1) keep round 1's snapshot open on both hops
    for (const n of nodes()) expect(n.servingRounds().every(s => s.draining >= 1), `old snapshot kept: ${describeState()}`).toBe(true)
    for (;;) {
      const before = got.length
      await next()
      if (got.length === before) break
    }
    expect(got.map(t => t.id)).toEqual(round1.map(t => t.id))
    expect(maxDiff(got, round1)).toBeLessThanOrEqual(TOLERANCE)
    // the generation closed its sessions: the old snapshots are released
    await until(() => nodes().every(n => n.servingRounds().every(s => s.draining === 0)), 30_000, describeState)
    // a new generation is round 2's model, which is not round 1's
    const round2 = await engine(roundWeights(2), prompt)
    expect(maxDiff(round2, round1)).toBeGreaterThan(100 * TOLERANCE)
    const after: Array<{ id: number, logits: Float32Array }> = []
    for await (const t of driver.host.services.pipeline.generate(prompt, { maxNewTokens: N, temperature: 0, returnLogits: true })) after.push({ id: t.id, logits: t.logits! })
    expect(after.map(t => t.id)).toEqual(round2.map(t => t.id))
    expect(maxDiff(after, round2)).toBeLessThanOrEqual(TOLERANCE)
  }, 300_000)

  it('yieldTraining: the Driver takes no training step while a generation is open, at most YIELD_TRAINING_MAX_MS at a time', async () => {
    const step = (): number => driver.heldStages().find(h => h.start === 0)!.stage.executors[0].stepCount
    holdAt = -1
    const before = step()
    await until(() => step() >= before + 2, 60_000, describeState)
    driver.yieldTraining = true
    try {
      const gen = driver.host.services.pipeline.generate(prompt, { maxNewTokens: N, temperature: 0 })[Symbol.asyncIterator]()
      await gen.next()
      expect(driver.servingInference()).toBe(true)
      // a step in flight when the generation began may still end
      await new Promise(resolve => setTimeout(resolve, 300))
      const open = step()
      const yields = driver.trainingYields
      await new Promise(resolve => setTimeout(resolve, YIELD_TRAINING_MAX_MS / 2))
      expect(step(), 'no step while the generation is open').toBe(open)
      expect(driver.trainingYields).toBeGreaterThan(yields)
      // past the longest hold one step runs, then the Driver holds again
      await until(() => step() > open, 4 * YIELD_TRAINING_MAX_MS, describeState)
      // a proof re-execution's step (PoNW validators) waits the same way, at most YIELD_TRAINING_MAX_MS
      let t0 = Date.now()
      await driver.yieldToInference()
      expect(Date.now() - t0).toBeGreaterThanOrEqual(YIELD_TRAINING_MAX_MS - 20)
      await gen.return?.(undefined)
      await until(() => !driver.servingInference(), 10_000, describeState)
      t0 = Date.now()
      await driver.yieldToInference()
      expect(Date.now() - t0, 'no wait without inference').toBeLessThan(100)
      const after = step()
      await until(() => step() >= after + 2, 60_000, describeState)
    } finally {
      driver.yieldTraining = false
    }
  }, 300_000)

  it.runIf(process.platform === 'linux')('trainingNiceness: the training executors\' threads run at nice DEFAULT_TRAINING_NICENESS and do the training; the node\'s thread keeps its nice', async () => {
    /** every thread of this process: nice value and CPU ticks so far (/proc/self/task/<tid>/stat fields 19, 14 + 15) */
    const tasks = (): Array<{ tid: number, nice: number, ticks: number }> => readdirSync('/proc/self/task').flatMap(tid => {
      let stat: string
      try { stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8') } catch { return [] }
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return [{ tid: Number(tid), nice: Number(f[16]), ticks: Number(f[11]) + Number(f[12]) }]
    })
    const N = DEFAULT_TRAINING_NICENESS
    expect(N).toBeGreaterThan(0)
    for (const n of nodes()) expect(n.trainingNiceness).toBe(N)
    holdAt = -1
    const step = (): number => driver.heldStages().find(h => h.start === 0)!.stage.executors[0].stepCount
    const before = step()
    await until(() => step() >= before + 1, 60_000, describeState)
    const t0 = tasks()
    const s0 = step()
    await until(() => step() >= s0 + 3, 60_000, describeState)
    const t1 = tasks()
    const niced = t1.filter(t => t.nice === N)
    // one worker per training executor (every role of every held stage, both nodes)
    const executors = nodes().reduce((a, n) => a + n.heldStages().reduce((b, h) => b + h.stage.executors.length, 0), 0)
    expect(niced.length, `threads at nice ${N}: ${niced.length}, training executors ${executors}`).toBeGreaterThanOrEqual(executors)
    // they computed the steps
    const ticks = (ts: Array<{ tid: number, ticks: number }>, ids: Set<number>): number => ts.filter(t => ids.has(t.tid)).reduce((a, t) => a + t.ticks, 0)
    const ids = new Set(niced.map(t => t.tid))
    expect(ticks(t1, ids) - ticks(t0, ids), 'CPU ticks of the niced threads over three training steps').toBeGreaterThan(0)
    // the process's main thread (the nodes' event loop, where the micro model's serving snapshots run) is not niced
    expect(t1.find(t => t.tid === process.pid)!.nice).toBe(t0.find(t => t.tid === process.pid)!.nice)
    expect(t1.find(t => t.tid === process.pid)!.nice).not.toBe(N)
  }, 300_000)
})
