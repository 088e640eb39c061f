import { logger as createLogger } from '@libp2p/logger'
import { StreamClosedError } from '@neuroshard/interface'
import { messageStream, toStreamError } from '@neuroshard/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { Part, Status, WeightsRequest, WeightsResponse } from '../pb/transfer.js'
import { ChunkReader, canonicalTensors, digestChunksAsync } from './chunks.js'
import {
  CHUNK_SIZE, DEFAULT_DIGEST_CACHE_SIZE, DEFAULT_MAX_CHUNKS_PER_REQUEST, DEFAULT_MAX_REQUEST_SIZE, DEFAULT_MAX_RESPONSE_SIZE,
  DEFAULT_MAX_STREAMS_PER_PEER, DEFAULT_MAX_STREAMS_TOTAL, DEFAULT_TRANSFER_MESSAGE_TIMEOUT_MS, HASH_BYTES, MAX_MODEL_ID_BYTES,
  WEIGHTS_PROTOCOL
} from './constants.js'
import { toHex } from './hex.js'
import type { ChunkDigest, SpanTensor } from './chunks.js'
import type { SpanContentProvider, SpanRequest } from './types.js'
import type { Connection, Logger, Startable, Stream } from '@libp2p/interface'
import type { FramedStream, HandlerRegistrar } from '@neuroshard/utils'

/** What the server needs from libp2p */
export interface WeightsServerComponents {
  /** libp2p's `registrar` component, or a `Libp2p` node */
  registrar: HandlerRegistrar
}

export interface WeightsServerInit {
  /** Looks up what this node holds for a request */
  provider: SpanContentProvider
  /** @default WEIGHTS_PROTOCOL ('/neuroshard/layer-pool/weights/1.0.0') */
  protocol?: string
  /** Chunk size of the canonical stream (the chunks root depends on it) @default CHUNK_SIZE (1 MiB) */
  chunkSize?: number
  /** Most chunks one request may name @default DEFAULT_MAX_CHUNKS_PER_REQUEST (64) */
  maxChunksPerRequest?: number
  /** Concurrent inbound transfer streams served per peer; more get BUSY @default DEFAULT_MAX_STREAMS_PER_PEER (4) */
  maxStreamsPerPeer?: number
  /** Concurrent inbound transfer streams served in total; more get BUSY @default DEFAULT_MAX_STREAMS_TOTAL (32) */
  maxStreamsTotal?: number
  /** Span contents whose chunk hashes are kept @default DEFAULT_DIGEST_CACHE_SIZE (8) */
  digestCacheSize?: number
  /** Milliseconds each message read or write may take @default DEFAULT_TRANSFER_MESSAGE_TIMEOUT_MS (10 s) */
  timeout?: number
  /** Largest request read @default DEFAULT_MAX_REQUEST_SIZE (64 KiB) */
  maxRequestSize?: number
  /** Largest response message written (a manifest or a chunk) @default DEFAULT_MAX_RESPONSE_SIZE (4 MiB) */
  maxResponseSize?: number
  /** @default logger('neuroshard:layer-pool:transfer') */
  log?: Logger
}

/** Counters of a weights server (for metrics and tests) */
export interface WeightsServerStats {
  /** Inbound transfer streams being served now */
  activeStreams: number
  /** Requests answered, by status name */
  responses: Record<string, number>
  /** Streams that failed (malformed or oversized requests, time-outs, the requester going away) */
  failedStreams: number
  /** Chunks written */
  chunksServed: number
  /** Chunk-hash computations of whole contents (cache misses) */
  digestsComputed: number
}

/** Serves `/neuroshard/layer-pool/weights/1.0.0` from a provider; start() registers the handler, stop() removes it */
export interface WeightsServer extends Startable {
  readonly stats: WeightsServerStats
  isStarted(): boolean
}

interface CacheEntry {
  /**
   * The content's data arrays in canonical order, held weakly (the cache must not keep old weights
   * alive): the entry is reused only while the provider returns the same arrays
   */
  refs: Array<WeakRef<Float32Array>>
  names: string[]
  digest: Promise<ChunkDigest>
}

const PART_NAMES: Record<Part, SpanRequest['part'] | undefined> = {
  [Part.WEIGHTS]: 'weights',
  [Part.OPTIMIZER]: 'optimizer'
}

/** A request that breaks a rule (answered BAD_REQUEST) */
class BadRequest extends Error {}

/**
 * Create a weights server.
 *
 * @example
 * ```ts
 * const server = weightsServer({ registrar: libp2p }, { provider: (req) => holdings.get(key(req)) })
 * await server.start()
 * ```
 */
export function weightsServer (components: WeightsServerComponents, init: WeightsServerInit): WeightsServer {
  return new DefaultWeightsServer(components, init)
}

class DefaultWeightsServer implements WeightsServer {
  readonly stats: WeightsServerStats = { activeStreams: 0, responses: {}, failedStreams: 0, chunksServed: 0, digestsComputed: 0 }
  private readonly registrar: HandlerRegistrar
  private readonly provider: SpanContentProvider
  private readonly protocol: string
  private readonly chunkSize: number
  private readonly maxChunksPerRequest: number
  private readonly maxStreamsPerPeer: number
  private readonly maxStreamsTotal: number
  private readonly digestCacheSize: number
  private readonly timeout: number
  private readonly maxRequestSize: number
  private readonly maxResponseSize: number
  private readonly log: Logger
  private readonly perPeer = new Map<string, number>()
  private readonly cache = new Map<string, CacheEntry>()
  private started = false

  constructor (components: WeightsServerComponents, init: WeightsServerInit) {
    this.registrar = components.registrar
    this.provider = init.provider
    this.protocol = init.protocol ?? WEIGHTS_PROTOCOL
    this.chunkSize = init.chunkSize ?? CHUNK_SIZE
    this.maxChunksPerRequest = init.maxChunksPerRequest ?? DEFAULT_MAX_CHUNKS_PER_REQUEST
    this.maxStreamsPerPeer = init.maxStreamsPerPeer ?? DEFAULT_MAX_STREAMS_PER_PEER
    this.maxStreamsTotal = init.maxStreamsTotal ?? DEFAULT_MAX_STREAMS_TOTAL
    this.digestCacheSize = init.digestCacheSize ?? DEFAULT_DIGEST_CACHE_SIZE
    this.timeout = init.timeout ?? DEFAULT_TRANSFER_MESSAGE_TIMEOUT_MS
    this.maxRequestSize = init.maxRequestSize ?? DEFAULT_MAX_REQUEST_SIZE
    this.maxResponseSize = init.maxResponseSize ?? DEFAULT_MAX_RESPONSE_SIZE
    this.log = init.log ?? createLogger('neuroshard:layer-pool:transfer')

    if (this.maxResponseSize < this.chunkSize + 16) {
      throw new RangeError(`maxResponseSize (${this.maxResponseSize}) must hold a chunk of ${this.chunkSize} bytes plus its framing`)
    }
  }

  isStarted (): boolean {
    return this.started
  }

  async start (): Promise<void> {
    if (this.started) {
      return
    }

    await this.registrar.handle(this.protocol, (stream, connection) => { void this.onStream(stream, connection) }, {
      // a hard cap per connection (libp2p resets streams beyond it); below it our own counts answer
      // BUSY, which a requester can act on
      maxInboundStreams: Math.max(this.maxStreamsPerPeer * 4, 16)
    })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) {
      return
    }

    this.started = false
    await this.registrar.unhandle(this.protocol)
    this.cache.clear()
  }

  private async onStream (stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    const busy = this.stats.activeStreams >= this.maxStreamsTotal || (this.perPeer.get(peer) ?? 0) >= this.maxStreamsPerPeer
    const closed = new AbortController()
    const onClose = (): void => { closed.abort(new StreamClosedError('the requester closed the stream')) }
    stream.addEventListener('close', onClose)

    if (!busy) {
      this.stats.activeStreams++
      this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1)
    }

    try {
      const requestStream = messageStream(stream, { maxMessageSize: this.maxRequestSize, timeout: this.timeout })
      const request = await requestStream.read(WeightsRequest)
      const out = messageStream(requestStream.unwrap(), { maxMessageSize: this.maxResponseSize, timeout: this.timeout })

      if (busy) {
        await this.respond(out, { status: Status.BUSY, message: `serving too many transfer streams (${this.maxStreamsPerPeer} per peer, ${this.maxStreamsTotal} in all)`, chunkCount: 0 })
        return
      }

      await this.serve(request, out, closed.signal)
    } catch (err) {
      const error = toStreamError(err, undefined, `${this.protocol} request`)
      this.stats.failedStreams++
      this.log('%s request from %p failed - %s: %s', this.protocol, connection.remotePeer, error.name, error.message)

      if (stream.status === 'open') {
        stream.abort(error)
      }
    } finally {
      stream.removeEventListener('close', onClose)

      if (!busy) {
        this.stats.activeStreams--
        const n = (this.perPeer.get(peer) ?? 1) - 1

        if (n <= 0) {
          this.perPeer.delete(peer)
        } else {
          this.perPeer.set(peer, n)
        }
      }
    }
  }

  private async respond (out: FramedStream, response: WeightsResponse): Promise<void> {
    this.stats.responses[response.status] = (this.stats.responses[response.status] ?? 0) + 1
    await out.write(response, WeightsResponse)
    await out.close()
  }

  private async serve (request: WeightsRequest, out: FramedStream, signal: AbortSignal): Promise<void> {
    let span: SpanRequest

    try {
      span = this.checkRequest(request)
    } catch (err) {
      if (err instanceof BadRequest) {
        await this.respond(out, { status: Status.BAD_REQUEST, message: err.message, chunkCount: 0 })
        return
      }

      throw err
    }

    let tensors: SpanTensor[] | undefined
    let digest: ChunkDigest | undefined
    let optimizerStep = 0

    try {
      const content = await this.provider(span, { signal })

      if (content != null) {
        tensors = canonicalTensors(content.tensors)
        digest = await this.digestOf(span, tensors)
        optimizerStep = span.part === 'optimizer' ? content.optimizerStep ?? 0 : 0
      }
    } catch (err) {
      signal.throwIfAborted()
      this.log.error('reading the content of %s [%d, %d) %s failed - %e', span.modelId, span.start, span.end, span.part, err)
      await this.respond(out, { status: Status.INTERNAL_ERROR, message: 'the server could not read its content', chunkCount: 0 })
      return
    }

    if (tensors == null || digest == null || !equalBytes(digest.chunksRoot, request.chunksRoot)) {
      await this.respond(out, {
        status: Status.NOT_FOUND,
        message: `no ${span.part} of ${span.modelId} v${span.version} [${span.start}, ${span.end}) with chunks root ${toHex(request.chunksRoot)}`,
        chunkCount: 0
      })
      return
    }

    const count = digest.chunkHashes.length
    const seen = new Set<number>()

    for (const index of request.chunks) {
      if (index >= count || seen.has(index)) {
        await this.respond(out, { status: Status.BAD_REQUEST, message: index >= count ? `chunk ${index} out of range [0, ${count})` : `chunk ${index} asked for twice`, chunkCount: 0 })
        return
      }

      seen.add(index)
    }

    this.stats.responses[Status.OK] = (this.stats.responses[Status.OK] ?? 0) + 1
    await out.write({
      status: Status.OK,
      message: '',
      manifest: request.wantManifest
        ? {
            tensors: tensors.map(t => ({ name: t.name, shape: [...t.shape] })),
            totalBytes: digest.totalBytes,
            chunkSize: digest.chunkSize,
            chunkHashes: digest.chunkHashes,
            optimizerStep
          }
        : undefined,
      chunkCount: request.chunks.length
    }, WeightsResponse)

    const reader = new ChunkReader(tensors, this.chunkSize)

    for (const index of request.chunks) {
      // written as Chunk { index = 1; data = 2 } without copying the chunk (or its pieces from several tensors) into a new buffer
      await out.writeBytes(encodeChunk(index, reader.pieces(index)))
      this.stats.chunksServed++
    }

    await out.close()
  }

  private checkRequest (request: WeightsRequest): SpanRequest {
    const part = PART_NAMES[request.part]

    if (part == null) {
      throw new BadRequest(`unknown part ${String(request.part)}`)
    }

    if (Buffer.byteLength(request.modelId, 'utf8') > MAX_MODEL_ID_BYTES) {
      throw new BadRequest(`model id longer than ${MAX_MODEL_ID_BYTES} bytes`)
    }

    if (!Number.isSafeInteger(request.version) || request.version < 0) {
      throw new BadRequest('version is not a safe integer')
    }

    if (request.end <= request.start) {
      throw new BadRequest(`empty span [${request.start}, ${request.end})`)
    }

    if (request.chunksRoot.byteLength !== HASH_BYTES) {
      throw new BadRequest(`chunks_root must be ${HASH_BYTES} bytes, got ${request.chunksRoot.byteLength}`)
    }

    if (request.chunks.length > this.maxChunksPerRequest) {
      throw new BadRequest(`${request.chunks.length} chunks asked for, at most ${this.maxChunksPerRequest} per request`)
    }

    return { modelId: request.modelId, version: request.version, start: request.start, end: request.end, part }
  }

  /**
   * The chunk hashes of a content (tensors in canonical order), computed once while the provider
   * returns the same arrays (LRU, bounded; the arrays themselves are held weakly)
   */
  private async digestOf (span: SpanRequest, tensors: SpanTensor[]): Promise<ChunkDigest> {
    const key = `${span.modelId}\u0000${span.version}\u0000${span.start}\u0000${span.end}\u0000${span.part}`
    const cached = this.cache.get(key)

    if (cached != null && cached.refs.length === tensors.length && cached.refs.every((r, i) => r.deref() === tensors[i].data && cached.names[i] === tensors[i].name)) {
      // most recently used last
      this.cache.delete(key)
      this.cache.set(key, cached)
      return cached.digest
    }

    const entry: CacheEntry = {
      refs: tensors.map(t => new WeakRef(t.data)),
      names: tensors.map(t => t.name),
      digest: digestChunksAsync(tensors, { chunkSize: this.chunkSize })
    }
    this.stats.digestsComputed++
    this.cache.delete(key)
    this.cache.set(key, entry)

    while (this.cache.size > this.digestCacheSize) {
      const oldest = this.cache.keys().next().value

      if (oldest == null) {
        break
      }

      this.cache.delete(oldest)
    }

    try {
      return await entry.digest
    } catch (err) {
      // a failed digest is not kept
      if (this.cache.get(key) === entry) {
        this.cache.delete(key)
      }

      throw err
    }
  }
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

function varint (value: number): number[] {
  const out: number[] = []

  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80)
    value = Math.floor(value / 0x80)
  }

  out.push(value)
  return out
}

/** The protobuf encoding of `Chunk { index, data }` as a list (header, then the data itself, whole or in pieces) */
export function encodeChunk (index: number, data: Uint8Array | readonly Uint8Array[]): Uint8ArrayList {
  const pieces = data instanceof Uint8Array ? [data] : data
  const length = pieces.reduce((n, p) => n + p.byteLength, 0)
  const header = Uint8Array.from([0x08, ...varint(index), 0x12, ...varint(length)])
  return new Uint8ArrayList(header, ...pieces)
}
