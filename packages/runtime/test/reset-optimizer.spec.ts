/**
 * `resetOptimizer(step)`: an executor brought to step `step` in place (its moments and pending gradients dropped, the
 * step count set; the weights replaced with `setParameters`) steps exactly as an executor created fresh at that step
 * with those weights: what the node does for a stage that missed DiLoCo rounds instead of rebuilding it.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { buildShardGraph, initParameter, preset, shardParameters } from '@neuroshard/model'
import { createShardExecutor, warmupCosine } from '../src/index.js'
import type { ShardExecutor } from '../src/index.js'
import type { ShardRole } from '@neuroshard/model'

const config = preset('tiny')
const d = config.dModel
const role: ShardRole = { kind: 'blocks', start: 0, end: 1 }
const graphs = { forward: buildShardGraph(config, role, 'forward').bytes, backward: buildShardGraph(config, role, 'backward').bytes }
// the lr depends on the step (warm-up then cosine): a wrong step count changes the update
const optimizer = { schedule: warmupCosine({ peakLr: 3e-3, warmupSteps: 4, totalSteps: 40 }) }
const executors: ShardExecutor[] = []
afterEach(async () => { await Promise.all(executors.splice(0).map(async e => { await e.close() })) })

async function shard (parameters: Map<string, Float32Array>, step: number): Promise<ShardExecutor> {
  const e = await createShardExecutor({ config, role, graphs, parameters, step, optimizer, intraOpNumThreads: 1 })
  executors.push(e)
  return e
}

/** Deterministic values in [-0.5, 0.5) from an LCG (independent of the code under test) */
function lcg (n: number, seed: number): Float32Array {
  let s = seed
  return Float32Array.from({ length: n }, () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 - 0.5 })
}

async function trainStep (e: ShardExecutor, k: number): Promise<void> {
  const [b, t] = [2, 5]
  await e.backward({ hidden_in: { type: 'float32', dims: [b, t, d], data: lcg(b * t * d, 7 + k) }, grad_hidden_out: { type: 'float32', dims: [b, t, d], data: lcg(b * t * d, 100 + k) } })
  await e.step()
}

function bytes (a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength)
}

async function expectSameState (got: ShardExecutor, want: ShardExecutor): Promise<void> {
  expect(got.stepCount).toBe(want.stepCount)
  const [gp, wp] = [await got.getParameters(), await want.getParameters()]
  const [go, wo] = [await got.getOptimizerState(), await want.getOptimizerState()]
  expect([...go.m.keys()].sort()).toEqual([...wo.m.keys()].sort())
  for (const [name, w] of wp) expect(bytes(gp.get(name)!).equals(bytes(w)), `parameter ${name}`).toBe(true)
  for (const [name, m] of wo.m) expect(bytes(go.m.get(name)!).equals(bytes(m)), `m of ${name}`).toBe(true)
  for (const [name, v] of wo.v) expect(bytes(go.v.get(name)!).equals(bytes(v)), `v of ${name}`).toBe(true)
}

describe('resetOptimizer', () => {
  it('an executor reset to step s with new weights then stepped equals one created at step s with them (bit for bit)', async () => {
    const initial = new Map(shardParameters(config, role).map(p => [p.name, initParameter(config, p, 3)]))
    const base = new Map(shardParameters(config, role).map(p => [p.name, initParameter(config, p, 11)]))
    const s = 6
    // trained 3 steps (moments of every parameter), then a backward whose gradients are still pending
    const reused = await shard(initial, 0)
    for (let k = 0; k < 3; k++) await trainStep(reused, k)
    await reused.backward({ hidden_in: { type: 'float32', dims: [1, 3, d], data: lcg(3 * d, 999) }, grad_hidden_out: { type: 'float32', dims: [1, 3, d], data: lcg(3 * d, 998) } })
    expect((await reused.getOptimizerState()).m.size).toBeGreaterThan(0)
    await reused.setParameters(base)
    await reused.resetOptimizer(s)
    expect(reused.stepCount).toBe(s)
    expect(await reused.gradNormSquared()).toBe(0)
    expect((await reused.getOptimizerState()).m.size).toBe(0)

    const fresh = await shard(base, s)
    await expectSameState(reused, fresh)
    for (let k = 10; k < 13; k++) {
      await trainStep(reused, k)
      await trainStep(fresh, k)
      await expectSameState(reused, fresh)
    }
    expect(reused.stepCount).toBe(s + 3)
  })

  it('refuses a step count that is not a non-negative integer (InvalidParametersError), the state untouched', async () => {
    const e = await shard(new Map(shardParameters(config, role).map(p => [p.name, initParameter(config, p, 3)])), 2)
    await trainStep(e, 0)
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(e.resetOptimizer(bad)).rejects.toMatchObject({ name: 'InvalidParametersError' })
    }
    expect(e.stepCount).toBe(3)
    expect((await e.getOptimizerState()).m.size).toBeGreaterThan(0)
  })
})
