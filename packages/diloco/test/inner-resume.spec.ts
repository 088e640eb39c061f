/**
 * A resumed inner loop continues the run it was saved from (issue #11's "continued run" protocol in
 * bench/experiments.ts): weights, AdamW moments, step count and data position written to the bench's training-state
 * file and read back give, after the remaining steps, the same bits as the run that never stopped.
 */

import { describe, expect, it } from 'vitest'
import { preset } from '@neuroshard/model'
import { decodeTrainState, encodeTrainState } from '../bench/train-state.js'
import { flatten, InnerLoop, spanLayout, unflatten } from '../src/index.js'
import { modelParameters, initParameter } from '@neuroshard/model'

const config = { ...preset('tiny'), maxSeqLen: 16 }
const specs = modelParameters(config)
const layout = spanLayout({ id: 'full', parameters: specs })

// two shards of pseudo-random tokens (deterministic)
const shards = [0, 1].map(k => {
  let x = 12345 + k
  return Array.from({ length: 600 }, () => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % config.vocabSize })
})
const schedule = { peakLr: 3e-3, warmupSteps: 2, totalSteps: 8 }
const create = async (extra: Partial<Parameters<typeof InnerLoop.create>[0]> = {}, parameters?: Map<string, Float32Array>): Promise<InnerLoop> =>
  await InnerLoop.create({ config, parameters: parameters ?? new Map(specs.map(s => [s.name, initParameter(config, s, 0)])), train: shards, seqLen: 16, batchSize: 2, seed: 3, ...schedule, ...extra })

const bits = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)

describe('training-state file', () => {
  it('round-trips weights, moments, step and positions bit for bit', () => {
    const n = 7
    const weights = new Float32Array([0, -0, 1e-45, -3.4028234663852886e38, 1.5, -2.25, 0.1])
    const m = new Float32Array([1e-40, -0, 2, -7, 0.3, 1e30, -1e-30])
    const v = new Float32Array([0, 1e-45, 4, 9, 0.09, 1e38, 1e-20])
    const positions = [{ epoch: 0, batch: 17 }, { epoch: 3, batch: 0 }]
    const back = decodeTrainState(encodeTrainState({ step: 3000, weights, m, v, positions }), n)
    expect(back.step).toBe(3000)
    expect(back.positions).toEqual(positions)
    expect(bits(back.weights)).toEqual(bits(weights))
    expect(bits(back.m)).toEqual(bits(m))
    expect(bits(back.v)).toEqual(bits(v))
  })

  it('refuses a wrong header, size or non-finite state with InvalidParametersError', () => {
    const ok = encodeTrainState({ step: 1, weights: new Float32Array(2), m: new Float32Array(2), v: new Float32Array(2), positions: [{ epoch: 0, batch: 1 }] })
    const bad = ok.slice(); bad[0] = 0x41
    expect(() => decodeTrainState(bad, 2)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => decodeTrainState(ok, 3)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => decodeTrainState(ok.subarray(0, ok.length - 1), 2)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    const negV = encodeTrainState({ step: 1, weights: new Float32Array(2), m: new Float32Array(2), v: new Float32Array([0, -1]), positions: [] })
    expect(() => decodeTrainState(negV, 2)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    const nan = encodeTrainState({ step: 1, weights: new Float32Array([0, NaN]), m: new Float32Array(2), v: new Float32Array(2), positions: [] })
    expect(() => decodeTrainState(nan, 2)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => encodeTrainState({ step: -1, weights: new Float32Array(1), m: new Float32Array(1), v: new Float32Array(1), positions: [] })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => encodeTrainState({ step: 1, weights: new Float32Array(2), m: new Float32Array(1), v: new Float32Array(2), positions: [] })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})

describe('InnerLoop resume', () => {
  it('continues a run through the training-state file bit for bit (weights, moments, step, data position)', async () => {
    const whole = await create()
    await whole.run(6)
    const expected = flatten(layout, await whole.getParameters())
    const expectedM = flatten(layout, (await whole.executor.getOptimizerState()).m)
    expect(whole.step).toBe(6)
    await whole.close()

    const first = await create()
    await first.run(3)
    const opt = await first.executor.getOptimizerState()
    const file = encodeTrainState({ step: first.executor.stepCount, weights: flatten(layout, await first.getParameters()), m: flatten(layout, opt.m), v: flatten(layout, opt.v), positions: [first.position] })
    await first.close()

    const s = decodeTrainState(file, layout.size)
    expect(s.step).toBe(3)
    const second = await create({ step: s.step, position: s.positions[0] }, unflatten(layout, s.weights))
    await second.executor.setOptimizerState({ m: unflatten(layout, s.m), v: unflatten(layout, s.v) })
    expect(second.step).toBe(3)
    expect(second.executor.stepCount).toBe(3)
    await second.run(3)
    const got = flatten(layout, await second.getParameters())
    const gotM = flatten(layout, (await second.executor.getOptimizerState()).m)
    await second.close()
    expect(got.some((x, i) => x !== flatten(layout, unflatten(layout, s.weights))[i])).toBe(true) // it did train
    expect(Buffer.from(bits(got)).equals(Buffer.from(bits(expected)))).toBe(true)
    expect(Buffer.from(bits(gotM)).equals(Buffer.from(bits(expectedM)))).toBe(true)
  }, 120_000)

  it('refuses a negative or fractional step with InvalidParametersError', async () => {
    await expect(create({ step: -1 })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(create({ step: 1.5 })).rejects.toMatchObject({ name: 'InvalidParametersError' })
  })
})
