/**
 * KV-cache headroom in layer records (spec §2.5 `kv_tokens_left`, 1.3.0): a serving node announces how many tokens of
 * one more inference session its caches can still take on each span, refreshed with every heartbeat.
 */
import { TINY } from '@neuroshard/model'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeLayerRecord, encodeLayerRecord, openLayerRecord, signLayerRecord } from '../src/index.js'
import { SAMPLE_NOW, sampleRecord, startPoolHost, stopAll, until } from './helpers.js'
import type { PoolHost } from './helpers.js'

describe('KV headroom in layer records', () => {
  let hosts: PoolHost[] = []
  afterEach(async () => { await stopAll(hosts); hosts = [] })

  it('round-trips through signed envelopes (0 included); a span without it encodes as before', async () => {
    const { record, key } = await sampleRecord([{ kvTokensLeft: 4096 }, { kvTokensLeft: 0 }, {}])
    const opened = await openLayerRecord((await signLayerRecord(record, key)).bytes, { now: SAMPLE_NOW })
    expect(opened.record.spans.map(s => s.kvTokensLeft)).toEqual([4096, 0, undefined])
    const plain = await sampleRecord([{}])
    const bytes = encodeLayerRecord(plain.record)
    const withField = encodeLayerRecord({ ...plain.record, spans: [{ ...plain.record.spans[0], kvTokensLeft: 7 }] })
    // field 9, varint: tag 0x48, value 7, and nothing else changed
    expect(withField.length).toBe(bytes.length + 2)
    expect(decodeLayerRecord(bytes).spans[0].kvTokensLeft).toBeUndefined()
  })

  it('refuses negative, fractional and unsafe values with InvalidLayerRecordError', async () => {
    const { record } = await sampleRecord([{}])
    for (const bad of [-1, 1.5, 2 ** 53, NaN]) {
      expect(() => encodeLayerRecord({ ...record, spans: [{ ...record.spans[0], kvTokensLeft: bad }] })).toThrow(expect.objectContaining({ name: 'InvalidLayerRecordError' }))
    }
    // on the wire: 2^53 in field 9 of the span is refused when decoded
    const ok = encodeLayerRecord({ ...record, spans: [{ ...record.spans[0], kvTokensLeft: 2 ** 53 - 1 }] })
    expect(decodeLayerRecord(ok).spans[0].kvTokensLeft).toBe(2 ** 53 - 1)
    const at = ok.findIndex((b, i) => b === 0x48 && ok[i + 1] === 0xff)
    expect(at).toBeGreaterThan(0)
    const bad = ok.slice()
    // 2^53 - 1 is 0xff × 7, 0x0f as a varint; 2^53 is 0x80 × 7, 0x10
    for (let i = 1; i <= 7; i++) bad[at + i] = 0x80
    bad[at + 8] = 0x10
    expect(() => decodeLayerRecord(bad)).toThrow(expect.objectContaining({ name: 'InvalidLayerRecordError' }))
  })

  it('a node publishes what kvTokensLeft says with each heartbeat; a throwing or bad answer is left out', async () => {
    const FAST = { heartbeatIntervalMs: 300, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300, config: TINY, memoryBytes: 64 * 1024 * 1024 }
    let left: number | undefined = 1000
    const asked: Array<{ start: number, end: number }> = []
    const a = await startPoolHost({ ...FAST, kvTokensLeft: span => { asked.push(span); if (left === -5) throw new Error('boom'); return left } })
    hosts.push(a)
    const b = await startPoolHost({ ...FAST }, a)
    hosts.push(b)
    const seen = (): Array<number | undefined> => [...b.services.layerPool.records().values()]
      .filter(e => e.record.peerId.equals(a.peerId)).flatMap(e => e.record.spans.map(s => s.kvTokensLeft))
    await until(() => seen().length > 0 && seen().every(x => x === 1000), 60_000, () => `b never saw a's headroom: ${JSON.stringify(seen())}`)
    // the span asked about is the span announced
    const spans = [...b.services.layerPool.records().values()].filter(e => e.record.peerId.equals(a.peerId)).flatMap(e => e.record.spans)
    expect(asked).toContainEqual({ start: spans[0].start, end: spans[0].end })
    left = 12
    await until(() => seen().every(x => x === 12), 10_000, () => `b never saw the new headroom: ${JSON.stringify(seen())}`)
    for (const value of [-5, NaN]) {
      left = value
      await until(() => seen().every(x => x === undefined), 10_000, () => `a bad answer (${value}) should not be announced: ${JSON.stringify(seen())}`)
      left = 3
      await until(() => seen().every(x => x === 3), 10_000, () => `b never saw the headroom again: ${JSON.stringify(seen())}`)
    }
    // b says nothing: its spans carry no field
    const own = [...a.services.layerPool.records().values()].filter(e => e.record.peerId.equals(b.peerId)).flatMap(e => e.record.spans)
    for (const s of own) expect(s.kvTokensLeft).toBeUndefined()
  }, 120_000)
})
