/**
 * Work a weight transfer hands to a helper thread, so that the thread that runs the network does less
 * (two sha256 passes over every byte were most of the gap between a transfer and a raw stream):
 *
 * - the sha256 of each received chunk (rule R12): {@link chunkHashOnThread}. The chunk's pieces are
 *   copied into a shared staging slot (a copy costs a fraction of a hash pass) and the thread answers
 *   with the digest; the fetch client compares it with the manifest and only then writes the chunk to
 *   its place.
 * - the whole-span `contentHash` (rule R14). It is computed incrementally over the verified prefix of
 *   the stream while chunks arrive, not in a second pass at the end: {@link StreamContentHash}. Inline,
 *   each verified chunk is hashed right after its chunk hash, while its bytes are in cache; on the
 *   thread, the verified bytes are copied into staging slots the same way.
 * - the first-write page faults of a new destination buffer: {@link prefaultedBuffer}.
 *
 * Both cost more CPU in all (copies, messages) and pay where a core is free for the thread; the fetch
 * client uses the thread for spans of 4 MiB or more unless told not to (`hashOnThread: false`).
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
/** Staging slots shared by all fetches of the process (16 MiB of shared memory, allocated once) */
const STAGING_SLOTS = 16
/** Of which the whole-span hashes use at most this many at a time (the rest stay free for chunk hashes) */
const CONTENT_HASH_SLOTS = 8
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
  private readonly chunks = new Map<number, { slot: number, result: Deferred<StagedHash> }>()
  private readonly placed = new Map<number, Deferred<{ ok: boolean, hash: Uint8Array }>>()
  private readonly finishing = new Map<number, Deferred<{ hex?: string, buffers: ArrayBuffer[] }>>()
  /** Callers waiting for a free staging slot */
  private slotWaiters: Array<() => void> = []
  /** Slots the whole-span hashes hold now */
  private contentSlots = 0
  private nextId = 1
  failed = false
  /** Set by `stop()`: the exit is not a failure and a later fetch may start a new thread */
  stopped = false

  constructor (file: URL) {
    this.worker = new Worker(file, {
      // the worker is a module file: `node --input-type=module -e …`'s flag breaks it. Otherwise no explicit list:
      // the Worker then inherits the main thread's flags, where an explicit list refuses V8 ones (--max-semi-space-size)
      execArgv: process.execArgv.some(a => a.startsWith('--input-type')) ? process.execArgv.filter(a => !a.startsWith('--input-type')) : undefined
    })
    this.slots = Array.from({ length: STAGING_SLOTS }, () => new SharedArrayBuffer(STAGING_SLOT_BYTES))
    this.free = this.slots.map((_, i) => i)
    this.worker.postMessage({ op: 'slots', slots: this.slots })
    this.worker.on('message', (msg: ThreadReply) => { this.onMessage(msg) })
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

  /**
   * sha256 of `length` bytes given as pieces, on the thread: the pieces are copied into a staging slot
   * (a copy costs this thread a fraction of a hash pass). `undefined` when no slot is free, the bytes do
   * not fit one or the thread failed: the caller hashes inline.
   */
  hashBytes (pieces: Iterable<Uint8Array>, length: number): Promise<StagedHash> | undefined {
    const slot = this.failed ? undefined : this.stage(pieces, length)

    if (slot == null) return undefined

    const id = this.nextId++
    const result = deferred<StagedHash>()
    this.chunks.set(id, { slot, result })
    this.worker.postMessage({ op: 'chunk', id, slot, length })
    this.updateRef()
    return result.promise
  }

  /** A destination owned by the thread (see `hash-worker.ts`) for a stream of `layout`, in `chunkSize` chunks */
  ownOpen (layout: readonly TensorLayout[], chunkSize: number): number {
    const id = this.nextId++
    const segs = segments(layout)
    this.worker.postMessage({ op: 'own-open', job: id, prefix: contentHashPrefix(), sizes: segs.map(g => g.end - g.start), headers: segs.map(g => g.header), chunkSize })
    return id
  }

  /** Resolves when a staging slot is free; `undefined` when one is free now */
  slotFree (): Promise<void> | undefined {
    if (this.failed) return Promise.reject(new Error('the hash thread failed'))
    if (this.free.length > 0) return undefined
    const p = new Promise<void>(resolve => { this.slotWaiters.push(resolve) })
    this.updateRef()
    return p
  }

  /** Copy a chunk into a staging slot (waiting for one) and have the thread check it against `expected` and place it */
  async ownPut (job: number, index: number, pieces: Iterable<Uint8Array>, length: number, expected: Uint8Array): Promise<{ ok: boolean, hash: Uint8Array }> {
    while (this.free.length === 0) {
      await this.slotFree()
    }

    if (this.failed) throw new Error('the hash thread failed')

    const slot = this.stage(pieces, length)
    if (slot == null) throw new RangeError(`a chunk of ${length} bytes does not fit a staging slot, or its pieces are not ${length} bytes`)

    const id = this.nextId++
    const result = deferred<{ ok: boolean, hash: Uint8Array }>()
    this.placed.set(id, result)
    this.worker.postMessage({ op: 'own-chunk', id, job, index, slot, length, expected })
    this.updateRef()
    return result.promise
  }

  /** The destination's buffers (moved here) and, with `digest` and every chunk placed, its contentHash; the job ends */
  async ownFinish (job: number, digest: boolean): Promise<{ hex?: string, buffers: ArrayBuffer[] }> {
    if (this.failed) throw new Error('the hash thread failed')
    const id = this.nextId++
    const result = deferred<{ hex?: string, buffers: ArrayBuffer[] }>()
    this.finishing.set(id, result)
    this.worker.postMessage({ op: 'own-finish', id, job, digest })
    this.updateRef()
    return result.promise
  }

  /** The thread may forget the job (its buffers are dropped there) */
  ownClose (job: number): void {
    if (!this.failed) this.worker.postMessage({ op: 'close', job })
  }

  /** Copy `length` bytes given as pieces into a free staging slot; undefined when none is free or they are not `length` bytes */
  private stage (pieces: Iterable<Uint8Array>, length: number): number | undefined {
    if (length > STAGING_SLOT_BYTES || this.free.length === 0) return undefined

    const slot = this.free.pop()!
    const staging = new Uint8Array(this.slots[slot])
    let at = 0

    for (const piece of pieces) {
      if (at + piece.byteLength > length) break
      staging.set(piece, at)
      at += piece.byteLength
    }

    if (at !== length) {
      this.free.push(slot)
      return undefined
    }

    return slot
  }

  private releaseSlot (slot: number): void {
    this.free.push(slot)
    const waiter = this.slotWaiters.shift()
    if (waiter != null) waiter()
    this.pump()
  }

  /** Copy final bytes of the jobs into free staging slots and send them, while slots are free */
  private pump (): void {
    if (this.failed) return

    for (const job of this.jobs.values()) {
      while (this.free.length > 0 && this.contentSlots < CONTENT_HASH_SLOTS) {
        const piece = job.cursor.next(job.final, STAGING_SLOT_BYTES)

        if (piece == null) break

        const slot = this.free.pop()!
        this.contentSlots++
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

  private onMessage (msg: ThreadReply): void {
    switch (msg.op) {
      case 'free':
        this.contentSlots--
        this.releaseSlot(msg.slot!)
        break
      case 'own-chunk': {
        const p = this.placed.get(msg.id!)
        this.placed.delete(msg.id!)
        this.updateRef()
        stats.chunkHashes++
        if (msg.ok === true) stats.placedChunks++
        p?.resolve({ ok: msg.ok === true, hash: new Uint8Array(msg.hash!) })
        this.releaseSlot(msg.slot!)
        break
      }
      case 'own-finish': {
        const p = this.finishing.get(msg.id!)
        this.finishing.delete(msg.id!)
        this.updateRef()
        if (msg.buffers == null) p?.reject(new Error('the hash thread lost the destination'))
        else p?.resolve({ hex: msg.hex, buffers: msg.buffers })
        break
      }
      case 'chunk': {
        const pending = this.chunks.get(msg.id!)
        this.chunks.delete(msg.id!)
        this.updateRef()

        if (pending == null) break

        stats.chunkHashes++
        const slot = pending.slot
        let released = false
        // the slot stays the caller's until it copied the bytes out (or gave up on them)
        pending.result.resolve({
          hash: new Uint8Array(msg.hash!),
          bytes: new Uint8Array(this.slots[slot], 0, msg.length),
          release: () => {
            if (released) return
            released = true
            this.releaseSlot(slot)
          }
        })
        break
      }
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
    if (this.jobs.size > 0 || this.prefaults.size > 0 || this.chunks.size > 0 || this.placed.size > 0 || this.finishing.size > 0 || this.slotWaiters.length > 0) this.worker.ref()
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

    // chunk hashes in flight: their callers hash inline
    for (const p of this.chunks.values()) {
      p.result.reject(err)
    }

    this.chunks.clear()

    // destinations owned by the thread are lost: their fetches start again without it
    for (const p of [...this.placed.values(), ...this.finishing.values()]) {
      p.reject(err)
    }

    this.placed.clear()
    this.finishing.clear()

    for (const w of this.slotWaiters) {
      w()
    }

    this.slotWaiters = []
  }
}

/** What the thread sends back */
interface ThreadReply {
  op: string
  slot?: number
  job?: number
  hex?: string
  id?: number
  buffer?: ArrayBuffer
  hash?: Uint8Array
  length?: number
  ok?: boolean
  buffers?: ArrayBuffer[]
}

/** A chunk hash from the thread, with the bytes it hashed (a staging slot: `release()` it once read) */
export interface StagedHash {
  hash: Uint8Array
  bytes: Uint8Array
  release(): void
}

let thread: HashThread | undefined
let threadUnavailable = false
const stats = { threadDigests: 0, prefaults: 0, chunkHashes: 0, placedChunks: 0 }

/**
 * What the helper thread did in this process (tests use it to see which path ran): whole-span hashes
 * it computed, buffers it prefaulted, chunk hashes it computed, chunks it placed in destinations it owned
 */
export function hashThreadStats (): { threadDigests: number, prefaults: number, chunkHashes: number, placedChunks: number } {
  return { ...stats }
}

/**
 * sha256 of a chunk given as the pieces it arrived in, computed on the helper thread (started on first
 * use), with the bytes hashed: a copy in a staging slot, which stays the caller's until it calls
 * `release()` (it must, whatever happens). `undefined` when the thread cannot take it now (no free
 * staging slot, more than 1 MiB, no thread): hash inline then. The promise rejects if the thread fails
 * before answering.
 */
export function chunkHashOnThread (pieces: Iterable<Uint8Array>, length: number): Promise<StagedHash> | undefined {
  return hashThread()?.hashBytes(pieces, length)
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

/**
 * The destination of a fetch into new memory, owned by the helper thread while chunks arrive: each
 * chunk is copied once into a staging slot here, and the thread checks its sha256, writes it to its
 * place and feeds the whole-span `contentHash` (see `hash-worker.ts`). The calling thread neither hashes
 * nor first-touches the destination. If the thread fails, every promise rejects and the destination is
 * lost: the caller starts over without it.
 */
export interface OwnedDestination {
  /** Resolves when a staging slot is free (`undefined`: one is free now); rejects if the thread failed */
  ready(): Promise<void> | undefined
  /** Hand a chunk to the thread: `ok` when its sha256 is `expected` (it was then placed), and the sha256 */
  put(index: number, pieces: Iterable<Uint8Array>, length: number, expected: Uint8Array): Promise<{ ok: boolean, hash: Uint8Array }>
  /**
   * The buffers, one per tensor in canonical order (moved to this thread, the destination is then closed),
   * with the `contentHash` when `digest` is set and every chunk was placed
   */
  finish(digest: boolean): Promise<{ hex?: string, buffers: ArrayBuffer[] }>
  /** Drop the destination on the thread */
  close(): void
}

/** A destination owned by the helper thread, or `undefined` when the thread cannot run */
export function ownedDestination (layout: readonly TensorLayout[], chunkSize: number): OwnedDestination | undefined {
  const t = hashThread()

  if (t == null || chunkSize > STAGING_SLOT_BYTES) return undefined

  const job = t.ownOpen(layout, chunkSize)
  let closed = false

  return {
    ready: () => t.slotFree(),
    put: async (index, pieces, length, expected) => t.ownPut(job, index, pieces, length, expected),
    finish: async (digest) => {
      closed = true
      return t.ownFinish(job, digest)
    },
    close: () => {
      if (!closed) {
        closed = true
        t.ownClose(job)
      }
    }
  }
}
