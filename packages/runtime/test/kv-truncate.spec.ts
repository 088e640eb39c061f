import { describe, it, expect, afterAll } from 'vitest'
import { initParameter, modelParameters, preset, shardParameters } from '@neuroshard/model'
import { createInferenceEngine, createShardExecutor, float32, int64 } from '../src/index.js'
import type { InferenceEngine, KvCacheSession, ShardExecutor, TensorData } from '../src/index.js'
import { buildShardGraph } from '@neuroshard/model'

const config = preset('tiny')
const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 7)]))
const open: Array<InferenceEngine | ShardExecutor> = []
afterAll(async () => { await Promise.all(open.map(async e => { await e.close() })) })

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

const ids = (xs: number[]): TensorData => int64(BigInt64Array.from(xs, BigInt), [1, xs.length])

/** Largest |a − b| over every cache tensor (throws when the two caches hold different tensors or shapes) */
function cacheDiff (a: Record<string, TensorData>, b: Record<string, TensorData>): number {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort())
  let worst = 0
  for (const k of Object.keys(a)) {
    expect(a[k].dims).toEqual(b[k].dims)
    const x = a[k].data as Float32Array
    const y = b[k].data as Float32Array
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]))
  }
  return worst
}

describe('KV-cache truncation (speculative rollback)', () => {
  it('a cache rolled back past rejected tokens equals a cache built without them, and continues identically', async () => {
    const engine = await createInferenceEngine({ config, parameters: params })
    open.push(engine)
    const prompt = [3, 14, 15, 92, 65]
    // speculative round: one accepted draft token (35) and three rejected ones (89, 79, 32) in one chunk
    const spec = await engine.openInference()
    await spec.run({ input_ids: ids(prompt) })
    await spec.run({ input_ids: ids([35, 89, 79, 32]) })
    expect(spec.position).toBe(9)
    expect(await spec.truncate(6)).toBe(6)
    expect(spec.position).toBe(6)
    // the same sequence without the rejected tokens
    const plain = await engine.openInference()
    await plain.run({ input_ids: ids(prompt) })
    await plain.run({ input_ids: ids([35]) })
    const [a, b] = [await spec.state(), await plain.state()]
    expect(a.position).toBe(6)
    expect(b.position).toBe(6)
    expect(Object.keys(a.past).length).toBe(2 * config.nLayers)
    for (const t of Object.values(a.past)) expect(t.dims[2]).toBe(6)
    // the 4-token chunk and the 1-token step run different GEMM shapes: equal up to float32 rounding
    expect(cacheDiff(a.past, b.past)).toBeLessThan(1e-5)
    // the next step sees the same cache: same logits
    const la = (await spec.run({ input_ids: ids([50]) })).logits.data as Float32Array
    const lb = (await plain.run({ input_ids: ids([50]) })).logits.data as Float32Array
    let worst = 0
    for (let i = 0; i < la.length; i++) worst = Math.max(worst, Math.abs(la[i] - lb[i]))
    expect(worst).toBeLessThan(1e-4)
    expect(spec.position).toBe(7)
    await spec.close()
    await plain.close()
  }, 120_000)

  it('without the rollback the cache differs (the comparison above sees the rejected tokens)', async () => {
    const engine = await createInferenceEngine({ config, parameters: params })
    open.push(engine)
    const spec = await engine.openInference()
    await spec.run({ input_ids: ids([3, 14, 15, 92, 65, 35, 89, 79, 32]) })
    const plain = await engine.openInference()
    await plain.run({ input_ids: ids([3, 14, 15, 92, 65, 35]) })
    const la = (await spec.run({ input_ids: ids([50]) })).logits.data as Float32Array
    const lb = (await plain.run({ input_ids: ids([50]) })).logits.data as Float32Array
    let worst = 0
    for (let i = 0; i < la.length; i++) worst = Math.max(worst, Math.abs(la[i] - lb[i]))
    expect(worst).toBeGreaterThan(1e-3)
    await spec.close()
    await plain.close()
  }, 120_000)

  it('a block shard executor truncates too; bad positions are typed errors and change nothing', async () => {
    const role = { kind: 'blocks', start: 0, end: config.nLayers } as const
    const ex = await createShardExecutor({
      config,
      role,
      parameters: new Map(shardParameters(config, role).map(p => [p.name, params.get(p.name)!])),
      graphs: { inference: buildShardGraph(config, role, 'inference').bytes }
    })
    open.push(ex)
    const kv: KvCacheSession = await ex.openInference()
    const h = new Float32Array(4 * config.dModel).map((_, i) => Math.sin(i))
    await kv.run({ hidden_in: float32(h, [1, 4, config.dModel]) })
    for (const bad of [5, -1, 1.5, Number.NaN]) {
      expect((await rejection(kv.truncate(bad))).name).toBe('InvalidParametersError')
    }
    expect(kv.position).toBe(4)
    expect((await kv.state()).position).toBe(4)
    expect(await kv.truncate(4)).toBe(4)
    expect(await kv.truncate(0)).toBe(0)
    expect(Object.keys((await kv.state()).past)).toEqual([])
    // an emptied cache runs a new prefill
    await kv.run({ hidden_in: float32(h.subarray(0, 2 * config.dModel), [1, 2, config.dModel]) })
    expect(kv.position).toBe(2)
    await kv.close()
    expect((await rejection(kv.truncate(0))).name).toBe('SessionError')
  }, 120_000)
})
