/**
 * Replays specs/layer-pool/vectors/records.json. The envelope signatures are checked with node:crypto
 * from the RFC 0002 signing rule (not with the code that made them); records re-signed from their fields
 * must give the same bytes.
 */
import { createPublicKey, verify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { fromString, toString } from 'uint8arrays'
import { describe, expect, it } from 'vitest'
import { buildView, chooseSpan, layerRecordDhtKey, openArchitecture, openLayerRecord, signLayerRecord, underReplicated } from '../src/index.js'
import type { ModelArchitecture } from '../src/index.js'

const vectors = JSON.parse(readFileSync(new URL('../../../specs/layer-pool/vectors/records.json', import.meta.url), 'utf8'))
const bytes = (h: string): Uint8Array => fromString(h, 'base16')

/** Minimal protobuf reader: field number → length-delimited values (enough for the envelope) */
function fields (buf: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  let i = 0
  const varint = (): number => { let n = 0; let shift = 0; for (;;) { const b = buf[i++]; n += (b & 0x7f) * 2 ** shift; shift += 7; if ((b & 0x80) === 0) return n } }
  while (i < buf.length) {
    const tag = varint()
    if ((tag & 7) !== 2) throw new Error('unexpected wire type')
    const len = varint()
    out.set(tag >>> 3, buf.subarray(i, i + len))
    i += len
  }
  return out
}
const uvarint = (n: number): number[] => { const out: number[] = []; do { let b = n & 0x7f; n = Math.floor(n / 128); if (n > 0) b |= 0x80; out.push(b) } while (n > 0); return out }

function checkEnvelopeSignature (envelopeHex: string, domain: string, publicKeyProtobufHex: string): void {
  const env = fields(bytes(envelopeHex))
  expect(toString(env.get(1)!, 'base16')).toBe(publicKeyProtobufHex)
  // libp2p PublicKey protobuf: field 1 KeyType (varint, Ed25519 = 1), field 2 the 32 raw key bytes
  const rawKey = env.get(1)!.subarray(env.get(1)!.length - 32)
  const type = env.get(2)!
  const payload = env.get(3)!
  const d = new TextEncoder().encode(domain)
  const preimage = Uint8Array.from([...uvarint(d.length), ...d, ...uvarint(type.length), ...type, ...uvarint(payload.length), ...payload])
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(rawKey)])
  expect(verify(null, preimage, createPublicKey({ key: spki, format: 'der', type: 'spki' }), Buffer.from(env.get(5)!))).toBe(true)
}

describe('layer-pool vectors', () => {
  it('the key and peer id follow from the seed', async () => {
    const key = await generateKeyPairFromSeed('Ed25519', bytes(vectors.key.ed25519_seed))
    expect(peerIdFromPrivateKey(key).toString()).toBe(vectors.key.peer_id)
  })

  it('the layer record envelope verifies under RFC 0002 and decodes to its fields', async () => {
    checkEnvelopeSignature(vectors.record.envelope_hex, 'neuroshard-layer-pool', vectors.key.public_key_protobuf)
    expect(toString(fields(bytes(vectors.record.envelope_hex)).get(2)!, 'base16')).toBe('0350')
    expect(toString(fields(bytes(vectors.record.envelope_hex)).get(3)!, 'base16')).toBe(vectors.record.payload_hex)
    const { record } = await openLayerRecord(bytes(vectors.record.envelope_hex), { now: vectors.now_ms })
    const f = vectors.record.fields
    expect(record.peerId.toString()).toBe(vectors.key.peer_id)
    expect({ modelId: record.modelId, version: record.version, sequence: String(record.sequence), issuedAt: record.issuedAt, expiresAt: record.expiresAt, memoryBytes: record.memoryBytes, addresses: record.addresses.map(String), spans: record.spans })
      .toEqual({ modelId: f.model_id, version: f.version, sequence: f.sequence, issuedAt: f.issued_at_ms, expiresAt: f.expires_at_ms, memoryBytes: f.memory_bytes, addresses: f.addresses, spans: f.spans })
    expect(new TextDecoder().decode(layerRecordDhtKey(f.model_id, f.version, record.peerId))).toBe(vectors.record.dht_key)
  })

  it('re-signing the fields gives the same envelope bytes (deterministic Ed25519, canonical protobuf)', async () => {
    const key = await generateKeyPairFromSeed('Ed25519', bytes(vectors.key.ed25519_seed))
    const f = vectors.record.fields
    const signed = await signLayerRecord({
      modelId: f.model_id, version: f.version, peerId: peerIdFromString(vectors.key.peer_id), sequence: BigInt(f.sequence), issuedAt: f.issued_at_ms,
      expiresAt: f.expires_at_ms, memoryBytes: f.memory_bytes, addresses: f.addresses.map((a: string) => multiaddr(a)), spans: f.spans
    }, key)
    expect(toString(signed.bytes, 'base16')).toBe(vectors.record.envelope_hex)
    expect(vectors.record.dht_value_hex.slice(16)).toBe(vectors.record.envelope_hex)
  })

  for (const bad of vectors.invalid) {
    it(`refuses: ${bad.name as string}`, async () => {
      await expect(openLayerRecord(bytes(bad.envelope_hex), { now: bad.now_ms ?? vectors.now_ms })).rejects.toHaveProperty('name', bad.error)
    })
  }

  it('the architecture record verifies and is a valid growth of its parent', async () => {
    checkEnvelopeSignature(vectors.architecture.envelope_hex, 'neuroshard-layer-pool-arch', vectors.key.public_key_protobuf)
    const p = vectors.architecture.parent
    const parent: ModelArchitecture = { modelId: p.model_id, version: p.version, config: p.config, initSeed: BigInt(p.init_seed), parentVersion: 0, issuedAt: 0 }
    const child = await openArchitecture(bytes(vectors.architecture.envelope_hex), { authorities: [peerIdFromString(vectors.architecture.authority_peer_id)], parent })
    const f = vectors.architecture.fields
    expect(child).toEqual({ modelId: f.model_id, version: f.version, config: f.config, initSeed: BigInt(f.init_seed), parentVersion: f.parent_version, issuedAt: f.issued_at_ms })
  })
})

describe('assignment vectors', () => {
  const cases = JSON.parse(readFileSync(new URL('../../../specs/layer-pool/vectors/assignment.json', import.meta.url), 'utf8')).cases
  for (const c of cases) {
    it(c.name, () => {
      const holdings = c.holdings.map(([peer, start, end, state, throughput, claimedAt]: any[]) => ({ peer, start, end, state, throughput, claimedAt }))
      const view = buildView(holdings, c.slots, { now: c.now_ms, loadingGraceMs: c.loading_grace_ms })
      if (c.view != null) expect(view.map(v => [v.live, v.pending, v.throughput])).toEqual(c.view)
      if (c.under_replicated != null) expect(underReplicated(view, c.min_replicas)).toEqual(c.under_replicated)
      if ('choose' in c) expect(chooseSpan(view, c.costs, c.budget, { minReplicas: c.min_replicas, random: () => 0.5 }) ?? null).toEqual(c.choose)
    })
  }
})
