/**
 * A minimal, independent protobuf wire-format reader and writer. The fuzz oracles use it to look inside
 * generated inputs (which signed units they carry) without calling the decoders under test.
 */
import type { Rng } from './rng.js'

export interface Field {
  no: number
  wire: number
  /** varint / fixed values as bigint; length-delimited as bytes */
  value: bigint | Uint8Array
}

export class WireError extends Error { static override name = 'WireError'; override name = 'WireError' }

export function readVarint (b: Uint8Array, pos: number): [bigint, number] {
  let result = 0n
  let shift = 0n
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) throw new WireError('truncated varint')
    const byte = b[pos++]
    result |= BigInt(byte & 0x7f) << shift
    if ((byte & 0x80) === 0) return [result, pos]
    shift += 7n
  }
  throw new WireError('varint over 10 bytes')
}

/** Parses the top level of a message; throws WireError on anything that is not well-formed */
export function parseFields (b: Uint8Array): Field[] {
  const out: Field[] = []
  let pos = 0
  while (pos < b.length) {
    const [tag, p1] = readVarint(b, pos)
    pos = p1
    const no = Number(tag >> 3n)
    const wire = Number(tag & 7n)
    if (no < 1 || no > 536870911) throw new WireError('bad field number')
    if (wire === 0) {
      const [v, p2] = readVarint(b, pos); pos = p2
      out.push({ no, wire, value: v })
    } else if (wire === 1) {
      if (pos + 8 > b.length) throw new WireError('truncated fixed64')
      out.push({ no, wire, value: new DataView(b.buffer, b.byteOffset + pos, 8).getBigUint64(0, true) }); pos += 8
    } else if (wire === 5) {
      if (pos + 4 > b.length) throw new WireError('truncated fixed32')
      out.push({ no, wire, value: BigInt(new DataView(b.buffer, b.byteOffset + pos, 4).getUint32(0, true)) }); pos += 4
    } else if (wire === 2) {
      const [len, p2] = readVarint(b, pos); pos = p2
      if (len > BigInt(b.length - pos)) throw new WireError('truncated bytes')
      out.push({ no, wire, value: b.subarray(pos, pos + Number(len)) }); pos += Number(len)
    } else {
      throw new WireError(`wire type ${wire}`)
    }
  }
  return out
}

/** Last value of a length-delimited field (protobuf: the last one wins), or empty */
export function bytesField (fields: Field[], no: number): Uint8Array | undefined {
  let v: Uint8Array | undefined
  for (const f of fields) if (f.no === no && f.value instanceof Uint8Array) v = f.value
  return v
}

export function allBytesFields (fields: Field[], no: number): Uint8Array[] {
  return fields.filter(f => f.no === no && f.value instanceof Uint8Array).map(f => f.value as Uint8Array)
}

export function varint (value: bigint | number): number[] {
  let v = BigInt(value)
  if (v < 0n) v = (1n << 64n) + v
  const out: number[] = []
  while (v >= 0x80n) { out.push(Number(v & 0x7fn) | 0x80); v >>= 7n }
  out.push(Number(v))
  return out
}

export function encodeFields (fields: Field[]): Uint8Array {
  const parts: number[] = []
  for (const f of fields) {
    parts.push(...varint((BigInt(f.no) << 3n) | BigInt(f.wire)))
    if (f.wire === 0) parts.push(...varint(f.value as bigint))
    else if (f.wire === 1) { const d = new DataView(new ArrayBuffer(8)); d.setBigUint64(0, BigInt.asUintN(64, f.value as bigint), true); parts.push(...new Uint8Array(d.buffer)) }
    else if (f.wire === 5) { const d = new DataView(new ArrayBuffer(4)); d.setUint32(0, Number(BigInt.asUintN(32, f.value as bigint)), true); parts.push(...new Uint8Array(d.buffer)) }
    else { const v = f.value as Uint8Array; parts.push(...varint(v.length)); for (const x of v) parts.push(x) }
  }
  return Uint8Array.from(parts)
}

export function eq (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
}

const INTERESTING_VARINTS = [0n, 1n, 127n, 128n, 255n, 256n, 65535n, 65536n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n]

export function interestingVarint (rng: Rng): bigint {
  return rng.bool(0.7) ? rng.pick(INTERESTING_VARINTS) : BigInt(rng.u32()) * BigInt(rng.u32() & 0xffff)
}

/** A random, usually well-formed protobuf message with fields 1..maxField, nested up to `depth` */
export function randomProto (rng: Rng, maxField = 20, depth = 2): Uint8Array {
  const fields: Field[] = []
  const n = rng.int(8)
  for (let i = 0; i < n; i++) {
    const no = rng.bool(0.9) ? 1 + rng.int(maxField) : 1 + rng.int(536870911)
    const r = rng.next()
    if (r < 0.35) fields.push({ no, wire: 0, value: interestingVarint(rng) })
    else if (r < 0.45) fields.push({ no, wire: 1, value: BigInt(rng.u32()) << 32n | BigInt(rng.u32()) })
    else if (r < 0.5) fields.push({ no, wire: 5, value: BigInt(rng.u32()) })
    else if (r < 0.75 && depth > 0) fields.push({ no, wire: 2, value: randomProto(rng, maxField, depth - 1) })
    else fields.push({ no, wire: 2, value: rng.bytes(rng.len(2048)) })
  }
  return encodeFields(fields)
}

/** Replaces the value of one field (found by number in a well-formed message) with `value` */
export function setField (msg: Uint8Array, no: number, value: Field['value'], wire?: number): Uint8Array {
  const fields = parseFields(msg)
  const others = fields.filter(f => f.no !== no)
  const w = wire ?? (value instanceof Uint8Array ? 2 : 0)
  return encodeFields([...others, { no, wire: w, value }])
}

/**
 * True when a field of a known number arrives with another wire type than its declared one. protons-runtime
 * reads a known field by its declared type whatever the wire type says, so such a message can decode to
 * something else than what this reader sees: the oracles make no claim about it.
 */
export function wireMismatch (fields: Field[], declared: Record<number, number>): boolean {
  return fields.some(f => declared[f.no] != null && declared[f.no] !== f.wire)
}
