/**
 * Byte-level and protobuf-level mutators: every generated input starts from an honest seed (or from
 * nothing) and is broken in one of the ways a hostile or buggy peer would break it.
 */
import { encodeFields, interestingVarint, parseFields, randomProto, varint } from './proto.js'
import type { Rng } from './rng.js'

const BYTE_OPS = ['flip', 'set', 'insert', 'delete', 'duplicate', 'truncate', 'append', 'interesting', 'varint'] as const

/** One to four random byte edits */
export function mutateBytes (rng: Rng, input: Uint8Array): Uint8Array {
  let b: Uint8Array = Uint8Array.from(input)
  const rounds = 1 + rng.int(4)
  for (let r = 0; r < rounds; r++) {
    const op = rng.pick(BYTE_OPS)
    const at = b.length === 0 ? 0 : rng.int(b.length)
    switch (op) {
      case 'flip': if (b.length > 0) b[at] ^= 1 << rng.int(8); break
      case 'set': if (b.length > 0) b[at] = rng.u32() & 0xff; break
      case 'interesting': if (b.length > 0) b[at] = rng.pick([0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe]); break
      case 'insert': b = concat(b.subarray(0, at), rng.bytes(1 + rng.len(64)), b.subarray(at)); break
      case 'delete': b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.len(32)))); break
      case 'duplicate': { const end = Math.min(b.length, at + 1 + rng.len(256)); b = concat(b.subarray(0, end), b.subarray(at, end), b.subarray(end)); break }
      case 'truncate': b = b.subarray(0, rng.int(b.length + 1)); break
      case 'append': b = concat(b, rng.bytes(1 + rng.len(256))); break
      case 'varint': b = concat(b.subarray(0, at), Uint8Array.from(varint(interestingVarint(rng))), b.subarray(at + 1)); break
    }
  }
  return b
}

/**
 * Protobuf-aware edits of a well-formed message: drop, duplicate, reorder fields, replace a value with a
 * random one of another type, add unknown fields, or recurse into a nested message
 */
export function mutateProto (rng: Rng, input: Uint8Array, depth = 2): Uint8Array {
  let fields
  try { fields = parseFields(input) } catch { return mutateBytes(rng, input) }
  const op = rng.int(8)
  const i = fields.length === 0 ? -1 : rng.int(fields.length)
  if (op === 0 && i >= 0) fields.splice(i, 1)
  else if (op === 1 && i >= 0) fields.splice(i, 0, { ...fields[i] })
  else if (op === 2) fields.reverse()
  else if (op === 3 && i >= 0) fields[i] = { no: fields[i].no, wire: 0, value: interestingVarint(rng) }
  else if (op === 4 && i >= 0) fields[i] = { no: fields[i].no, wire: 2, value: rng.bool() ? rng.bytes(rng.len(4096)) : randomProto(rng) }
  else if (op === 5) fields.push(rng.bool() ? { no: 1 + rng.int(40), wire: 0, value: interestingVarint(rng) } : { no: 1 + rng.int(40), wire: 2, value: rng.bytes(rng.len()) })
  else if (op === 6 && i >= 0 && fields[i].value instanceof Uint8Array && depth > 0) fields[i] = { ...fields[i], value: mutateProto(rng, fields[i].value as Uint8Array, depth - 1) }
  else if (i >= 0 && fields[i].value instanceof Uint8Array) fields[i] = { ...fields[i], value: mutateBytes(rng, fields[i].value as Uint8Array) }
  else if (i >= 0) fields[i] = { ...fields[i], value: interestingVarint(rng) }
  return encodeFields(fields)
}

/** Any of the above, or fresh random protobuf, or plain random bytes */
export function mutateAny (rng: Rng, seeds: Uint8Array[]): Uint8Array {
  const r = rng.next()
  const seed = rng.pick(seeds)
  if (r < 0.4) return mutateProto(rng, seed)
  if (r < 0.8) return mutateBytes(rng, seed)
  if (r < 0.92) return randomProto(rng)
  return rng.bytes(rng.len(8192))
}

export function concat (...parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0)
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

/**
 * Frames a message for a length-prefixed stream, or breaks the framing: a length over the cap, a length
 * longer than what follows, an over-long varint, an empty frame, two frames, no frame at all
 */
export function frame (rng: Rng, msg: Uint8Array, p = 0.2): { bytes: Uint8Array, framing: string } {
  if (!rng.bool(p)) return { bytes: concat(Uint8Array.from(varint(msg.length)), msg), framing: 'ok' }
  switch (rng.int(6)) {
    case 0: return { bytes: concat(Uint8Array.from(varint(rng.pick([1n << 20n, 1n << 31n, (1n << 53n) + 1n, (1n << 63n)]))), msg), framing: 'huge-length' }
    case 1: return { bytes: concat(Uint8Array.from(varint(msg.length + 1 + rng.int(1000))), msg), framing: 'short' }
    case 2: return { bytes: Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), framing: 'bad-varint' }
    case 3: return { bytes: Uint8Array.of(0), framing: 'empty' }
    case 4: return { bytes: concat(Uint8Array.from(varint(msg.length)), msg, Uint8Array.from(varint(msg.length)), msg), framing: 'twice' }
    default: return { bytes: msg, framing: 'unframed' }
  }
}
