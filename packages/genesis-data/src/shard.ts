import { SHARD_HEADER_BYTES, SHARD_MAGIC, SHARD_VERSION } from './constants.js'
import { ShardFormatError } from './errors.js'

/** Token ids of one shard: `Uint16Array` when the vocabulary fits in 16 bits, else `Uint32Array` */
export type TokenArray = Uint16Array | Uint32Array

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * Serialize token ids as a shard file:
 * `"NSGD"` · u8 version (1) · u8 bytes per token (2 | 4) · u16 reserved (0) · u32 LE token count ·
 * token ids, little-endian.
 */
export function encodeShard (tokens: ArrayLike<number>, bytesPerToken: 2 | 4): Uint8Array {
  const n = tokens.length
  const out = new Uint8Array(SHARD_HEADER_BYTES + n * bytesPerToken)
  const view = new DataView(out.buffer)
  out.set(SHARD_MAGIC, 0)
  out[4] = SHARD_VERSION
  out[5] = bytesPerToken
  view.setUint16(6, 0, true)
  view.setUint32(8, n, true)
  const max = bytesPerToken === 2 ? 0xffff : 0xffffffff
  for (let i = 0; i < n; i++) {
    const t = tokens[i]
    if (!Number.isInteger(t) || t < 0 || t > max) throw new RangeError(`token ${t} does not fit in ${bytesPerToken} bytes`)
    if (bytesPerToken === 2) view.setUint16(SHARD_HEADER_BYTES + 2 * i, t, true)
    else view.setUint32(SHARD_HEADER_BYTES + 4 * i, t, true)
  }
  return out
}

/** Parse a shard file; throws `ShardFormatError` on anything but a well-formed version 1 shard */
export function decodeShard (bytes: Uint8Array): TokenArray {
  if (bytes.length < SHARD_HEADER_BYTES) throw new ShardFormatError(`shard is ${bytes.length} bytes, shorter than its ${SHARD_HEADER_BYTES}-byte header`)
  for (let i = 0; i < 4; i++) if (bytes[i] !== SHARD_MAGIC[i]) throw new ShardFormatError('shard does not start with "NSGD"')
  if (bytes[4] !== SHARD_VERSION) throw new ShardFormatError(`unsupported shard version ${bytes[4]}`)
  const bpt = bytes[5]
  if (bpt !== 2 && bpt !== 4) throw new ShardFormatError(`bytes per token must be 2 or 4, got ${bpt}`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view.getUint16(6, true) !== 0) throw new ShardFormatError('reserved header bytes must be 0')
  const n = view.getUint32(8, true)
  if (bytes.length !== SHARD_HEADER_BYTES + n * bpt) {
    throw new ShardFormatError(`shard header says ${n} tokens (${SHARD_HEADER_BYTES + n * bpt} bytes) but the file is ${bytes.length} bytes`)
  }
  const body = bytes.byteOffset + SHARD_HEADER_BYTES
  if (LE && body % bpt === 0) {
    // zero-copy view (the platform is little-endian and the body is aligned)
    return bpt === 2 ? new Uint16Array(bytes.buffer, body, n) : new Uint32Array(bytes.buffer, body, n)
  }
  const out = bpt === 2 ? new Uint16Array(n) : new Uint32Array(n)
  for (let i = 0; i < n; i++) out[i] = bpt === 2 ? view.getUint16(SHARD_HEADER_BYTES + 2 * i, true) : view.getUint32(SHARD_HEADER_BYTES + 4 * i, true)
  return out
}
