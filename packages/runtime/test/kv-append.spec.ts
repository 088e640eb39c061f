import { describe, it, expect, afterAll } from 'vitest'
import { buildModelGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { Runtime, createInferenceEngine, int64 } from '../src/index.js'
import type { InferenceEngine, KvCacheSession, TensorData } from '../src/index.js'

/**
 * `kvCache: 'append'` engines keep token-major caches in the worker, grow them in place and take only the new
 * tokens' keys and values out of the graph. They must give the logits of the monolithic model graph (decomposed
 * ops, no cache: an independent reference) for every chunking, keep the rows of a batch apart, roll back like the
 * `present` caches, grow past their first capacity (64 tokens) and report the same cache contents as a
 * `present` engine in the same [batch, kvHeads, position, headDim] form.
 */
const config = { ...preset('tiny'), maxSeqLen: 160 }
const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 11)]))
const V = config.vocabSize
const TOL = 1e-4
const open: Array<InferenceEngine | Runtime> = []
afterAll(async () => { await Promise.all(open.map(async e => { await e.close() })) })

const ids = (rows: number[][]): TensorData => int64(BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length])
const tokens = Array.from({ length: 160 }, (_, i) => (i * 37 + 11) % V)

async function engine (kvCache: 'append' | 'present', quantization: 'fp32' | 'int4' = 'fp32'): Promise<InferenceEngine> {
  const e = await createInferenceEngine({ config, parameters: params, attention: 'opset', kvCache, quantization })
  open.push(e)
  return e
}

async function chunked (kv: KvCacheSession, rows: number[][], chunks: number[]): Promise<Float32Array[]> {
  const out: Float32Array[] = []
  let at = 0
  for (const c of chunks) {
    const l = (await kv.run({ input_ids: ids(rows.map(r => r.slice(at, at + c))) })).logits.data as Float32Array
    for (let b = 0; b < rows.length; b++) out[b] = concat(out[b], l.subarray(b * c * V, (b + 1) * c * V))
    at += c
  }
  return out
}

function concat (a: Float32Array | undefined, b: Float32Array): Float32Array {
  if (a === undefined) return b.slice()
  const r = new Float32Array(a.length + b.length)
  r.set(a); r.set(b, a.length)
  return r
}

function maxDiff (a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]))
  return worst
}

async function reference (rows: number[][]): Promise<Float32Array[]> {
  const rt = new Runtime()
  open.push(rt)
  const session = await rt.createSession(buildModelGraph(config, 'inference').bytes)
  const feeds: Record<string, TensorData> = { input_ids: ids(rows) }
  for (const s of modelParameters(config)) feeds[s.name] = { type: 'float32', dims: s.shape, data: params.get(s.name) as Float32Array }
  const logits = (await session.run(feeds)).logits.data as Float32Array
  const n = rows[0].length * V
  return rows.map((_, b) => logits.slice(b * n, (b + 1) * n))
}

describe('append KV caches (kvCache: \'append\')', () => {
  it('gives the model graph\'s logits for a prompt, single tokens, chunks after a cache and past its first capacity', async () => {
    const rows = [tokens.slice(0, 100)]
    const ref = await reference(rows)
    // 60 + 1 + 1 + 4 = 66 tokens: the cache grows past 64 in the middle of the run
    const chunks = [60, 1, 1, 4, 1, 3, ...Array.from({ length: 30 }, () => 1)]
    const out = await chunked(await (await engine('append')).openInference(), rows, chunks)
    expect(maxDiff(out[0], ref[0])).toBeLessThan(TOL)
  }, 120_000)

  it('keeps the rows of a batch apart', async () => {
    const rows = [tokens.slice(0, 12), tokens.slice(20, 32)]
    const ref = await reference(rows)
    const out = await chunked(await (await engine('append')).openInference(), rows, [6, 1, 1, 3, 1])
    for (let b = 0; b < 2; b++) expect(maxDiff(out[b], ref[b])).toBeLessThan(TOL)
    expect(maxDiff(ref[0], ref[1])).toBeGreaterThan(1e-2)
  }, 120_000)

  it('reports the cache as a present engine does, and continues after a rollback as if the dropped tokens never came', async () => {
    const [a, p] = [await engine('append'), await engine('present')]
    const [ka, kp] = [await a.openInference(), await p.openInference()]
    for (const kv of [ka, kp]) {
      await kv.run({ input_ids: ids([tokens.slice(0, 6)]) })
      await kv.run({ input_ids: ids([[200, 201, 202, 203]]) })
      expect(await kv.truncate(7)).toBe(7)
    }
    const [sa, sp] = [await ka.state(), await kp.state()]
    expect(sa.position).toBe(7)
    expect(Object.keys(sa.past).sort()).toEqual(Object.keys(sp.past).sort())
    for (const [name, t] of Object.entries(sp.past)) {
      expect(t.dims).toEqual([1, config.nKvHeads, 7, config.dModel / config.nHeads])
      expect(sa.past[name].dims).toEqual(t.dims)
      expect(maxDiff(sa.past[name].data as Float32Array, t.data as Float32Array)).toBeLessThan(1e-5)
    }
    const seq = [...tokens.slice(0, 6), 200, 9, 10, 11]
    const l = (await ka.run({ input_ids: ids([seq.slice(7)]) })).logits.data as Float32Array
    const ref = (await reference([seq]))[0]
    expect(maxDiff(l, ref.subarray(7 * V))).toBeLessThan(TOL)
    // truncate to 0 empties the cache: another batch size is then accepted
    await ka.truncate(0)
    expect(Object.keys((await ka.state()).past)).toEqual([])
    const rows = [tokens.slice(0, 4), tokens.slice(4, 8)]
    const two = await chunked(ka, rows, [4, 1].map((c, i) => i === 0 ? 3 : c))
    const ref2 = await reference(rows.map(r => r.slice(0, 4)))
    for (let b = 0; b < 2; b++) expect(maxDiff(two[b], ref2[b])).toBeLessThan(TOL)
  }, 120_000)

  it('fills the cache to maxSeqLen and refuses one token more', async () => {
    const kv = await (await engine('append')).openInference()
    const seq = tokens.slice(0, config.maxSeqLen)
    const out = await chunked(kv, [seq], [config.maxSeqLen - 2, 1, 1])
    expect(kv.position).toBe(config.maxSeqLen)
    expect(maxDiff(out[0], (await reference([seq]))[0])).toBeLessThan(TOL)
    await expect(kv.run({ input_ids: ids([[1]]) })).rejects.toMatchObject({ name: 'SequenceTooLongError' })
  }, 120_000)

  it('int4: gives the int4 present engine\'s logits', async () => {
    const rows = [tokens.slice(0, 16)]
    const chunks = [8, 1, 1, 3, 1, 1, 1]
    const a = await chunked(await (await engine('append', 'int4')).openInference(), rows, chunks)
    const b = await chunked(await (await engine('present', 'int4')).openInference(), rows, chunks)
    let lo = Infinity
    let hi = -Infinity
    for (const x of b[0]) { lo = Math.min(lo, x); hi = Math.max(hi, x) }
    expect(maxDiff(a[0], b[0]) / (hi - lo)).toBeLessThan(0.01)
  }, 120_000)

  it('refuses append caches with the GroupQueryAttention graph', async () => {
    await expect(createInferenceEngine({ config, parameters: params, attention: 'gqa', kvCache: 'append' })).rejects.toMatchObject({ name: 'InvalidParametersError' })
  })
})
