/**
 * The canonical byte stream of a span part, its chunk hashes and chunks root
 * (specs/layer-pool/transfer.md, "Definitions").
 */

import { createHash } from 'node:crypto'
import { InvalidParametersError } from '@neuroshard/interface'
import { compareNames, contentHash, float32AsBytes } from '@neuroshard/model'
import { CHUNK_SIZE, CHUNKS_ROOT_DOMAIN, HASH_BYTES } from './constants.js'
import { InvalidSpanContentError } from './errors.js'

/** One F32 tensor of a span part */
export interface SpanTensor {
  name: string
  shape: readonly number[]
  data: Float32Array
}

/** Name and shape of a tensor, without its values */
export interface TensorLayout {
  name: string
  shape: readonly number[]
}

/** The chunk hashes and root of a canonical byte stream */
export interface ChunkDigest {
  /** Bytes of the canonical stream */
  totalBytes: number
  /** Chunk size the stream was split with */
  chunkSize: number
  /** sha256 of each chunk (32 bytes each) */
  chunkHashes: Array<Uint8Array<ArrayBuffer>>
  /** sha256 over the domain tag, chunk size, total bytes and chunk hashes (32 bytes) */
  chunksRoot: Uint8Array<ArrayBuffer>
}

/** Number of chunks of a stream of `totalBytes` bytes (0 for an empty stream) */
export function chunkCount (totalBytes: number, chunkSize: number = CHUNK_SIZE): number {
  return Math.ceil(totalBytes / chunkSize)
}

/** Byte length of chunk `index` of a stream of `totalBytes` bytes */
export function chunkLength (index: number, totalBytes: number, chunkSize: number = CHUNK_SIZE): number {
  return Math.min(chunkSize, totalBytes - index * chunkSize)
}

/** Elements of a tensor of `shape`; throws unless every dimension is a non-negative safe integer */
export function elementCount (shape: readonly number[]): number {
  let n = 1

  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new InvalidSpanContentError(`invalid dimension ${String(d)} in shape ${JSON.stringify(shape)}`)
    }

    n *= d

    if (!Number.isSafeInteger(n)) {
      throw new InvalidSpanContentError(`shape ${JSON.stringify(shape)} has more elements than a safe integer`)
    }
  }

  return n
}

/**
 * Tensors in canonical (byte-wise name) order. Throws `InvalidSpanContentError` on a duplicate name
 * or a tensor whose data length does not match its shape.
 */
export function canonicalTensors<T extends TensorLayout & { data?: Float32Array }> (tensors: Iterable<T>): T[] {
  const list = [...tensors].sort((a, b) => compareNames(a.name, b.name))

  for (let i = 0; i < list.length; i++) {
    const t = list[i]

    if (i > 0 && list[i - 1].name === t.name) {
      throw new InvalidSpanContentError(`duplicate tensor name ${t.name}`)
    }

    const n = elementCount(t.shape)

    if (t.data != null && (!(t.data instanceof Float32Array) || t.data.length !== n)) {
      throw new InvalidSpanContentError(`tensor ${t.name}: expected a Float32Array of ${n} elements for shape ${JSON.stringify(t.shape)}`)
    }
  }

  return list
}

/** Total bytes of the canonical stream of tensors of these shapes (F32) */
export function streamBytes (tensors: Iterable<TensorLayout>): number {
  let total = 0

  for (const t of tensors) {
    total += elementCount(t.shape) * 4

    if (!Number.isSafeInteger(total)) {
      throw new InvalidSpanContentError('the span is larger than a safe integer of bytes')
    }
  }

  return total
}

function assertChunkSize (chunkSize: number): void {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1 || chunkSize > 2 ** 32 - 1) {
    throw new InvalidParametersError(`chunk size must be an integer in [1, 2^32), got ${String(chunkSize)}`)
  }
}

/**
 * The chunks root: sha256( utf8("neuroshard/layer-pool/chunks/v1") ‖ 0x00 ‖ u32le(chunkSize) ‖
 * u64le(totalBytes) ‖ chunkHash[0] ‖ chunkHash[1] ‖ … ).
 */
export function computeChunksRoot (totalBytes: number, chunkHashes: readonly Uint8Array[], chunkSize: number = CHUNK_SIZE): Uint8Array<ArrayBuffer> {
  assertChunkSize(chunkSize)
  const header = Buffer.alloc(12)
  header.writeUInt32LE(chunkSize, 0)
  header.writeBigUInt64LE(BigInt(totalBytes), 4)
  const h = createHash('sha256')
  h.update(CHUNKS_ROOT_DOMAIN, 'utf8').update(Buffer.of(0)).update(header)

  for (const c of chunkHashes) {
    if (c.byteLength !== HASH_BYTES) {
      throw new InvalidParametersError(`a chunk hash is ${HASH_BYTES} bytes, got ${c.byteLength}`)
    }

    h.update(c)
  }

  return new Uint8Array(h.digest())
}

/** sha256 of one chunk, given whole or as the pieces it arrived in (e.g. a `Uint8ArrayList`) */
export function hashChunk (bytes: Uint8Array | Iterable<Uint8Array>): Uint8Array<ArrayBuffer> {
  const h = createHash('sha256')

  if (bytes instanceof Uint8Array) {
    h.update(bytes)
  } else {
    for (const piece of bytes) {
      h.update(piece)
    }
  }

  return new Uint8Array(h.digest())
}

/**
 * Reads chunks of the canonical stream of tensors (already in canonical order) without building
 * the whole stream: a chunk inside one tensor is a view of its data; one spanning tensors is a copy
 * from `chunk()`, or the list of views from `pieces()`.
 */
export class ChunkReader {
  readonly totalBytes: number
  readonly chunkSize: number
  readonly chunkCount: number
  private readonly parts: Uint8Array[]
  /** Byte offset of each part in the stream, plus the total at the end */
  private readonly offsets: number[]

  constructor (tensors: ReadonlyArray<{ data: Float32Array }>, chunkSize: number = CHUNK_SIZE) {
    assertChunkSize(chunkSize)
    this.chunkSize = chunkSize
    this.parts = tensors.map(t => float32AsBytes(t.data)).filter(p => p.byteLength > 0)
    this.offsets = [0]

    for (const p of this.parts) {
      this.offsets.push(this.offsets[this.offsets.length - 1] + p.byteLength)
    }

    this.totalBytes = this.offsets[this.offsets.length - 1]
    this.chunkCount = chunkCount(this.totalBytes, chunkSize)
  }

  /** The bytes of chunk `index` (a view where possible: do not modify) */
  chunk (index: number): Uint8Array {
    const pieces = this.pieces(index)

    if (pieces.length === 1) {
      return pieces[0]
    }

    const out = new Uint8Array(pieces.reduce((n, p) => n + p.byteLength, 0))
    let at = 0

    for (const piece of pieces) {
      out.set(piece, at)
      at += piece.byteLength
    }

    return out
  }

  /**
   * The bytes of chunk `index` as views of the tensors' data, in stream order: one view, or several
   * where the chunk spans tensors. Never a copy (do not modify).
   */
  pieces (index: number): Uint8Array[] {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.chunkCount) {
      throw new RangeError(`chunk ${index} out of range [0, ${this.chunkCount})`)
    }

    const begin = index * this.chunkSize
    const end = Math.min(begin + this.chunkSize, this.totalBytes)
    const out: Uint8Array[] = []

    for (let i = this.partAt(begin), pos = begin; pos < end; i++) {
      const part = this.parts[i]
      const from = pos - this.offsets[i]
      const to = Math.min(part.byteLength, end - this.offsets[i])
      out.push(part.subarray(from, to))
      pos += to - from
    }

    return out
  }

  /** Index of the part holding stream byte `pos` (binary search) */
  private partAt (pos: number): number {
    let lo = 0
    let hi = this.parts.length - 1

    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1

      if (this.offsets[mid] <= pos) {
        lo = mid
      } else {
        hi = mid - 1
      }
    }

    return lo
  }
}

export interface DigestOptions {
  /** @default CHUNK_SIZE (1 MiB) */
  chunkSize?: number
  /** Abort between chunks */
  signal?: AbortSignal
  /** Hash this many chunks, then yield to the event loop (async variant only) @default 16 */
  yieldEvery?: number
}

/**
 * Chunk hashes and chunks root of tensors (any order: they are put in canonical order first).
 * Synchronous; {@link digestChunksAsync} yields to the event loop on large inputs.
 */
export function digestChunks (tensors: Iterable<SpanTensor>, options: DigestOptions = {}): ChunkDigest {
  const reader = new ChunkReader(canonicalTensors(tensors), options.chunkSize)
  const chunkHashes: Array<Uint8Array<ArrayBuffer>> = []

  for (let i = 0; i < reader.chunkCount; i++) {
    chunkHashes.push(hashChunk(reader.pieces(i)))
  }

  return { totalBytes: reader.totalBytes, chunkSize: reader.chunkSize, chunkHashes, chunksRoot: computeChunksRoot(reader.totalBytes, chunkHashes, reader.chunkSize) }
}

/** {@link digestChunks} that yields to the event loop every `yieldEvery` chunks and honours `signal` */
export async function digestChunksAsync (tensors: Iterable<SpanTensor>, options: DigestOptions = {}): Promise<ChunkDigest> {
  const reader = new ChunkReader(canonicalTensors(tensors), options.chunkSize)
  const yieldEvery = Math.max(1, options.yieldEvery ?? 16)
  const chunkHashes: Array<Uint8Array<ArrayBuffer>> = []

  for (let i = 0; i < reader.chunkCount; i++) {
    if (i > 0 && i % yieldEvery === 0) {
      await new Promise<void>(resolve => setImmediate(resolve))
    }

    options.signal?.throwIfAborted()
    chunkHashes.push(hashChunk(reader.pieces(i)))
  }

  return { totalBytes: reader.totalBytes, chunkSize: reader.chunkSize, chunkHashes, chunksRoot: computeChunksRoot(reader.totalBytes, chunkHashes, reader.chunkSize) }
}

/** The canonical byte stream as one buffer (tests and small spans; the transfer never builds it) */
export function canonicalStream (tensors: Iterable<SpanTensor>): Uint8Array {
  const list = canonicalTensors(tensors)
  const out = new Uint8Array(streamBytes(list))
  let at = 0

  for (const t of list) {
    out.set(float32AsBytes(t.data), at)
    at += t.data.byteLength
  }

  return out
}

/**
 * The inverse: tensors of `layout` (in canonical order) as Float32Array views of `stream`, the
 * concatenated verified chunks. `stream.byteOffset` must be a multiple of 4 (it is copied otherwise).
 */
export function assembleTensors (layout: readonly TensorLayout[], stream: Uint8Array): Map<string, Float32Array> {
  const list = canonicalTensors(layout)
  const total = streamBytes(list)

  if (stream.byteLength !== total) {
    throw new InvalidSpanContentError(`the stream holds ${stream.byteLength} bytes, the layout needs ${total}`)
  }

  const bytes = stream.byteOffset % 4 === 0 ? stream : stream.slice()
  const out = new Map<string, Float32Array>()
  let at = 0

  for (const t of list) {
    const n = elementCount(t.shape)
    out.set(t.name, new Float32Array(bytes.buffer, bytes.byteOffset + at, n))
    at += n * 4
  }

  return out
}

/** Bytes of a span's canonical stream that can be read back a range at a time (a `Uint8Array` is one) */
export interface StreamBytes {
  readonly byteLength: number
  /** The bytes [begin, end); a `SegmentedStream` serves only ranges within one tensor */
  subarray(begin: number, end: number): Uint8Array
}

/**
 * A span's canonical stream held in one new buffer per tensor instead of one buffer for the whole span.
 * Why: a buffer larger than the C allocator's mmap threshold (32 MiB at most with glibc) is fresh memory
 * every time, and its first writes page-fault (on the benchmark VM that cost more than receiving the bytes);
 * per-tensor buffers are mostly below it, so a process that frees and receives weights reuses heap memory
 * it already touched. The tensors of the result are the segments themselves, nothing is copied again.
 */
export class SegmentedStream implements StreamBytes {
  readonly byteLength: number
  private readonly names: string[] = []
  private readonly segments: Uint8Array<ArrayBuffer>[] = []
  /** Stream offset of each segment, ascending */
  private readonly starts: number[] = []
  /** Segment of the last write: writes arrive mostly in stream order */
  private last = 0

  /** `buffers`: one per tensor in canonical order, of its size (e.g. filled elsewhere); by default new ones */
  constructor (layout: readonly TensorLayout[], buffers?: readonly ArrayBuffer[]) {
    let at = 0
    const tensors = canonicalTensors(layout)

    if (buffers != null && buffers.length !== tensors.length) {
      throw new RangeError(`${buffers.length} buffers for ${tensors.length} tensors`)
    }

    for (const [i, t] of tensors.entries()) {
      const bytes = elementCount(t.shape) * 4
      this.names.push(t.name)

      if (buffers != null) {
        if (buffers[i].byteLength !== bytes) {
          throw new RangeError(`buffer ${i} has ${buffers[i].byteLength} bytes, tensor ${t.name} needs ${bytes}`)
        }

        this.segments.push(new Uint8Array(buffers[i]))
      } else {
        // not zero-filled: every byte is written by a verified chunk before a tensor is handed out, and zeroing
        // memory the allocator reuses is one more pass over the span (calloc)
        const segment = Buffer.allocUnsafeSlow(bytes)
        this.segments.push(new Uint8Array(segment.buffer, segment.byteOffset, bytes))
      }

      this.starts.push(at)
      at += bytes
    }

    this.byteLength = at
  }

  /** A stream over buffers filled elsewhere (one per tensor in canonical order) */
  static fromBuffers (layout: readonly TensorLayout[], buffers: readonly ArrayBuffer[]): SegmentedStream {
    return new SegmentedStream(layout, buffers)
  }

  /** Copy `bytes` to stream offset `at`, across tensor boundaries if it spans them */
  set (bytes: Uint8Array, at: number): void {
    if (at < 0 || at + bytes.byteLength > this.byteLength) {
      throw new RangeError(`bytes [${at}, ${at + bytes.byteLength}) outside a stream of ${this.byteLength}`)
    }

    let i = this.find(at)
    let done = 0

    while (done < bytes.byteLength) {
      const seg = this.segments[i]
      const offset = at + done - this.starts[i]
      const n = Math.min(seg.byteLength - offset, bytes.byteLength - done)

      if (n > 0) {
        seg.set(n === bytes.byteLength ? bytes : bytes.subarray(done, done + n), offset)
        done += n
      }

      if (done < bytes.byteLength) {
        i++
      }
    }

    this.last = i
  }

  subarray (begin: number, end: number): Uint8Array {
    const i = this.find(begin)
    const start = begin - this.starts[i]

    if (end - this.starts[i] > this.segments[i].byteLength) {
      throw new RangeError(`bytes [${begin}, ${end}) span tensors of a segmented stream`)
    }

    return this.segments[i].subarray(start, end - this.starts[i])
  }

  /** The whole stream as one new buffer (a partial transfer's resume state) */
  join (): Uint8Array {
    const out = new Uint8Array(this.byteLength)

    for (let i = 0; i < this.segments.length; i++) {
      out.set(this.segments[i], this.starts[i])
    }

    return out
  }

  /** The tensors, by name: each is its segment's buffer */
  tensors (): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>()

    for (let i = 0; i < this.segments.length; i++) {
      out.set(this.names[i], new Float32Array(this.segments[i].buffer, 0, this.segments[i].byteLength / 4))
    }

    return out
  }

  /** Index of the segment holding stream offset `at` (the last non-empty one that starts at or before it) */
  private find (at: number): number {
    const fits = (i: number): boolean => this.starts[i] <= at && at < this.starts[i] + this.segments[i].byteLength

    if (this.last < this.segments.length && fits(this.last)) {
      return this.last
    }

    let lo = 0
    let hi = this.starts.length - 1

    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1

      if (this.starts[mid] <= at) {
        lo = mid
      } else {
        hi = mid - 1
      }
    }

    // empty tensors share their start with the next one: step back to the segment that holds `at`
    while (lo > 0 && this.segments[lo].byteLength === 0) {
      lo--
    }

    return lo
  }
}

/** `contentHash` (lowercase hex, the weights hash) of F32 tensors */
export function tensorsContentHash (tensors: Iterable<SpanTensor>): string {
  return contentHash([...tensors].map(t => ({ name: t.name, dtype: 'F32', shape: t.shape, data: float32AsBytes(t.data) })))
}
