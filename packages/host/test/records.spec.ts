import { readdirSync, readFileSync } from 'node:fs'
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
const load = (prefix: string): Array<{ file: string } & Record<string, any>> => readdirSync(VECTORS)
  .filter(f => f.startsWith(prefix) && f.endsWith('.json'))
  .map(file => ({ file, ...JSON.parse(readFileSync(join(VECTORS, file), 'utf8')) }))
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('NeuroShard DHT records (specs/host/vectors/record-*.json)', () => {
  it('accepts and parses the valid keys, refuses the invalid ones', () => {
    const vectors = load('record-key-')
    expect(vectors.length).toBeGreaterThanOrEqual(10)
    for (const v of vectors) {
      const key = v.keyHex != null ? hex(v.keyHex) : utf8(v.key)
      if (v.error == null) {
        expect(parseNeuroShardRecordKey(key), v.file).toEqual({ namespace: v.namespace, id: v.id })
        expect(neuroShardRecordKey(v.namespace, v.id), v.file).toEqual(key)
      } else {
        expect(() => parseNeuroShardRecordKey(key), v.file).toThrow(expect.objectContaining({ name: v.error }))
      }
    }
  })

  it('encodes and decodes values byte for byte', () => {
    const vectors = load('record-value-')
    expect(vectors.length).toBeGreaterThanOrEqual(7)
    for (const v of vectors) {
      if (v.error == null) {
        const record = { sequence: BigInt(v.sequence), payload: hex(v.payloadHex) }
        expect(encodeNeuroShardRecord(record), v.file).toEqual(hex(v.valueHex))
        const decoded = decodeNeuroShardRecord(hex(v.valueHex))
        expect(decoded.sequence, v.file).toBe(record.sequence)
        expect(new Uint8Array(decoded.payload), v.file).toEqual(record.payload)
      } else {
        expect(() => decodeNeuroShardRecord(hex(v.valueHex)), v.file).toThrow(expect.objectContaining({ name: v.error }))
      }
    }
    expect(() => encodeNeuroShardRecord({ sequence: -1n, payload: new Uint8Array() })).toThrow(expect.objectContaining({ name: 'InvalidRecordError' }))
    expect(() => encodeNeuroShardRecord({ sequence: 1n << 64n, payload: new Uint8Array() })).toThrow(expect.objectContaining({ name: 'InvalidRecordError' }))
    expect(() => encodeNeuroShardRecord({ sequence: 0n, payload: new Uint8Array(16384 - 7) })).toThrow(expect.objectContaining({ name: 'InvalidRecordError' }))
  })

  it('selects the record every node agrees on', async () => {
    const vectors = load('record-select-')
    expect(vectors.length).toBeGreaterThanOrEqual(5)
    for (const v of vectors) {
      expect(await selectNeuroShardRecord(utf8(v.key), v.valuesHex.map(hex)), v.file).toBe(v.best)
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
