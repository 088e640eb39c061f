import { isPeerId } from '@libp2p/interface'
import { logger as createLogger } from '@libp2p/logger'
import { InvalidParametersError, MalformedMessageError, MessageTooLargeError, TimeoutError } from '@neuroshard/interface'
import { messageStream, openStream, releaseWhenRemoteCloses } from '@neuroshard/utils'
import { Part, Status, WeightsRequest, WeightsResponse } from '../pb/transfer.js'
import { decodeChunkList } from './chunk-message.js'
import { SegmentedStream, assembleTensors, chunkCount, chunkLength, computeChunksRoot, hashChunk, streamBytes } from './chunks.js'
import {
  CHUNK_SIZE, DEFAULT_BUSY_RETRIES, DEFAULT_BUSY_RETRY_DELAY_MS, DEFAULT_CHUNKS_PER_REQUEST, DEFAULT_MAX_RESPONSE_SIZE,
  DEFAULT_STREAMS_PER_PEER, DEFAULT_TRANSFER_MESSAGE_TIMEOUT_MS, HASH_BYTES, WEIGHTS_PROTOCOL
} from './constants.js'
import {
  ChunkHashMismatchError, ManifestMismatchError, NoReplicaError, ProtocolViolationError, ReplicaNotFoundError, ReplicaUnreachableError, RequestRejectedError,
  WeightsHashMismatchError, WeightsNotFoundError, WeightsTransferAbortedError, WeightsTransferError
} from './errors.js'
import { THREADED_HASH_MIN_BYTES, chunkHashOnThread, ownedDestination, streamContentHash } from './hash-thread.js'
import { fromHex, toHex } from './hex.js'
import { spanLayout } from './span.js'
import type { ChunkFrame } from './chunk-message.js'
import type { TensorLayout } from './chunks.js'
import type { OwnedDestination, StreamContentHash } from './hash-thread.js'
import type { PartialSpanWeights, ReplicaFault, ReplicaFaultKind, SpanRequest, SpanWeights, WeightsManifest, WeightsTransferProgress } from './types.js'
import type { AbortOptions, Logger, PeerId, Stream } from '@libp2p/interface'
import type { ModelConfig } from '@neuroshard/model'
import type { Dialer } from '@neuroshard/utils'

/** What the requester knows from a signed layer record */
export interface ExpectedSpanWeights extends SpanRequest {
  /** The model's architecture: names and shapes of the span's tensors come from it */
  config: ModelConfig
  /** Lowercase hex chunks root of the part's canonical stream */
  chunksRoot: string
  /** Lowercase hex `contentHash` of the part's tensors */
  weightsHash: string
  /**
   * OPTIMIZER part: the step count the record states. The chunks root does not cover the step a
   * manifest reports, so without this the step is the serving replica's word.
   */
  optimizerStep?: number
}

export interface FetchSpanWeightsOptions extends AbortOptions {
  /** @default WEIGHTS_PROTOCOL ('/neuroshard/layer-pool/weights/1.0.0') */
  protocol?: string
  /** Chunk size the chunks root was computed with @default CHUNK_SIZE (1 MiB) */
  chunkSize?: number
  /** Milliseconds each message (and opening a stream) may take before the replica is dropped @default DEFAULT_TRANSFER_MESSAGE_TIMEOUT_MS (10 s) */
  timeout?: number
  /** Chunks asked for per request @default DEFAULT_CHUNKS_PER_REQUEST (16) */
  chunksPerRequest?: number
  /** Concurrent streams per replica @default DEFAULT_STREAMS_PER_PEER (2) */
  streamsPerPeer?: number
  /** Largest response message accepted @default DEFAULT_MAX_RESPONSE_SIZE (4 MiB) */
  maxResponseSize?: number
  /** Retries of a replica that answers BUSY @default DEFAULT_BUSY_RETRIES (5) */
  busyRetries?: number
  /** Milliseconds between BUSY retries @default DEFAULT_BUSY_RETRY_DELAY_MS (250) */
  busyRetryDelay?: number
  /** What an earlier fetch of the same chunks root verified (from its error's `partial`); only the rest is fetched */
  resume?: PartialSpanWeights
  /**
   * Where the canonical stream is written: a buffer of exactly the span part's bytes whose byteOffset
   * is a multiple of 4, e.g. the memory of weights this node is replacing (first writes to fresh
   * memory cost as much as the transfer itself on some machines). Its old contents are overwritten
   * chunk by chunk as chunks are verified; the returned tensors and a failure's `partial.stream` are
   * views of it. Not with `resume` (whose stream is the buffer). @default a new buffer per tensor, allocated
   * when the manifest arrives (the tensors are those buffers; a failure's `partial.stream` is a copy)
   */
  into?: Uint8Array
  /**
   * Hand the sha256 of each chunk (R12) and the whole-span `contentHash` (R14, fed the verified prefix
   * of the stream as chunks arrive) to a helper thread, for spans of `hashThreadMinBytes` or more. Into
   * new memory (no `into`, no `resume`) the thread also owns the destination while chunks arrive: it
   * writes each chunk to its place (the first touch of new memory costs as much as a hash pass on some
   * machines) and the buffers move to this thread at the end; this thread copies each byte once, into a
   * staging slot. Into the caller's buffer this thread copies each byte into a staging slot for each
   * hash, and writes the chunk itself. Two hash passes and the page faults were most of the difference
   * to a raw stream (README, benchmark); the thread costs some more CPU in all. A chunk is written to
   * its place only once its hash matched, either way. `false` does everything on this thread (e.g.
   * where no core is free for the helper). @default true
   */
  hashOnThread?: boolean
  /** Smallest span part hashed on the helper thread @default 4 MiB */
  hashThreadMinBytes?: number
  /** Called after the manifest, each verified chunk and each dropped replica; must not throw */
  onProgress?(progress: WeightsTransferProgress): void
  /** @default logger('neuroshard:layer-pool:transfer') */
  log?: Logger
}

interface Replica {
  peer: PeerId
  key: string
  dropped: boolean
  controller: AbortController
  busyRetries: number
}

interface Worker {
  replica: Replica
  /** Chunks asked for in the current request and not received yet */
  outstanding: Set<number>
  /** The current request's chunks in the order asked */
  order: number[]
  stream?: Stream
  /** Set when every outstanding chunk arrived from elsewhere and the stream was aborted for that */
  superseded: boolean
  /** Set when the loop ended */
  exited: boolean
}

/**
 * Fetch the weights (or optimizer state) of a slot span from replicas and verify them against the
 * chunks root and weights hash of a signed record.
 *
 * The manifest comes from the first replica that serves a valid one (it must hash to
 * `expected.chunksRoot` and list exactly the span's tensor names and shapes); the chunks are then
 * fetched from all replicas at once, `streamsPerPeer` streams each, a batch per request. When the
 * queue runs dry, idle streams take over the last chunks of the slowest ones (work stealing; the
 * first copy wins). Every chunk is checked against its hash in the manifest; a replica that sends a
 * wrong chunk, a wrong manifest, breaks the protocol or times out is dropped for this fetch and its
 * chunks go back to the queue. At the end the tensors' `contentHash` must equal
 * `expected.weightsHash`.
 *
 * Throws `WeightsNotFoundError` (no replica holds the content), `NoReplicaError` (every replica was
 * dropped), `WeightsHashMismatchError`, `WeightsTransferAbortedError`, each with `partial` (pass it
 * back as `resume`) and `faults`; `InvalidParametersError` on bad arguments.
 *
 * @example
 * ```ts
 * const { tensors } = await fetchSpanWeights(libp2p, [replicaA, replicaB], {
 *   modelId: 'neurollm', version: 3, start: 1, end: 5, part: 'weights',
 *   config, chunksRoot: record.chunksRoot, weightsHash: record.weightsHash
 * })
 * ```
 */
export async function fetchSpanWeights (dialer: Dialer, replicas: PeerId[], expected: ExpectedSpanWeights, options: FetchSpanWeightsOptions = {}): Promise<SpanWeights> {
  const fetch = new SpanFetch(dialer, replicas, expected, options)
  return fetch.run()
}

class SpanFetch {
  private readonly dialer: Dialer
  private readonly expected: ExpectedSpanWeights
  private readonly options: FetchSpanWeightsOptions
  private readonly log: Logger
  private readonly protocol: string
  private readonly chunkSize: number
  private readonly timeout: number
  private readonly chunksPerRequest: number
  private readonly streamsPerPeer: number
  private readonly maxResponseSize: number
  private readonly busyRetries: number
  private readonly busyRetryDelay: number
  private readonly layout: TensorLayout[]
  private readonly totalBytes: number
  private readonly count: number
  private readonly rootHex: string
  private readonly root: Uint8Array<ArrayBuffer>
  private readonly weightsHash: string
  private readonly replicas: Replica[]
  private readonly faults: ReplicaFault[] = []
  private readonly workers: Worker[] = []
  private readonly fetched = new Map<string, number>()
  private readonly inflight = new Map<number, number>()
  private manifest?: WeightsManifest
  private stream?: Uint8Array | SegmentedStream
  /** `contentHash` of the verified prefix of the stream, computed as chunks arrive */
  private contentHash?: StreamContentHash
  /** Chunks [0, frontier) are verified */
  private frontier = 0
  private verified = new Set<number>()
  /** Chunks received whose hash the helper thread is computing (not written to the stream yet) */
  private readonly hashing = new Map<number, Promise<void>>()
  /** Chunk hashes go to the helper thread */
  private hashOnThread: boolean
  /** The destination, while the helper thread owns it (fetches into new memory); `stream` is then unset */
  private owned?: OwnedDestination
  /** Set when `run()` returned or threw: late chunk hashes are ignored */
  private finished = false
  private queue: number[] = []
  private bytesDone = 0
  private resumed = 0
  private aborted = false
  private waiters: Array<() => void> = []

  constructor (dialer: Dialer, replicas: PeerId[], expected: ExpectedSpanWeights, options: FetchSpanWeightsOptions) {
    this.dialer = dialer
    this.expected = expected
    this.options = options
    this.log = options.log ?? createLogger('neuroshard:layer-pool:transfer')
    this.protocol = options.protocol ?? WEIGHTS_PROTOCOL
    this.chunkSize = options.chunkSize ?? CHUNK_SIZE
    this.timeout = options.timeout ?? DEFAULT_TRANSFER_MESSAGE_TIMEOUT_MS
    this.chunksPerRequest = options.chunksPerRequest ?? DEFAULT_CHUNKS_PER_REQUEST
    this.streamsPerPeer = options.streamsPerPeer ?? DEFAULT_STREAMS_PER_PEER
    this.maxResponseSize = options.maxResponseSize ?? DEFAULT_MAX_RESPONSE_SIZE
    this.busyRetries = options.busyRetries ?? DEFAULT_BUSY_RETRIES
    this.busyRetryDelay = options.busyRetryDelay ?? DEFAULT_BUSY_RETRY_DELAY_MS

    for (const [name, value] of [['chunkSize', this.chunkSize], ['chunksPerRequest', this.chunksPerRequest], ['streamsPerPeer', this.streamsPerPeer], ['maxResponseSize', this.maxResponseSize]] as const) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new InvalidParametersError(`${name} must be a positive integer, got ${String(value)}`)
      }
    }

    if (this.maxResponseSize < this.chunkSize + 16) {
      throw new InvalidParametersError(`maxResponseSize (${this.maxResponseSize}) must hold a chunk of ${this.chunkSize} bytes plus its framing`)
    }

    if (!Number.isSafeInteger(expected.version) || expected.version < 0) {
      throw new InvalidParametersError(`version must be a non-negative safe integer, got ${String(expected.version)}`)
    }

    this.root = fromHex(expected.chunksRoot, HASH_BYTES, 'chunksRoot')
    this.rootHex = toHex(this.root)
    this.weightsHash = toHex(fromHex(expected.weightsHash, HASH_BYTES, 'weightsHash'))
    this.layout = spanLayout(expected.config, expected.start, expected.end, expected.part)
    this.totalBytes = streamBytes(this.layout)
    this.count = chunkCount(this.totalBytes, this.chunkSize)
    this.hashOnThread = options.hashOnThread !== false && this.totalBytes >= (options.hashThreadMinBytes ?? THREADED_HASH_MIN_BYTES)

    if (options.into != null) {
      if (!(options.into instanceof Uint8Array) || options.into.byteLength !== this.totalBytes || options.into.byteOffset % 4 !== 0) {
        throw new InvalidParametersError(`into must be a Uint8Array of ${this.totalBytes} bytes at a byteOffset that is a multiple of 4`)
      }

      if (options.resume != null) {
        throw new InvalidParametersError('into and resume cannot be used together: the resume state\'s stream is the buffer')
      }
    }

    const seen = new Set<string>()
    this.replicas = []

    for (const peer of replicas) {
      if (!isPeerId(peer)) {
        throw new InvalidParametersError('replicas must be PeerIds')
      }

      const key = peer.toString()

      if (!seen.has(key)) {
        seen.add(key)
        this.replicas.push({ peer, key, dropped: false, controller: new AbortController(), busyRetries: 0 })
      }
    }
  }

  async run (): Promise<SpanWeights> {
    const signal = this.options.signal
    const onAbort = (): void => {
      this.aborted = true

      for (const r of this.replicas) {
        r.controller.abort(signal?.reason)
      }

      this.notify()
    }

    if (signal?.aborted === true) {
      onAbort()
    } else {
      signal?.addEventListener('abort', onAbort, { once: true })
    }

    try {
      this.useResume()

      if (this.manifest == null && !this.aborted) {
        await this.fetchManifest()
      }

      if (this.manifest != null && !this.aborted && this.verified.size < this.count) {
        this.queue = []

        for (let i = 0; i < this.count; i++) {
          if (!this.verified.has(i)) {
            this.queue.push(i)
          }
        }

        const running: Array<Promise<void>> = []

        for (const replica of this.replicas) {
          for (let s = 0; s < this.streamsPerPeer && !replica.dropped; s++) {
            const worker: Worker = { replica, outstanding: new Set(), order: [], superseded: false, exited: false }
            this.workers.push(worker)
            running.push(this.work(worker))
          }
        }

        await Promise.all(running)
        // every replica may have been dropped while chunks they sent were still being hashed
        await Promise.allSettled([...this.hashing.values()])
      }

      if (this.aborted || this.manifest == null || this.verified.size < this.count) {
        // a failure's partial state holds the verified chunks: take the destination back from the thread
        await this.reclaim()
      }

      if (this.aborted) {
        throw new WeightsTransferAbortedError('the weight transfer was aborted', this.details(signal?.reason))
      }

      if (this.manifest == null || this.verified.size < this.count) {
        throw this.noReplicaError()
      }

      return await this.finish()
    } finally {
      this.finished = true
      signal?.removeEventListener('abort', onAbort)
      // stops the incremental hash of a failed fetch (a no-op once it has its digest)
      this.contentHash?.abort()
      this.owned?.close()

      for (const r of this.replicas) {
        if (!r.controller.signal.aborted) {
          r.controller.abort(new Error('the fetch is over'))
        }
      }
    }
  }

  /** Take over the chunks a previous fetch of the same root verified, re-checking each */
  private useResume (): void {
    const resume = this.options.resume

    if (resume == null) {
      return
    }

    if (resume.chunksRoot.toLowerCase() !== this.rootHex) {
      this.log('ignoring resume state of another chunks root %s', resume.chunksRoot)
      return
    }

    let manifest: WeightsManifest

    try {
      manifest = this.checkManifest({
        tensors: resume.manifest.tensors.map(t => ({ name: t.name, shape: [...t.shape] })),
        totalBytes: resume.manifest.totalBytes,
        chunkSize: resume.manifest.chunkSize,
        chunkHashes: resume.manifest.chunkHashes,
        optimizerStep: resume.manifest.optimizerStep
      })
    } catch (err) {
      throw new InvalidParametersError(`the resume state does not match the expected span: ${(err as Error).message}`, { cause: err })
    }

    if (!(resume.stream instanceof Uint8Array) || resume.stream.byteLength !== this.totalBytes) {
      throw new InvalidParametersError(`resume.stream must be ${this.totalBytes} bytes`)
    }

    this.manifest = manifest
    this.stream = resume.stream

    for (const index of resume.verified) {
      if (!Number.isSafeInteger(index) || index < 0 || index >= this.count || this.verified.has(index)) {
        continue
      }

      const begin = index * this.chunkSize
      const bytes = this.stream.subarray(begin, begin + chunkLength(index, this.totalBytes, this.chunkSize))

      if (equalBytes(hashChunk(bytes), manifest.chunkHashes[index])) {
        this.verified.add(index)
        this.bytesDone += bytes.byteLength
        this.resumed++
      }
    }

    this.startContentHash()
    this.progress({ type: 'manifest' })
  }

  /** Ask the replicas in turn for the manifest until one serves a valid one */
  private async fetchManifest (): Promise<void> {
    for (const replica of this.replicas) {
      if (this.aborted) {
        return
      }

      while (!replica.dropped) {
        try {
          const response = await this.request(replica, [], true, async (res) => {
            if (res.chunkCount !== 0) {
              throw new ProtocolViolationError(`the response announces ${res.chunkCount} chunks, none were asked for`)
            }
          })

          if (response.manifest == null) {
            throw new ProtocolViolationError('the response has no manifest although one was asked for')
          }

          this.manifest = this.checkManifest(response.manifest)
          this.owned = this.hashOnThread && this.options.into == null ? ownedDestination(this.layout, this.chunkSize) : undefined

          if (this.owned == null) {
            this.stream = this.options.into ?? new SegmentedStream(this.layout)
            this.startContentHash()
          }

          this.progress({ type: 'manifest', peer: replica.peer })
          return
        } catch (err) {
          if (this.aborted) {
            return
          }

          if (await this.retryBusy(replica, err)) {
            continue
          }

          this.drop(replica, err)
        }
      }
    }
  }

  /** Check a manifest from the wire (or a resume state) against the expected root and layout */
  private checkManifest (m: { tensors: Array<{ name: string, shape: number[] }>, totalBytes: number, chunkSize: number, chunkHashes: Uint8Array[], optimizerStep: number }): WeightsManifest {
    if (m.chunkSize !== this.chunkSize) {
      throw new ManifestMismatchError(`chunk size ${m.chunkSize}, expected ${this.chunkSize}`)
    }

    if (m.tensors.length !== this.layout.length) {
      throw new ManifestMismatchError(`${m.tensors.length} tensors, the span has ${this.layout.length}`)
    }

    for (let i = 0; i < this.layout.length; i++) {
      const want = this.layout[i]
      const got = m.tensors[i]

      if (got.name !== want.name || got.shape.length !== want.shape.length || got.shape.some((d, j) => d !== want.shape[j])) {
        throw new ManifestMismatchError(`tensor ${i} is ${got.name} ${JSON.stringify(got.shape)}, expected ${want.name} ${JSON.stringify(want.shape)}`)
      }
    }

    if (m.totalBytes !== this.totalBytes) {
      throw new ManifestMismatchError(`${m.totalBytes} bytes in all, the span has ${this.totalBytes}`)
    }

    if (m.chunkHashes.length !== this.count || m.chunkHashes.some(h => h.byteLength !== HASH_BYTES)) {
      throw new ManifestMismatchError(`expected ${this.count} chunk hashes of ${HASH_BYTES} bytes`)
    }

    const root = computeChunksRoot(m.totalBytes, m.chunkHashes, m.chunkSize)

    if (!equalBytes(root, this.root)) {
      throw new ManifestMismatchError(`the manifest hashes to chunks root ${toHex(root)}, expected ${this.rootHex}`)
    }

    const step = this.expected.part === 'optimizer' ? m.optimizerStep : 0

    if (this.expected.part === 'optimizer' && this.expected.optimizerStep != null && step !== this.expected.optimizerStep) {
      throw new ManifestMismatchError(`optimizer step ${step}, expected ${this.expected.optimizerStep}`)
    }

    return {
      tensors: this.layout.map(t => ({ name: t.name, shape: [...t.shape] })),
      totalBytes: m.totalBytes,
      chunkSize: m.chunkSize,
      chunkHashes: m.chunkHashes.map(h => new Uint8Array(h)),
      optimizerStep: step,
      chunksRoot: this.rootHex
    }
  }

  /** One stream's loop: take a batch (or steal one), fetch it, until the fetch completes or the replica is dropped */
  private async work (worker: Worker): Promise<void> {
    try {
      await this.workLoop(worker)
    } finally {
      worker.exited = true
      this.notify()
    }
  }

  private async workLoop (worker: Worker): Promise<void> {
    const replica = worker.replica

    while (!this.complete() && !this.aborted && !replica.dropped) {
      const batch = this.take(worker)

      if (batch.length === 0) {
        await this.changed()
        continue
      }

      try {
        await this.request(replica, batch, false, async (response, read) => {
          if (response.chunkCount !== batch.length) {
            throw new ProtocolViolationError(`the response announces ${response.chunkCount} chunks, ${batch.length} were asked for`)
          }

          for (let k = 0; k < batch.length; k++) {
            await this.accept(worker, await read())

            if (k < batch.length - 1 && this.complete()) {
              // the rest of this stream can only be duplicates
              worker.superseded = true
              throw new Error('the transfer is complete')
            }
          }
        }, worker)
        replica.busyRetries = 0
      } catch (err) {
        const superseded = worker.superseded
        this.release(worker)

        if (superseded || this.aborted || this.complete() || replica.dropped) {
          continue
        }

        if (isBusy(err) && this.workers.some(w => w !== worker && w.replica === replica && !w.exited)) {
          // the replica serves fewer concurrent streams than we opened: leave it to the others
          return
        }

        if (await this.retryBusy(replica, err)) {
          continue
        }

        this.drop(replica, err)
      } finally {
        worker.outstanding.clear()
        worker.order = []
        worker.superseded = false
        this.notify()
      }
    }
  }

  /** The next batch for a worker: from the queue, or else the last chunks of the busiest other replica's stream */
  private take (worker: Worker): number[] {
    let batch: number[]

    if (this.queue.length > 0) {
      // every `stride`-th chunk of the queue's front: the streams then deliver the front of the stream
      // together and the verified prefix (what the whole-span hash can take) grows chunk by chunk
      const stride = this.workers.filter(w => !w.exited && !w.replica.dropped).length
      const rest: number[] = []
      batch = []

      for (const i of this.queue) {
        if (batch.length < this.chunksPerRequest && (batch.length === 0 || i >= batch[batch.length - 1] + stride)) {
          batch.push(i)
        } else {
          rest.push(i)
        }
      }

      this.queue = rest
    } else {
      let victim: number[] = []

      for (const other of this.workers) {
        if (other === worker || other.replica === worker.replica || other.replica.dropped) {
          continue
        }

        const stealable = other.order.filter(i => other.outstanding.has(i) && !this.verified.has(i) && (this.inflight.get(i) ?? 0) === 1)

        if (stealable.length > victim.length) {
          victim = stealable
        }
      }

      // the back half: the victim delivers its front half first
      const n = Math.min(this.chunksPerRequest, Math.ceil(victim.length / 2))
      batch = victim.slice(victim.length - n)
    }

    for (const i of batch) {
      this.inflight.set(i, (this.inflight.get(i) ?? 0) + 1)
    }

    worker.outstanding = new Set(batch)
    worker.order = batch
    return batch
  }

  /** Give back a worker's chunks that nobody else is fetching */
  private release (worker: Worker): void {
    for (const i of worker.outstanding) {
      const n = (this.inflight.get(i) ?? 1) - 1

      if (n <= 0) {
        this.inflight.delete(i)

        if (!this.verified.has(i)) {
          this.requeue(i)
        }
      } else {
        this.inflight.set(i, n)
      }
    }

    worker.outstanding.clear()
  }

  private requeue (index: number): void {
    // keep the queue sorted: the stream is filled front to back
    let lo = 0
    let hi = this.queue.length

    while (lo < hi) {
      const mid = (lo + hi) >>> 1

      if (this.queue[mid] < index) {
        lo = mid + 1
      } else {
        hi = mid
      }
    }

    if (this.queue[lo] !== index) {
      this.queue.splice(lo, 0, index)
    }
  }

  /**
   * Check one chunk a worker received and copy it, piece by piece, to its place in the stream. On the
   * helper thread the hash is computed there and the chunk is counted when it answers (written there
   * when the thread owns the destination, here by `settle` otherwise); meanwhile a second copy of the
   * chunk is ignored, and if the first turns out wrong the chunk is queued again.
   */
  private accept (worker: Worker, chunk: ChunkFrame): Promise<void> | void {
    // the destination is the thread's: wait for a staging slot before taking the chunk (backpressure:
    // the next chunk is read only then), and take it as if it had just arrived
    const slot = this.owned?.ready()

    if (slot != null) {
      return slot.then(
        async () => { await this.accept(worker, chunk) },
        async () => { this.ownedFailed(); await this.accept(worker, chunk) }
      )
    }

    const index = chunk.index

    if (!worker.outstanding.has(index)) {
      throw new ProtocolViolationError(`chunk ${index} was not asked for on this stream, or came twice`)
    }

    const length = chunkLength(index, this.totalBytes, this.chunkSize)

    if (chunk.data.byteLength !== length) {
      throw new ProtocolViolationError(`chunk ${index} has ${chunk.data.byteLength} bytes, expected ${length}`)
    }

    if (!this.verified.has(index) && !this.hashing.has(index)) {
      const owned = this.owned
      const hash = this.hashOnThread && owned == null ? chunkHashOnThread(chunk.data, length) : undefined

      if (owned != null) {
        this.hashing.set(index, owned.put(index, chunk.data, length, this.manifest!.chunkHashes[index]).then(
          ({ ok, hash }) => {
            this.hashing.delete(index)
            if (this.finished || this.owned !== owned) return
            if (ok) this.verifiedChunk(worker, index, length)
            else this.rejectChunk(worker, index, this.mismatch(worker, index, hash)!)
          },
          () => {
            this.hashing.delete(index)
            if (!this.finished) this.ownedFailed()
          }
        ))
      } else if (hash == null) {
        // a wrong chunk fails the request and the replica is dropped
        const wrong = this.mismatch(worker, index, hashChunk(chunk.data))
        if (wrong != null) throw wrong
        this.store(worker, index, chunk.data)
      } else {
        this.hashing.set(index, hash.then(
          // the bytes written are the copy that was hashed
          (staged) => {
            try {
              this.settle(worker, index, [staged.bytes], staged.hash)
            } finally {
              staged.release()
            }
          },
          // the thread failed: hash inline
          () => { this.settle(worker, index, chunk.data, hashChunk(chunk.data)) }
        ))
      }
    }

    worker.outstanding.delete(index)
    const n = (this.inflight.get(index) ?? 1) - 1

    if (n <= 0) {
      this.inflight.delete(index)
    } else {
      this.inflight.set(index, n)
    }
  }

  /** A chunk hash from the helper thread: store the chunk, or drop the replica that sent it and queue it again */
  private settle (worker: Worker, index: number, data: Iterable<Uint8Array>, hash: Uint8Array): void {
    this.hashing.delete(index)

    if (this.finished || this.verified.has(index) || this.owned != null) {
      return
    }

    const wrong = this.mismatch(worker, index, hash)

    if (wrong == null) {
      this.store(worker, index, data)
    } else {
      this.rejectChunk(worker, index, wrong)
    }

    this.notify()
  }

  /** R12: the error for a chunk whose sha256 is not the manifest's, or undefined when it is */
  private mismatch (worker: Worker, index: number, hash: Uint8Array): ChunkHashMismatchError | undefined {
    const want = this.manifest!.chunkHashes[index]
    return equalBytes(hash, want) ? undefined : new ChunkHashMismatchError(`chunk ${index} from ${worker.replica.key} hashes to ${toHex(hash)}, the manifest says ${toHex(want)}`)
  }

  /** A wrong chunk that was not written (hashed on the thread): drop the replica that sent it, queue the chunk again */
  private rejectChunk (worker: Worker, index: number, err: ChunkHashMismatchError): void {
    this.drop(worker.replica, err)

    if (!this.inflight.has(index)) {
      this.requeue(index)
    }

    this.notify()
  }

  /**
   * The helper thread failed while it owned the destination: what it held is lost. Start over on this
   * thread: every chunk not in flight goes back to the queue (progress starts again from 0).
   */
  private ownedFailed (): void {
    if (this.owned == null) {
      return
    }

    this.log('the hash thread failed, fetching %s again on this thread', this.rootHex)
    this.owned = undefined
    this.hashOnThread = false
    this.verified.clear()
    this.frontier = 0
    this.bytesDone = 0
    this.fetched.clear()
    this.stream = new SegmentedStream(this.layout)
    this.startContentHash()

    for (let i = 0; i < this.count; i++) {
      if (!this.inflight.has(i)) {
        this.requeue(i)
      }
    }

    this.notify()
  }

  /** Take the destination back from the thread (a failed fetch's partial state) */
  private async reclaim (): Promise<void> {
    const owned = this.owned

    if (owned == null || this.manifest == null) {
      return
    }

    try {
      const { buffers } = await owned.finish(false)
      this.stream = SegmentedStream.fromBuffers(this.layout, buffers)
    } catch {
      // lost with the thread: nothing verified is left
      this.verified.clear()
    }

    this.owned = undefined
  }

  /** Copy a verified chunk to its place and count it */
  private store (worker: Worker, index: number, data: Iterable<Uint8Array>): void {
    let at = index * this.chunkSize
    let length = 0

    for (const piece of data) {
      this.stream!.set(piece, at)
      at += piece.byteLength
      length += piece.byteLength
    }

    this.verifiedChunk(worker, index, length)
  }

  /** Count a chunk that is verified and in its place */
  private verifiedChunk (worker: Worker, index: number, length: number): void {
    this.verified.add(index)
    this.advanceFrontier()
    this.bytesDone += length
    this.fetched.set(worker.replica.key, (this.fetched.get(worker.replica.key) ?? 0) + 1)
    this.progress({ type: 'chunk', peer: worker.replica.peer })
    this.supersede(index, worker)

    if (this.complete()) {
      // streams still delivering duplicates (stolen chunks) are no longer needed
      for (const other of this.workers) {
        if (other !== worker && other.stream != null) {
          other.superseded = true
          other.stream.abort(new Error('the transfer is complete'))
        }
      }

      // nor streams still being opened (a slow replica's), or a BUSY retry's pause: the fetch
      // returns once every stream's loop has ended
      for (const r of this.replicas) {
        if (!r.controller.signal.aborted) {
          r.controller.abort(new Error('the transfer is complete'))
        }
      }

      this.notify()
    }
  }

  /** Abort the streams whose outstanding chunks all arrived from elsewhere */
  private supersede (index: number, by: Worker): void {
    for (const other of this.workers) {
      if (other === by || other.stream == null || !other.outstanding.has(index)) {
        continue
      }

      if ([...other.outstanding].every(i => this.verified.has(i))) {
        other.superseded = true
        other.stream.abort(new Error('every chunk of this request arrived from another replica'))
      }
    }
  }

  /**
   * Send one request on a new stream and read the response; `body` reads what follows it. Throws
   * typed errors for non-OK statuses.
   */
  private async request (replica: Replica, chunks: number[], wantManifest: boolean, body: (response: WeightsResponse, read: () => Promise<ChunkFrame>) => Promise<void>, worker?: Worker): Promise<WeightsResponse> {
    const signal = replica.controller.signal
    let stream: Stream

    try {
      stream = await openStream(this.dialer, replica.peer, this.protocol, this.timeout, signal)
    } catch (err) {
      throw new ReplicaUnreachableError(`cannot open a ${this.protocol} stream to ${replica.key}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
    }

    if (worker != null) {
      worker.stream = stream

      if (chunks.length > 0 && chunks.every(i => this.verified.has(i))) {
        // everything this request was for arrived from elsewhere while the stream opened
        worker.superseded = true
        stream.abort(new Error('every chunk of this request arrived from another replica'))
      }
    }

    try {
      const messages = messageStream(stream, { maxMessageSize: this.maxResponseSize, timeout: this.timeout })
      await messages.write({
        modelId: this.expected.modelId,
        version: this.expected.version,
        start: this.expected.start,
        end: this.expected.end,
        part: this.expected.part === 'optimizer' ? Part.OPTIMIZER : Part.WEIGHTS,
        chunksRoot: this.root,
        wantManifest,
        chunks
      }, WeightsRequest, { signal })
      await messages.close({ signal })
      const response = await messages.read(WeightsResponse, { signal })

      switch (response.status) {
        case Status.OK:
          break
        case Status.NOT_FOUND:
          throw new ReplicaNotFoundError(`${replica.key} does not hold it: ${response.message}`)
        case Status.BAD_REQUEST:
        case Status.BUSY:
        case Status.INTERNAL_ERROR:
          throw new RequestRejectedError(response.status, `${replica.key} answered ${response.status}: ${response.message}`)
        default:
          throw new ProtocolViolationError(`${replica.key} answered status ${String(response.status)}`)
      }

      // chunk bodies stay in the pieces they arrived in: hashed and copied to their place without a join
      await body(response, async () => decodeChunkList(await messages.readList({ signal })))

      releaseWhenRemoteCloses(stream, this.timeout)
      return response
    } catch (err) {
      if (stream.status === 'open') {
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      }

      throw err
    } finally {
      if (worker != null) {
        worker.stream = undefined
      }
    }
  }

  /** `true` (after a pause) when the error is a BUSY answer and the replica has retries left */
  private async retryBusy (replica: Replica, err: unknown): Promise<boolean> {
    if (!isBusy(err) || replica.busyRetries >= this.busyRetries) {
      return false
    }

    replica.busyRetries++

    try {
      await delay(this.busyRetryDelay, replica.controller.signal)
      return true
    } catch {
      return false
    }
  }

  private drop (replica: Replica, err: unknown): void {
    if (replica.dropped) {
      return
    }

    const error = err instanceof Error ? err : new Error(String(err))
    const kind = faultKind(error)
    const fault: ReplicaFault = { peer: replica.peer, kind, misbehaved: MISBEHAVIOUR.has(kind), error }
    replica.dropped = true
    this.faults.push(fault)
    this.log('dropping replica %p from the fetch of %s - %s: %s', replica.peer, this.rootHex, error.name, error.message)
    replica.controller.abort(error)
    this.progress({ type: 'replica-dropped', peer: replica.peer, fault })
    this.notify()
  }

  /** Start the incremental `contentHash` over the stream; chunks already verified (resumed) are fed at once */
  private startContentHash (): void {
    this.contentHash = streamContentHash(this.layout, this.stream!, { thread: this.hashOnThread, threadMinBytes: 0 })
    this.advanceFrontier()
  }

  /** Feed the hash the bytes of the verified chunks that now follow the verified prefix */
  private advanceFrontier (): void {
    const before = this.frontier

    while (this.verified.has(this.frontier)) {
      this.frontier++
    }

    if (this.frontier > before) {
      // with an owned destination the thread feeds its own hash
      this.contentHash?.advance(Math.min(this.frontier * this.chunkSize, this.totalBytes))
    }
  }

  private complete (): boolean {
    return this.manifest != null && this.verified.size === this.count
  }

  /** Resolves at the next notify() */
  private async changed (): Promise<void> {
    return new Promise(resolve => { this.waiters.push(resolve) })
  }

  private notify (): void {
    const waiters = this.waiters
    this.waiters = []

    for (const w of waiters) {
      w()
    }
  }

  private progress (evt: Pick<WeightsTransferProgress, 'type' | 'peer' | 'fault'>): void {
    if (this.options.onProgress == null) {
      return
    }

    try {
      this.options.onProgress({ ...evt, chunksDone: this.verified.size, chunksTotal: this.count, bytesDone: this.bytesDone, bytesTotal: this.totalBytes })
    } catch (err) {
      this.log.error('onProgress threw - %e', err)
    }
  }

  private details (cause?: unknown): { partial?: PartialSpanWeights, faults: ReplicaFault[], cause?: unknown } {
    return {
      partial: this.manifest != null && this.stream != null
        ? { chunksRoot: this.rootHex, manifest: this.manifest, stream: this.stream instanceof SegmentedStream ? this.stream.join() : this.stream, verified: new Set(this.verified) }
        : undefined,
      faults: [...this.faults],
      cause
    }
  }

  private noReplicaError (): WeightsTransferError {
    if (this.faults.length > 0 && this.faults.every(f => f.kind === 'not-found')) {
      return new WeightsNotFoundError(`none of ${this.replicas.length} replicas holds ${this.expected.part} of ${this.expected.modelId} v${this.expected.version} [${this.expected.start}, ${this.expected.end}) with chunks root ${this.rootHex}`, this.details())
    }

    const why = this.faults.map(f => `${f.peer.toString()}: ${f.kind} (${f.error.name})`).join('; ')
    return new NoReplicaError(`${this.verified.size} of ${this.count} chunks verified and no replica left${why === '' ? '' : ` - ${why}`}`, this.details())
  }

  private async finish (): Promise<SpanWeights> {
    const manifest = this.manifest!
    let hash: string

    if (this.owned != null) {
      // the buffers come back from the thread with the hash it fed as chunks arrived
      let finished: { hex?: string, buffers: ArrayBuffer[] }

      try {
        finished = await this.owned.finish(true)
      } catch (err) {
        throw new WeightsTransferError('the helper thread that held the weights failed at the end of the fetch', { faults: [...this.faults], cause: err })
      } finally {
        this.owned = undefined
      }

      const { hex, buffers } = finished
      this.stream = SegmentedStream.fromBuffers(this.layout, buffers)

      if (hex == null) {
        throw new WeightsTransferError('the hash thread did not compute the weights hash of a complete stream')
      }

      hash = hex
    } else {
      // R14: the contentHash of the assembled tensors, computed while the chunks arrived (same bytes, same order)
      hash = await this.contentHash!.digest()
    }

    const tensors = this.stream instanceof SegmentedStream ? this.stream.tensors() : assembleTensors(manifest.tensors, this.stream!)

    if (hash !== this.weightsHash) {
      throw new WeightsHashMismatchError(`the verified chunks hash to weights hash ${hash}, the record says ${this.weightsHash}`, this.details())
    }

    return {
      tensors,
      manifest,
      weightsHash: hash,
      optimizerStep: manifest.optimizerStep,
      chunksFetched: new Map(this.fetched),
      chunksResumed: this.resumed,
      faults: [...this.faults],
      misbehaving: this.faults.filter(f => f.misbehaved).map(f => f.peer)
    }
  }
}

function isBusy (err: unknown): boolean {
  return err instanceof RequestRejectedError && err.status === Status.BUSY
}

const MISBEHAVIOUR = new Set<ReplicaFaultKind>(['chunk-hash', 'manifest', 'protocol', 'timeout'])

function faultKind (err: Error): ReplicaFaultKind {
  switch (err.name) {
    case ChunkHashMismatchError.name: return 'chunk-hash'
    case ManifestMismatchError.name: return 'manifest'
    case ProtocolViolationError.name:
    case MalformedMessageError.name:
    case MessageTooLargeError.name: return 'protocol'
    case TimeoutError.name: return 'timeout'
    case ReplicaUnreachableError.name: return 'unreachable'
    case ReplicaNotFoundError.name: return 'not-found'
    case RequestRejectedError.name: return 'rejected'
    default: return 'unreachable'
  }
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

async function delay (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

