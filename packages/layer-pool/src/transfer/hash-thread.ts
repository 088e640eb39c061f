/**
 * Work a weight transfer hands to a helper thread, so that the thread that runs the network does less:
 *
 * - the whole-span `contentHash` (rule R14 of specs/layer-pool/transfer.md). It is computed
 *   incrementally over the verified prefix of the stream while chunks arrive, not in a second pass at
 *   the end: {@link StreamContentHash}. Inline, each verified chunk is hashed right after its chunk
 *   hash, while its bytes are in cache. On the helper thread it costs the calling thread a copy of
 *   each byte into a small shared staging slot instead of a sha256 pass, and costs more CPU in all
 *   (the fetch client hashes inline unless asked: `hashOnThread`).
 * - the first-write page faults of a new destination buffer: {@link prefaultedBuffer}.
 *
 * The hash and the bytes hashed are those of `contentHash` of `@neuroshard/model`; only where and when
 * the work is done differs.
 */

import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { logger as createLogger } from '@libp2p/logger'
import { CONTENT_HASH_DOMAIN } from '@neuroshard/model'
import { elementCount } from './chunks.js'
import type { StreamBytes, TensorLayout } from './chunks.js'
import type { Hash } from 'node:crypto'

const log = createLogger('neuroshard:layer-pool:hash-thread')

/** Bytes of a staging slot: at most this much is copied per message to the helper thread */
const STAGING_SLOT_BYTES = 1024 * 1024
/** Staging slots shared by all fetches of the process (8 MiB of shared memory, allocated once) */
const STAGING_SLOTS = 8
/** Streams shorter than this are hashed inline: a thread would not pay for its messages */
export const THREADED_HASH_MIN_BYTES = 4 * 1024 * 1024

/**
 * `contentHash` of a span part's tensors, fed the canonical stream in order as it becomes final.
 *
 * `advance(to)` says that bytes [0, to) of `stream` are verified and will not change again; they may be
 * read at any time until `digest()` resolves or `abort()` is called.
 */
export interface StreamContentHash {
  /** Bytes [0, to) of the stream are final (`to` never decreases) */
  advance(to: number): void
  /** The lowercase hex `contentHash`, once `advance(totalBytes)` was called */
  digest(): Promise<string>
  /** Stop: the stream is no longer read, the helper thread forgets the job */
  abort(): void
}

export interface StreamContentHashOptions {
  /**
   * Hash on the helper thread when the stream has at least `THREADED_HASH_MIN_BYTES` (4 MiB) and the
   * thread can run; `false` always hashes inline
   *
   * @default true
   */
  thread?: boolean
  /** Smallest stream hashed on the thread @default THREADED_HASH_MIN_BYTES (4 MiB) */
  threadMinBytes?: number
}

/** The `contentHash` input split at tensor boundaries: each tensor's header, then its bytes [start, end) of the stream */
interface Segment {
  header: Uint8Array
  start: number
  end: number
}

function contentHashPrefix (): Uint8Array {
  return Buffer.concat([Buffer.from(CONTENT_HASH_DOMAIN, 'utf8'), Buffer.of(0)])
}

/** The per-tensor headers of `contentHash` (dtype F32) for tensors in canonical order */
function segments (layout: readonly TensorLayout[]): Segment[] {
  const out: Segment[] = []
  let at = 0

  for (const t of layout) {
    const name = Buffer.from(t.name, 'utf8')
    const bytes = elementCount(t.shape) * 4
    const header = Buffer.alloc(4 + name.byteLength + 4 + 3 + 4 + 8 * t.shape.length + 8)
    let o = header.writeUInt32LE(name.byteLength, 0)
    o += name.copy(header, o)
    o = header.writeUInt32LE(3, o)
    o += header.write('F32', o, 'utf8')
    o = header.writeUInt32LE(t.shape.length, o)

    for (const d of t.shape) {
      o = header.writeBigUInt64LE(BigInt(d), o)
    }

    header.writeBigUInt64LE(BigInt(bytes), o)
    out.push({ header, start: at, end: at + bytes })
    at += bytes
  }

  return out
}

/**
 * Walks the segments over the final prefix of the stream: yields (header once per segment, bytes)
 * pieces in hash order, at most `maxPiece` bytes each, never past `final`.
 */
class SegmentCursor {
  private readonly segments: Segment[]
  private index = 0
  /** Stream position fed so far */
  private fed = 0
  private headerFed = false
  readonly totalBytes: number

  constructor (layout: readonly TensorLayout[]) {
    this.segments = segments(layout)
    this.totalBytes = this.segments.length === 0 ? 0 : this.segments[this.segments.length - 1].end
  }

  /** The next piece within [0, final), or undefined when nothing more is final */
  next (final: number, maxPiece: number): { header?: Uint8Array, start: number, end: number } | undefined {
    while (this.index < this.segments.length) {
      const seg = this.segments[this.index]
      const header = this.headerFed ? undefined : seg.header
      const start = Math.max(this.fed, seg.start)
      const end = Math.max(start, Math.min(seg.end, final, start + maxPiece))

      if (header == null && end === start && end < seg.end) {
        // the next bytes of this tensor are not final yet
        return undefined
      }

      this.headerFed = true
      this.fed = end

      if (end >= seg.end) {
        this.index++
        this.headerFed = false
      }

      if (header != null || end > start) {
        return { header, start, end }
      }
    }

    return undefined
  }

  get done (): boolean {
    return this.index >= this.segments.length
  }
}

/** Inline: each piece is hashed on the calling thread as soon as it is final */
class InlineContentHash implements StreamContentHash {
  private readonly hash: Hash
  private readonly cursor: SegmentCursor
  private readonly stream: StreamBytes
  private aborted = false

  constructor (layout: readonly TensorLayout[], stream: StreamBytes) {
    this.cursor = new SegmentCursor(layout)
    this.stream = stream
    this.hash = createHash('sha256').update(contentHashPrefix())
  }

  advance (to: number): void {
    if (this.aborted) return

    for (let p = this.cursor.next(to, Number.POSITIVE_INFINITY); p != null; p = this.cursor.next(to, Number.POSITIVE_INFINITY)) {
      if (p.header != null) this.hash.update(p.header)
      if (p.end > p.start) this.hash.update(this.stream.subarray(p.start, p.end))
    }
  }

  async digest (): Promise<string> {
    this.advance(this.cursor.totalBytes)
    return this.hash.digest('hex')
  }

  abort (): void {
    this.aborted = true
  }
}

interface Deferred<T> {
  promise: Promise<T>
  resolve(value: T): void
  reject(err: unknown): void
}

function deferred<T> (): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

interface Job {
  id: number
  cursor: SegmentCursor
  stream: StreamBytes
  layout: readonly TensorLayout[]
  final: number
  /** Resolves the digest when the thread answers */
  result?: Deferred<string>
  /** Set when the thread failed: the job goes on inline */
  fallback?: InlineContentHash
  digestSent: boolean
  aborted: boolean
}

/** The helper thread: one per process, started on first use, not keeping the process alive when idle */
class HashThread {
  private readonly worker: Worker
  private readonly slots: SharedArrayBuffer[]
  private readonly free: number[]
  private readonly jobs = new Map<number, Job>()
  private readonly prefaults = new Map<number, Deferred<ArrayBuffer>>()
  private nextId = 1
  failed = false
  /** Set by `stop()`: the exit is not a failure and a later fetch may start a new thread */
  stopped = false

  constructor (file: URL) {
    this.worker = new Worker(file, {
      // the worker is a module file: flags meant for the main script (`node --input-type=module -e …`) break it
      execArgv: process.execArgv.filter(a => !a.startsWith('--input-type'))
    })
    this.slots = Array.from({ length: STAGING_SLOTS }, () => new SharedArrayBuffer(STAGING_SLOT_BYTES))
    this.free = this.slots.map((_, i) => i)
    this.worker.postMessage({ op: 'slots', slots: this.slots })
    this.worker.on('message', (msg: { op: string, slot?: number, job?: number, hex?: string, id?: number, buffer?: ArrayBuffer }) => { this.onMessage(msg) })
    this.worker.on('error', (err) => { this.fail(err) })
    this.worker.on('exit', (code) => { this.fail(new Error(`the hash thread exited with code ${code}`)) })
    this.worker.on('messageerror', (err) => { this.fail(err) })
    this.worker.unref()
  }

  open (layout: readonly TensorLayout[], stream: StreamBytes): Job {
    const job: Job = { id: this.nextId++, cursor: new SegmentCursor(layout), stream, layout, final: 0, digestSent: false, aborted: false }
    this.jobs.set(job.id, job)
    this.worker.postMessage({ op: 'open', job: job.id, prefix: contentHashPrefix() })
    this.updateRef()
    return job
  }

  advance (job: Job, to: number): void {
    job.final = Math.max(job.final, to)
    this.pump()
  }

  async digest (job: Job): Promise<string> {
    job.final = job.cursor.totalBytes
    job.result ??= deferred<string>()
    this.pump()
    return job.result.promise
  }

  close (job: Job): void {
    if (job.aborted || !this.jobs.has(job.id)) return
    job.aborted = true

    if (!this.failed) {
      this.worker.postMessage({ op: 'close', job: job.id })
    }

    this.jobs.delete(job.id)
    this.updateRef()
  }

  async prefault (bytes: number): Promise<ArrayBuffer> {
    const id = this.nextId++
    const p = deferred<ArrayBuffer>()
    this.prefaults.set(id, p)
    const buffer = new ArrayBuffer(bytes)
    this.worker.postMessage({ op: 'prefault', id, buffer }, [buffer])
    this.updateRef()
    return p.promise
  }

  /** Copy final bytes of the jobs into free staging slots and send them, while slots are free */
  private pump (): void {
    if (this.failed) return

    for (const job of this.jobs.values()) {
      while (this.free.length > 0) {
        const piece = job.cursor.next(job.final, STAGING_SLOT_BYTES)

        if (piece == null) break

        const slot = this.free.pop()!
        const length = piece.end - piece.start
        new Uint8Array(this.slots[slot]).set(job.stream.subarray(piece.start, piece.end))
        this.worker.postMessage({ op: 'update', job: job.id, header: piece.header, slot, length })
      }

      if (job.result != null && !job.digestSent && job.cursor.done) {
        // messages are handled in order: every update of the job is hashed before this
        job.digestSent = true
        this.worker.postMessage({ op: 'digest', job: job.id })
      }
    }
  }

  private onMessage (msg: { op: string, slot?: number, job?: number, hex?: string, id?: number, buffer?: ArrayBuffer }): void {
    switch (msg.op) {
      case 'free':
        this.free.push(msg.slot!)
        this.pump()
        break
      case 'digest': {
        const job = this.jobs.get(msg.job!)
        this.jobs.delete(msg.job!)
        this.updateRef()

        if (job?.result != null) {
          if (typeof msg.hex === 'string') {
            stats.threadDigests++
            job.result.resolve(msg.hex)
          }
          else job.result.reject(new Error('the hash thread lost the job'))
        }
        break
      }
      case 'prefault': {
        const p = this.prefaults.get(msg.id!)
        this.prefaults.delete(msg.id!)
        this.updateRef()
        stats.prefaults++
        p?.resolve(msg.buffer!)
        break
      }
    }
  }

  /** The thread holds the process open only while a fetch waits on it */
  private updateRef (): void {
    if (this.jobs.size > 0 || this.prefaults.size > 0) this.worker.ref()
    else this.worker.unref()
  }

  /** Terminate the thread; jobs in flight go on inline */
  async stop (): Promise<void> {
    this.stopped = true
    await this.worker.terminate()
  }

  private fail (err: Error): void {
    if (this.failed) return
    this.failed = true

    if (this.stopped) {
      log('the hash thread stopped')
    } else {
      log.error('the hash thread failed, hashing inline from now on - %e', err)
    }

    // the jobs start again inline: their streams are final up to what was advanced
    for (const job of this.jobs.values()) {
      const inline = new InlineContentHash(job.layout, job.stream)
      inline.advance(job.final)

      if (job.result != null) {
        inline.digest().then(job.result.resolve, job.result.reject)
      }

      job.fallback = inline
    }

    this.jobs.clear()

    for (const p of this.prefaults.values()) {
      p.reject(err)
    }

    this.prefaults.clear()
  }
}

let thread: HashThread | undefined
let threadUnavailable = false
const stats = { threadDigests: 0, prefaults: 0 }

/**
 * What the helper thread did in this process (tests use it to see which path ran): whole-span hashes
 * it computed, buffers it prefaulted
 */
export function hashThreadStats (): { threadDigests: number, prefaults: number } {
  return { ...stats }
}

/**
 * Stop the helper thread (it holds the process open only while a fetch uses it, so this is optional).
 * Hashes in progress finish inline; a later fetch starts a new thread.
 */
export async function stopHashThread (): Promise<void> {
  const t = thread
  thread = undefined
  await t?.stop()
}

function workerFile (): URL | undefined {
  // from TypeScript sources (tests) Node loads the .ts with type stripping; from dist, the .js
  const js = new URL('./hash-worker.js', import.meta.url)
  if (existsSync(fileURLToPath(js))) return js
  const ts = new URL('./hash-worker.ts', import.meta.url)
  if (existsSync(fileURLToPath(ts))) return ts
  return undefined
}

function hashThread (): HashThread | undefined {
  if (thread?.failed === true) {
    threadUnavailable = !thread.stopped
    thread = undefined
  }

  if (thread != null || threadUnavailable) return thread

  const file = workerFile()

  if (file == null) {
    threadUnavailable = true
    return undefined
  }

  try {
    thread = new HashThread(file)
  } catch (err) {
    log.error('cannot start the hash thread, hashing inline - %e', err)
    threadUnavailable = true
  }

  return thread
}

/** A job on the helper thread; falls back to inline hashing if the thread fails */
class ThreadedContentHash implements StreamContentHash {
  private readonly thread: HashThread
  private readonly job: Job

  constructor (thread: HashThread, layout: readonly TensorLayout[], stream: StreamBytes) {
    this.thread = thread
    this.job = thread.open(layout, stream)
  }

  advance (to: number): void {
    if (this.job.fallback != null) this.job.fallback.advance(to)
    else this.thread.advance(this.job, to)
  }

  async digest (): Promise<string> {
    if (this.job.fallback != null) return this.job.fallback.digest()
    return this.thread.digest(this.job)
  }

  abort (): void {
    this.job.fallback?.abort()
    this.thread.close(this.job)
  }
}

/**
 * An incremental `contentHash` of the canonical stream of `layout` (tensors in canonical order, F32)
 * held in `stream`: on the helper thread for streams of at least 4 MiB, inline otherwise.
 */
export function streamContentHash (layout: readonly TensorLayout[], stream: StreamBytes, options: StreamContentHashOptions = {}): StreamContentHash {
  const t = options.thread !== false && stream.byteLength >= (options.threadMinBytes ?? THREADED_HASH_MIN_BYTES) ? hashThread() : undefined
  return t != null ? new ThreadedContentHash(t, layout, stream) : new InlineContentHash(layout, stream)
}

/**
 * A new zeroed buffer of `bytes` whose pages the helper thread has already written once, so that the
 * first writes of a transfer into it do not page-fault on the calling thread (on some VMs a fault
 * costs more than receiving the page over the network). Without the thread: a plain new buffer.
 */
export async function prefaultedBuffer (bytes: number): Promise<Uint8Array> {
  const t = hashThread()

  if (t != null) {
    try {
      return new Uint8Array(await t.prefault(bytes))
    } catch {}
  }

  return new Uint8Array(bytes)
}
