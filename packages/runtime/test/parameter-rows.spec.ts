/**
 * What a pipeline whose Validator owns the tied matrix (pipeline spec §4.4 rule 7) needs from a shard: rows of a 2-D
 * weight read and written in the worker (`getParameterRows`, `setParameterRows`: the rest of the weight and the optimizer
 * state untouched), a step that leaves some parameters as they are (`step({ skip })`: weights and moments kept,
 * gradients zeroed, the step count advanced), and a tied replica's moments read back (`getTiedReplicaState`).
 */
import { describe, it, expect, afterEach } from 'vitest'
import { buildShardGraph, initParameter, preset, shardParameters } from '@neuroshard/model'
import { createShardExecutor, constantLr, int64 } from '../src/index.js'
import type { ShardExecutor } from '../src/index.js'
import type { ShardRole } from '@neuroshard/model'

const config = { ...preset('tiny'), tieEmbeddings: true }
const V = config.vocabSize
const d = config.dModel
const executors: ShardExecutor[] = []
afterEach(async () => { await Promise.all(executors.splice(0).map(async e => { await e.close() })) })

async function shard (role: ShardRole): Promise<ShardExecutor> {
  const e = await createShardExecutor({
    config,
    role,
    parameters: new Map(shardParameters(config, role).map(p => [p.name, initParameter(config, p, 3)])),
    intraOpNumThreads: 1,
    optimizer: { schedule: constantLr(1e-2) },
    graphs: { backward: buildShardGraph(config, role, 'backward').bytes }
  })
  executors.push(e)
  return e
}

describe('parameter rows, skipped parameters, replica moments', () => {
  it('reads and writes rows of a 2-D weight in place, the rest unchanged; refuses rows out of range and non-finite data', async () => {
    const e = await shard({ kind: 'embed' })
    const before = (await e.getParameters()).get('embed.weight')!
    const rows = [1, 5, V - 1]
    const got = await e.getParameterRows('embed.weight', rows)
    expect(got.length).toBe(rows.length * d)
    for (const [k, r] of rows.entries()) expect(Array.from(got.subarray(k * d, (k + 1) * d))).toEqual(Array.from(before.subarray(r * d, (r + 1) * d)))
    const data = Float32Array.from({ length: 2 * d }, (_, i) => i / 8 - 1)
    await e.setParameterRows('embed.weight', [0, 7], data)
    const after = (await e.getParameters()).get('embed.weight')!
    const want = before.slice()
    want.set(data.subarray(0, d), 0)
    want.set(data.subarray(d), 7 * d)
    expect(Buffer.from(after.buffer).equals(Buffer.from(want.buffer))).toBe(true)
    await expect(e.getParameterRows('embed.weight', [V])).rejects.toThrow(/outside/)
    await expect(e.setParameterRows('embed.weight', [0], new Float32Array(d - 1))).rejects.toThrow(/floats per row/)
    const nan = new Float32Array(d); nan[2] = Number.NaN
    await expect(e.setParameterRows('embed.weight', [0], nan)).rejects.toThrow()
    expect(Buffer.from((await e.getParameters()).get('embed.weight')!.buffer).equals(Buffer.from(want.buffer))).toBe(true)
  })

  it('step({ skip }) leaves the skipped weight and its moments, zeroes its gradient and counts the step', async () => {
    const e = await shard({ kind: 'embed' })
    const ids = int64(BigInt64Array.from({ length: 8 }, (_, i) => BigInt(i * 3)), [1, 8])
    const grad = { type: 'float32' as const, dims: [1, 8, d], data: Float32Array.from({ length: 8 * d }, (_, i) => Math.sin(i)) }
    await e.backward({ input_ids: ids, grad_hidden: grad })
    await e.step()
    const w1 = (await e.getParameters()).get('embed.weight')!
    const m1 = (await e.getOptimizerState()).m.get('embed.weight')!
    await e.backward({ input_ids: ids, grad_hidden: grad })
    const r = await e.step({ gradNorm: 1, skip: ['embed.weight'] })
    expect(r.step).toBe(1)
    expect(e.stepCount).toBe(2)
    expect(Buffer.from((await e.getParameters()).get('embed.weight')!.buffer).equals(Buffer.from(w1.buffer))).toBe(true)
    expect(Buffer.from((await e.getOptimizerState()).m.get('embed.weight')!.buffer).equals(Buffer.from(m1.buffer))).toBe(true)
    expect(await e.gradNormSquared()).toBe(0)
    // without skip the same gradient moves the weight
    await e.backward({ input_ids: ids, grad_hidden: grad })
    await e.step({ gradNorm: 1 })
    expect(Buffer.from((await e.getParameters()).get('embed.weight')!.buffer).equals(Buffer.from(w1.buffer))).toBe(false)
  })

  it('getTiedReplicaState: undefined before seeding, the seeded moments after; refused for an untied name', async () => {
    const e = await shard({ kind: 'head' })
    expect(await e.getTiedReplicaState('embed.weight')).toBeUndefined()
    const m = Float32Array.from({ length: V * d }, (_, i) => (i % 7) / 64)
    const v = Float32Array.from({ length: V * d }, (_, i) => (i % 5) / 256)
    await e.seedTiedReplica('embed.weight', { m, v })
    const got = await e.getTiedReplicaState('embed.weight')
    expect(Buffer.from(got!.m.buffer).equals(Buffer.from(m.buffer))).toBe(true)
    expect(Buffer.from(got!.v.buffer).equals(Buffer.from(v.buffer))).toBe(true)
    await expect(e.getTiedReplicaState('final_norm.weight')).rejects.toThrow(/not a tied parameter/)
  })
})
