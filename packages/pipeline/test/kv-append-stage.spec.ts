/**
 * fp32 pipeline stages keep a session's KV cache as an append cache (token-major in the executor's worker, written in
 * place; the graph outputs only the new tokens' keys and values) instead of copying the whole cache out of onnxruntime
 * every token. It must be what a default stage uses, and give the old `present` path's results: the same hidden
 * states and logits within 1e-5 token by token (prefill, single tokens, a chunk, a rollback, past the cache's first
 * capacity of 64 tokens), the same greedy tokens through a 3-host pipeline, and after a training step the new weights.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { float32, int64 } from '@neuroshard/runtime'
import { createPipelineStage } from '../src/index.js'
import { hostChain, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { KvCacheSession, TensorData } from '@neuroshard/runtime'

const config = { ...preset('tiny'), maxSeqLen: 128 }
const L = config.nLayers
const d = config.dModel
const params = weights(config)
const TOL = 1e-5
const stages: PipelineStage[] = []
const hosts: PipelineHost[] = []

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all(stages.map(async s => { await s.close() }))
})

async function make (start: number, end: number, kvCache?: 'append' | 'present', training = false): Promise<PipelineStage> {
  const s = await createPipelineStage({ config, start, end, parameters: params, training, intraOpNumThreads: 1, ...(kvCache != null ? { kvCache } : {}) })
  stages.push(s)
  return s
}

function maxDiff (a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]))
  return worst
}

/** Deterministic hidden states (what an embed stage would send), [1, n, d] */
function hidden (n: number, salt: number): TensorData {
  return float32(Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 0.37 + salt) * 0.8), [1, n, d])
}

describe('fp32 pipeline stages: append KV caches', () => {
  it('a default fp32 stage (serving or training) runs its blocks with an append cache; kvCache: \'present\' keeps the old graph', async () => {
    expect((await make(1, L + 1)).blocks!.kvCache).toBe('append')
    expect((await make(0, L + 2, undefined, true)).blocks!.kvCache).toBe('append')
    expect((await make(1, L + 1, 'present')).blocks!.kvCache).toBe('present')
    await expect(createPipelineStage({ config, start: 1, end: L + 1, parameters: params, kvCache: 'copy' as any })).rejects.toMatchObject({ name: 'InvalidParametersError' })
  }, 120_000)

  it('gives the present path\'s hidden states within 1e-5: prefill, single tokens, a chunk, a rollback, past 64 tokens', async () => {
    const [a, p] = [await make(1, L + 1), await make(1, L + 1, 'present')]
    const [ka, kp] = [await a.blocks!.openInference(), await p.blocks!.openInference()]
    let worst = 0
    let salt = 0
    const step = async (n: number): Promise<void> => {
      const h = hidden(n, salt++)
      const [oa, op] = await Promise.all([ka.run({ hidden_in: h }), kp.run({ hidden_in: h })])
      worst = Math.max(worst, maxDiff(oa.hidden_out.data as Float32Array, op.hidden_out.data as Float32Array))
    }
    await step(9)
    for (let i = 0; i < 20; i++) await step(1)
    await step(4)
    // a rejected speculative draft: both drop the last 3 tokens and go on
    expect(await ka.truncate(ka.position - 3)).toBe(await kp.truncate(kp.position - 3))
    for (let i = 0; i < 45; i++) await step(1)
    expect(ka.position).toBe(9 + 20 + 4 - 3 + 45)
    expect(ka.position).toBeGreaterThan(64)
    expect(worst).toBeLessThan(TOL)
    // the caches themselves, in the present layout
    const [sa, sp] = [await ka.state(), await kp.state()]
    expect(Object.keys(sa.past).sort()).toEqual(Object.keys(sp.past).sort())
    for (const [name, t] of Object.entries(sp.past)) {
      expect(sa.past[name].dims).toEqual(t.dims)
      expect(maxDiff(sa.past[name].data as Float32Array, t.data as Float32Array)).toBeLessThan(TOL)
    }
    // and it is not a trivial comparison: other inputs give other outputs
    const other = await a.blocks!.openInference()
    const x = (await other.run({ hidden_in: hidden(9, 100) })).hidden_out.data as Float32Array
    const y = (await (await a.blocks!.openInference()).run({ hidden_in: hidden(9, 0) })).hidden_out.data as Float32Array
    expect(maxDiff(x, y)).toBeGreaterThan(1e-2)
    for (const kv of [ka, kp, other]) await kv.close()
  }, 120_000)

  it('a training stage\'s append cache reads the weights after an optimizer step (no rebuild)', async () => {
    const [a, p] = [await make(0, L + 2, undefined, true), await make(0, L + 2, 'present', true)]
    const ids = int64(BigInt64Array.from([5, 9, 2, 7, 1, 3, 8, 4], BigInt), [2, 4])
    const targets = int64(BigInt64Array.from([9, 2, 7, 1, 3, 8, 4, 6], BigInt), [2, 4])
    const before = await run(a, 5)
    for (const s of [a, p]) {
      // one identical training step on both: forward, backward, AdamW
      const h0 = (await s.embed!.forward({ input_ids: ids })).hidden
      const h1 = (await s.blocks!.forward({ hidden_in: h0 })).hidden_out
      const g1 = await s.head!.backward({ hidden: h1, targets, grad_loss: float32(Float32Array.of(1), []) })
      const g0 = await s.blocks!.backward({ hidden_in: h0, grad_hidden_out: g1.grad_hidden })
      await s.embed!.backward({ input_ids: ids, grad_hidden: g0.grad_hidden_in })
      await s.embed!.addGradients(await s.head!.takeTiedGradients())
      for (const e of s.executors) await e.step()
    }
    const [after, ref] = [await run(a, 5), await run(p, 5)]
    expect(maxDiff(after, ref)).toBeLessThan(TOL)
    expect(maxDiff(after, before)).toBeGreaterThan(1e-4)
  }, 120_000)

  it('the same greedy tokens and logits within 1e-5 through a 3-host pipeline as stages on the present path', async () => {
    const prompt = [3, 17, 200, 45, 9, 100, 77]
    const n = 40
    const out: Array<{ ids: number[], logits: Float32Array[] }> = []
    for (const kvCache of ['append', 'present'] as const) {
      const [s0, s1, s2] = [await make(0, 2, kvCache), await make(2, L + 1, kvCache), await make(L + 1, L + 2, kvCache)]
      expect([s0.blocks!.kvCache, s1.blocks!.kvCache]).toEqual([kvCache, kvCache])
      const chain = (await hostChain([s0, s1, s2])).hosts
      hosts.push(...chain)
      const driver = chain[0]
      const got = { ids: [] as number[], logits: [] as Float32Array[] }
      for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n, returnLogits: true })) {
        got.ids.push(t.id)
        got.logits.push(t.logits!)
      }
      out.push(got)
    }
    expect(out[0].ids.length).toBe(n)
    expect(out[0].ids).toEqual(out[1].ids)
    let worst = 0
    for (let i = 0; i < n; i++) worst = Math.max(worst, maxDiff(out[0].logits[i], out[1].logits[i]))
    expect(worst).toBeLessThan(TOL)
  }, 180_000)
})

/** The logits of the last position after a prefill of 6 tokens and `n` greedy tokens through one stage holding the whole model */
async function run (s: PipelineStage, n: number): Promise<Float32Array> {
  const kv: KvCacheSession = await s.blocks!.openInference()
  const head = await s.head!.openInference()
  let feed = [11, 22, 33, 44, 55, 66]
  let row: Float32Array = new Float32Array(0)
  for (let i = 0; i <= n; i++) {
    const h0 = (await s.embed!.forward({ input_ids: int64(BigInt64Array.from(feed, BigInt), [1, feed.length]) })).hidden
    const h = (await kv.run({ hidden_in: h0 })).hidden_out
    const last = float32((h.data as Float32Array).slice((feed.length - 1) * d), [1, 1, d])
    row = (await head.run({ hidden: last })).logits.data as Float32Array
    let best = 0
    for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k
    feed = [best]
  }
  await kv.close()
  await head.close()
  return row
}
