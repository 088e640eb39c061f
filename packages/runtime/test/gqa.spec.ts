import { describe, it, expect, afterAll } from 'vitest'
import { buildModelGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { Runtime, createInferenceEngine, int64 } from '../src/index.js'
import type { InferenceEngine, KvCacheSession, TensorData } from '../src/index.js'

/**
 * Inference graphs with `com.microsoft` `GroupQueryAttention` (`attention: 'gqa'`, the engine's default) must give
 * the logits of the opset-23 `Attention` graph and of the monolithic model graph (decomposed ops, no cache) for
 * every chunking: a prompt, single tokens, multi-token chunks after a cache (speculative verification), batch 2
 * (which onnxruntime's kernel refuses over a cache: the worker feeds it token by token), a rollback, a full cache.
 */
const config = preset('tiny')
const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 11)]))
const V = config.vocabSize
const TOL = 1e-4
const open: Array<InferenceEngine | Runtime> = []
afterAll(async () => { await Promise.all(open.map(async e => { await e.close() })) })

const ids = (rows: number[][]): TensorData => int64(BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length])
const tokens = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % V)

async function engine (attention: 'gqa' | 'opset', quantization: 'fp32' | 'int4' = 'fp32'): Promise<InferenceEngine> {
  const e = await createInferenceEngine({ config, parameters: params, attention, quantization })
  open.push(e)
  return e
}

/** Logits of every position, fed in the given chunk sizes through one KV-cache session */
async function chunked (kv: KvCacheSession, rows: number[][], chunks: number[]): Promise<Float32Array[]> {
  const out: Float32Array[] = []
  let at = 0
  for (const c of chunks) {
    const l = (await kv.run({ input_ids: ids(rows.map(r => r.slice(at, at + c))) })).logits.data as Float32Array
    // [batch, c, V] → one array per row
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

/** The monolithic model graph (decomposed ops, no cache) over the whole sequence: an independent reference */
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

describe('GroupQueryAttention inference graphs', () => {
  it('gives the model graph\'s logits for a prompt, single tokens and multi-token chunks after a cache', async () => {
    const rows = [tokens.slice(0, 20)]
    const ref = await reference(rows)
    const chunks = [5, 1, 1, 4, 1, 3, 1, 1, 2, 1]
    const a = await chunked(await (await engine('gqa')).openInference(), rows, chunks)
    const b = await chunked(await (await engine('opset')).openInference(), rows, chunks)
    expect(maxDiff(a[0], ref[0])).toBeLessThan(TOL)
    expect(maxDiff(b[0], ref[0])).toBeLessThan(TOL)
  }, 120_000)

  it('keeps the rows of a batch apart, also for several new tokens over a cache', async () => {
    const e = await engine('gqa')
    const rows = [tokens.slice(0, 12), tokens.slice(20, 32)]
    const ref = await reference(rows)
    const out = await chunked(await e.openInference(), rows, [6, 1, 1, 3, 1])
    for (let b = 0; b < 2; b++) expect(maxDiff(out[b], ref[b])).toBeLessThan(TOL)
    // the rows differ, so a mixed-up batch would fail above
    expect(maxDiff(ref[0], ref[1])).toBeGreaterThan(1e-2)
  }, 120_000)

  it('continues after a rollback as if the dropped tokens never came', async () => {
    const e = await engine('gqa')
    const kv = await e.openInference()
    await kv.run({ input_ids: ids([tokens.slice(0, 6)]) })
    await kv.run({ input_ids: ids([[200, 201, 202, 203]]) })
    expect(await kv.truncate(7)).toBe(7)
    const state = await kv.state()
    expect(state.position).toBe(7)
    for (const t of Object.values(state.past)) expect(t.dims).toEqual([1, config.nKvHeads, 7, config.dModel / config.nHeads])
    // continue with other tokens: the logits are those of the sequence without the rolled-back ones
    const seq = [...tokens.slice(0, 6), 200, 9, 10, 11]
    const l = (await kv.run({ input_ids: ids([seq.slice(7)]) })).logits.data as Float32Array
    const ref = (await reference([seq]))[0]
    expect(maxDiff(l, ref.subarray(7 * V))).toBeLessThan(TOL)
    // truncate to 0 empties the cache: another batch size is then accepted
    await kv.truncate(0)
    const rows = [tokens.slice(0, 4), tokens.slice(4, 8)]
    const two = await chunked(kv, rows, [4])
    const ref2 = await reference(rows)
    for (let b = 0; b < 2; b++) expect(maxDiff(two[b], ref2[b])).toBeLessThan(TOL)
  }, 120_000)

  it('fills the cache to maxSeqLen and refuses one token more', async () => {
    const e = await engine('gqa')
    const kv = await e.openInference()
    const seq = Array.from({ length: config.maxSeqLen }, (_, i) => (i * 13 + 5) % V)
    const out = await chunked(kv, [seq], [config.maxSeqLen - 2, 1, 1])
    expect(kv.position).toBe(config.maxSeqLen)
    expect(maxDiff(out[0], (await reference([seq]))[0])).toBeLessThan(TOL)
    await expect(kv.run({ input_ids: ids([[1]]) })).rejects.toMatchObject({ name: 'SequenceTooLongError' })
    await expect(kv.run({ input_ids: ids([[1]]), kv_total_length: int64([1], []) } as any)).rejects.toMatchObject({ name: 'InvalidTensorError' })
  }, 120_000)

  it('int4: the GroupQueryAttention graph gives the opset graph\'s logits', async () => {
    const rows = [tokens.slice(0, 16)]
    const chunks = [8, 1, 1, 3, 1, 1, 1]
    const a = await chunked(await (await engine('gqa', 'int4')).openInference(), rows, chunks)
    const b = await chunked(await (await engine('opset', 'int4')).openInference(), rows, chunks)
    // MatMulNBits quantizes activations to int8 per block (accuracy level 4): the two attention kernels' float32
    // rounding can flip a rounding step there, so the bound is relative to the logits' spread (int4 itself is
    // within 10 % of fp32, test/quantized.spec.ts)
    let lo = Infinity
    let hi = -Infinity
    for (const x of b[0]) { lo = Math.min(lo, x); hi = Math.max(hi, x) }
    expect(maxDiff(a[0], b[0]) / (hi - lo)).toBeLessThan(0.01)
  }, 120_000)
})
