/**
 * Quantized spans in layer records (spec §2.1 `weight_format`): a node that serves its span's inference with int8
 * or 4-bit weights says so, and every other node reads it from the record it receives.
 */
import { TINY } from '@neuroshard/model'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeLayerRecord, encodeLayerRecord, openLayerRecord, signLayerRecord } from '../src/index.js'
import { LayerRecord as LayerRecordPb } from '../src/pb/layer-pool.js'
import { SAMPLE_NOW, sampleRecord, startPoolHost, stopAll, until } from './helpers.js'
import type { PoolHost } from './helpers.js'

describe('quantized spans in layer records', () => {
  let hosts: PoolHost[] = []
  afterEach(async () => { await stopAll(hosts); hosts = [] })

  it('round-trip int8 / int4 / fp32 through signed envelopes; an fp32 span encodes as before (no field)', async () => {
    const { record, key } = await sampleRecord([{ quantization: 'int8' }, { quantization: 'int4' }, {}])
    const opened = await openLayerRecord((await signLayerRecord(record, key)).bytes, { now: SAMPLE_NOW })
    expect(opened.record.spans.map(s => s.quantization)).toEqual(['int8', 'int4', undefined])
    // fp32 written out or left out: the same canonical bytes (old records stay valid and byte-identical)
    const plain = await sampleRecord([{}])
    const explicit = { ...plain.record, spans: plain.record.spans.map(s => ({ ...s, quantization: 'fp32' as const })) }
    expect(encodeLayerRecord(explicit)).toEqual(encodeLayerRecord(plain.record))
    expect(decodeLayerRecord(encodeLayerRecord(explicit)).spans[0].quantization).toBeUndefined()
  })

  it('an unknown weight format is InvalidLayerRecordError', async () => {
    const { record } = await sampleRecord([{ quantization: 'int4' }])
    const bytes = encodeLayerRecord(record)
    // field 8 (varint) = 2 inside the span: make it 7
    const at = bytes.findIndex((b, i) => b === 0x40 && bytes[i + 1] === 0x02)
    expect(at).toBeGreaterThan(0)
    const bad = bytes.slice()
    bad[at + 1] = 0x07
    expect(() => decodeLayerRecord(bad)).toThrow(expect.objectContaining({ name: 'InvalidLayerRecordError' }))
    expect(() => encodeLayerRecord({ ...record, spans: [{ ...record.spans[0], quantization: 'int3' as any }] })).toThrow(expect.objectContaining({ name: 'InvalidLayerRecordError' }))
  })

  it('quant_block_size (1.7.0): 64 / 128 round-trip on quantized spans; 32 is the field left out; other sizes and float32 spans refused', async () => {
    const { record, key } = await sampleRecord([{ quantization: 'int4', quantBlockSize: 128 }, { quantization: 'int8', quantBlockSize: 64 }, { quantization: 'int4' }])
    const opened = await openLayerRecord((await signLayerRecord(record, key)).bytes, { now: SAMPLE_NOW })
    expect(opened.record.spans.map(s => [s.quantization, s.quantBlockSize])).toEqual([['int4', 128], ['int8', 64], ['int4', undefined]])
    // field 10 is written only on the spans that set it
    expect(LayerRecordPb.decode(encodeLayerRecord(record)).spans.map(s => s.quantBlockSize)).toEqual([128, 64, undefined])
    const plain = await sampleRecord([{ quantization: 'int4' }])
    for (const [quantization, quantBlockSize] of [['int4', 32], ['int4', 256], ['int8', 16], ['int4', 96], ['fp32', 128], [undefined, 64]] as const) {
      const bad = { ...plain.record, spans: [{ ...plain.record.spans[0], quantization, quantBlockSize }] }
      expect(() => encodeLayerRecord(bad), `${String(quantization)} ${quantBlockSize}`).toThrow(expect.objectContaining({ name: 'InvalidLayerRecordError' }))
    }
  })

  it('a node started with quantization: int4 publishes it; its peers see it in the records they hold', async () => {
    const FAST = { heartbeatIntervalMs: 500, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300, config: TINY, memoryBytes: 64 * 1024 * 1024 }
    const a = await startPoolHost({ ...FAST, quantization: 'int4', quantBlockSize: 128 })
    hosts.push(a)
    const b = await startPoolHost({ ...FAST }, a)
    hosts.push(b)
    const seen = (): string[] => [...b.services.layerPool.records().values()]
      .filter(e => e.record.peerId.equals(a.peerId)).flatMap(e => e.record.spans.map(s => `${String(s.quantization)}/${String(s.quantBlockSize)}`))
    await until(() => seen().length > 0, 60_000, () => 'b never got a record from a with a span')
    expect(new Set(seen())).toEqual(new Set(['int4/128']))
    const own = [...a.services.layerPool.records().values()].filter(e => e.record.peerId.equals(b.peerId)).flatMap(e => e.record.spans)
    for (const s of own) expect([s.quantization, s.quantBlockSize]).toEqual([undefined, undefined])
    await expect(startPoolHost({ ...FAST, quantization: 'int2' as any })).rejects.toThrow(/quantization/)
    await expect(startPoolHost({ ...FAST, quantization: 'int4', quantBlockSize: 256 })).rejects.toThrow(/quantBlockSize/)
    await expect(startPoolHost({ ...FAST, quantBlockSize: 128 })).rejects.toThrow(/quantBlockSize/)
  }, 120_000)
})
