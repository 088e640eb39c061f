import * as ort from 'onnxruntime-node'
import { gradients } from '../src/index.js'
import type { GraphBuilder, Value } from '../src/index.js'

export type Feed = Float64Array | Float32Array | BigInt64Array | Uint8Array

export interface FeedTensor { data: Feed, dims: number[] }

function toOrt (t: FeedTensor): ort.Tensor {
  if (t.data instanceof Float64Array) return new ort.Tensor('float64', t.data, t.dims)
  if (t.data instanceof Float32Array) return new ort.Tensor('float32', t.data, t.dims)
  if (t.data instanceof BigInt64Array) return new ort.Tensor('int64', t.data, t.dims)
  return new ort.Tensor('bool', t.data, t.dims)
}

/** Run a model once on CPU and return every output as a Float64Array (or the raw typed array) */
export async function runBytes (bytes: Uint8Array, feeds: Record<string, FeedTensor>): Promise<Record<string, { data: Float64Array, dims: number[] }>> {
  const s = await ort.InferenceSession.create(bytes)
  try {
    return await runSession(s, feeds)
  } finally {
    await s.release()
  }
}

export async function runSession (s: ort.InferenceSession, feeds: Record<string, FeedTensor>): Promise<Record<string, { data: Float64Array, dims: number[] }>> {
  const f: Record<string, ort.Tensor> = {}
  for (const name of s.inputNames) {
    if (feeds[name] == null) throw new Error(`missing feed ${name}`)
    f[name] = toOrt(feeds[name])
  }
  const out = await s.run(f)
  const r: Record<string, { data: Float64Array, dims: number[] }> = {}
  for (const [k, v] of Object.entries(out)) {
    const d = v.data as ArrayLike<number | bigint>
    r[k] = { data: Float64Array.from(d as ArrayLike<number>, x => Number(x)), dims: [...v.dims] }
  }
  return r
}

/** Deterministic PRNG (mulberry32) so failures reproduce */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function randn (r: () => number, n: number): Float64Array {
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12)
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r())
  }
  return out
}

export function dot (a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

/**
 * Robust relative error used by every gradient check: |fd − ad| / (max(|fd|, |ad|) + 1e-6).
 * The 1e-6 floor makes near-zero derivatives compare in absolute terms.
 */
export function relErr (fd: number, ad: number): number {
  return Math.abs(fd - ad) / (Math.max(Math.abs(fd), Math.abs(ad)) + 1e-6)
}

export interface GradCheckResult { input: string, fd: number, ad: number, rel: number }

/**
 * Checks the backward graph of `g` against central finite differences of the forward graph. The scalar
 * probed is L = Σ_outputs ⟨y, R⟩ for fixed random R (the seeds). For each float input x and each of
 * `directions` random directions v: FD = (L(x + h v) − L(x − h v)) / 2h with h = 1e-6, AD = ⟨dL/dx, v⟩.
 */
export async function gradCheck (g: GraphBuilder, feeds: Record<string, FeedTensor>, options: { wrt?: Value[], directions?: number, seed?: number, h?: number, sessionOptions?: ort.InferenceSession.SessionOptions } = {}): Promise<GradCheckResult[]> {
  const r = rng(options.seed ?? 1)
  const wrt = options.wrt ?? g.inputs.filter(v => v.dtype === 'float64' || v.dtype === 'float32')
  const fwdBytes = g.toModelProto()
  const fwd = await ort.InferenceSession.create(fwdBytes, options.sessionOptions ?? {})
  const base = await runSession(fwd, feeds)
  const seeds: Record<string, FeedTensor> = {}
  for (const o of g.outputs) {
    const y = base[o.name]
    seeds[`seed.${o.name}`] = { data: o.value.dtype === 'float32' ? Float32Array.from(randn(r, y.data.length)) : randn(r, y.data.length), dims: y.dims }
  }
  const bwd = gradients(g, { of: g.outputs.map(o => ({ value: o.value, seed: `seed.${o.name}` })), wrt })
  const bs = await ort.InferenceSession.create(bwd.toModelProto(), options.sessionOptions ?? {})
  const grads = await runSession(bs, { ...feeds, ...seeds })
  const L = async (f: Record<string, FeedTensor>): Promise<number> => {
    const out = await runSession(fwd, f)
    let s = 0
    for (const o of g.outputs) s += dot(out[o.name].data, seeds[`seed.${o.name}`].data as Float64Array)
    return s
  }
  const h = options.h ?? 1e-6
  const results: GradCheckResult[] = []
  for (const w of wrt) {
    const x = feeds[w.name]
    const gx = grads[`grad.${w.name}`].data
    for (let k = 0; k < (options.directions ?? 2); k++) {
      const v = randn(r, x.data.length)
      const mk = (sign: number): FeedTensor => {
        const d = new Float64Array(x.data.length)
        for (let i = 0; i < d.length; i++) d[i] = Number(x.data[i]) + sign * h * v[i]
        return { data: x.data instanceof Float32Array ? Float32Array.from(d) : d, dims: x.dims }
      }
      const fd = ((await L({ ...feeds, [w.name]: mk(1) })) - (await L({ ...feeds, [w.name]: mk(-1) }))) / (2 * h)
      const ad = dot(gx, v)
      results.push({ input: w.name, fd, ad, rel: relErr(fd, ad) })
    }
  }
  await fwd.release()
  await bs.release()
  return results
}

export function t64 (r: () => number, dims: number[], transform?: (x: number) => number): FeedTensor {
  const n = dims.reduce((a, b) => a * b, 1)
  const d = randn(r, n)
  if (transform != null) for (let i = 0; i < n; i++) d[i] = transform(d[i])
  return { data: d, dims }
}
