import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { initShardParameters, parametersHash, preset, shardParameters } from '@neuroshard/model'
import { describe, expect, it } from 'vitest'
import { Chunk } from '../src/pb/transfer.js'
import { encodeChunk } from '../src/transfer/server.js'
import {
  ChunkReader, assembleTensors, canonicalStream, chunkCount, computeChunksRoot, digestChunks, digestChunksAsync, spanLayout,
  spanParameters, tensorsContentHash, toHex
} from '../src/transfer/index.js'
import { SegmentedStream } from '../src/transfer/chunks.js'
import { spanRoles } from '../src/transfer/span.js'
import type { SpanTensor } from '../src/transfer/index.js'
import type { ModelConfig } from '@neuroshard/model'

interface VectorCase {
  name: string
  chunkSize: number
  tensors: Array<{ name: string, shape: number[], values: number[] }>
  canonicalOrder: string[]
  totalBytes: number
  stream: string
  chunkHashes: string[]
  chunksRoot: string
  weightsHash: string
}

const vectors = JSON.parse(readFileSync(new URL('../../../specs/layer-pool/vectors/chunks.json', import.meta.url), 'utf8')) as { chunksRootDomain: string, cases: VectorCase[] }

function tensorsOf (c: VectorCase): SpanTensor[] {
  return c.tensors.map(t => ({ name: t.name, shape: t.shape, data: Float32Array.from(t.values) }))
}

describe('chunks: specs/layer-pool/vectors/chunks.json', () => {
  it('has cases', () => {
    expect(vectors.chunksRootDomain).toBe('neuroshard/layer-pool/chunks/v1')
    expect(vectors.cases.length).toBeGreaterThanOrEqual(4)
  })

  for (const c of vectors.cases) {
    it(c.name, async () => {
      const tensors = tensorsOf(c)
      expect(toHex(canonicalStream(tensors))).toBe(c.stream)
      const digest = digestChunks(tensors, { chunkSize: c.chunkSize })
      expect(digest.totalBytes).toBe(c.totalBytes)
      expect(digest.chunkHashes.map(toHex)).toEqual(c.chunkHashes)
      expect(toHex(digest.chunksRoot)).toBe(c.chunksRoot)
      expect(toHex((await digestChunksAsync(tensors, { chunkSize: c.chunkSize, yieldEvery: 1 })).chunksRoot)).toBe(c.chunksRoot)
      expect(tensorsContentHash(tensors)).toBe(c.weightsHash)

      // the inverse: tensors from the stream, in canonical order, equal to the inputs
      const stream = Buffer.from(c.stream, 'hex')
      const assembled = assembleTensors(c.tensors, new Uint8Array(stream.buffer, stream.byteOffset, stream.byteLength))
      expect([...assembled.keys()]).toEqual(c.canonicalOrder)
      for (const t of c.tensors) {
        expect([...assembled.get(t.name)!]).toEqual([...Float32Array.from(t.values)])
      }
    })
  }

  it('a changed chunk size, total or chunk hash changes the root', () => {
    const c = vectors.cases[0]
    const hashes = c.chunkHashes.map(h => Buffer.from(h, 'hex'))
    expect(toHex(computeChunksRoot(c.totalBytes, hashes, c.chunkSize))).toBe(c.chunksRoot)
    expect(toHex(computeChunksRoot(c.totalBytes, hashes, c.chunkSize + 1))).not.toBe(c.chunksRoot)
    expect(toHex(computeChunksRoot(c.totalBytes + 1, hashes, c.chunkSize))).not.toBe(c.chunksRoot)
    const altered = hashes.map(h => Buffer.from(h))
    altered[1][0] ^= 1
    expect(toHex(computeChunksRoot(c.totalBytes, altered, c.chunkSize))).not.toBe(c.chunksRoot)
  })
})

describe('chunks: reader', () => {
  /** Tensors of awkward sizes so chunks start and end inside tensors and span several */
  const tensors: SpanTensor[] = [7, 1, 0, 300, 33, 2048, 5].map((n, i) => ({
    name: `t${String.fromCharCode(122 - i)}`,
    shape: [n],
    data: Float32Array.from({ length: n }, (_, j) => i * 1000 + j * 0.5)
  }))

  for (const chunkSize of [1, 3, 4, 64, 1000, 4096, 1 << 20]) {
    it(`chunk size ${chunkSize}: chunks are the slices of the canonical stream`, () => {
      const stream = canonicalStream(tensors)
      const reader = new ChunkReader(tensors.slice().sort((a, b) => a.name < b.name ? -1 : 1), chunkSize)
      expect(reader.totalBytes).toBe(stream.byteLength)
      expect(reader.chunkCount).toBe(chunkCount(stream.byteLength, chunkSize))

      const hashes: Uint8Array[] = []
      let spanning = 0
      for (let i = 0; i < reader.chunkCount; i++) {
        const chunk = reader.chunk(i)
        expect(Buffer.from(chunk).equals(Buffer.from(stream.subarray(i * chunkSize, (i + 1) * chunkSize)))).toBe(true)
        hashes.push(createHash('sha256').update(chunk).digest())
        // the same bytes as views of the tensors' own memory, never empty
        const pieces = reader.pieces(i)
        expect(Buffer.concat(pieces).equals(Buffer.from(chunk))).toBe(true)
        expect(pieces.every(p => p.byteLength > 0 && tensors.some(t => t.data.buffer === p.buffer))).toBe(true)
        spanning += pieces.length > 1 ? 1 : 0
      }
      // chunk sizes beyond the smallest tensor make chunks that span tensors
      if (chunkSize >= 64) expect(spanning).toBeGreaterThan(0)
      expect(toHex(digestChunks(tensors, { chunkSize }).chunksRoot)).toBe(toHex(computeChunksRoot(stream.byteLength, hashes, chunkSize)))
    })
  }

  it('rejects duplicate names and data that does not match the shape', () => {
    const a = { name: 'a', shape: [2], data: new Float32Array(2) }
    expect(() => digestChunks([a, { ...a }])).toThrow(expect.objectContaining({ name: 'InvalidSpanContentError' }))
    expect(() => digestChunks([{ name: 'a', shape: [3], data: new Float32Array(2) }])).toThrow(expect.objectContaining({ name: 'InvalidSpanContentError' }))
    expect(() => digestChunks([{ name: 'a', shape: [-1], data: new Float32Array(0) }])).toThrow(expect.objectContaining({ name: 'InvalidSpanContentError' }))
  })

  it('encodes a chunk message that the generated codec decodes', () => {
    for (const [index, length] of [[0, 0], [0, 5], [127, 128], [128, 1 << 20], [300_000, 3]]) {
      const data = Uint8Array.from({ length }, (_, i) => i * 7)
      const decoded = Chunk.decode(encodeChunk(index, data).subarray())
      expect(decoded.index).toBe(index)
      expect(Buffer.from(decoded.data).equals(Buffer.from(data))).toBe(true)
      // the same bytes protons writes (it omits index 0, which decodes the same)
      if (index > 0 && length > 0) {
        expect(toHex(encodeChunk(index, data).subarray())).toBe(toHex(Chunk.encode({ index, data })))
        // given in pieces: the same bytes
        const cut = Math.floor(length / 3)
        expect(toHex(encodeChunk(index, [data.subarray(0, cut), data.subarray(cut, 2 * cut), data.subarray(2 * cut)]).subarray())).toBe(toHex(Chunk.encode({ index, data })))
      }
    }
  })
})

describe('chunks: segmented stream (one new buffer per tensor)', () => {
  // sizes that make writes start and end inside tensors, cross several, and meet an empty tensor
  const tensors: SpanTensor[] = [7, 1, 0, 300, 33, 2048, 5].map((n, i) => ({
    name: `t${String.fromCharCode(122 - i)}`,
    shape: [n],
    data: Float32Array.from({ length: n }, (_, j) => i * 1000 + j * 0.5 + 0.25)
  }))
  const stream = canonicalStream(tensors)

  for (const piece of [1, 3, 64, 1000, stream.byteLength]) {
    it(`pieces of ${piece} bytes written out of order land where a contiguous stream has them`, () => {
      const seg = new SegmentedStream(tensors)
      expect(seg.byteLength).toBe(stream.byteLength)
      const starts: number[] = []
      for (let at = 0; at < stream.byteLength; at += piece) starts.push(at)
      // last piece first, then the rest from the front: the write cursor has to jump both ways
      for (const at of [starts[starts.length - 1], ...starts.slice(0, -1)]) seg.set(stream.subarray(at, at + piece), at)
      expect(Buffer.from(seg.join()).equals(Buffer.from(stream))).toBe(true)
      const byName = assembleTensors(tensors, stream)
      const mine = seg.tensors()
      expect([...mine.keys()].sort()).toEqual([...byName.keys()].sort())
      for (const [name, data] of byName) {
        expect(Array.from(mine.get(name)!)).toEqual(Array.from(data))
        // each tensor owns its buffer (nothing shares the span's memory)
        expect(mine.get(name)!.byteLength).toBe(mine.get(name)!.buffer.byteLength)
      }
    })
  }

  it('reads back ranges within a tensor, refuses ranges across tensors and writes outside the stream', () => {
    const seg = new SegmentedStream(tensors)
    seg.set(stream, 0)
    expect(Buffer.from(seg.subarray(28, 32)).equals(Buffer.from(stream.subarray(28, 32)))).toBe(true)
    expect(Buffer.from(seg.subarray(40, 1240)).equals(Buffer.from(stream.subarray(40, 1240)))).toBe(true)
    expect(() => seg.subarray(16, 24)).toThrow(RangeError) // the end of tt and the start of tu
    expect(() => { seg.set(new Uint8Array(2), stream.byteLength - 1) }).toThrow(RangeError)
    expect(() => { seg.set(new Uint8Array(1), -1) }).toThrow(RangeError)
  })
})

describe('span layout', () => {
  const tied: ModelConfig = { ...preset('tiny'), tieEmbeddings: true }
  const untied = preset('tiny')
  const L = untied.nLayers

  it('maps slots to roles: 0 = embed, 1..L = blocks, L + 1 = head', () => {
    expect(spanRoles(untied, 0, 1)).toEqual([{ kind: 'embed' }])
    expect(spanRoles(untied, 1, 2)).toEqual([{ kind: 'blocks', start: 0, end: 1 }])
    expect(spanRoles(untied, L + 1, L + 2)).toEqual([{ kind: 'head' }])
    expect(spanRoles(untied, 0, L + 2)).toEqual([{ kind: 'embed' }, { kind: 'blocks', start: 0, end: L }, { kind: 'head' }])
    expect(() => spanRoles(untied, 1, 1)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => spanRoles(untied, 0, L + 3)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => spanRoles(untied, -1, 1)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })

  it('lists a tied embedding once', () => {
    const names = spanParameters(tied, 0, L + 2).map(p => p.name)
    expect(names.filter(n => n === 'embed.weight')).toHaveLength(1)
    expect(names).not.toContain('lm_head.weight')
    expect(new Set(names).size).toBe(names.length)
    expect(spanParameters(untied, 0, L + 2).map(p => p.name)).toContain('lm_head.weight')
  })

  it('names optimizer state adam.m.<param> and adam.v.<param> with the same shapes', () => {
    const weights = spanLayout(untied, 1, 2, 'weights')
    const optimizer = spanLayout(untied, 1, 2, 'optimizer')
    expect(optimizer).toHaveLength(weights.length * 2)
    for (const w of weights) {
      expect(optimizer.find(t => t.name === `adam.m.${w.name}`)?.shape).toEqual(w.shape)
      expect(optimizer.find(t => t.name === `adam.v.${w.name}`)?.shape).toEqual(w.shape)
    }
  })

  it('the weights hash of a one-role span is the model package\'s parametersHash', () => {
    for (const [start, end, role] of [[0, 1, { kind: 'embed' }], [1, L + 1, { kind: 'blocks', start: 0, end: L }], [L + 1, L + 2, { kind: 'head' }]] as const) {
      const params = initShardParameters(tied, role, 7)
      const tensors = shardParameters(tied, role).map(p => ({ name: p.name, shape: p.shape, data: params.get(p.name)! }))
      expect(spanLayout(tied, start, end, 'weights').map(t => t.name)).toEqual(tensors.map(t => t.name).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))))
      expect(tensorsContentHash(tensors)).toBe(parametersHash(tied, role, params))
    }
  })
})
