/**
 * Writes specs/layer-pool/vectors/records.json: a layer record and an architecture record signed by a
 * fixed Ed25519 key (Ed25519 signatures are deterministic, so any client re-signing gets the same bytes),
 * and refusal cases. Run after a build: `node dist/test/vectors-gen.js`. The replay test checks the
 * signatures with node:crypto directly, not with the code that made them.
 */
import { writeFileSync } from 'node:fs'
import { generateKeyPairFromSeed, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import { TINY } from '@neuroshard/model'
import { toString } from 'uint8arrays/to-string'
import { encodeLayerRecord, genesisArchitecture, growArchitecture, signArchitecture, signLayerRecord } from '../src/index.js'
import type { LayerPoolRecord } from '../src/index.js'

const hex = (b: Uint8Array): string => toString(b, 'base16')
const seed = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
const other = Uint8Array.from({ length: 32 }, (_, i) => 200 - i)

const key = await generateKeyPairFromSeed('Ed25519', seed)
const otherKey = await generateKeyPairFromSeed('Ed25519', other)
const peerId = peerIdFromPrivateKey(key)
const record: LayerPoolRecord = {
  modelId: 'devnet',
  version: 1,
  peerId,
  sequence: 1_800_000_000_000n,
  issuedAt: 1_800_000_000_000,
  expiresAt: 1_800_000_010_000,
  memoryBytes: 67_108_864,
  addresses: [multiaddr('/ip4/127.0.0.1/tcp/4001')],
  spans: [
    { start: 0, end: 2, state: 'serving', throughput: 123.456, weightsStep: 0, claimedAt: 1_799_999_990_000, slots: [{ weightsHash: '11'.repeat(32), chunksRoot: '22'.repeat(32) }, { weightsHash: '33'.repeat(32), chunksRoot: '44'.repeat(32) }] },
    { start: 3, end: 4, state: 'loading', throughput: 0, weightsStep: 7, claimedAt: 1_799_999_999_000, slots: [{ weightsHash: '55'.repeat(32), chunksRoot: '66'.repeat(32), optimizerRoot: '77'.repeat(32) }] }
  ]
}
const signed = await signLayerRecord(record, key)
const payload = encodeLayerRecord(record)
// a record naming `peerId` but signed with another key
const forged = (await RecordEnvelope.seal({ domain: 'neuroshard-layer-pool', codec: Uint8Array.of(0x03, 0x50), marshal: () => payload, equals: () => false }, otherKey)).marshal()
// the same record signed for another domain
const otherDomain = (await RecordEnvelope.seal({ domain: 'libp2p-peer-record', codec: Uint8Array.of(0x03, 0x50), marshal: () => payload, equals: () => false }, key)).marshal()
// field 1 of the envelope re-tagged with wire type 3: the same content, not canonical
const recoded = signed.bytes.slice()
recoded[0] = 0x0b

const parent = genesisArchitecture('devnet', TINY, 7)
const child = growArchitecture(parent, 4, 1_800_000_000_000)

const vectors = {
  description: 'Layer records (signed envelopes, RFC 0002) and an architecture record, from a fixed Ed25519 key. now_ms is the clock to check them at.',
  now_ms: 1_800_000_005_000,
  key: { ed25519_seed: hex(seed), peer_id: peerId.toString(), public_key_protobuf: hex(publicKeyToProtobuf(key.publicKey)) },
  record: {
    fields: {
      model_id: record.modelId,
      version: record.version,
      sequence: String(record.sequence),
      issued_at_ms: record.issuedAt,
      expires_at_ms: record.expiresAt,
      memory_bytes: record.memoryBytes,
      addresses: record.addresses.map(String),
      spans: record.spans
    },
    payload_hex: hex(payload),
    envelope_hex: hex(signed.bytes),
    dht_key: `/neuroshard/layer-pool/1/devnet/1/${peerId.toString()}`,
    dht_value_hex: hex(Uint8Array.from((() => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, record.sequence, true); return b })())) + hex(signed.bytes),
    topic: '/neuroshard/layer-pool/1/devnet'
  },
  invalid: [
    { name: 'signed by another key', envelope_hex: hex(forged), error: 'ForgedLayerRecordError' },
    { name: 'signed for another domain', envelope_hex: hex(otherDomain), error: 'ForgedLayerRecordError' },
    { name: 'not canonically encoded', envelope_hex: hex(recoded), error: 'InvalidLayerRecordError' },
    { name: 'expired at now_ms + 10 s', envelope_hex: hex(signed.bytes), now_ms: 1_800_000_010_000, error: 'ExpiredLayerRecordError' },
    { name: 'issued more than 30 s after now_ms', envelope_hex: hex(signed.bytes), now_ms: 1_799_999_969_999, error: 'InvalidLayerRecordError' },
    { name: 'not an envelope', envelope_hex: '0102030405', error: 'InvalidLayerRecordError' },
    { name: 'over 8192 bytes', envelope_hex: '00'.repeat(8193), error: 'OversizedLayerRecordError' }
  ],
  architecture: {
    authority_peer_id: peerId.toString(),
    parent: { model_id: parent.modelId, version: parent.version, config: parent.config, init_seed: String(parent.initSeed) },
    envelope_hex: hex(await signArchitecture(child, key)),
    fields: { model_id: child.modelId, version: child.version, config: child.config, init_seed: String(child.initSeed), parent_version: child.parentVersion, issued_at_ms: child.issuedAt }
  }
}
// NEUROSHARD_SPECS_DIR: another specs/ tree (specs/regenerate.py writes into a temporary copy and compares)
const specs = process.env.NEUROSHARD_SPECS_DIR ?? new URL('../../../../specs/', import.meta.url).pathname
writeFileSync(`${specs}/layer-pool/vectors/records.json`, JSON.stringify(vectors, null, 2) + '\n')
console.log('wrote records.json')
