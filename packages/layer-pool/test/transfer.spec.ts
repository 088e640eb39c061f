import { createNeuroShardHost } from '@neuroshard/host'
import { messageStream } from '@neuroshard/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Part, Status, WeightsRequest, WeightsResponse } from '../src/pb/transfer.js'
import { hashThreadStats, stopHashThread } from '../src/transfer/hash-thread.js'
import {
  WEIGHTS_PROTOCOL, digestChunks, fetchSpanWeights, spanLayout, tensorsContentHash, toHex, weightsServer
} from '../src/transfer/index.js'
import type {
  ExpectedSpanWeights, FetchSpanWeightsOptions, SpanContent, SpanContentProvider, SpanPart, SpanRequest, SpanTensor, WeightsServer,
  WeightsServerInit, WeightsTransferError, WeightsTransferProgress
} from '../src/transfer/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { ModelConfig } from '@neuroshard/model'

/**
 * A model sized so that spans cover several 1 MiB chunks: a block is ≈ 2.4 MB, the embedding 1 MiB.
 * The whole model (slots [0, 6)) is ≈ 11.5 MB = 12 chunks.
 */
const CONFIG: ModelConfig = {
  vocabSize: 1024,
  dModel: 256,
  nLayers: 4,
  nHeads: 4,
  nKvHeads: 2,
  ffnHidden: 512,
  maxSeqLen: 128,
  ropeTheta: 10000,
  normEps: 1e-5,
  tieEmbeddings: false
}
const MODEL_ID = 'transfer-test'
const VERSION = 3
const ALL: [number, number] = [0, CONFIG.nLayers + 2]

/** Deterministic pseudo-random values (a small LCG: fast, and every tensor differs) */
function makeTensors (config: ModelConfig, start: number, end: number, part: SpanPart, seed: number): SpanTensor[] {
  let state = seed >>> 0
  return spanLayout(config, start, end, part).map(t => {
    const data = new Float32Array(t.shape.reduce((a, b) => a * b, 1))
    for (let i = 0; i < data.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0
      data[i] = (state / 2 ** 32) - 0.5
    }
    return { name: t.name, shape: [...t.shape], data }
  })
}

interface Held {
  request: Omit<SpanRequest, 'part'> & { part: SpanPart }
  content: SpanContent
  expected: ExpectedSpanWeights
}

function hold (start: number, end: number, part: SpanPart = 'weights', optimizerStep = 0, seed = 1): Held {
  const tensors = makeTensors(CONFIG, start, end, part, seed + start * 31 + end)
  const digest = digestChunks(tensors)
  return {
    request: { modelId: MODEL_ID, version: VERSION, start, end, part },
    content: { tensors, optimizerStep },
    expected: {
      modelId: MODEL_ID,
      version: VERSION,
      start,
      end,
      part,
      config: CONFIG,
      chunksRoot: toHex(digest.chunksRoot),
      weightsHash: tensorsContentHash(tensors),
      optimizerStep: part === 'optimizer' ? optimizerStep : undefined
    }
  }
}

/** A provider serving exactly the given holdings */
function provider (...held: Held[]): SpanContentProvider {
  return (req) => held.find(h => h.request.modelId === req.modelId && h.request.version === req.version && h.request.start === req.start && h.request.end === req.end && h.request.part === req.part)?.content
}

/** A copy of a holding's content (new arrays, same values) */
function copyContent (content: SpanContent): SpanContent {
  return { tensors: content.tensors.map(t => ({ ...t, data: t.data.slice() })), optimizerStep: content.optimizerStep }
}

async function newHost (): Promise<NeuroShardHost> {
  return createNeuroShardHost({ transports: { quic: false, webrtcDirect: false, circuitRelay: false } })
}

/** Waits (on a short poll, bounded) until `condition()` holds */
async function until (condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`)
    }
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

async function expectError (promise: Promise<unknown>): Promise<WeightsTransferError> {
  try {
    await promise
  } catch (err) {
    return err as WeightsTransferError
  }
  throw new Error('expected the fetch to fail')
}

const WEIGHTS = hold(...ALL)
const SPAN = hold(1, 4)
const OPTIMIZER = hold(1, 2, 'optimizer', 42)
const WEIGHTS_CHUNKS = Math.ceil(WEIGHTS.content.tensors.reduce((n, t) => n + t.data.byteLength, 0) / (1 << 20))

let client: NeuroShardHost
const hosts: NeuroShardHost[] = []
const servers: WeightsServer[] = []

/** A new host serving `init` (each test gets its own replicas so faults do not leak between tests) */
async function replica (init: WeightsServerInit): Promise<{ host: NeuroShardHost, server: WeightsServer }> {
  const host = await newHost()
  hosts.push(host)
  // a loaded 2-core machine can take longer than the 10 s default per message
  const server = weightsServer({ registrar: host }, { timeout: 60_000, ...init })
  servers.push(server)
  await server.start()
  // and can time a handshake out: dial again before failing the test
  for (let attempt = 1; ; attempt++) {
    try {
      await client.dial(host.getMultiaddrs(), { signal: AbortSignal.timeout(30_000) })
      break
    } catch (err) {
      if (attempt >= 5) throw err
      await new Promise(resolve => setTimeout(resolve, 500 * attempt))
    }
  }
  return { host, server }
}

/** Where the client hashes chunks: every test runs both ways (set by the describe blocks below) */
let hashing: Pick<FetchSpanWeightsOptions, 'hashOnThread' | 'hashThreadMinBytes'> = {}

/** Fetch with test-friendly defaults: small batches so several replicas share the work, generous timeouts */
async function fetchFrom (peers: NeuroShardHost[], held: Held | ExpectedSpanWeights, options: FetchSpanWeightsOptions = {}): ReturnType<typeof fetchSpanWeights> {
  const expected = 'expected' in held ? held.expected : held
  return fetchSpanWeights(client, peers.map(p => p.peerId), expected, { chunksPerRequest: 2, timeout: 60_000, ...hashing, ...options })
}

beforeAll(async () => {
  client = await newHost()
  hosts.push(client)
})

afterAll(async () => {
  await Promise.all(servers.map(async s => { await Promise.resolve(s.stop()).catch(() => {}) }))
  await Promise.all(hosts.map(async h => { await Promise.resolve(h.stop()).catch(() => {}) }))
})

describe.each([
  { where: 'on the helper thread', options: { hashOnThread: true, hashThreadMinBytes: 0 } },
  { where: 'inline', options: { hashOnThread: false } }
])('weight transfer, chunks hashed $where', ({ options }) => {
  let before = hashThreadStats()

  beforeAll(() => {
    hashing = options
    before = hashThreadStats()
  })

  afterAll(() => {
    // the mode really ran: chunks were hashed on the thread only when asked, placed there by the thread
    // for fetches into new memory, hashed there and written here for fetches into the caller's buffer
    const after = hashThreadStats()
    const hashed = after.chunkHashes - before.chunkHashes
    const placed = after.placedChunks - before.placedChunks
    if (options.hashOnThread) {
      expect(placed).toBeGreaterThan(100)
      expect(hashed - placed).toBeGreaterThan(5)
    } else {
      expect(hashed).toBe(0)
    }
  })

  it('fetches a span from two replicas, each serving part of it, and checks the weights hash', async () => {
    const a = await replica({ provider: provider(WEIGHTS, SPAN) })
    const b = await replica({ provider: provider(WEIGHTS, SPAN) })
    const events: WeightsTransferProgress[] = []

    const result = await fetchFrom([a.host, b.host], WEIGHTS, { onProgress: (p) => events.push(p) })

    expect(result.weightsHash).toBe(WEIGHTS.expected.weightsHash)
    expect(result.manifest.chunkHashes).toHaveLength(WEIGHTS_CHUNKS)
    expect(WEIGHTS_CHUNKS).toBeGreaterThanOrEqual(10)
    for (const t of WEIGHTS.content.tensors) {
      expect(Buffer.from(result.tensors.get(t.name)!.buffer, result.tensors.get(t.name)!.byteOffset, t.data.byteLength).equals(Buffer.from(t.data.buffer))).toBe(true)
    }
    expect([...result.tensors.keys()]).toEqual(spanLayout(CONFIG, ...ALL, 'weights').map(t => t.name))
    // both replicas served chunks, every chunk counted once
    expect(result.chunksFetched.get(a.host.peerId.toString())).toBeGreaterThan(0)
    expect(result.chunksFetched.get(b.host.peerId.toString())).toBeGreaterThan(0)
    expect([...result.chunksFetched.values()].reduce((x, y) => x + y, 0)).toBe(WEIGHTS_CHUNKS)
    expect(result.faults).toEqual([])
    expect(result.misbehaving).toEqual([])
    // progress: the manifest, then one event per chunk, ending at the total
    expect(events[0].type).toBe('manifest')
    expect(events.filter(e => e.type === 'chunk')).toHaveLength(WEIGHTS_CHUNKS)
    expect(events.at(-1)).toMatchObject({ chunksDone: WEIGHTS_CHUNKS, chunksTotal: WEIGHTS_CHUNKS, bytesDone: events.at(-1)?.bytesTotal })

    // hashes computed once per content: a second fetch of the same span reuses them
    const before = a.server.stats.digestsComputed + b.server.stats.digestsComputed
    await fetchFrom([a.host, b.host], WEIGHTS)
    expect(a.server.stats.digestsComputed + b.server.stats.digestsComputed).toBe(before)

    // a block span with chunks that start inside tensors
    const span = await fetchFrom([b.host, a.host], SPAN)
    expect(span.weightsHash).toBe(SPAN.expected.weightsHash)
  })

  it('writes the stream into a buffer the caller hands in (into), overwriting what it held', async () => {
    const a = await replica({ provider: provider(SPAN) })
    const b = await replica({ provider: provider(SPAN) })
    const bytes = SPAN.content.tensors.reduce((n, t) => n + t.data.byteLength, 0)
    const backing = new ArrayBuffer(bytes + 8)
    const into = new Uint8Array(backing, 8, bytes).fill(0xab)

    const result = await fetchFrom([a.host, b.host], SPAN, { into })

    expect(result.weightsHash).toBe(SPAN.expected.weightsHash)
    expect(result.faults).toEqual([])
    for (const t of SPAN.content.tensors) {
      const got = result.tensors.get(t.name)!
      // a view of the caller's buffer (filled with 0xab before), now holding the served values
      expect(got.buffer).toBe(backing)
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))).toBe(true)
    }

    // a wrong size, an offset that is not a multiple of 4, or together with resume: refused
    await expect(fetchFrom([a.host], SPAN, { into: new Uint8Array(bytes - 4) })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(fetchFrom([a.host], SPAN, { into: new Uint8Array(new ArrayBuffer(bytes + 2), 2, bytes) })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    const resume = { chunksRoot: SPAN.expected.chunksRoot, manifest: result.manifest, stream: new Uint8Array(bytes), verified: new Set<number>() }
    await expect(fetchFrom([a.host], SPAN, { into, resume })).rejects.toMatchObject({ name: 'InvalidParametersError' })
  })

  it('fetches optimizer state with its step, and drops a replica that reports another step than the record', async () => {
    const a = await replica({ provider: provider(OPTIMIZER) })
    const result = await fetchFrom([a.host], OPTIMIZER)
    expect(result.optimizerStep).toBe(42)
    expect(result.weightsHash).toBe(OPTIMIZER.expected.weightsHash)
    expect([...result.tensors.keys()].every(n => n.startsWith('adam.m.') || n.startsWith('adam.v.'))).toBe(true)

    const liar = await replica({ provider: () => ({ ...OPTIMIZER.content, optimizerStep: 41 }) })
    const checked = await fetchFrom([liar.host, a.host], OPTIMIZER)
    expect(checked.optimizerStep).toBe(42)
    expect(checked.faults.map(f => [f.peer.toString(), f.kind])).toEqual([[liar.host.peerId.toString(), 'manifest']])
  })

  it('resumes after the serving host stops mid-way, fetching only the missing chunks', async () => {
    const a = await replica({ provider: provider(WEIGHTS) })
    let stopping: Promise<void> | undefined
    const err = await expectError(fetchFrom([a.host], WEIGHTS, {
      chunksPerRequest: 1,
      streamsPerPeer: 1,
      onProgress: (p) => {
        if (p.type === 'chunk' && p.chunksDone === 3 && stopping == null) {
          stopping = Promise.resolve(a.host.stop())
        }
      }
    }))
    await stopping

    expect(err.name).toBe('NoReplicaError')
    expect(err.faults.map(f => [f.peer.toString(), f.kind, f.misbehaved])).toEqual([[a.host.peerId.toString(), 'unreachable', false]])
    const partial = err.partial!
    const done = partial.verified.size
    expect(done).toBeGreaterThanOrEqual(3)
    expect(done).toBeLessThan(WEIGHTS_CHUNKS)

    const b = await replica({ provider: provider(WEIGHTS) })
    const resumed = await fetchFrom([b.host], WEIGHTS, { resume: partial })
    expect(resumed.weightsHash).toBe(WEIGHTS.expected.weightsHash)
    expect(resumed.chunksResumed).toBe(done)
    expect(resumed.chunksFetched.get(b.host.peerId.toString())).toBe(WEIGHTS_CHUNKS - done)
    expect(b.server.stats.chunksServed).toBe(WEIGHTS_CHUNKS - done)
  })

  it('resumes after the caller aborts', async () => {
    const a = await replica({ provider: provider(WEIGHTS) })
    const controller = new AbortController()
    const err = await expectError(fetchFrom([a.host], WEIGHTS, {
      chunksPerRequest: 1,
      signal: controller.signal,
      onProgress: (p) => { if (p.type === 'chunk' && p.chunksDone === 5) controller.abort() }
    }))
    expect(err.name).toBe('WeightsTransferAbortedError')
    const done = err.partial!.verified.size
    expect(done).toBeGreaterThanOrEqual(5)
    expect(done).toBeLessThan(WEIGHTS_CHUNKS)
    // the server has finished with the aborted streams
    await until(() => a.server.stats.activeStreams === 0, 'the server to see the aborted streams close')

    const served = a.server.stats.chunksServed
    const resumed = await fetchFrom([a.host], WEIGHTS, { resume: err.partial })
    expect(resumed.weightsHash).toBe(WEIGHTS.expected.weightsHash)
    expect(resumed.chunksResumed).toBe(done)
    expect(a.server.stats.chunksServed - served).toBe(WEIGHTS_CHUNKS - done)

    // a resume state whose bytes were damaged: the damaged chunk is fetched again
    const damaged = { ...err.partial!, stream: err.partial!.stream.slice(), verified: new Set(err.partial!.verified) }
    const victim = [...damaged.verified][0]
    damaged.stream[victim * (1 << 20) + 10] ^= 0xff
    const repaired = await fetchFrom([a.host], WEIGHTS, { resume: damaged })
    expect(repaired.chunksResumed).toBe(done - 1)
    expect(repaired.weightsHash).toBe(WEIGHTS.expected.weightsHash)
  })

  it('drops a replica that serves a corrupted chunk, re-queues its chunks and completes from another', async () => {
    // the bad replica computes its hashes from the right values, then its bytes change under it
    const badContent = copyContent(WEIGHTS.content)
    const bad = await replica({ provider: () => badContent })
    // warm its digest cache with the correct bytes through a manifest request
    const warm = await fetchFrom([bad.host], WEIGHTS)
    expect(warm.weightsHash).toBe(WEIGHTS.expected.weightsHash)
    badContent.tensors.sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)))[0].data[5] += 1 // chunk 0

    const good = await replica({ provider: provider(WEIGHTS) })
    const events: WeightsTransferProgress[] = []
    const result = await fetchFrom([bad.host, good.host], WEIGHTS, { onProgress: (p) => events.push(p) })

    expect(result.weightsHash).toBe(WEIGHTS.expected.weightsHash)
    expect(result.misbehaving.map(p => p.toString())).toEqual([bad.host.peerId.toString()])
    expect(result.faults).toHaveLength(1)
    expect(result.faults[0]).toMatchObject({ kind: 'chunk-hash', misbehaved: true })
    expect(result.faults[0].error.name).toBe('ChunkHashMismatchError')
    expect(events.some(e => e.type === 'replica-dropped' && e.peer?.equals(bad.host.peerId))).toBe(true)
    // the good replica served whatever the bad one did not deliver correctly
    expect(result.chunksFetched.get(good.host.peerId.toString())).toBeGreaterThan(0)

    // alone, the corrupt replica cannot complete the transfer
    const err = await expectError(fetchFrom([bad.host], WEIGHTS))
    expect(err.name).toBe('NoReplicaError')
    expect(err.faults[0].kind).toBe('chunk-hash')
  })

  it('drops a replica whose manifest does not hash to the chunks root', async () => {
    // an evil server: a well-formed OK response whose manifest has one chunk hash changed
    const evil = await newHost()
    hosts.push(evil)
    const digest = digestChunks(WEIGHTS.content.tensors)
    await evil.handle(WEIGHTS_PROTOCOL, async (stream) => {
      const messages = messageStream(stream, { maxMessageSize: 4 << 20 })
      await messages.read(WeightsRequest)
      const hashes = digest.chunkHashes.map(h => h.slice())
      hashes[3][0] ^= 1
      await messages.write({
        status: Status.OK,
        message: '',
        chunkCount: 0,
        manifest: { tensors: spanLayout(CONFIG, ...ALL, 'weights').map(t => ({ name: t.name, shape: [...t.shape] })), totalBytes: digest.totalBytes, chunkSize: digest.chunkSize, chunkHashes: hashes, optimizerStep: 0 }
      }, WeightsResponse)
      await messages.close()
    })
    await client.dial(evil.getMultiaddrs())
    const good = await replica({ provider: provider(WEIGHTS) })

    const result = await fetchFrom([evil, good.host], WEIGHTS)
    expect(result.weightsHash).toBe(WEIGHTS.expected.weightsHash)
    expect(result.faults.map(f => [f.peer.toString(), f.kind, f.error.name])).toEqual([[evil.peerId.toString(), 'manifest', 'ManifestMismatchError']])
    expect(result.misbehaving.map(p => p.toString())).toEqual([evil.peerId.toString()])
  })

  it('steals the chunks of a slow replica', async () => {
    // the slow replica answers each request 60 s late (unless the requester goes away first)
    const slow = await replica({
      provider: async (req, options) => {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 60_000)
          options?.signal?.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
        })
        return provider(WEIGHTS)(req)
      }
    })
    const fast = await replica({ provider: provider(WEIGHTS) })
    const started = Date.now()
    // the fast replica serves the manifest; the slow one holds its first batches
    const result = await fetchFrom([fast.host, slow.host], WEIGHTS, { timeout: 90_000 })
    expect(result.weightsHash).toBe(WEIGHTS.expected.weightsHash)
    expect(result.chunksFetched.get(fast.host.peerId.toString())).toBe(WEIGHTS_CHUNKS)
    // the fast replica is never faulted (a loaded machine may time the slow one out before its chunks are stolen)
    expect(result.faults.filter(f => f.peer.equals(fast.host.peerId))).toEqual([])
    expect(Date.now() - started).toBeLessThan(55_000)
    // the abandoned streams are closed, so the slow server stops waiting
    await until(() => slow.server.stats.activeStreams === 0, 'the slow replica to notice the abandoned streams')
  })

  it('reports WeightsNotFoundError for spans no replica holds, and for another chunks root', async () => {
    const a = await replica({ provider: provider(SPAN) })
    const b = await replica({ provider: provider(SPAN) })

    const unknown = await expectError(fetchFrom([a.host, b.host], WEIGHTS))
    expect(unknown.name).toBe('WeightsNotFoundError')
    expect(unknown.faults.map(f => f.kind)).toEqual(['not-found', 'not-found'])
    expect(unknown.faults.every(f => !f.misbehaved)).toBe(true)

    const other = hold(1, 4, 'weights', 0, 99)
    const stale = await expectError(fetchFrom([a.host], other))
    expect(stale.name).toBe('WeightsNotFoundError')

    expect((await fetchFrom([a.host], SPAN)).weightsHash).toBe(SPAN.expected.weightsHash)
  })

  it('rejects malformed, oversized and over-limit requests with typed errors and keeps serving others', async () => {
    const a = await replica({ provider: provider(SPAN), maxChunksPerRequest: 4 })
    const root = Buffer.from(SPAN.expected.chunksRoot, 'hex')
    const request = (chunks: number[], extra: Partial<WeightsRequest> = {}): WeightsRequest => ({
      modelId: MODEL_ID, version: VERSION, start: 1, end: 4, part: Part.WEIGHTS, chunksRoot: root, wantManifest: false, chunks, ...extra
    })
    const ask = async (req: WeightsRequest): Promise<WeightsResponse> => {
      const messages = messageStream(await client.dialProtocol(a.host.peerId, WEIGHTS_PROTOCOL), { maxMessageSize: 4 << 20 })
      await messages.write(req, WeightsRequest)
      await messages.close()
      return messages.read(WeightsResponse)
    }

    expect((await ask(request([0, 1, 2, 3, 4]))).status).toBe(Status.BAD_REQUEST)
    expect((await ask(request([0, 1_000_000]))).status).toBe(Status.BAD_REQUEST)
    expect((await ask(request([1, 1]))).status).toBe(Status.BAD_REQUEST)
    expect((await ask(request([0], { chunksRoot: root.subarray(0, 31) }))).status).toBe(Status.BAD_REQUEST)
    expect((await ask(request([0], { start: 4, end: 4 }))).status).toBe(Status.BAD_REQUEST)
    expect((await ask(request([0], { modelId: 'x'.repeat(300) }))).status).toBe(Status.BAD_REQUEST)
    expect((await ask(request([0], { end: 5 }))).status).toBe(Status.NOT_FOUND)
    const ok = await ask(request([2], { wantManifest: true }))
    expect(ok.status).toBe(Status.OK)
    expect(ok.chunkCount).toBe(1)
    expect(ok.manifest?.chunkHashes).toHaveLength(digestChunks(SPAN.content.tensors).chunkHashes.length)

    // a body that is not a WeightsRequest, and a length prefix over the request cap: the stream is reset
    const failed = a.server.stats.failedStreams
    const garbage = await client.dialProtocol(a.host.peerId, WEIGHTS_PROTOCOL)
    garbage.send(Uint8Array.from([3, 0xff, 0xff, 0xff]))
    await garbage.close().catch(() => {})
    const huge = await client.dialProtocol(a.host.peerId, WEIGHTS_PROTOCOL)
    huge.send(Uint8Array.from([0x80, 0x80, 0x80, 0x01])) // 2 MiB
    await until(() => a.server.stats.failedStreams >= failed + 2, 'the server to reset both streams')

    // the client's typed view of a refusal: a replica that rejects its batches is dropped as 'rejected'
    const rejected = await expectError(fetchFrom([a.host], SPAN, { chunksPerRequest: 8 }))
    expect(rejected.name).toBe('NoReplicaError')
    expect(rejected.faults[0]).toMatchObject({ kind: 'rejected', misbehaved: false })
    expect(rejected.faults[0].error).toMatchObject({ name: 'RequestRejectedError', status: 'BAD_REQUEST' })
    expect(rejected.partial?.verified.size).toBe(0)

    // and it still serves well-formed requests
    expect((await fetchFrom([a.host], SPAN, { chunksPerRequest: 4 })).weightsHash).toBe(SPAN.expected.weightsHash)
  })

  it('answers BUSY beyond its stream limits, and the client retries', async () => {
    const a = await replica({ provider: provider(SPAN), maxStreamsPerPeer: 1, timeout: 60_000 })
    // hold the one allowed stream open: a request prefix whose body never comes
    const holder = await client.dialProtocol(a.host.peerId, WEIGHTS_PROTOCOL)
    holder.send(Uint8Array.from([50]))
    await until(() => a.server.stats.activeStreams === 1, 'the server to accept the first stream')

    const messages = messageStream(await client.dialProtocol(a.host.peerId, WEIGHTS_PROTOCOL))
    await messages.write({ modelId: MODEL_ID, version: VERSION, start: 1, end: 4, part: Part.WEIGHTS, chunksRoot: Buffer.from(SPAN.expected.chunksRoot, 'hex'), wantManifest: true, chunks: [] }, WeightsRequest)
    await messages.close()
    expect((await messages.read(WeightsResponse)).status).toBe(Status.BUSY)

    // the client waits out BUSY answers once the slot frees
    const fetching = fetchFrom([a.host], SPAN, { busyRetries: 1000, busyRetryDelay: 20, streamsPerPeer: 2 })
    await until(() => (a.server.stats.responses.BUSY ?? 0) >= 2, 'a BUSY answer to the fetch')
    holder.abort(new Error('done holding'))
    expect((await fetching).weightsHash).toBe(SPAN.expected.weightsHash)
  })

  it('reports WeightsHashMismatchError when the chunks match the root but not the weights hash', async () => {
    const a = await replica({ provider: provider(SPAN) })
    const err = await expectError(fetchFrom([a.host], { ...SPAN.expected, weightsHash: 'ab'.repeat(32) }))
    expect(err.name).toBe('WeightsHashMismatchError')
    expect(err.faults).toEqual([])
    expect(err.partial?.verified.size).toBe(err.partial?.manifest.chunkHashes.length)
    expect((await fetchFrom([a.host], SPAN)).weightsHash).toBe(SPAN.expected.weightsHash)
  })

  it('recomputes chunk hashes when the content changes, and keeps a bounded cache', async () => {
    let current = copyContent(SPAN.content)
    const a = await replica({ provider: (req) => req.start === 1 ? current : provider(WEIGHTS)(req), digestCacheSize: 1 })
    await fetchFrom([a.host], SPAN)
    await fetchFrom([a.host], SPAN)
    expect(a.server.stats.digestsComputed).toBe(1)
    // new arrays (same values): hashed again
    current = copyContent(SPAN.content)
    await fetchFrom([a.host], SPAN)
    expect(a.server.stats.digestsComputed).toBe(2)
    // a second content evicts the first from a cache of one
    await fetchFrom([a.host], WEIGHTS)
    await fetchFrom([a.host], SPAN)
    expect(a.server.stats.digestsComputed).toBe(4)
  })

  it('completes when the helper thread stops mid-fetch (the chunks it held are fetched again here)', async () => {
    const a = await replica({ provider: provider(WEIGHTS) })
    let stopped: Promise<void> | undefined
    const events: WeightsTransferProgress[] = []
    const result = await fetchFrom([a.host], WEIGHTS, {
      onProgress: (p) => {
        events.push(p)
        if (p.type === 'chunk' && p.chunksDone === 3) stopped ??= stopHashThread()
      }
    })
    await stopped

    expect(stopped).toBeDefined()
    expect(result.weightsHash).toBe(WEIGHTS.expected.weightsHash)
    for (const t of WEIGHTS.content.tensors) {
      expect(Buffer.from(result.tensors.get(t.name)!.buffer).equals(Buffer.from(t.data.buffer))).toBe(true)
    }
    expect(events.at(-1)).toMatchObject({ chunksDone: WEIGHTS_CHUNKS, chunksTotal: WEIGHTS_CHUNKS })
  })

  it('checks its arguments', async () => {
    const a = await replica({ provider: provider(SPAN) })
    await expect(fetchFrom([a.host], { ...SPAN.expected, chunksRoot: 'nothex' })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(fetchFrom([a.host], { ...SPAN.expected, start: 3, end: 3 })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(fetchFrom([a.host], { ...SPAN.expected, end: 99 })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(fetchFrom([], SPAN)).rejects.toMatchObject({ name: 'NoReplicaError' })
  })
})
