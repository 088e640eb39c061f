import * as ort from 'onnxruntime-node'
import { shardParameters, modelParameters } from '../../src/index.js'
import type { ModelConfig, ShardRole } from '../../src/index.js'

export type Data = Float64Array | Float32Array | BigInt64Array

export interface T { data: Data, dims: number[] }

/** The tiny config of the issue: vocab 32, d 16, 2 heads sharing 1 KV head, ffn 32, 2 layers */
export const TINY_TEST: ModelConfig = {
  vocabSize: 32,
  dModel: 16,
  nLayers: 2,
  nHeads: 2,
  nKvHeads: 1,
  ffnHidden: 32,
  maxSeqLen: 16,
  ropeTheta: 10000,
  normEps: 1e-5,
  tieEmbeddings: false
}

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

export function randn (r: () => number, n: number, scale = 1, shift = 0): Float64Array {
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = shift + scale * Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r())
  return out
}

export function cast (d: Float64Array, dtype: 'float32' | 'float64'): Float32Array | Float64Array {
  return dtype === 'float32' ? Float32Array.from(d) : d
}

/** Random parameters (larger than the real init so every path carries signal); norm weights near 1 */
export function randomParams (names: Array<{ name: string, shape: number[] }>, seed: number, dtype: 'float32' | 'float64'): Record<string, T> {
  const r = rng(seed)
  const out: Record<string, T> = {}
  for (const p of names) {
    const n = p.shape.reduce((a, b) => a * b, 1)
    const norm = p.name.endsWith('norm.weight')
    out[p.name] = { data: cast(randn(r, n, norm ? 0.1 : 0.4, norm ? 1 : 0), dtype), dims: p.shape }
  }
  return out
}

export function shardParams (config: ModelConfig, role: ShardRole, all: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {}
  for (const p of shardParameters(config, role)) out[p.name] = all[p.name]
  return out
}

export function allParams (config: ModelConfig, seed: number, dtype: 'float32' | 'float64'): Record<string, T> {
  return randomParams(modelParameters(config), seed, dtype)
}

export function ids (r: () => number, batch: number, seq: number, vocab: number): T {
  const d = new BigInt64Array(batch * seq)
  for (let i = 0; i < d.length; i++) d[i] = BigInt(Math.floor(r() * vocab))
  return { data: d, dims: [batch, seq] }
}

function toOrt (t: T): ort.Tensor {
  if (t.data instanceof Float64Array) return new ort.Tensor('float64', t.data, t.dims)
  if (t.data instanceof Float32Array) return new ort.Tensor('float32', t.data, t.dims)
  return new ort.Tensor('int64', t.data, t.dims)
}

/** A session that checks its feeds by name and returns outputs as typed arrays of the graph's dtype */
export class Runner {
  private constructor (private readonly s: ort.InferenceSession) {}

  static async create (bytes: Uint8Array, options: ort.InferenceSession.SessionOptions = {}): Promise<Runner> {
    return new Runner(await ort.InferenceSession.create(bytes, options))
  }

  async run (feeds: Record<string, T>): Promise<Record<string, T>> {
    const f: Record<string, ort.Tensor> = {}
    for (const name of this.s.inputNames) {
      if (feeds[name] == null) throw new Error(`missing feed ${name}`)
      f[name] = toOrt(feeds[name])
    }
    const out = await this.s.run(f)
    const r: Record<string, T> = {}
    for (const [k, v] of Object.entries(out)) r[k] = { data: v.data as Data, dims: [...v.dims] }
    return r
  }

  async release (): Promise<void> { await this.s.release() }
}

export function dot (a: Data, b: Data): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += Number(a[i]) * Number(b[i])
  return s
}

export function maxAbsDiff (a: Data, b: Data): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i]) - Number(b[i])))
  return m
}

export function maxAbs (a: Data): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i])))
  return m
}

/** |fd − ad| / (max(|fd|, |ad|) + 1e-6): the relative measure of every finite-difference check */
export function relErr (fd: number, ad: number): number {
  return Math.abs(fd - ad) / (Math.max(Math.abs(fd), Math.abs(ad)) + 1e-6)
}
