import {
  DHT_MAX_KEY_SIZE,
  DHT_MAX_RECORD_SIZE,
  DHT_RECORD_HEADER_SIZE,
  DHT_RECORD_PREFIX
} from './constants.js'
import { InvalidRecordError } from './errors.js'
import type { SelectFn, ValidateFn } from '@libp2p/kad-dht'

/**
 * NeuroShard DHT records (specs/host/README.md, "DHT records").
 *
 * Key: UTF-8 `/neuroshard/<namespace>/<id>`; namespace matches `[a-z0-9][a-z0-9-]*`, id is non-empty.
 * Value: an 8-byte unsigned little-endian sequence number followed by the payload. Among several values for
 * one key the highest sequence wins; equal sequences are broken by the bytewise-greatest value, so every
 * node picks the same record.
 */

const NAMESPACE_RE = /^[a-z0-9][a-z0-9-]{0,63}$/
const MAX_SEQUENCE = (1n << 64n) - 1n

/** A decoded NeuroShard DHT record value */
export interface NeuroShardRecord {
  sequence: bigint
  payload: Uint8Array
}

/** Per-namespace validator: throws when `payload` is not acceptable for `id` */
export interface NeuroShardRecordValidator {
  (id: string, record: NeuroShardRecord): void | Promise<void>
}

/** Parsed NeuroShard DHT key */
export interface NeuroShardRecordKey {
  namespace: string
  id: string
}

/**
 * Builds the DHT key `/neuroshard/<namespace>/<id>` as bytes.
 *
 * @throws InvalidRecordError for an invalid namespace, empty id or oversized key
 */
export function neuroShardRecordKey (namespace: string, id: string): Uint8Array {
  const key = new TextEncoder().encode(`${DHT_RECORD_PREFIX}${namespace}/${id}`)
  parseNeuroShardRecordKey(key)
  return key
}

/**
 * Parses and checks a NeuroShard DHT key.
 *
 * @throws InvalidRecordError when the key is not `/neuroshard/<namespace>/<id>`
 */
export function parseNeuroShardRecordKey (key: Uint8Array): NeuroShardRecordKey {
  if (key.byteLength > DHT_MAX_KEY_SIZE) {
    throw new InvalidRecordError(`Record key is ${key.byteLength} bytes, the limit is ${DHT_MAX_KEY_SIZE}`)
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(key)
  } catch {
    throw new InvalidRecordError('Record key is not valid UTF-8')
  }
  if (!text.startsWith(DHT_RECORD_PREFIX)) {
    throw new InvalidRecordError(`Record key must start with ${DHT_RECORD_PREFIX}`)
  }
  const rest = text.slice(DHT_RECORD_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash < 0) {
    throw new InvalidRecordError('Record key must be /neuroshard/<namespace>/<id>')
  }
  const namespace = rest.slice(0, slash)
  const id = rest.slice(slash + 1)
  if (!NAMESPACE_RE.test(namespace)) {
    throw new InvalidRecordError(`Invalid record namespace "${namespace}"`)
  }
  if (id.length === 0) {
    throw new InvalidRecordError('Record id must not be empty')
  }
  return { namespace, id }
}

/**
 * Encodes a record value: `uint64le(sequence) || payload`.
 *
 * @throws InvalidRecordError when the sequence is out of range or the value would exceed the size cap
 */
export function encodeNeuroShardRecord (record: NeuroShardRecord): Uint8Array {
  if (record.sequence < 0n || record.sequence > MAX_SEQUENCE) {
    throw new InvalidRecordError('Record sequence must fit in an unsigned 64-bit integer')
  }
  const size = DHT_RECORD_HEADER_SIZE + record.payload.byteLength
  if (size > DHT_MAX_RECORD_SIZE) {
    throw new InvalidRecordError(`Record is ${size} bytes, the limit is ${DHT_MAX_RECORD_SIZE}`)
  }
  const out = new Uint8Array(size)
  new DataView(out.buffer).setBigUint64(0, record.sequence, true)
  out.set(record.payload, DHT_RECORD_HEADER_SIZE)
  return out
}

/**
 * Decodes a record value.
 *
 * @throws InvalidRecordError when the value is shorter than the header or over the size cap
 */
export function decodeNeuroShardRecord (value: Uint8Array): NeuroShardRecord {
  if (value.byteLength < DHT_RECORD_HEADER_SIZE) {
    throw new InvalidRecordError(`Record is ${value.byteLength} bytes, shorter than its ${DHT_RECORD_HEADER_SIZE}-byte header`)
  }
  if (value.byteLength > DHT_MAX_RECORD_SIZE) {
    throw new InvalidRecordError(`Record is ${value.byteLength} bytes, the limit is ${DHT_MAX_RECORD_SIZE}`)
  }
  const sequence = new DataView(value.buffer, value.byteOffset, value.byteLength).getBigUint64(0, true)
  return { sequence, payload: value.subarray(DHT_RECORD_HEADER_SIZE) }
}

/**
 * The kad-dht validator for the `neuroshard` key namespace: checks key and value format, then hands the
 * record to the validator registered for its namespace (if any).
 */
export function createNeuroShardRecordValidator (validators: Record<string, NeuroShardRecordValidator> = {}): ValidateFn {
  return async (key, value) => {
    const { namespace, id } = parseNeuroShardRecordKey(key)
    const record = decodeNeuroShardRecord(value)
    const validator = validators[namespace]
    if (validator != null) {
      await validator(id, record)
    }
  }
}

/**
 * The kad-dht selector for the `neuroshard` key namespace: the index of the record with the highest
 * sequence number; ties go to the bytewise-greatest value. Undecodable values never win.
 */
export const selectNeuroShardRecord: SelectFn = (_key, records) => {
  let best = -1
  let bestRecord: NeuroShardRecord | undefined
  let bestValue: Uint8Array | undefined
  records.forEach((value, index) => {
    let record: NeuroShardRecord
    try {
      record = decodeNeuroShardRecord(value)
    } catch {
      return
    }
    if (bestRecord == null || bestValue == null ||
      record.sequence > bestRecord.sequence ||
      (record.sequence === bestRecord.sequence && compareBytes(value, bestValue) > 0)) {
      best = index
      bestRecord = record
      bestValue = value
    }
  })
  // kad-dht expects an index; when nothing decodes, the first record is as bad as any other and the
  // validator rejects it anyway
  return best < 0 ? 0 : best
}

function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return a[i] - b[i]
    }
  }
  return a.byteLength - b.byteLength
}
