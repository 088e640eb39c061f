import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { AbortError, InvalidParametersError } from '@neuroshard/interface'
import { logger } from '@libp2p/logger'
import { InvalidTensorError, NonFiniteTensorError, RuntimeClosedError, SequenceTooLongError, SessionError, ShapeMismatchError, TokenIdOutOfRangeError } from './errors.js'
import { assertFinite, assertWellFormed, validateFeeds } from './validate.js'
import type { DimLimit } from './validate.js'
import { RuntimeWorkerState } from './worker.js'
import type { Device, CreateSessionResult, ValueInfo, WorkerReply, WorkerRequest } from './protocol.js'
import type { TensorData } from './tensor.js'
import type { AbortOptions } from './tensor.js'

export type { Device, ValueInfo } from './protocol.js'

const log = logger('neuroshard:runtime')

export interface RuntimeInit {
  /**
   * Where sessions run. `cuda` tries onnxruntime's CUDA execution provider and falls back to CPU (with one
   * warning per process) when its libraries are not installed.
   *
   * @default 'cpu'
   */
  device?: Device
  /**
   * Receives the CUDA-fallback warning (at most once per process). Defaults to `process.emitWarning`.
   */
  onWarning?: (message: string) => void
  /**
   * Look for onnxruntime's CUDA provider library before asking for CUDA (skips onnxruntime's own error
   * log when it is absent). With `false` the session creation is simply tried.
   *
   * @default true
   */
  cudaPrecheck?: boolean
  /**
   * onnxruntime intra-op threads per session (onnxruntime's default: one per core)
   */
  intraOpNumThreads?: number
  /**
   * Let onnxruntime's pool threads spin-wait after a run. Spinning lowers latency for one busy session but
   * steals cores from every other session and worker on the machine (shards chained in one process), so
   * it is off by default.
   *
   * @default false
   */
  allowSpinning?: boolean
  /**
   * Run the sessions on the calling thread instead of a worker thread: no message to and from a worker per
   * call (two thread wake-ups, which on a loaded machine cost more than a small model's whole decode step),
   * but every `run()` blocks the event loop while it computes. For small inference-only graphs (one token of a
   * tiny model is well under a millisecond); keep large or training graphs in the worker.
   *
   * @default false
   */
  inThread?: boolean
  /**
   * Lower the worker thread's scheduling priority to this nice value (1–19; Linux only: nice is per thread
   * there). The worker sets it on itself (`os.setPriority(0, n)`) before it creates any onnxruntime session, so the
   * intra-op pool threads onnxruntime starts for its sessions inherit it; the process's other threads (the event
   * loop, other runtimes' workers) keep theirs. For background work (a node's training) beside latency-bound work
   * (its serving): the kernel then runs the latter first and gives the former whatever is left, so an idle machine
   * still trains at full speed. A thread cannot raise its priority back without privileges, which is why it is
   * the worker's own. Ignored with `inThread` (it would lower the caller's thread), off Linux (elsewhere
   * `setpriority(0)` means the whole process) and for 0.
   *
   * @default 0 (the process's)
   */
  niceness?: number
}

export interface RunOptions extends AbortOptions {
  /**
   * Transfer the feeds' ArrayBuffers to the worker instead of copying them (the caller's arrays become
   * detached)
   *
   * @default false
   */
  transfer?: boolean
  /**
   * Scan float feeds for NaN/Inf before running
   *
   * @default true
   */
  checkFinite?: boolean
  /**
   * Integer feeds whose values must lie in [0, bound): tensor name → bound (`TokenIdOutOfRangeError`).
   * Shard executors always add `input_ids` and `targets` → vocabSize.
   */
  indexBounds?: Readonly<Record<string, number>>
  /**
   * Limits on symbolic dims (see `validateFeeds`). Shard executors always add batch ≥ 1 and
   * 1 ≤ seq ≤ maxSeqLen.
   */
  dimLimits?: Readonly<Record<string, DimLimit>>
}

let cudaWarned = false

/** The CUDA-fallback message, written so a user knows what to install */
export function cudaFallbackMessage (reason: string): string {
  return `NeuroShard asked for device 'cuda' but runs on CPU: ${reason}. ` +
    'To use an NVIDIA GPU install CUDA 12 and cuDNN 9, then reinstall onnxruntime-node with ' +
    'ONNXRUNTIME_NODE_INSTALL=cuda12 (see the @neuroshard/runtime README).'
}

/**
 * The `execArgv` for a Worker running a module file. Left undefined (the Worker inherits the main thread's flags,
 * V8 ones such as `--max-semi-space-size` included) unless the main script was started with `--input-type`, which
 * a module file refuses: only then is an explicit list passed without it. An explicit list is what Node checks, and
 * it refuses V8 flags (`ERR_WORKER_INVALID_EXEC_ARGV`), so `node --max-semi-space-size=16 app.js` must not get one;
 * `node --input-type=module --max-semi-space-size=16 -e …` still does (put V8 flags in NODE_OPTIONS there).
 */
export function workerExecArgv (execArgv: readonly string[] = process.execArgv): string[] | undefined {
  const inputType = (a: string): boolean => a === '--input-type' || a.startsWith('--input-type=')
  if (!execArgv.some(inputType)) return undefined
  const out: string[] = []
  for (let i = 0; i < execArgv.length; i++) {
    if (execArgv[i] === '--input-type') i++ // `--input-type module`: its value goes too
    else if (!inputType(execArgv[i])) out.push(execArgv[i])
  }
  return out
}

function workerUrl (): URL {
  // from TypeScript sources (tests) Node loads worker.ts with type stripping; from dist, worker.js
  const js = new URL('./worker.js', import.meta.url)
  if (existsSync(fileURLToPath(js))) return js
  return new URL('./worker.ts', import.meta.url)
}

function toTypedError (e: NonNullable<WorkerReply['error']>): Error {
  switch (e.name) {
    case 'InvalidTensorError': return new InvalidTensorError(e.tensorName ?? '', e.message)
    case 'ShapeMismatchError': return new ShapeMismatchError(e.tensorName ?? '', e.message)
    case 'NonFiniteTensorError': return new NonFiniteTensorError(e.tensorName ?? '', e.message)
    case 'TokenIdOutOfRangeError': return new TokenIdOutOfRangeError(e.tensorName ?? '', e.message)
    case 'SequenceTooLongError': return new SequenceTooLongError(e.tensorName ?? '', e.message)
    case 'SessionError': return new SessionError(e.message)
    default: return Object.assign(new Error(e.message), { name: e.name })
  }
}

function transferables (tensors: Record<string, TensorData>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>()
  for (const t of Object.values(tensors)) {
    const b = t.data.buffer
    // only whole, plain buffers can move; views into larger or shared buffers are copied
    if (b instanceof ArrayBuffer && t.data.byteOffset === 0 && t.data.byteLength === b.byteLength) out.add(b)
  }
  return [...out]
}

/**
 * @internal Inputs a KV-cache session feeds itself: the cache (`past_*`) and where it stands (`position_offset`, or
 * a `GroupQueryAttention` graph's `kv_seqlens` / `kv_total_length`)
 */
export function isKvCacheInput (name: string): boolean {
  return name.startsWith('past_') || name === 'position_offset' || name === 'kv_seqlens' || name === 'kv_total_length'
}

/**
 * A worker thread holding onnxruntime sessions and resident tensors (internal RPC). The worker is only
 * ref'd while calls are in flight, so an idle runtime never keeps the process alive.
 */
/** How long `close()` lets the worker finish its current native run before terminating it */
const CLOSE_GRACE_MS = 30_000

export class RuntimeWorker {
  private readonly worker: Worker
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  private closed = false
  private closing = false

  constructor (niceness = 0) {
    if (!(Number.isSafeInteger(niceness) && niceness >= 0 && niceness <= 19)) throw new InvalidParametersError(`niceness must be an integer in [0, 19], got ${String(niceness)}`)
    this.worker = new Worker(workerUrl(), {
      workerData: { neuroshardRuntime: 1, ...(niceness > 0 && process.platform === 'linux' ? { niceness } : {}) },
      execArgv: workerExecArgv()
    })
    this.worker.on('message', (reply: WorkerReply) => {
      // a run that finishes while the runtime closes is not handed out: it rejects when the worker has exited
      if (this.closing) return
      const p = this.pending.get(reply.id)
      if (p === undefined) return
      this.pending.delete(reply.id)
      if (this.pending.size === 0) this.worker.unref()
      if (reply.ok) p.resolve(reply.result)
      else p.reject(toTypedError(reply.error!))
    })
    this.worker.on('error', (err) => { this.fail(new RuntimeClosedError(`runtime worker failed: ${err.message}`)) })
    this.worker.on('exit', (code) => { this.fail(new RuntimeClosedError(this.closing ? 'the runtime was closed' : `runtime worker exited (code ${code})`)) })
    // after the listeners: attaching a 'message' listener re-refs the worker
    this.worker.unref()
  }

  private fail (err: Error): void {
    this.closed = true
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }

  async call<T> (req: WorkerRequest, transfer: ArrayBuffer[] = [], options: AbortOptions = {}): Promise<T> {
    if (this.closed) throw new RuntimeClosedError('the runtime is closed')
    options.signal?.throwIfAborted()
    const id = this.nextId++
    let resolve!: (v: T) => void
    let reject!: (e: Error) => void
    const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
    this.pending.set(id, { resolve, reject })
    if (this.pending.size === 1) this.worker.ref()
    this.worker.postMessage({ id, req }, transfer)
    if (options.signal == null) return await promise
    const signal = options.signal
    const onAbort = (): void => { reject(new AbortError('aborted while the runtime worker was busy')) }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      return await promise
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Calls in flight reject with RuntimeClosedError; the worker exits after the native run it is in
   * (terminating a thread inside onnxruntime's run can abort the process: seen as SIGABRT on a loaded machine),
   * or is terminated after `CLOSE_GRACE_MS`.
   */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.closing = true
    const exited = new Promise<void>(resolve => { this.worker.once('exit', () => { resolve() }) })
    this.worker.postMessage({ id: 0, shutdown: true })
    const timer = setTimeout(() => { void this.worker.terminate() }, CLOSE_GRACE_MS)
    try {
      await exited
    } finally {
      clearTimeout(timer)
    }
    for (const p of this.pending.values()) p.reject(new RuntimeClosedError('the runtime was closed'))
    this.pending.clear()
  }

  get isClosed (): boolean {
    return this.closed
  }
}

/**
 * The same calls as `RuntimeWorker`, served on this thread (`RuntimeInit.inThread`): one request at a time in
 * order, as the worker serves them, and requests that the state keeps (weights, gradients, moments) are copied
 * as a message to the worker would be; run feeds are only read during the run, so they are not copied.
 */
export class InThreadRuntimeWorker {
  private state?: RuntimeWorkerState = new RuntimeWorkerState()
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false

  async call<T> (req: WorkerRequest, _transfer: ArrayBuffer[] = [], options: AbortOptions = {}): Promise<T> {
    if (this.closed) throw new RuntimeClosedError('the runtime is closed')
    options.signal?.throwIfAborted()
    // run feeds are only read; a graph the caller handed over (createSession with `transfer`) is the state's own
    const own = req.op === 'run' || (req.op === 'createSession' && _transfer.length > 0) ? req : structuredClone(req)
    const result = this.queue.then(async () => {
      if (this.closed || this.state == null) throw new RuntimeClosedError('the runtime was closed')
      try {
        return (await this.state.handle(own)).result as T
      } catch (err: any) {
        throw toTypedError({ name: String(err?.name ?? 'Error'), message: String(err?.message ?? err), tensorName: err?.tensorName })
      }
    })
    this.queue = result.catch(() => {})
    return await result
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    // after the request in flight (later ones reject with RuntimeClosedError): the sessions are released now, not
    // when collected
    await this.queue
    const state = this.state
    this.state = undefined
    await state?.dispose()
  }

  get isClosed (): boolean {
    return this.closed
  }
}

/** One onnxruntime session living in a runtime's worker */
export class RuntimeSession {
  /** Execution provider actually in use */
  readonly executionProvider: Device
  /** Why a `cuda` request runs on CPU (undefined when it did not fall back) */
  readonly fallbackReason?: string
  /** The graph's inputs (names, types, shapes with symbolic dims) */
  readonly inputs: readonly ValueInfo[]
  /** The graph's outputs */
  readonly outputs: readonly ValueInfo[]
  /** @internal */
  readonly id: number
  private readonly runtime: Runtime

  /** @internal */
  constructor (runtime: Runtime, created: CreateSessionResult) {
    this.runtime = runtime
    this.id = created.session
    this.executionProvider = created.executionProvider
    if (created.fallbackReason !== undefined) this.fallbackReason = created.fallbackReason
    this.inputs = created.inputs
    this.outputs = created.outputs
  }

  /**
   * Validate the feeds (names, dtypes, shapes, NaN/Inf) and run the graph in the worker. Inputs not fed
   * are taken from the runtime's resident tensors. Returns every output.
   */
  async run (feeds: Record<string, TensorData>, options: RunOptions = {}): Promise<Record<string, TensorData>> {
    return await this.runtime.runSession(this, feeds, options)
  }

  /** Free the session in the worker */
  async release (): Promise<void> {
    await this.runtime.worker.call({ op: 'releaseSession', session: this.id })
  }
}

/**
 * onnxruntime-node off the main event loop: one worker thread that holds sessions and resident tensors
 * (weights), runs graphs, and hands activations back by transfer.
 */
export class Runtime {
  /** @internal */
  readonly worker: RuntimeWorker | InThreadRuntimeWorker
  readonly device: Device
  private readonly init: RuntimeInit
  /** Type and dims of each resident tensor (validated against graph inputs on the main thread) */
  private readonly residentInfo = new Map<string, { type: string, dims: readonly number[] }>()

  constructor (init: RuntimeInit = {}) {
    // only the runtime's own settings: callers pass wider init objects (an executor's holds its weights), which
    // must not stay reachable from here
    this.init = {
      ...(init.device !== undefined ? { device: init.device } : {}),
      ...(init.onWarning !== undefined ? { onWarning: init.onWarning } : {}),
      ...(init.cudaPrecheck !== undefined ? { cudaPrecheck: init.cudaPrecheck } : {}),
      ...(init.intraOpNumThreads !== undefined ? { intraOpNumThreads: init.intraOpNumThreads } : {}),
      ...(init.allowSpinning !== undefined ? { allowSpinning: init.allowSpinning } : {})
    }
    this.device = init.device ?? 'cpu'
    this.worker = init.inThread === true ? new InThreadRuntimeWorker() : new RuntimeWorker(init.niceness)
  }

  /**
   * Build a session from ONNX ModelProto bytes. The runtime frees its copy of the bytes once onnxruntime has the
   * session. With `transfer` the bytes move to the runtime instead of being copied (detached here, freed there as
   * soon as the session exists: a graph with baked weights is not kept twice); a view into a larger buffer is
   * copied.
   */
  async createSession (bytes: Uint8Array, options: AbortOptions & { transfer?: boolean } = {}): Promise<RuntimeSession> {
    const whole = options.transfer === true && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer
    const created = await this.worker.call<CreateSessionResult>({
      op: 'createSession',
      bytes,
      device: this.device,
      cudaPrecheck: this.init.cudaPrecheck ?? true,
      allowSpinning: this.init.allowSpinning ?? false,
      ...(this.init.intraOpNumThreads !== undefined ? { intraOpNumThreads: this.init.intraOpNumThreads } : {})
    }, whole ? [bytes.buffer as ArrayBuffer] : [], options)
    if (created.fallbackReason !== undefined) {
      log('cuda unavailable, running on cpu: %s', created.fallbackReason)
      if (!cudaWarned) {
        cudaWarned = true
        const message = cudaFallbackMessage(created.fallbackReason)
        if (this.init.onWarning !== undefined) this.init.onWarning(message)
        else process.emitWarning(message, { code: 'NEUROSHARD_CUDA_UNAVAILABLE' })
      }
    }
    return new RuntimeSession(this, created)
  }

  /**
   * Make tensors resident in the worker (weights): every session input with one of these names is fed
   * from here. Float tensors are checked for NaN/Inf (the error names the tensor). Copied unless
   * `transfer` is set.
   */
  async setResident (tensors: Record<string, TensorData>, options: AbortOptions & { transfer?: boolean } = {}): Promise<void> {
    for (const [name, t] of Object.entries(tensors)) {
      assertWellFormed(name, t)
      assertFinite(name, t)
    }
    await this.worker.call({ op: 'setResident', tensors }, options.transfer === true ? transferables(tensors) : [], options)
    for (const [name, t] of Object.entries(tensors)) this.residentInfo.set(name, { type: t.type, dims: [...t.dims] })
  }

  /** Copies of resident tensors (or of accumulated gradients, named `grad.<param>`) */
  async getResident (names: string[], options: AbortOptions = {}): Promise<Record<string, TensorData>> {
    return await this.worker.call({ op: 'getResident', names }, [], options)
  }

  /** @internal */
  async runSession (session: RuntimeSession, feeds: Record<string, TensorData>, options: RunOptions & { kv?: number, accumulateGrads?: boolean }): Promise<Record<string, TensorData>> {
    const kv = options.kv
    validateFeeds(session.inputs, feeds, {
      resident: this.residentInfo,
      implicit: kv === undefined ? undefined : isKvCacheInput,
      checkFinite: options.checkFinite,
      indexBounds: options.indexBounds,
      dimLimits: options.dimLimits
    })
    const req: WorkerRequest = { op: 'run', session: session.id, feeds }
    if (kv !== undefined) req.kv = kv
    if (options.accumulateGrads === true) req.accumulateGrads = true
    return await this.worker.call(req, options.transfer === true ? transferables(feeds) : [], options)
  }

  /** @internal A KV-cache run that also returns the cache length after it (one round trip per step) */
  async runKv (session: RuntimeSession, feeds: Record<string, TensorData>, options: RunOptions & { kv: number }): Promise<{ outputs: Record<string, TensorData>, position: number }> {
    validateFeeds(session.inputs, feeds, {
      resident: this.residentInfo,
      implicit: isKvCacheInput,
      checkFinite: options.checkFinite,
      indexBounds: options.indexBounds,
      dimLimits: options.dimLimits
    })
    const req: WorkerRequest = { op: 'run', session: session.id, feeds, kv: options.kv, reportPosition: true }
    return await this.worker.call(req, options.transfer === true ? transferables(feeds) : [], options)
  }

  /** Terminate the worker (idempotent); pending calls reject with `RuntimeClosedError` */
  async close (): Promise<void> {
    await this.worker.close()
  }
}

/** Start a runtime (one worker thread) */
export async function createRuntime (init: RuntimeInit = {}): Promise<Runtime> {
  return new Runtime(init)
}
