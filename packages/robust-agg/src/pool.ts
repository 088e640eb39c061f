/**
 * Worker threads for the passes over d of the coordinate-wise and iterative aggregators (coordinate median,
 * trimmed mean, geometric median, CenteredClip).
 *
 * The aggregators' API is synchronous, so the pool is too: the calling thread hands each worker a range of
 * coordinates (a message it reads with `receiveMessageOnPort`, woken through `Atomics.notify`), computes the
 * first range itself, and blocks in `Atomics.wait` until every worker is done. Workers read the inputs in
 * place, so they must live in `SharedArrayBuffer`s (`sharedFloat32Array`, `toSharedFloat32Array`); with
 * ordinary inputs an aggregator runs on the calling thread alone, because copying n × d values would cost more
 * than the parallel pass saves.
 *
 * Work is split at fixed chunk boundaries (`REDUCE_CHUNK`), and sums over d are formed per chunk and added in
 * chunk order, so the results are bit-for-bit the same for every thread count (and every block size).
 */
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads'
import { InvalidParametersError } from '@neuroshard/interface'
import { REDUCE_CHUNK } from './constants.js'
import type { VectorSet } from './types.js'
import type { MessagePort } from 'node:worker_threads'

/** Control words shared with each worker */
export const CTRL = { request: 0, done: 1, error: 2, close: 3 } as const

export interface AggregationPoolInit {
  /**
   * Threads that share a pass, the calling thread included (so `threads − 1` workers are started).
   *
   * @default availableParallelism()
   */
  threads?: number
  /**
   * Vectors shorter than this run on the calling thread (waking the workers costs tens of microseconds).
   *
   * @default 131072
   */
  minLength?: number
}

interface PoolWorker {
  worker: Worker
  port: MessagePort
  ctrl: Int32Array
  /** set when the thread died between passes: the pool is then no longer used */
  dead: boolean
}

/** A set as a worker receives it: the shared base vectors and the mixing rows */
export interface WireSet {
  base: Float32Array[]
  d: number
  count: number
  mix?: VectorSet['mix']
}

/** Worker threads that aggregators given `{ pool }` use for inputs in shared memory. Create with {@link createAggregationPool}. */
export class AggregationPool {
  /** threads per pass, the calling thread included */
  readonly threads: number
  readonly minLength: number
  readonly #workers: PoolWorker[]
  #closed = false
  #passes = 0

  /** @internal use {@link createAggregationPool} */
  constructor (threads: number, minLength: number, workers: PoolWorker[]) {
    this.threads = threads
    this.minLength = minLength
    this.#workers = workers
  }

  get closed (): boolean {
    return this.#closed
  }

  /** How many passes ran split across threads (a diagnostic: shows whether inputs qualified) */
  get passes (): number {
    return this.#passes
  }

  /**
   * Whether a pass over `set` runs on the pool: open, long enough, and every input in shared memory. Otherwise
   * the aggregator runs on the calling thread (same results).
   */
  usable (set: VectorSet): boolean {
    return !this.#closed && this.#workers.length > 0 && this.#workers.every(w => !w.dead) && set.d >= this.minLength && set.base.every(isShared)
  }

  /**
   * Runs `jobs[k]` on worker k and `local()` on the calling thread, and returns when all are done. A job that
   * throws in a worker is rethrown here (after every worker has finished).
   */
  run (jobs: unknown[], local: () => void): void {
    if (jobs.length > this.#workers.length) {
      throw new InvalidParametersError(`${jobs.length} jobs for ${this.#workers.length} workers`)
    }
    const started = this.#workers.slice(0, jobs.length)
    this.#passes++
    started.forEach((w, k) => {
      w.port.postMessage(jobs[k])
      Atomics.add(w.ctrl, CTRL.request, 1)
      Atomics.notify(w.ctrl, CTRL.request)
    })
    let failure: unknown
    try {
      local()
    } catch (err) {
      failure = err
    }
    for (const w of started) {
      const want = Atomics.load(w.ctrl, CTRL.request)
      for (let done = Atomics.load(w.ctrl, CTRL.done); done !== want; done = Atomics.load(w.ctrl, CTRL.done)) {
        Atomics.wait(w.ctrl, CTRL.done, done)
      }
      if (Atomics.exchange(w.ctrl, CTRL.error, 0) !== 0) {
        const m = receiveMessageOnPort(w.port)
        failure ??= new Error(`aggregation worker failed: ${String(m?.message)}`)
      }
    }
    if (failure != null) throw failure
  }

  /** Stops the workers. Aggregators holding a closed pool run on the calling thread. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all(this.#workers.map(async w => {
      Atomics.store(w.ctrl, CTRL.close, 1)
      Atomics.add(w.ctrl, CTRL.request, 1)
      Atomics.notify(w.ctrl, CTRL.request)
      w.port.close()
      await w.worker.terminate()
    }))
  }
}

/** Whether a vector lives in shared memory (workers can read it without a copy) */
export function isShared (x: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && x.buffer instanceof SharedArrayBuffer
}

/** A zero-filled Float32Array in shared memory, e.g. to receive a peer's pseudo-gradient into */
export function sharedFloat32Array (length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(4 * length))
}

/** A copy of `x` in shared memory */
export function toSharedFloat32Array (x: ArrayLike<number>): Float32Array {
  const out = sharedFloat32Array(x.length)
  out.set(x)
  return out
}

/** A zero-filled Float32Array, in shared memory when `shared` */
export function float32Array (length: number, shared: boolean): Float32Array {
  return shared ? sharedFloat32Array(length) : new Float32Array(length)
}

/** A zero-filled Float64Array, in shared memory when `shared` */
export function float64Array (length: number, shared: boolean): Float64Array {
  return shared ? new Float64Array(new SharedArrayBuffer(8 * length)) : new Float64Array(length)
}

function workerFile (): string {
  // compiled: next to this file; from TypeScript sources (tests): the compiled copy in dist/
  for (const rel of ['./pool-worker.js', '../dist/src/pool-worker.js']) {
    const file = fileURLToPath(new URL(rel, import.meta.url))
    if (existsSync(file)) return file
  }
  throw new InvalidParametersError('robust-agg: pool-worker.js not found; build the package (tsc -b) first')
}

/**
 * Starts `threads − 1` workers and waits until each has loaded the kernels, so that a failing start shows here
 * and not as a calling thread blocked forever.
 */
export async function createAggregationPool (init: AggregationPoolInit = {}): Promise<AggregationPool> {
  const threads = init.threads ?? availableParallelism()
  if (!Number.isInteger(threads) || threads < 1) {
    throw new InvalidParametersError(`threads must be a positive integer, got ${threads}`)
  }
  const minLength = init.minLength ?? 2 * REDUCE_CHUNK
  if (!Number.isInteger(minLength) || minLength < 0) {
    throw new InvalidParametersError(`minLength must be a non-negative integer, got ${minLength}`)
  }
  const file = threads > 1 ? workerFile() : ''
  const workers = await Promise.all(Array.from({ length: threads - 1 }, async () => {
    const ctrl = new Int32Array(new SharedArrayBuffer(16))
    const { port1, port2 } = new MessageChannel()
    const worker = new Worker(file, { workerData: { ctrl, port: port2 }, transferList: [port2] })
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => { resolve() })
      worker.once('error', reject)
      worker.once('exit', code => { reject(new Error(`aggregation worker exited with code ${code} while starting`)) })
    })
    worker.removeAllListeners()
    const w: PoolWorker = { worker, port: port1, ctrl, dead: false }
    // job errors are caught in the worker; a thread that dies anyway is not handed work again
    worker.on('error', () => { w.dead = true })
    worker.on('exit', () => { w.dead = true })
    // idle workers block in Atomics.wait; they must not keep the process alive
    worker.unref()
    return w
  }))
  return new AggregationPool(threads, minLength, workers)
}

/**
 * Split `[0, d)` into at most `parts` ranges of whole chunks (the last one ends at d); returns range bounds.
 */
export function chunkRanges (d: number, parts: number): Array<[number, number]> {
  const chunks = Math.ceil(d / REDUCE_CHUNK)
  const p = Math.max(1, Math.min(parts, chunks))
  const out: Array<[number, number]> = []
  for (let k = 0; k < p; k++) {
    const c0 = Math.floor(k * chunks / p)
    const c1 = Math.floor((k + 1) * chunks / p)
    if (c1 > c0) out.push([c0 * REDUCE_CHUNK, Math.min(d, c1 * REDUCE_CHUNK)])
  }
  return out
}

/**
 * Run `local(lo, hi)` over `[0, d)`: split across the pool when it is usable for `set` (worker jobs built by
 * `job(lo, hi)`), else in one call on this thread.
 */
export function runRanges (pool: AggregationPool | undefined, set: VectorSet, job: (lo: number, hi: number) => unknown, local: (lo: number, hi: number) => void): void {
  if (pool == null || !pool.usable(set)) {
    local(0, set.d)
    return
  }
  const [first, ...rest] = chunkRanges(set.d, pool.threads)
  if (rest.length === 0) {
    local(0, set.d)
    return
  }
  pool.run(rest.map(([lo, hi]) => job(lo, hi)), () => { local(first[0], first[1]) })
}

/** The set as posted to a worker (the base vectors are shared, so only their handles travel) */
export function wireSet (set: VectorSet): WireSet {
  return { base: set.base as Float32Array[], d: set.d, count: set.count, mix: set.mix }
}
