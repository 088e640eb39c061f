import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import {
  createNeuroShardRecordValidator,
  decodeNeuroShardRecord,
  encodeNeuroShardRecord,
  neuroShardRecordKey,
  parseNeuroShardRecordKey,
  selectNeuroShardRecord
} from '../src/index.js'

const VECTORS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs', 'host', 'vectors')
const vectors = JSON.parse(readFileSync(join(VECTORS, 'records.json'), 'utf8'))
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('NeuroShard DHT records (specs/host/vectors/records.json)', () => {
  it('accepts and parses the valid keys, refuses the invalid ones', () => {
    expect(vectors.keys.length).toBeGreaterThan(5)
    for (const v of vectors.keys) {
      if (v.valid === true) {
        expect(parseNeuroShardRecordKey(utf8(v.key))).toEqual({ namespace: v.namespace, id: v.id })
        expect(neuroShardRecordKey(v.namespace, v.id)).toEqual(utf8(v.key))
      } else {
        expect(() => parseNeuroShardRecordKey(utf8(v.key)), v.reason).toThrow(expect.objectContaining({ name: 'InvalidRecordError' }))
      }
    }
    expect(() => parseNeuroShardRecordKey(new Uint8Array([0x2f, 0xff, 0xfe]))).toThrow(expect.objectContaining({ name: 'InvalidRecordError' }))
  })

  it('encodes and decodes values byte for byte', () => {
    for (const v of vectors.values) {
      const record = { sequence: BigInt(v.sequence), payload: hex(v.payloadHex) }
      expect(encodeNeuroShardRecord(record)).toEqual(hex(v.valueHex))
      const decoded = decodeNeuroShardRecord(hex(v.valueHex))
      expect(decoded.sequence).toBe(record.sequence)
      expect(new Uint8Array(decoded.payload)).toEqual(record.payload)
    }
    for (const v of vectors.invalidValues) {
      expect(() => decodeNeuroShardRecord(hex(v.valueHex)), v.reason).toThrow(expect.objectContaining({ name: 'InvalidRecordError' }))
    }
    expect(() => encodeNeuroShardRecord({ sequence: -1n, payload: new Uint8Array() })).toThrow(expect.objectContaining({ name: 'InvalidRecordError' }))
    expect(() => encodeNeuroShardRecord({ sequence: 1n << 64n, payload: new Uint8Array() })).toThrow(expect.objectContaining({ name: 'InvalidRecordError' }))
  })

  it('selects the record every node agrees on', async () => {
    for (const v of vectors.selections) {
      const values = v.valuesHex.map(hex)
      expect(await selectNeuroShardRecord(utf8('/neuroshard/t/x'), values), v.reason).toBe(v.best)
    }
  })

  it('validates format, then the namespace validator', async () => {
    const seen: string[] = []
    const validate = createNeuroShardRecordValidator({
      layer: (id, record) => {
        seen.push(id)
        if (record.payload.byteLength === 0) throw new Error('empty layer record')
      }
    })
    const good = encodeNeuroShardRecord({ sequence: 1n, payload: utf8('x') })
    await validate(utf8('/neuroshard/layer/7'), good)
    await validate(utf8('/neuroshard/other/7'), encodeNeuroShardRecord({ sequence: 1n, payload: new Uint8Array() }))
    await expect(validate(utf8('/neuroshard/layer/8'), encodeNeuroShardRecord({ sequence: 1n, payload: new Uint8Array() }))).rejects.toThrow('empty layer record')
    await expect(validate(utf8('/neuroshard/Layer/7'), good)).rejects.toHaveProperty('name', 'InvalidRecordError')
    await expect(validate(utf8('/neuroshard/layer/7'), new Uint8Array(2))).rejects.toHaveProperty('name', 'InvalidRecordError')
    expect(seen).toEqual(['7', '8'])
  })
})
