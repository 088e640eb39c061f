/**
 * A tied replica stepped in its shard's worker (a pipeline Validator's copy of the tied matrix, spec pipeline §4.4):
 * `seedTiedReplica` puts the AdamW moments next to the resident weight, `stepTiedReplica` adds the rows to the moved
 * gradient, applies AdamW in place and answers the SHA-256 of the stepped weight — the bits of the model spec's AdamW
 * (§3.1) computed here on copies, without the weight crossing threads. `nextStep` gives the lr and clip scale a step
 * will use before it runs; `parameterHash` hashes a weight in the worker.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { createHash } from 'node:crypto'
import { buildShardGraph, initParameter, preset, shardParameters } from '@neuroshard/model'
import { createShardExecutor, constantLr } from '../src/index.js'
import type { ShardExecutor } from '../src/index.js'

const config = { ...preset('tiny'), tieEmbeddings: true }
const V = config.vocabSize
const d = config.dModel
const n = V * d
const executors: ShardExecutor[] = []
afterEach(async () => { await Promise.all(executors.splice(0).map(async e => { await e.close() })) })

async function headShard (maxGradNorm = 1): Promise<ShardExecutor> {
  const role = { kind: 'head' as const }
  const e = await createShardExecutor({
    config,
    role,
    parameters: new Map(shardParameters(config, role).map(p => [p.name, initParameter(config, p, 3)])),
    intraOpNumThreads: 1,
    optimizer: { schedule: constantLr(2e-3), maxGradNorm },
    graphs: { backward: buildShardGraph(config, role, 'backward').bytes }
  })
  executors.push(e)
  return e
}

/** Values from an LCG (independent of the code under test) */
function lcg (length: number, seed: number, scale: number, offset = 0.5): Float32Array {
  let s = seed
  return Float32Array.from({ length }, () => { s = (s * 1103515245 + 12345) % 2147483648; return scale * (s / 2147483648 - offset) })
}

function sha256 (a: Float32Array): Buffer {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest()
}

const o = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, t: 4, gradScale: 0.75 }

/** The model spec's AdamW (§3.1) on copies: g ← s·g; m, v updated (stored as float32); p ← p·(1 − lr·λ) − lr·m̂/(√v̂ + ε) */
function reference (p0: Float32Array, g0: Float32Array, m0: Float32Array, v0: Float32Array): { p: Float32Array, m: Float32Array, v: Float32Array } {
  const [p, m, v] = [p0.slice(), m0.slice(), v0.slice()]
  const c1 = 1 / (1 - Math.pow(o.beta1, o.t))
  const c2 = 1 / (1 - Math.pow(o.beta2, o.t))
  for (let i = 0; i < p.length; i++) {
    const gi = g0[i] * o.gradScale
    const mi = o.beta1 * m[i] + (1 - o.beta1) * gi
    const vi = o.beta2 * v[i] + (1 - o.beta2) * gi * gi
    m[i] = mi
    v[i] = vi
    p[i] = p[i] * (1 - o.lr * o.weightDecay) - o.lr * (mi * c1) / (Math.sqrt(vi * c2) + o.eps)
  }
  return { p, m, v }
}

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

describe('a tied replica stepped in the worker', () => {
  it('two steps: the weight and its hash are the reference AdamW of (gradient + rows), bit for bit; the gradient moved', async () => {
    const e = await headShard()
    expect(e.tiedParameters).toEqual(['embed.weight'])
    let p = (await e.getParameters()).get('embed.weight')!
    let m = lcg(n, 5, 0.02)
    let v = lcg(n, 6, 0.001, 0)
    await e.seedTiedReplica('embed.weight', { m, v })
    for (let step = 0; step < 2; step++) {
      const g = lcg(n, 10 + step, 0.2)
      const ids = Int32Array.of(0, 3, V - 1)
      const rows = lcg(3 * d, 20 + step, 1)
      // the sum as the replica must form it: float32 g[id] + row
      const summed = g.slice()
      for (let k = 0; k < ids.length; k++) for (let j = 0; j < d; j++) summed[ids[k] * d + j] += rows[k * d + j]
      const want = reference(p, summed, m, v)
      const r = await e.stepTiedReplica('embed.weight', g, { ids, data: rows }, o)
      expect(g.byteLength).toBe(0) // moved to the worker, not copied
      expect(r.finite).toBe(true)
      const got = (await e.getParameters()).get('embed.weight')!
      expect(got.some((x, i) => x !== p[i])).toBe(true)
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.p.buffer))).toBe(true)
      expect(Buffer.from(r.hash).equals(sha256(want.p))).toBe(true)
      expect(Buffer.from(await e.parameterHash('embed.weight')).equals(sha256(got))).toBe(true)
      ;({ p, m, v } = want)
    }
    // the replica's moments are not the shard's own optimizer state, and nothing else of the head stepped
    expect((await e.getOptimizerState()).m.has('embed.weight')).toBe(false)
    expect(e.stepCount).toBe(0)
  })

  it('refuses an unseeded replica, a parameter that is not tied, bad rows and bad moments; a non-finite step drops the moments', async () => {
    const e = await headShard()
    const rows = { ids: Int32Array.of(1), data: new Float32Array(d) }
    expect((await rejection(e.stepTiedReplica('embed.weight', new Float32Array(n), rows, o))).name).toBe('InvalidTensorError')
    expect((await rejection(e.stepTiedReplica('final_norm.weight', new Float32Array(d), rows, o))).name).toBe('InvalidParametersError')
    expect((await rejection(e.seedTiedReplica('final_norm.weight', { m: new Float32Array(d), v: new Float32Array(d) }))).name).toBe('InvalidParametersError')
    const negative = new Float32Array(n)
    negative[9] = -1
    expect((await rejection(e.seedTiedReplica('embed.weight', { m: new Float32Array(n), v: negative }))).name).toBe('InvalidParametersError')
    const nan = new Float32Array(n)
    nan[9] = Number.NaN
    expect((await rejection(e.seedTiedReplica('embed.weight', { m: nan, v: new Float32Array(n) }))).name).toBe('NonFiniteTensorError')
    await e.seedTiedReplica('embed.weight', { m: new Float32Array(n), v: new Float32Array(n) })
    expect((await rejection(e.stepTiedReplica('embed.weight', new Float32Array(n), { ids: Int32Array.of(V), data: new Float32Array(d) }, o))).name).toBe('InvalidParametersError')
    expect((await rejection(e.stepTiedReplica('embed.weight', new Float32Array(n), { ids: Int32Array.of(1, 2), data: new Float32Array(d) }, o))).name).toBe('InvalidParametersError')
    expect((await rejection(e.stepTiedReplica('embed.weight', new Float32Array(n - 1), rows, o))).name).toBe('InvalidParametersError')
    const bad = new Float32Array(n)
    bad[5] = Number.POSITIVE_INFINITY
    expect((await e.stepTiedReplica('embed.weight', bad, rows, o)).finite).toBe(false)
    expect((await rejection(e.stepTiedReplica('embed.weight', new Float32Array(n), rows, o))).name).toBe('InvalidTensorError')
  })

  it('nextStep: the lr and clip scale the next step uses, before it runs', async () => {
    for (const [maxGradNorm, gradNorm] of [[1, 0.5], [1, 3.7], [0, 3.7]]) {
      const e = await headShard(maxGradNorm)
      const planned = e.nextStep(gradNorm)
      const r = await e.step({ gradNorm })
      expect(planned).toEqual({ lr: r.lr, clipScale: r.clipScale })
      expect(planned.clipScale).toBe(maxGradNorm > 0 && gradNorm > maxGradNorm ? maxGradNorm / (gradNorm + 1e-6) : 1)
    }
    const e = await headShard()
    expect(() => e.nextStep(Number.NaN)).toThrow(/finite/)
  })
})
