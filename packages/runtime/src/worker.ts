/**
 * The runtime's worker thread: it owns the onnxruntime sessions, the resident tensors (weights, gradients,
 * Adam moments, KV caches) and runs the optimizer, so the main event loop never blocks on `run()` and big
 * weights never cross the thread boundary per call.
 *
 * This file must stay self-contained (only `node:` builtins, `onnxruntime-node` and `import type`): when the
 * package runs from TypeScript sources (tests), Node loads it directly with type stripping, which does not
 * map `./x.js` imports to `./x.ts`.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { setPriority } from 'node:os'
import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import ort from 'onnxruntime-node'
import type { InferenceSession, Tensor } from 'onnxruntime-node'
import type { AdamWHyperParameters, AdamWRequest, AdamWResult, CreateSessionRequest, CreateSessionResult, RunRequest, TiedReplicaStepRequest, TiedReplicaStepResult, ValueInfo, WorkerReply, WorkerRequest } from './protocol.js'
import type { TensorData } from './tensor.js'

/** Hyper-parameters of one fused AdamW update */
export interface AdamWKernelOptions extends AdamWHyperParameters {
  /** Gradient scale from clipping (1 = none) */
  gradScale: number
}

/**
 * One fused AdamW update in place (Loshchilov & Hutter, decoupled weight decay, bias-corrected):
 * g ← s·g; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; p ← p − lr·(m̂ / (√v̂ + ε) + λ p).
 * Returns false if any updated parameter is not finite.
 */
export function adamwKernel (p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, o: AdamWKernelOptions): boolean {
  const { lr, beta1, beta2, eps, weightDecay, t, gradScale } = o
  const c1 = 1 / (1 - Math.pow(beta1, t))
  const c2 = 1 / (1 - Math.pow(beta2, t))
  const b1c = 1 - beta1
  const b2c = 1 - beta2
  const decay = 1 - lr * weightDecay
  let finite = true
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * gradScale
    const mi = beta1 * m[i] + b1c * gi
    const vi = beta2 * v[i] + b2c * gi * gi
    m[i] = mi
    v[i] = vi
    const pi = p[i] * decay - lr * (mi * c1) / (Math.sqrt(vi * c2) + eps)
    p[i] = pi
    if (pi - pi !== 0) finite = false
  }
  return finite
}

/** The clip scale of a step: `maxGradNorm / (gradNorm + 1e-6)` when clipping is on and the norm is above it, else 1 */
export function clipScaleOf (gradNorm: number, maxGradNorm: number): number {
  return maxGradNorm > 0 && gradNorm > maxGradNorm ? maxGradNorm / (gradNorm + 1e-6) : 1
}

/** SHA-256 of a float32 array's bytes (little-endian, as stored) */
export function sha256Of (a: Float32Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest())
}

/** Σ x² in float64 */
export function sumOfSquares (a: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * a[i]
  return s
}

/** Where onnxruntime-node keeps its native libraries */
export function ortLibraryDir (): string {
  const main = createRequire(import.meta.url).resolve('onnxruntime-node')
  return join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch)
}

/** The CUDA provider library onnxruntime needs, or undefined if it is installed */
export function missingCudaLibrary (): string | undefined {
  const file = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'
  const path = join(ortLibraryDir(), file)
  return existsSync(path) ? undefined : path
}

interface SessionEntry {
  session: InferenceSession
  inputs: ValueInfo[]
  outputs: ValueInfo[]
}

interface KvState {
  past: Map<string, Tensor>
  /**
   * Token-major caches of `kvCache: 'append'` graphs (`append_*` outputs): [batch, capacity, width] per `past_*`
   * input, of which the first `position` tokens of each row are valid; grown by doubling, so a token costs one
   * write of its own keys and values, and a batch-1 cache is fed as a view (no copy)
   */
  append: Map<string, AppendCache>
  position: number
}

interface AppendCache { data: Float32Array, batch: number, capacity: number, width: number }

/** The first `n` tokens of an append cache as a [batch, n, width] tensor (a view for batch 1, else a copy) */
function appendView (c: AppendCache, n: number): Tensor {
  const { batch, capacity, width } = c
  if (batch === 1) return new ort.Tensor('float32', c.data.subarray(0, n * width), [1, n, width])
  const out = new Float32Array(batch * n * width)
  for (let b = 0; b < batch; b++) out.set(c.data.subarray(b * capacity * width, (b * capacity + n) * width), b * n * width)
  return new ort.Tensor('float32', out, [batch, n, width])
}

/** Write the new tokens `t` ([batch, seq, width]) at token `at` of an append cache (grown if needed) */
function appendTokens (prev: AppendCache | undefined, t: Tensor, at: number): AppendCache {
  const [batch, seq, width] = t.dims
  let c = prev
  if (c === undefined || c.batch !== batch || c.width !== width || c.capacity < at + seq) {
    const capacity = Math.max(64, at + seq, 2 * (c?.capacity ?? 0))
    const data = new Float32Array(batch * capacity * width)
    if (c !== undefined && c.batch === batch && c.width === width) {
      for (let b = 0; b < batch; b++) data.set(c.data.subarray(b * c.capacity * width, (b * c.capacity + at) * width), b * capacity * width)
    }
    c = { data, batch, capacity, width }
  }
  const src = t.data as Float32Array
  for (let b = 0; b < batch; b++) c.data.set(src.subarray(b * seq * width, (b + 1) * seq * width), (b * c.capacity + at) * width)
  return c
}

/** Inputs of a `GroupQueryAttention` graph's cache (instead of `position_offset`): cache length after the call (− 1) */
const KV_SEQLENS = 'kv_seqlens'
const KV_TOTAL_LENGTH = 'kv_total_length'

/** Token i of a [batch, seq, …] tensor, as [batch, 1, …] */
function tokenOf (t: TensorData, i: number): TensorData {
  const [b, s, ...rest] = t.dims
  const r = rest.reduce((a, d) => a * d, 1)
  const data = new (t.data.constructor as Float32ArrayConstructor)(b * r)
  for (let j = 0; j < b; j++) data.set(t.data.subarray((j * s + i) * r, (j * s + i + 1) * r) as Float32Array, j * r)
  return { type: t.type, dims: [b, 1, ...rest], data } as TensorData
}

/** [batch, 1, …] tensors joined along dim 1 */
function joinTokens (ts: TensorData[]): TensorData {
  const [b, , ...rest] = ts[0].dims
  const r = rest.reduce((a, d) => a * d, 1)
  const data = new (ts[0].data.constructor as Float32ArrayConstructor)(b * ts.length * r)
  ts.forEach((t, i) => { for (let j = 0; j < b; j++) data.set(t.data.subarray(j * r, (j + 1) * r) as Float32Array, (j * ts.length + i) * r) })
  return { type: ts[0].type, dims: [b, ts.length, ...rest], data } as TensorData
}

/** Detach (and so free) the buffer behind `bytes` now; the view reads as empty afterwards */
export function releaseBytes (bytes: Uint8Array): void {
  // (ES2024's ArrayBuffer.prototype.transfer: Node 21+; the lib here is ES2023)
  const buffer = bytes.buffer as ArrayBuffer & { detached?: boolean, transfer?: (length: number) => ArrayBuffer }
  if (buffer instanceof ArrayBuffer && buffer.detached !== true && typeof buffer.transfer === 'function') buffer.transfer(0)
}

export class RuntimeWorkerState {
  private nextId = 1
  private readonly sessions = new Map<number, SessionEntry>()
  /** Resident tensors: weights by parameter name (inputs of every session that names them) */
  private readonly resident = new Map<string, Tensor>()
  private readonly grads = new Map<string, Float32Array>()
  private readonly m = new Map<string, Float32Array>()
  private readonly v = new Map<string, Float32Array>()
  private readonly kv = new Map<number, KvState>()
  /** Tied replicas' AdamW moments, by resident parameter (apart from the shard's own optimizer state) */
  private readonly replicaM = new Map<string, Float32Array>()
  private readonly replicaV = new Map<string, Float32Array>()

  /**
   * Releases every onnxruntime session (their native memory: graphs, weights baked in, arenas) and drops the
   * tensors, gradients, moments and KV caches. The runtime's close calls it before its thread ends: a session is
   * otherwise freed only when collected, which a thread's exit does not wait for.
   */
  async dispose (): Promise<void> {
    const sessions = [...this.sessions.values()]
    this.sessions.clear()
    for (const s of sessions) await s.session.release().catch(() => {})
    this.resident.clear()
    this.grads.clear()
    this.m.clear()
    this.v.clear()
    this.kv.clear()
    this.replicaM.clear()
    this.replicaV.clear()
  }

  async handle (req: WorkerRequest): Promise<{ result: unknown, transfer: ArrayBuffer[] }> {
    switch (req.op) {
      case 'createSession': return { result: await this.createSession(req), transfer: [] }
      case 'releaseSession': {
        const s = this.sessions.get(req.session)
        this.sessions.delete(req.session)
        await s?.session.release()
        return { result: null, transfer: [] }
      }
      case 'run': return await this.run(req)
      case 'setResident': {
        for (const [name, t] of Object.entries(req.tensors)) {
          this.resident.set(name, new ort.Tensor(t.type as any, t.data as any, [...t.dims]))
        }
        return { result: null, transfer: [] }
      }
      case 'getResident': {
        const out: Record<string, TensorData> = {}
        const transfer: ArrayBuffer[] = []
        for (const name of req.names) {
          const t = this.resident.get(name) ?? this.gradTensor(name)
          if (t === undefined) throw Object.assign(new Error(`no resident tensor ${name}`), { name: 'InvalidTensorError', tensorName: name })
          const data = (t.data as Float32Array).slice()
          out[name] = { type: t.type as TensorData['type'], dims: [...t.dims], data }
          transfer.push(data.buffer)
        }
        return { result: out, transfer }
      }
      case 'setOptimizerState':
        for (const [k, a] of Object.entries(req.m)) this.m.set(k, a)
        for (const [k, a] of Object.entries(req.v)) this.v.set(k, a)
        return { result: null, transfer: [] }
      case 'getOptimizerState': {
        const m: Record<string, Float32Array> = {}
        const v: Record<string, Float32Array> = {}
        const transfer: ArrayBuffer[] = []
        for (const name of req.names) {
          const mm = this.m.get(name)?.slice()
          const vv = this.v.get(name)?.slice()
          if (mm !== undefined && vv !== undefined) { m[name] = mm; v[name] = vv; transfer.push(mm.buffer, vv.buffer) }
        }
        return { result: { m, v }, transfer }
      }
      case 'resetOptimizer':
        // what a fresh executor has: no moments, no gradients (a zeroed gradient would still step: weight decay)
        for (const name of req.names) {
          this.m.delete(name)
          this.v.delete(name)
          this.grads.delete(name)
          this.replicaM.delete(name)
          this.replicaV.delete(name)
        }
        return { result: null, transfer: [] }
      case 'gradNormSquared': {
        let s = 0
        for (const name of req.names) { const g = this.grads.get(name); if (g !== undefined) s += sumOfSquares(g) }
        return { result: s, transfer: [] }
      }
      case 'addGrads':
        for (const [name, src] of Object.entries(req.grads)) {
          const p = this.resident.get(name)
          if (p === undefined || (p.data as Float32Array).length !== src.length) {
            throw Object.assign(new Error(`gradient ${name} does not match a resident parameter`), { name: 'InvalidTensorError', tensorName: name })
          }
          const g = this.grads.get(name)
          if (g === undefined) this.grads.set(name, src)
          else for (let i = 0; i < g.length; i++) g[i] += src[i]
        }
        return { result: null, transfer: [] }
      case 'gradRows': {
        const g = this.grads.get(req.name)
        const out = new Float32Array(req.rows.length * req.width)
        if (g !== undefined) for (let k = 0; k < req.rows.length; k++) out.set(g.subarray(req.rows[k] * req.width, (req.rows[k] + 1) * req.width), k * req.width)
        return { result: out, transfer: [out.buffer] }
      }
      case 'residentRows': {
        const t = this.resident.get(req.name)
        if (t === undefined) throw Object.assign(new Error(`no resident tensor ${req.name}`), { name: 'InvalidTensorError', tensorName: req.name })
        const p = t.data as Float32Array
        const out = new Float32Array(req.rows.length * req.width)
        for (let k = 0; k < req.rows.length; k++) out.set(p.subarray(req.rows[k] * req.width, (req.rows[k] + 1) * req.width), k * req.width)
        return { result: out, transfer: [out.buffer] }
      }
      case 'setResidentRows': {
        const t = this.resident.get(req.name)
        if (t === undefined) throw Object.assign(new Error(`no resident tensor ${req.name}`), { name: 'InvalidTensorError', tensorName: req.name })
        const p = t.data as Float32Array
        for (let k = 0; k < req.rows.length; k++) p.set(req.data.subarray(k * req.width, (k + 1) * req.width), req.rows[k] * req.width)
        return { result: null, transfer: [] }
      }
      case 'replicaState': {
        const m = this.replicaM.get(req.name)?.slice()
        const v = this.replicaV.get(req.name)?.slice()
        if (m === undefined || v === undefined) return { result: null, transfer: [] }
        return { result: { m, v }, transfer: [m.buffer, v.buffer] }
      }
      case 'hashResident': {
        const t = this.resident.get(req.name)
        if (t === undefined) throw Object.assign(new Error(`no resident tensor ${req.name}`), { name: 'InvalidTensorError', tensorName: req.name })
        const hash = sha256Of(t.data as Float32Array)
        return { result: hash, transfer: [hash.buffer as ArrayBuffer] }
      }
      case 'replicaSeed':
        this.replicaM.set(req.name, req.m)
        this.replicaV.set(req.name, req.v)
        return { result: null, transfer: [] }
      case 'replicaStep': return this.replicaStep(req)
      case 'takeGrads': {
        // hand the accumulators over (the next backward starts new ones): no copy, no double count
        const out: Record<string, Float32Array> = {}
        const transfer: ArrayBuffer[] = []
        for (const name of req.names) {
          let g = this.grads.get(name)
          if (g === undefined) continue
          this.grads.delete(name)
          if (g.byteOffset !== 0 || g.byteLength !== g.buffer.byteLength) g = g.slice()
          out[name] = g
          transfer.push(g.buffer as ArrayBuffer)
        }
        return { result: out, transfer }
      }
      case 'zeroGrads':
        for (const g of this.grads.values()) g.fill(0)
        return { result: null, transfer: [] }
      case 'adamw': return { result: this.adamw(req), transfer: [] }
      case 'kvOpen': {
        const id = this.nextId++
        this.kv.set(id, { past: new Map(), append: new Map(), position: 0 })
        return { result: id, transfer: [] }
      }
      case 'kvClose':
        this.kv.delete(req.kv)
        return { result: null, transfer: [] }
      case 'kvPosition':
        return { result: this.kv.get(req.kv)?.position ?? 0, transfer: [] }
      case 'kvTruncate': {
        const kv = this.kv.get(req.kv)
        if (kv === undefined) throw Object.assign(new Error(`no KV-cache session ${req.kv}`), { name: 'SessionError' })
        if (req.position < kv.position) {
          // keep the first `position` entries of every cache tensor [batch, kvHeads, seq, headDim] (dim 2)
          const past = new Map<string, Tensor>()
          if (req.position > 0) {
            for (const [name, t] of kv.past) {
              const [b, h, s, hd] = t.dims
              const src = t.data as Float32Array
              const dst = new Float32Array(b * h * req.position * hd)
              for (let r = 0; r < b * h; r++) dst.set(src.subarray(r * s * hd, r * s * hd + req.position * hd), r * req.position * hd)
              past.set(name, new ort.Tensor('float32', dst, [b, h, req.position, hd]))
            }
          }
          kv.past = past
          // append caches: the tokens past `position` are simply no longer read (and overwritten next)
          if (req.position === 0) kv.append.clear()
          kv.position = req.position
        }
        return { result: kv.position, transfer: [] }
      }
      case 'kvState': {
        const kv = this.kv.get(req.kv)
        if (kv === undefined) throw Object.assign(new Error(`no KV-cache session ${req.kv}`), { name: 'SessionError' })
        const past: Record<string, TensorData> = {}
        const transfer: ArrayBuffer[] = []
        for (const [name, t] of kv.past) {
          const data = (t.data as Float32Array).slice()
          past[name] = { type: 'float32', dims: [...t.dims], data }
          transfer.push(data.buffer)
        }
        for (const [name, c] of kv.append) {
          // [batch, position, kvHeads · headDim] → the [batch, kvHeads, position, headDim] of `present` caches
          const heads = req.kvHeads ?? 1
          const hd = c.width / heads
          const n = kv.position
          const data = new Float32Array(c.batch * n * c.width)
          for (let b = 0; b < c.batch; b++) {
            for (let p = 0; p < n; p++) {
              for (let h = 0; h < heads; h++) {
                const from = (b * c.capacity + p) * c.width + h * hd
                data.set(c.data.subarray(from, from + hd), ((b * heads + h) * n + p) * hd)
              }
            }
          }
          past[name] = { type: 'float32', dims: [c.batch, heads, n, hd], data }
          transfer.push(data.buffer)
        }
        return { result: { position: kv.position, past }, transfer }
      }
    }
  }

  private gradTensor (name: string): Tensor | undefined {
    if (!name.startsWith('grad.')) return undefined
    const g = this.grads.get(name.slice(5))
    const p = this.resident.get(name.slice(5))
    if (p === undefined) return undefined
    // no accumulator yet (no backward, or taken): the gradient is zero
    return new ort.Tensor('float32', g ?? new Float32Array((p.data as Float32Array).length), [...p.dims])
  }

  private async createSession (req: CreateSessionRequest): Promise<CreateSessionResult> {
    const base: InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' }
    if (req.intraOpNumThreads !== undefined) base.intraOpNumThreads = req.intraOpNumThreads
    if (!req.allowSpinning) {
      // idle onnxruntime pool threads otherwise spin after each run and starve the other sessions' threads
      base.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } }
    }
    let executionProvider: 'cpu' | 'cuda' = 'cpu'
    let fallbackReason: string | undefined
    let session: InferenceSession | undefined
    if (req.device === 'cuda') {
      const missing = req.cudaPrecheck ? missingCudaLibrary() : undefined
      if (missing !== undefined) {
        fallbackReason = `the CUDA execution provider library is not installed (${missing} is missing)`
      } else {
        try {
          session = await ort.InferenceSession.create(req.bytes, { ...base, executionProviders: ['cuda', 'cpu'] })
          executionProvider = 'cuda'
        } catch (err: any) {
          fallbackReason = `onnxruntime could not create a CUDA session: ${String(err?.message ?? err)}`
        }
      }
    }
    if (session === undefined) {
      try {
        session = await ort.InferenceSession.create(req.bytes, { ...base, executionProviders: ['cpu'] })
      } catch (err: any) {
        throw Object.assign(new Error(`onnxruntime rejected the graph: ${String(err?.message ?? err)}`), { name: 'SessionError' })
      }
    }
    // onnxruntime parsed the bytes into its own memory: free this thread's copy now (a baked graph is as large as
    // its weights) instead of whenever this thread's heap is next collected. The bytes are the state's own: a
    // message's copy, a transferred buffer, or the in-thread runtime's clone.
    releaseBytes(req.bytes)
    const meta = (list: readonly InferenceSession.ValueMetadata[]): ValueInfo[] => list.map(m => ({
      name: m.name,
      type: m.isTensor ? m.type : 'non-tensor',
      shape: m.isTensor ? [...m.shape] : []
    }))
    const id = this.nextId++
    const entry = { session, inputs: meta(session.inputMetadata), outputs: meta(session.outputMetadata) }
    this.sessions.set(id, entry)
    const result: CreateSessionResult = { session: id, executionProvider, inputs: entry.inputs, outputs: entry.outputs }
    if (fallbackReason !== undefined) result.fallbackReason = fallbackReason
    return result
  }

  private async run (req: RunRequest): Promise<{ result: unknown, transfer: ArrayBuffer[] }> {
    const entry = this.sessions.get(req.session)
    if (entry === undefined) throw Object.assign(new Error(`no session ${req.session}`), { name: 'SessionError' })
    const kv = req.kv === undefined ? undefined : this.kv.get(req.kv)
    if (req.kv !== undefined && kv === undefined) throw Object.assign(new Error(`no KV-cache session ${req.kv}`), { name: 'SessionError' })
    const gqa = entry.inputs.some(i => i.name === KV_TOTAL_LENGTH)
    if (gqa && kv !== undefined && kv.position > 0) {
      // onnxruntime's GroupQueryAttention takes several new tokens over a cache only for batch 1: one at a time
      const split = entry.inputs.filter(i => i.shape[0] === 'batch' && i.shape[1] === 'seq' && req.feeds[i.name] !== undefined)
      const [b, s] = split.length > 0 ? req.feeds[split[0].name].dims : [1, 1]
      if (b > 1 && s > 1) {
        const parts: Array<Record<string, TensorData>> = []
        for (let i = 0; i < s; i++) {
          const feeds = { ...req.feeds }
          for (const info of split) feeds[info.name] = tokenOf(req.feeds[info.name], i)
          parts.push(((await this.run({ ...req, feeds, reportPosition: false })).result as Record<string, TensorData>))
        }
        const result: Record<string, TensorData> = {}
        for (const info of entry.outputs) {
          if (parts[0][info.name] === undefined) continue
          result[info.name] = info.shape[1] === 'seq' ? joinTokens(parts.map(p => p[info.name])) : parts[s - 1][info.name]
        }
        const transfer = Object.values(result).map(t => t.data.buffer as ArrayBuffer)
        return { result: req.reportPosition === true ? { outputs: result, position: kv.position } : result, transfer }
      }
    }
    const feeds: Record<string, Tensor> = {}
    const bound = new Map<string, number>()
    for (const [name, t] of Object.entries(req.feeds)) {
      if (kv !== undefined && (name.startsWith('past_') || name === 'position_offset' || name === KV_SEQLENS || name === KV_TOTAL_LENGTH)) continue
      feeds[name] = new ort.Tensor(t.type as any, t.data as any, [...t.dims])
    }
    for (const info of entry.inputs) {
      if (feeds[info.name] !== undefined) continue
      const r = this.resident.get(info.name)
      if (r !== undefined) feeds[info.name] = r
    }
    for (const info of entry.inputs) {
      const f = feeds[info.name]
      if (f === undefined) continue
      info.shape.forEach((d, i) => { if (typeof d === 'string') bound.set(d, f.dims[i]) })
    }
    if (kv !== undefined) {
      // the cache's own state, always (the main thread refuses caller-supplied past_*/position_offset/kv_*)
      for (const info of entry.inputs) {
        if (info.name.startsWith('past_') && kv.append.has(info.name) && kv.position > 0) {
          feeds[info.name] = appendView(kv.append.get(info.name) as AppendCache, kv.position)
        } else if (info.name.startsWith('past_')) {
          // empty cache: unbound symbolic dims (the past length) are 0
          feeds[info.name] = kv.past.get(info.name) ?? new ort.Tensor('float32', new Float32Array(0), info.shape.map(d => typeof d === 'number' ? d : bound.get(d) ?? 0))
        } else if (info.name === KV_SEQLENS || info.name === KV_TOTAL_LENGTH) {
          const batch = bound.get('batch') ?? 1
          const total = kv.position + (bound.get('seq') ?? 1)
          feeds[info.name] = info.name === KV_TOTAL_LENGTH
            ? new ort.Tensor('int32', Int32Array.of(total), [])
            : new ort.Tensor('int32', new Int32Array(batch).fill(total - 1), [batch])
        } else if (info.name === 'position_offset') {
          const dims = info.shape.map(d => typeof d === 'number' ? d : 1)
          feeds[info.name] = info.type === 'int32'
            ? new ort.Tensor('int32', Int32Array.of(kv.position), dims)
            : new ort.Tensor('int64', BigInt64Array.of(BigInt(kv.position)), dims)
        }
      }
    }
    let outputs: InferenceSession.OnnxValueMapType
    try {
      outputs = await entry.session.run(feeds)
    } catch (err: any) {
      throw Object.assign(new Error(`onnxruntime run failed: ${String(err?.message ?? err)}`), { name: 'SessionError' })
    }
    const result: Record<string, TensorData> = {}
    const transfer: ArrayBuffer[] = []
    let appended = 0
    for (const [name, value] of Object.entries(outputs)) {
      const t = value as Tensor
      if (kv !== undefined && name.startsWith('present_')) {
        kv.past.set('past_' + name.slice('present_'.length), t)
        kv.position = t.dims[2]
        continue
      }
      if (kv !== undefined && name.startsWith('append_')) {
        const past = 'past_' + name.slice('append_'.length)
        kv.append.set(past, appendTokens(kv.append.get(past), t, kv.position))
        appended = t.dims[1]
        continue
      }
      if (req.accumulateGrads === true && name.startsWith('grad.') && this.resident.has(name.slice(5))) {
        const pname = name.slice(5)
        const src = t.data as Float32Array
        let g = this.grads.get(pname)
        if (g === undefined) {
          // first gradient: keep onnxruntime's (already copied) output buffer as the accumulator
          this.grads.set(pname, src)
          continue
        }
        for (let i = 0; i < g.length; i++) g[i] += src[i]
        continue
      }
      let data = t.data as TensorData['data']
      if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) data = data.slice()
      result[name] = { type: t.type as TensorData['type'], dims: [...t.dims], data }
      transfer.push(data.buffer as ArrayBuffer)
    }
    if (kv !== undefined) kv.position += appended
    // the cache length rides along, so a decode step is one round trip
    if (kv !== undefined && req.reportPosition === true) return { result: { outputs: result, position: kv.position }, transfer }
    return { result, transfer }
  }

  /**
   * A tied replica's step in place on the resident parameter: `grad` plus the rows, AdamW with the replica's moments,
   * then the hash of the stepped matrix. The matrix never leaves this thread. A non-finite result drops the moments
   * (the caller re-seeds the replica and sets the parameter again).
   */
  private replicaStep (req: TiedReplicaStepRequest): { result: TiedReplicaStepResult, transfer: ArrayBuffer[] } {
    const t = this.resident.get(req.name)
    const m = this.replicaM.get(req.name)
    const v = this.replicaV.get(req.name)
    const p = t?.data as Float32Array | undefined
    if (p === undefined || m === undefined || v === undefined || m.length !== p.length || v.length !== p.length || req.grad.length !== p.length) {
      throw Object.assign(new Error(`no tied replica of ${req.name} to step`), { name: 'InvalidTensorError', tensorName: req.name })
    }
    const g = req.grad
    const d = req.width
    for (let k = 0; k < req.ids.length; k++) {
      const at = req.ids[k] * d
      for (let j = 0; j < d; j++) g[at + j] += req.rows[k * d + j]
    }
    const finite = adamwKernel(p, g, m, v, { lr: req.lr, beta1: req.beta1, beta2: req.beta2, eps: req.eps, weightDecay: req.weightDecay, t: req.t, gradScale: req.gradScale })
    if (!finite) {
      this.replicaM.delete(req.name)
      this.replicaV.delete(req.name)
    }
    const hash = sha256Of(p)
    return { result: { finite, hash }, transfer: [hash.buffer as ArrayBuffer] }
  }

  private adamw (req: AdamWRequest): AdamWResult {
    let norm2 = 0
    for (const name of req.names) { const g = this.grads.get(name); if (g !== undefined) norm2 += sumOfSquares(g) }
    const gradNorm = req.gradNorm ?? Math.sqrt(norm2)
    const clipScale = clipScaleOf(gradNorm, req.maxGradNorm)
    const noDecay = new Set(req.noDecay)
    let nonFinite: string | undefined
    for (const name of req.names) {
      const p = this.resident.get(name)?.data as Float32Array | undefined
      const g = this.grads.get(name)
      if (p === undefined || g === undefined) continue
      let m = this.m.get(name)
      let v = this.v.get(name)
      if (m === undefined) { m = new Float32Array(p.length); this.m.set(name, m) }
      if (v === undefined) { v = new Float32Array(p.length); this.v.set(name, v) }
      const ok = adamwKernel(p, g, m, v, {
        lr: req.lr, beta1: req.beta1, beta2: req.beta2, eps: req.eps, t: req.t, gradScale: clipScale,
        weightDecay: noDecay.has(name) ? 0 : req.weightDecay
      })
      if (!ok && nonFinite === undefined) nonFinite = name
    }
    for (const g of this.grads.values()) g.fill(0)
    const out: AdamWResult = { gradNorm, clipScale }
    if (nonFinite !== undefined) out.nonFinite = nonFinite
    return out
  }
}

if (!isMainThread && parentPort != null && (workerData as { neuroshardRuntime?: number } | undefined)?.neuroshardRuntime === 1) {
  const port = parentPort
  // (RuntimeInit.niceness, Linux: per thread) this thread lowers its own priority before any onnxruntime session
  // exists, so the intra-op threads onnxruntime starts from here inherit it
  const niceness = (workerData as { niceness?: number }).niceness
  if (niceness !== undefined) {
    try {
      setPriority(0, niceness)
    } catch {
      // not permitted (a container's seccomp, a raised floor): the worker runs at the process's priority
    }
  }
  const state = new RuntimeWorkerState()
  let queue: Promise<void> = Promise.resolve()
  port.on('message', (msg: { id: number, req: WorkerRequest, shutdown?: boolean }) => {
    if (msg.shutdown === true) {
      // after the request in flight: ending the thread inside an onnxruntime run can abort the whole process
      queue = queue.then(async () => { await state.dispose().catch(() => {}); process.exit(0) })
      return
    }
    // one request at a time, in order
    queue = queue.then(async () => {
      let reply: WorkerReply
      let transfer: ArrayBuffer[] = []
      try {
        const r = await state.handle(msg.req)
        reply = { id: msg.id, ok: true, result: r.result }
        transfer = r.transfer
      } catch (err: any) {
        reply = { id: msg.id, ok: false, error: { name: String(err?.name ?? 'Error'), message: String(err?.message ?? err), tensorName: err?.tensorName } }
      }
      port.postMessage(reply, transfer)
    })
  })
}
