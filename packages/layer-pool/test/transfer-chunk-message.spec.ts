import { describe, expect, it } from 'vitest'
import { Uint8ArrayList } from 'uint8arraylist'
import { Chunk } from '../src/pb/transfer.js'
import { decodeChunkList } from '../src/transfer/chunk-message.js'
import { hashChunk } from '../src/transfer/index.js'
import { encodeChunk } from '../src/transfer/server.js'
import { createHash } from 'node:crypto'

/** `bytes` cut into pieces of the given sizes (the last piece takes the rest) */
function split (bytes: Uint8Array, sizes: number[]): Uint8ArrayList {
  const list = new Uint8ArrayList()
  let at = 0
  for (const size of sizes) {
    if (at >= bytes.byteLength) break
    // each piece in its own ArrayBuffer, as transport buffers are
    list.append(bytes.slice(at, at + size))
    at += size
  }
  if (at < bytes.byteLength) list.append(bytes.slice(at))
  return list
}

const SPLITS: number[][] = [[], [1], [1, 1, 1, 1], [3, 7, 2, 100], [2, 0, 5, 0, 65_519], [65_519, 65_519]]

/** Hand-written protobuf pieces (tag bytes: index = 0x08, data = 0x12) */
function varint (value: number): number[] {
  const out: number[] = []
  while (value >= 0x80) { out.push((value % 0x80) | 0x80); value = Math.floor(value / 0x80) }
  out.push(value)
  return out
}

describe('chunk message decoding from a list of pieces', () => {
  it('decodes what protons and encodeChunk write, however the body is split, like the generated codec', () => {
    for (const [index, length] of [[0, 0], [0, 5], [1, 1], [127, 128], [128, 200_000], [300_000, 3], [2 ** 32 - 1, 17]]) {
      const data = Uint8Array.from({ length }, (_, i) => (i * 7 + index) % 256)
      for (const encoded of [Chunk.encode({ index, data }), encodeChunk(index, data).subarray()]) {
        const reference = Chunk.decode(encoded)
        for (const sizes of SPLITS) {
          const frame = decodeChunkList(split(encoded, sizes))
          expect(frame.index).toBe(reference.index)
          expect(frame.index).toBe(index)
          expect(Buffer.from(frame.data.subarray()).equals(Buffer.from(data))).toBe(true)
          expect(frame.data.byteLength).toBe(length)
        }
      }
    }
  })

  it('hands the data back as views of the pieces, not a copy, and hashes them piecewise', () => {
    const data = Uint8Array.from({ length: 200_000 }, (_, i) => i % 251)
    const body = split(Chunk.encode({ index: 9, data }), [5, 65_519, 65_519, 1000])
    const inputs = [...body]
    const frame = decodeChunkList(body)
    const pieces = [...frame.data]
    expect(pieces.length).toBeGreaterThan(1)
    expect(pieces.every(p => inputs.some(q => q.buffer === p.buffer))).toBe(true)
    expect(toHexOf(hashChunk(frame.data))).toBe(createHash('sha256').update(data).digest('hex'))
    expect(toHexOf(hashChunk(data))).toBe(createHash('sha256').update(data).digest('hex'))
  })

  it('accepts fields in any order, repeated fields (last wins) and unknown fields of every wire type, as the generated codec does', () => {
    const data = Uint8Array.of(1, 2, 3, 4, 5)
    const cases: number[][] = [
      // data before index
      [0x12, 5, ...data, 0x08, ...varint(77)],
      // index twice, data twice: the last of each wins
      [0x08, 1, 0x12, 2, 9, 9, 0x08, ...varint(77), 0x12, 5, ...data],
      // unknown fields: 3 varint, 4 fixed64, 5 length-delimited, 6 fixed32, then a large field number
      [0x18, 0x96, 0x01, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2a, 3, 7, 7, 7, 0x35, 1, 2, 3, 4, 0x08, ...varint(77), 0x12, 5, ...data, ...varint((1000 << 3) | 0), 1]
    ]
    for (const bytes of cases) {
      const encoded = Uint8Array.from(bytes)
      const reference = Chunk.decode(encoded)
      for (const sizes of SPLITS) {
        const frame = decodeChunkList(split(encoded, sizes))
        expect(frame.index).toBe(reference.index)
        expect(frame.index).toBe(77)
        expect([...frame.data.subarray()]).toEqual([...reference.data])
        expect([...frame.data.subarray()]).toEqual([...data])
      }
    }
  })

  it('refuses malformed messages with MalformedMessageError', () => {
    const cases: Array<[string, number[]]> = [
      ['a varint cut short', [0x08, 0x80]],
      ['a tag cut short', [0x12, 1, 0, 0x88]],
      ['data longer than the body', [0x12, 5, 1, 2, 3, 4]],
      ['index as length-delimited', [0x0a, 1, 0]],
      ['data as a varint', [0x10, 1]],
      ['a group', [0x1b, 0x1c]],
      ['field number 0', [0x00, 1]],
      ['an index beyond uint32', [0x08, ...varint(2 ** 32)]],
      ['an 11-byte varint', [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]],
      ['an unknown fixed64 cut short', [0x21, 1, 2, 3]],
      ['an unknown length-delimited field past the end', [0x2a, 9, 1]]
    ]
    for (const [what, bytes] of cases) {
      for (const sizes of SPLITS) {
        expect(() => decodeChunkList(split(Uint8Array.from(bytes), sizes)), what).toThrow(expect.objectContaining({ name: 'MalformedMessageError' }))
      }
    }
  })
})

function toHexOf (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}
