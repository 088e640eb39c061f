import { describe, it, expect, afterEach } from 'vitest'
import { preset } from '@neuroshard/model'
import { createShardExecutor, float32, warmupCosine, constantLr, adamwKernel } from '../src/index.js'
import { linregBackwardModel, linregForwardModel, kvModel } from './fixtures/onnx.js'
import type { ShardExecutor, ShardExecutorInit } from '../src/index.js'

const config = preset('tiny')
const role = { kind: 'head' } as const
const executors: ShardExecutor[] = []
afterEach(async () => { await Promise.all(executors.splice(0).map(async e => { await e.close() })) })

async function linreg (init: Partial<ShardExecutorInit> = {}): Promise<ShardExecutor> {
  const ex = await createShardExecutor({
    config,
    role,
    graphs: { forward: linregForwardModel(), backward: linregBackwardModel() },
    parameterSpecs: [{ name: 'w', shape: [4, 1] }],
    parameters: new Map([['w', new Float32Array(4)]]),
    intraOpNumThreads: 1,
    ...init
  })
  executors.push(ex)
  return ex
}

// fixed data: t = x · wTrue
const wTrue = [1, -2, 3, 0.5]
const xData = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i * 1.7) + 0.3 * Math.cos(i * 0.3))
const tData = Float32Array.from({ length: 8 }, (_, r) => wTrue.reduce((s, w, c) => s + w * xData[r * 4 + c], 0))
const feeds = (): Record<string, ReturnType<typeof float32>> => ({ x: float32(xData, [8, 4]), t: float32(tData, [8, 1]) })

function lossAt (w: number[]): number {
  let s = 0
  for (let r = 0; r < 8; r++) {
    let y = 0
    for (let c = 0; c < 4; c++) y += xData[r * 4 + c] * w[c]
    s += (y - tData[r]) ** 2
  }
  return s / 8
}

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

describe('shard executor', () => {
  it('accumulates gradients that match finite differences of the loss', async () => {
    const w0 = [0.1, 0.2, -0.3, 0.4]
    const ex = await linreg({ parameters: new Map([['w', Float32Array.from(w0)]]) })
    const out = await ex.backward(feeds())
    expect(Object.keys(out)).toEqual(['loss'])
    expect((out.loss.data as Float32Array)[0]).toBeCloseTo(lossAt(w0), 4)
    const g1 = (await ex.getGradients()).get('w')!
    for (let c = 0; c < 4; c++) {
      const h = 1e-4
      const plus = [...w0]; plus[c] += h
      const minus = [...w0]; minus[c] -= h
      expect(g1[c]).toBeCloseTo((lossAt(plus) - lossAt(minus)) / (2 * h), 3)
    }
    await ex.backward(feeds())
    const g2 = (await ex.getGradients()).get('w')!
    for (let c = 0; c < 4; c++) expect(g2[c]).toBeCloseTo(2 * g1[c], 5)
    expect(await ex.gradNormSquared()).toBeCloseTo(g2.reduce((s, v) => s + v * v, 0), 4)
    await ex.zeroGradients()
    expect(Array.from((await ex.getGradients()).get('w')!)).toEqual([0, 0, 0, 0])
  })

  it('AdamW steps drive a least-squares fit to the exact solution', async () => {
    const ex = await linreg({ optimizer: { schedule: warmupCosine({ peakLr: 0.1, warmupSteps: 10, totalSteps: 400, minLr: 0.001 }), weightDecay: 0, maxGradNorm: 0 } })
    const first = (await ex.backward(feeds())).loss.data[0] as number
    await ex.step()
    let last = first
    for (let i = 1; i < 400; i++) {
      last = (await ex.backward(feeds())).loss.data[0] as number
      await ex.step()
    }
    expect(ex.stepCount).toBe(400)
    expect(last).toBeLessThan(first * 1e-4)
    const w = (await ex.getParameters()).get('w')!
    for (let c = 0; c < 4; c++) expect(w[c]).toBeCloseTo(wTrue[c], 2)
    const y = await ex.forward({ x: float32(xData.subarray(0, 4), [1, 4]) })
    expect((y.y.data as Float32Array)[0]).toBeCloseTo(tData[0], 2)
  })

  it('step() matches a float64 reference AdamW with clipping, bias correction and decoupled decay', async () => {
    const w0 = [0.1, 0.2, -0.3, 0.4]
    const lr = 0.01; const b1 = 0.9; const b2 = 0.95; const eps = 1e-8; const wd = 0.1; const maxNorm = 0.5
    const ex = await linreg({ parameters: new Map([['w', Float32Array.from(w0)]]), optimizer: { schedule: constantLr(lr), beta1: b1, beta2: b2, eps, weightDecay: wd, maxGradNorm: maxNorm } })
    const p = [...w0]; const m = [0, 0, 0, 0]; const v = [0, 0, 0, 0]
    for (let t = 1; t <= 3; t++) {
      await ex.backward(feeds())
      const g = Array.from((await ex.getGradients()).get('w')!)
      const norm = Math.sqrt(g.reduce((s, x) => s + x * x, 0))
      const scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
      const r = await ex.step()
      expect(r.gradNorm).toBeCloseTo(norm, 4)
      expect(r.clipScale).toBeCloseTo(scale, 5)
      expect(r.lr).toBe(lr)
      for (let i = 0; i < 4; i++) {
        const gi = g[i] * scale
        m[i] = b1 * m[i] + (1 - b1) * gi
        v[i] = b2 * v[i] + (1 - b2) * gi * gi
        const mh = m[i] / (1 - b1 ** t); const vh = v[i] / (1 - b2 ** t)
        p[i] = p[i] - lr * wd * p[i] - lr * mh / (Math.sqrt(vh) + eps)
      }
      const got = (await ex.getParameters()).get('w')!
      for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(p[i], 5)
      // gradients are zeroed by the step
      expect(await ex.gradNormSquared()).toBe(0)
    }
    const state = await ex.getOptimizerState()
    for (let i = 0; i < 4; i++) expect(state.m.get('w')![i]).toBeCloseTo(m[i], 6)
  })

  it('rejects NaN weights and reports a parameter that becomes non-finite', async () => {
    const err = await rejection(linreg({ parameters: new Map([['w', Float32Array.of(1, Number.NaN, 0, 0)]]) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'w'])
    const ex = await linreg({ optimizer: { schedule: constantLr(Number.POSITIVE_INFINITY), maxGradNorm: 0 } })
    await ex.backward(feeds())
    const e2 = await rejection(ex.step())
    expect([e2.name, e2.tensorName]).toEqual(['NonFiniteTensorError', 'w'])
  })

  it('rejects wrong activations with typed errors naming the tensor', async () => {
    const ex = await linreg()
    const e1 = await rejection(ex.backward({ x: float32(xData, [8, 4]), t: float32(new Float32Array(16), [8, 2]) }))
    expect([e1.name, e1.tensorName]).toEqual(['ShapeMismatchError', 't'])
    const nan = xData.slice(); nan[3] = Number.NaN
    const e2 = await rejection(ex.forward({ x: float32(nan, [8, 4]) }))
    expect([e2.name, e2.tensorName]).toEqual(['NonFiniteTensorError', 'x'])
    const e3 = await rejection(ex.openInference())
    expect(e3.name).toBe('SessionError')
  })

  it('KV-cache sessions keep past keys in the worker and feed position_offset', async () => {
    const ex = await createShardExecutor({ config, role, graphs: { inference: kvModel() }, parameterSpecs: [], parameters: new Map() })
    executors.push(ex)
    const a = await ex.openInference()
    const b = await ex.openInference()
    const prefill = await a.run({ hidden_in: float32([1, 2, 3, 4, 5, 6], [1, 3, 2]) })
    expect(Object.keys(prefill)).toEqual(['hidden_out'])
    expect(Array.from(prefill.hidden_out.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6])
    expect(a.position).toBe(3)
    const step = await a.run({ hidden_in: float32([10, 20], [1, 1, 2]) })
    expect(Array.from(step.hidden_out.data as Float32Array)).toEqual([13, 23])
    expect(a.position).toBe(4)
    // an independent session starts from an empty cache
    const other = await b.run({ hidden_in: float32([7, 8], [1, 1, 2]) })
    expect(Array.from(other.hidden_out.data as Float32Array)).toEqual([7, 8])
    expect(b.position).toBe(1)
    const err = await rejection(a.run({ hidden_in: float32(new Float32Array(2 * config.maxSeqLen), [1, config.maxSeqLen, 2]) }))
    expect([err.name, err.tensorName]).toEqual(['SequenceTooLongError', 'hidden_in'])
    await a.close()
    expect((await rejection(a.run({ hidden_in: float32([1, 2], [1, 1, 2]) }))).name).toBe('SessionError')
    await b.close()
  })
})

describe('schedules and kernels', () => {
  it('warmupCosine warms up linearly then decays to minLr', () => {
    const s = warmupCosine({ peakLr: 1, warmupSteps: 4, totalSteps: 14, minLr: 0.1 })
    expect([s(0), s(1), s(3)]).toEqual([0.25, 0.5, 1])
    expect(s(4)).toBeCloseTo(1)
    expect(s(9)).toBeCloseTo(0.55)
    expect(s(14)).toBeCloseTo(0.1)
    expect(s(1000)).toBeCloseTo(0.1)
    expect(() => warmupCosine({ peakLr: 0, warmupSteps: 1, totalSteps: 2 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })

  it('adamwKernel reports non-finite results', () => {
    const p = Float32Array.of(1); const g = Float32Array.of(Number.NaN)
    expect(adamwKernel(p, g, new Float32Array(1), new Float32Array(1), { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, t: 1, gradScale: 1 })).toBe(false)
  })
})
