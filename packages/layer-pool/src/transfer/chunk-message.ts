/**
 * The `Chunk` message (specs/layer-pool/transfer.md, "Wire format") read straight from the pieces a
 * message body arrived in: the data field comes back as a list of views of those pieces, so a 1 MiB
 * chunk is hashed and copied to its place without first being joined into a new buffer.
 */

import { MalformedMessageError } from '@neuroshard/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/** A decoded `Chunk { uint32 index = 1; bytes data = 2; }` */
export interface ChunkFrame {
  index: number
  /** Views of the body's pieces (no copy) */
  data: Uint8ArrayList
}

const MAX_UINT32 = 2 ** 32 - 1

/**
 * Decode a `Chunk` message body as protobuf does (fields in any order, a repeated field's last
 * value wins, unknown fields skipped, an absent index is 0, absent data empty) without copying the
 * data. Throws `MalformedMessageError` on a truncated field, a length beyond the body, a wire type
 * that does not match the field, a group, or an index beyond uint32.
 */
export function decodeChunkList (body: Uint8ArrayList): ChunkFrame {
  const pieces = [...body]
  const total = body.byteLength
  let piece = 0
  let offset = 0
  let pos = 0

  const byte = (): number => {
    while (piece < pieces.length && offset >= pieces[piece].byteLength) {
      piece++
      offset = 0
    }

    if (piece >= pieces.length) {
      throw new MalformedMessageError('a chunk message ends inside a field')
    }

    pos++
    return pieces[piece][offset++]
  }

  const varint = (): number => {
    let value = 0

    for (let i = 0; i < 10; i++) {
      const b = byte()
      value += (b & 0x7f) * 2 ** (7 * i)

      if ((b & 0x80) === 0) {
        return value
      }
    }

    throw new MalformedMessageError('a varint in a chunk message is longer than 10 bytes')
  }

  const skip = (n: number): void => {
    if (n > total - pos) {
      throw new MalformedMessageError(`a field of ${n} bytes runs past the end of a chunk message of ${total} bytes`)
    }

    pos += n

    while (n > 0) {
      const step = Math.min(pieces[piece].byteLength - offset, n)
      offset += step
      n -= step

      if (n > 0) {
        piece++
        offset = 0
      }
    }
  }

  let index = 0
  let dataStart = 0
  let dataEnd = 0

  while (pos < total) {
    const tag = varint()
    const field = Math.floor(tag / 8)
    const wireType = tag % 8

    if (field === 1) {
      if (wireType !== 0) {
        throw new MalformedMessageError(`chunk index with wire type ${wireType}, expected 0 (varint)`)
      }

      index = varint()

      if (index > MAX_UINT32) {
        throw new MalformedMessageError(`chunk index ${index} is beyond uint32`)
      }
    } else if (field === 2) {
      if (wireType !== 2) {
        throw new MalformedMessageError(`chunk data with wire type ${wireType}, expected 2 (length-delimited)`)
      }

      const length = varint()
      const start = pos
      skip(length)
      dataStart = start
      dataEnd = start + length
    } else if (field === 0) {
      throw new MalformedMessageError('field number 0 in a chunk message')
    } else {
      switch (wireType) {
        case 0: varint(); break
        case 1: skip(8); break
        case 2: skip(varint()); break
        case 5: skip(4); break
        default: throw new MalformedMessageError(`wire type ${wireType} in a chunk message`)
      }
    }
  }

  return { index, data: body.sublist(dataStart, dataEnd) }
}
