import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import {
  LAYER_RECORD_DOMAIN, MAX_RECORD_SIZE, MAX_RECORD_TTL_MS, decodeLayerRecord, encodeLayerRecord, layerPoolRecordValidator,
  layerRecordDhtId, openLayerRecord, signLayerRecord
} from '../src/index.js'
import type { LayerPoolRecord } from '../src/index.js'
import type { PrivateKey, Record as Libp2pRecord } from '@libp2p/interface'

const NOW = 1_800_000_000_000
const H = (c: string): string => c.repeat(64)

async function sample (key?: PrivateKey, patch: Partial<LayerPoolRecord> = {}): Promise<{ key: PrivateKey, record: LayerPoolRecord }> {
  const privateKey = key ?? await generateKeyPair('Ed25519')
  return {
    key: privateKey,
    record: {
      modelId: 'devnet',
      version: 1,
      peerId: peerIdFromPrivateKey(privateKey),
      sequence: 5n,
      issuedAt: NOW,
      expiresAt: NOW + 10_000,
      memoryBytes: 64 * 1024 * 1024,
      addresses: [multiaddr('/ip4/127.0.0.1/tcp/4001')],
      spans: [{
        start: 0, end: 2, state: 'serving', throughput: 12.5, weightsStep: 3, claimedAt: NOW - 1000,
        slots: [{ weightsHash: H('a'), chunksRoot: H('b') }, { weightsHash: H('c'), chunksRoot: H('d'), optimizerRoot: H('e') }]
      }],
      ...patch
    }
  }
}

describe('layer records', () => {
  it('round-trips through a signed envelope', async () => {
    const { key, record } = await sample()
    const signed = await signLayerRecord(record, key)
    const opened = await openLayerRecord(signed.bytes, { now: NOW })
    expect(opened.record.peerId.equals(record.peerId)).toBe(true)
    expect({ ...opened.record, peerId: undefined, addresses: opened.record.addresses.map(String) })
      .toEqual({ ...record, peerId: undefined, addresses: record.addresses.map(String) })
  })

  it('refuses a record whose bytes were changed after signing', async () => {
    const { key, record } = await sample()
    const { bytes } = await signLayerRecord(record, key)
    const payload = encodeLayerRecord(record)
    // flip one byte of the payload inside the envelope: the signature no longer covers it
    const at = indexOf(bytes, payload) + payload.length - 3
    const tampered = bytes.slice()
    tampered[at] ^= 0x01
    await expect(openLayerRecord(tampered, { now: NOW })).rejects.toMatchObject({ name: expect.stringMatching(/ForgedLayerRecordError|InvalidLayerRecordError/) })
  })

  it('refuses a record signed by a key other than the peer it names (forgery)', async () => {
    const victim = await sample()
    const attacker = await generateKeyPair('Ed25519')
    await expect(signLayerRecord(victim.record, attacker)).rejects.toHaveProperty('name', 'ForgedLayerRecordError')
    // build the forged envelope by hand, bypassing signLayerRecord's own check
    const payload = encodeLayerRecord(victim.record)
    const forged = await RecordEnvelope.seal(rawRecord(payload), attacker)
    await expect(openLayerRecord(forged.marshal(), { now: NOW })).rejects.toHaveProperty('name', 'ForgedLayerRecordError')
  })

  it('refuses an envelope of another domain (a signature made for something else)', async () => {
    const { key, record } = await sample()
    const other = await RecordEnvelope.seal(rawRecord(encodeLayerRecord(record), 'some-other-domain'), key)
    await expect(openLayerRecord(other.marshal(), { now: NOW })).rejects.toHaveProperty('name', 'ForgedLayerRecordError')
  })

  it('refuses expired records, records from the future and over-long lifetimes', async () => {
    const { key, record } = await sample()
    const { bytes } = await signLayerRecord(record, key)
    await expect(openLayerRecord(bytes, { now: record.expiresAt })).rejects.toHaveProperty('name', 'ExpiredLayerRecordError')
    await expect(openLayerRecord(bytes, { now: record.expiresAt, allowExpired: true })).resolves.toBeDefined()
    await expect(openLayerRecord(bytes, { now: NOW - 60_000 })).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
    const long = await sample(key, { expiresAt: NOW + MAX_RECORD_TTL_MS + 1 })
    await expect(signLayerRecord(long.record, key)).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
  })

  it('refuses oversized records before parsing them', async () => {
    await expect(openLayerRecord(new Uint8Array(MAX_RECORD_SIZE + 1))).rejects.toHaveProperty('name', 'OversizedLayerRecordError')
  })

  it('refuses malformed records with typed errors', async () => {
    const { key, record } = await sample()
    await expect(openLayerRecord(Uint8Array.of(1, 2, 3, 4, 5))).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
    for (const patch of [
      { modelId: 'Bad Model' },
      { version: 0 },
      { sequence: 0n },
      { expiresAt: NOW },
      { spans: [{ ...record.spans[0], end: 0 }] },
      { spans: [{ ...record.spans[0], slots: record.spans[0].slots.slice(0, 1) }] },
      { spans: [record.spans[0], { ...record.spans[0] }] }, // overlapping
      { spans: [{ ...record.spans[0], slots: [{ weightsHash: 'xyz', chunksRoot: H('b') }, record.spans[0].slots[1]] }] },
      { spans: [{ ...record.spans[0], throughput: Number.NaN }] },
      { spans: [{ ...record.spans[0], claimedAt: NOW + 1 }] }
    ] satisfies Array<Partial<LayerPoolRecord>>) {
      const bad = await sample(key, patch)
      await expect(signLayerRecord(bad.record, key), JSON.stringify(patch, (_k, v) => typeof v === 'bigint' ? String(v) : v)).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
    }
    // a span beyond the model's slots is refused when the receiver knows the model
    const { bytes } = await signLayerRecord(record, key)
    await expect(openLayerRecord(bytes, { now: NOW, slotCount: 1 })).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
  })

  it('never accepts a single-byte corruption of a signed record as a different record (fuzz)', async () => {
    const { key, record } = await sample()
    const { bytes } = await signLayerRecord(record, key)
    let accepted = 0
    for (let i = 0; i < bytes.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const junk = bytes.slice()
        junk[i] ^= bit
        try {
          const opened = await openLayerRecord(junk, { now: NOW })
          // the only acceptable outcome is the same record (a flip in an ignored part cannot exist in a signed envelope)
          expect(encodeLayerRecord(opened.record)).toEqual(encodeLayerRecord(record))
          accepted++
        } catch (err: any) {
          expect(err.name).toMatch(/^(InvalidLayerRecordError|ForgedLayerRecordError|ExpiredLayerRecordError)$/)
        }
      }
    }
    expect(accepted).toBe(0)
  })

  it('the DHT validator checks the key names the record and the sequence matches', async () => {
    const { key, record } = await sample()
    const { bytes } = await signLayerRecord(record, key)
    const validate = layerPoolRecordValidator({ now: () => NOW })
    const id = layerRecordDhtId('devnet', 1, record.peerId)
    await expect(validate(id, { sequence: record.sequence, payload: bytes })).resolves.toBeUndefined()
    await expect(validate(layerRecordDhtId('devnet', 2, record.peerId), { sequence: record.sequence, payload: bytes })).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
    const other = await generateKeyPair('Ed25519')
    await expect(validate(layerRecordDhtId('devnet', 1, peerIdFromPrivateKey(other)), { sequence: record.sequence, payload: bytes })).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
    await expect(validate(id, { sequence: record.sequence + 1n, payload: bytes })).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
    await expect(layerPoolRecordValidator({ now: () => record.expiresAt + 1 })(id, { sequence: record.sequence, payload: bytes })).rejects.toHaveProperty('name', 'ExpiredLayerRecordError')
  })

  it('decodes what it encodes field by field', async () => {
    const { record } = await sample()
    const decoded = decodeLayerRecord(encodeLayerRecord(record))
    expect(decoded.spans).toEqual(record.spans)
    expect(decoded.sequence).toBe(5n)
  })
})

function rawRecord (payload: Uint8Array, domain = LAYER_RECORD_DOMAIN): Libp2pRecord {
  return { domain, codec: Uint8Array.of(0x03, 0x50), marshal: () => payload, equals: () => false }
}

function indexOf (haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return i
  }
  throw new Error('not found')
}
