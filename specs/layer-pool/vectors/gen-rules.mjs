// Writes specs/layer-pool/vectors/rules.json: one signed layer record, architecture record or DHT value per MUST
// rule of README §2.2 (record rules 1-7, in order), §2.3 (DHT value and key) and §7 (architecture versions), built with
// the real @neuroshard/layer-pool code and libp2p's signed envelopes from a fixed Ed25519 key (deterministic
// signatures). The expected outcome of every case is written here by hand from the spec text; the script then opens
// each case with the TypeScript implementation and stops (exit 1, nothing written) if it disagrees.
//
//   npx -y pnpm@10 exec tsc -b packages/layer-pool && node specs/layer-pool/vectors/gen-rules.mjs
import { writeFileSync } from 'node:fs'
import * as P from '../../../packages/layer-pool/dist/src/index.js'
import { LayerRecord, ArchitectureRecord, SpanState, WeightFormat } from '../../../packages/layer-pool/dist/src/pb/layer-pool.js'
import { createNeuroShardRecordValidator } from '../../../packages/host/dist/src/index.js'
import { TINY, countParameters, modelParameters, canonicalConfigJson } from '../../../packages/model/dist/src/index.js'
import { generateKeyPairFromSeed } from '../../../packages/layer-pool/node_modules/@libp2p/crypto/dist/src/keys/index.js'
import { peerIdFromPrivateKey } from '../../../packages/layer-pool/node_modules/@libp2p/peer-id/dist/src/index.js'
import { RecordEnvelope } from '../../../packages/layer-pool/node_modules/@libp2p/peer-record/dist/src/index.js'
import { multiaddr } from '../../../packages/layer-pool/node_modules/@multiformats/multiaddr/dist/src/index.js'

const hex = (b) => Buffer.from(b).toString('hex')
const key = await generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, (_, i) => i + 1))
const otherKey = await generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, (_, i) => 200 - i))
const peerId = peerIdFromPrivateKey(key)
const otherPeer = peerIdFromPrivateKey(otherKey)
const NOW = 1_800_000_005_000
const ISSUED = 1_800_000_000_000

// ---- records (§2.2) ----
const slot = (n) => ({ weightsHash: n.repeat(32), chunksRoot: (n[0] + String.fromCharCode(n.charCodeAt(1) + 1)).repeat(32) })
function base () {
  return {
    model_id: 'devnet',
    version: 1,
    sequence: String(ISSUED),
    issued_at_ms: ISSUED,
    expires_at_ms: ISSUED + 10_000,
    memory_bytes: 67_108_864,
    addresses: ['/ip4/127.0.0.1/tcp/4001'],
    spans: [
      { start: 0, end: 2, state: 'serving', throughput: 123.456, weightsStep: 0, claimedAt: ISSUED - 10_000, slots: [slot('11'), slot('33')] },
      { start: 3, end: 4, state: 'loading', throughput: 0, weightsStep: 7, claimedAt: ISSUED - 1000, slots: [{ ...slot('55'), optimizerRoot: '77'.repeat(32) }] }
    ]
  }
}
const STATE = { loading: SpanState.LOADING, serving: SpanState.SERVING, training: SpanState.TRAINING, leaving: SpanState.LEAVING }
const FORMAT = { fp32: WeightFormat.FP32, int8: WeightFormat.INT8, int4: WeightFormat.INT4 }
/** the vector form of a record (as records.json writes it) to the protons message; no checks, so rule-breaking records encode */
function toPb (f, peerBytes = peerId.toMultihash().bytes) {
  return {
    modelId: f.model_id,
    version: f.version,
    peerId: peerBytes,
    sequence: BigInt(f.sequence),
    issuedAtMs: BigInt(f.issued_at_ms),
    expiresAtMs: BigInt(f.expires_at_ms),
    memoryBytes: BigInt(f.memory_bytes),
    addresses: f.addresses.map(a => typeof a === 'string' ? multiaddr(a).bytes : a),
    spans: f.spans.map(s => ({
      start: s.start,
      end: s.end,
      state: STATE[s.state],
      throughputMilli: BigInt(Math.round(s.throughput * 1000)),
      slots: s.slots.map(x => ({ weightsHash: Buffer.from(x.weightsHash, 'hex'), chunksRoot: Buffer.from(x.chunksRoot, 'hex'), optimizerRoot: Buffer.from(x.optimizerRoot ?? '', 'hex'), ...(x.weightsStep != null ? { weightsStep: BigInt(x.weightsStep) } : {}) })),
      weightsStep: BigInt(s.weightsStep),
      claimedAtMs: BigInt(s.claimedAt),
      weightFormat: FORMAT[s.quantization ?? 'fp32'],
      ...(s.kvTokensLeft != null ? { kvTokensLeft: BigInt(s.kvTokensLeft) } : {}),
      ...(s.quantBlockSize != null ? { quantBlockSize: s.quantBlockSize } : {})
    }))
  }
}
async function seal (payload, { signer = key, domain = P.LAYER_RECORD_DOMAIN, type = P.LAYER_RECORD_PAYLOAD_TYPE } = {}) {
  return (await RecordEnvelope.seal(new P.EnvelopePayload(domain, type, payload), signer)).marshal()
}
/** the signature's last byte flipped (the envelope stays canonical: field 5 is the last one) */
const breakSignature = (env) => { const b = env.slice(); b[b.length - 1] ^= 1; return b }
const replace = (bytes, from, to) => {
  const h = hex(bytes)
  if (h.split(hex(from)).length !== 2) throw new Error(`pattern ${hex(from)} not found exactly once`)
  return Buffer.from(h.replace(hex(from), hex(to)), 'hex')
}
const edit = (fn) => { const f = base(); fn(f); return f }
const span1 = (start, end, claimedAt = ISSUED - 1) => ({ start, end, state: 'serving', throughput: 1, weightsStep: 0, claimedAt, slots: Array.from({ length: end - start }, () => slot('11')) })

// [name, fields, expected error or null, options]; options: now, slotCount, pb (edit the protobuf message), payload
// (edit the encoded payload), seal (seal options), envelope (edit the envelope bytes)
const recordCases = [
  // accepted at the edge of a rule (fields returned as given)
  ['lifetime exactly 300 000 ms', edit(f => { f.expires_at_ms = ISSUED + 300_000 }), null],
  ['issued exactly 30 s after now', edit(f => { f.issued_at_ms = NOW + 30_000; f.expires_at_ms = NOW + 40_000 }), null],
  ['expires 1 ms after now', edit(f => { f.expires_at_ms = NOW + 1 }), null],
  ['16 addresses', edit(f => { f.addresses = Array.from({ length: 16 }, (_, i) => `/ip4/10.0.0.${i + 1}/tcp/4001`) }), null],
  ['8 one-slot spans, each starting where the previous ends', edit(f => { f.spans = Array.from({ length: 8 }, (_, i) => span1(i, i + 1)) }), null],
  ['claimed_at_ms equal to issued_at_ms', edit(f => { f.spans[0].claimedAt = ISSUED }), null],
  ['model id of 64 characters', edit(f => { f.model_id = 'a' + '-9'.repeat(31) + 'z' }), null],
  ['span ending at the model\'s last slot (known model: 4 slots)', base(), null, { slotCount: 4 }],
  ['sequence 2^64 - 1', edit(f => { f.sequence = '18446744073709551615' }), null],
  // §2.5 (1.3.0): kv_tokens_left is optional (0 is a value, written), at most 2^53 - 1 like every uint64 but sequence
  ['kv_tokens_left 0 on one span, absent on the other', edit(f => { f.spans[0].kvTokensLeft = 0 }), null],
  ['kv_tokens_left 2^53 - 1', edit(f => { f.spans[0].kvTokensLeft = 9007199254740991 }), null],
  // (1.6.0) a slot's own weights_step, below its span's, is returned; absent on the other slots
  ['slot weights_step 3 in a span at step 5', edit(f => { f.spans[0].weightsStep = 5; f.spans[0].slots[1].weightsStep = 3 }), null],
  ['slot weights_step 0 in a span at step 1', edit(f => { f.spans[1].weightsStep = 1; f.spans[1].slots[0].weightsStep = 0 }), null],
  // §2.4: weight_format (1.1.0) returned as `quantization` when not FP32; (1.7.0) quant_block_size 64 or 128 on a
  // quantized span, returned as `quantBlockSize` (absent: 32-value groups)
  ['weight_format INT4 and INT8 (32-value groups)', edit(f => { f.spans[0].quantization = 'int4'; f.spans[1].quantization = 'int8' }), null],
  ['quant_block_size 128 on an INT4 span, 64 on an INT8 span (1.7.0)', edit(f => { f.spans[0].quantization = 'int4'; f.spans[0].quantBlockSize = 128; f.spans[1].quantization = 'int8'; f.spans[1].quantBlockSize = 64 }), null],
  // rule 1
  ['oversized: 8 193 bytes of a real envelope padded', base(), 'OversizedLayerRecordError', { envelope: (e) => Buffer.concat([e, Buffer.alloc(8193 - e.length)]) }],
  // rule 2
  ['envelope signed with the architecture payload type 0x0351', base(), 'InvalidLayerRecordError', { seal: { type: Uint8Array.of(0x03, 0x51) } }],
  ['envelope followed by a trailing byte', base(), 'InvalidLayerRecordError', { envelope: (e) => Buffer.concat([e, Buffer.of(0)]) }],
  // rule 3
  ['signature with its last byte flipped', base(), 'ForgedLayerRecordError', { envelope: breakSignature }],
  ['signature over the layer-pool-arch domain', base(), 'ForgedLayerRecordError', { seal: { domain: 'neuroshard-layer-pool-arch' } }],
  ['order: a bad signature over a payload that does not decode (rule 3 before 4)', base(), 'ForgedLayerRecordError', { payload: () => Buffer.of(0x0a, 0x05, 0x61), envelope: breakSignature }],
  // rule 4
  ['payload does not decode (truncated field)', base(), 'InvalidLayerRecordError', { payload: () => Buffer.of(0x0a, 0x05, 0x61) }],
  ['payload not canonical: version written twice', base(), 'InvalidLayerRecordError', { payload: (p) => Buffer.concat([p, Buffer.of(0x10, 0x01)]) }],
  ['peer_id is not a peer id multihash', base(), 'InvalidLayerRecordError', { pb: (m) => { m.peerId = Uint8Array.of(1, 2, 3) } }],
  ['17 addresses', edit(f => { f.addresses = Array.from({ length: 17 }, (_, i) => `/ip4/10.0.0.${i + 1}/tcp/4001`) }), 'InvalidLayerRecordError'],
  ['an address that is not a multiaddr (protocol code 65535)', base(), 'InvalidLayerRecordError', { pb: (m) => { m.addresses = [Uint8Array.of(0xff, 0xff, 0x03, 1, 2)] } }],
  ['9 spans', edit(f => { f.spans = Array.from({ length: 9 }, (_, i) => span1(i, i + 1)) }), 'InvalidLayerRecordError'],
  ['unknown span state 4', edit(f => { f.spans[1].state = 'leaving' }), 'InvalidLayerRecordError', { payload: (p) => replace(p, Uint8Array.of(0x18, 0x03), Uint8Array.of(0x18, 0x04)) }],
  ['unknown weight format 3 (§2.4)', edit(f => { f.spans[0].quantization = 'int4' }), 'InvalidLayerRecordError', { payload: (p) => replace(p, Uint8Array.of(0x40, 0x02), Uint8Array.of(0x40, 0x03)) }],
  ['weights_hash of 31 bytes', edit(f => { f.spans[0].slots[0].weightsHash = '11'.repeat(31) }), 'InvalidLayerRecordError'],
  ['chunks_root of 33 bytes', edit(f => { f.spans[0].slots[1].chunksRoot = '44'.repeat(33) }), 'InvalidLayerRecordError'],
  ['optimizer_root of 16 bytes', edit(f => { f.spans[1].slots[0].optimizerRoot = '77'.repeat(16) }), 'InvalidLayerRecordError'],
  ['memory_bytes 2^53 (over 2^53 - 1)', edit(f => { f.memory_bytes = '9007199254740992' }), 'InvalidLayerRecordError'],
  ['kv_tokens_left 2^53 (over 2^53 - 1, §2.5)', edit(f => { f.spans[1].kvTokensLeft = '9007199254740992' }), 'InvalidLayerRecordError'],
  ['slot weights_step 2^53 (over 2^53 - 1; 1.6.0)', edit(f => { f.spans[0].weightsStep = 5; f.spans[0].slots[0].weightsStep = '9007199254740992' }), 'InvalidLayerRecordError'],
  ['order: signed by another key, peer_id not a multihash (rule 4 before 5)', base(), 'InvalidLayerRecordError', { pb: (m) => { m.peerId = Uint8Array.of(1, 2, 3) }, seal: { signer: otherKey } }],
  // rule 5
  ['signed by another key than peer_id\'s', base(), 'ForgedLayerRecordError', { seal: { signer: otherKey } }],
  ['order: signed by another key, model id invalid (rule 5 before 6)', edit(f => { f.model_id = 'Devnet' }), 'ForgedLayerRecordError', { seal: { signer: otherKey } }],
  // rule 6
  ['model id with an upper-case letter', edit(f => { f.model_id = 'Devnet' }), 'InvalidLayerRecordError'],
  ['model id starting with -', edit(f => { f.model_id = '-devnet' }), 'InvalidLayerRecordError'],
  ['model id of 65 characters', edit(f => { f.model_id = 'a'.repeat(65) }), 'InvalidLayerRecordError'],
  ['empty model id', edit(f => { f.model_id = '' }), 'InvalidLayerRecordError'],
  ['version 0', edit(f => { f.version = 0 }), 'InvalidLayerRecordError'],
  ['sequence 0', edit(f => { f.sequence = '0' }), 'InvalidLayerRecordError'],
  ['expires_at_ms equal to issued_at_ms', edit(f => { f.expires_at_ms = ISSUED }), 'InvalidLayerRecordError'],
  ['expires_at_ms before issued_at_ms', edit(f => { f.expires_at_ms = ISSUED - 1 }), 'InvalidLayerRecordError'],
  ['lifetime 300 001 ms', edit(f => { f.expires_at_ms = ISSUED + 300_001 }), 'InvalidLayerRecordError'],
  ['issued 30 001 ms after now', edit(f => { f.issued_at_ms = NOW + 30_001; f.expires_at_ms = NOW + 40_000 }), 'InvalidLayerRecordError'],
  ['an empty span', edit(f => { f.spans[1] = { ...span1(3, 4), end: 3, slots: [] } }), 'InvalidLayerRecordError'],
  ['spans not sorted by start', edit(f => { f.spans.reverse() }), 'InvalidLayerRecordError'],
  ['slot weights_step equal to its span\'s (1.6.0: written only when below)', edit(f => { f.spans[0].weightsStep = 5; f.spans[0].slots[0].weightsStep = 5 }), 'InvalidLayerRecordError'],
  ['slot weights_step above its span\'s (1.6.0)', edit(f => { f.spans[1].weightsStep = 2; f.spans[1].slots[0].weightsStep = 7 }), 'InvalidLayerRecordError'],
  ['quant_block_size 32 written (1.7.0: 32 is the field left out)', edit(f => { f.spans[0].quantization = 'int4'; f.spans[0].quantBlockSize = 32 }), 'InvalidLayerRecordError'],
  ['quant_block_size 256 (1.7.0: 64 or 128)', edit(f => { f.spans[0].quantization = 'int4'; f.spans[0].quantBlockSize = 256 }), 'InvalidLayerRecordError'],
  ['quant_block_size 16 (1.7.0: 64 or 128)', edit(f => { f.spans[0].quantization = 'int8'; f.spans[0].quantBlockSize = 16 }), 'InvalidLayerRecordError'],
  ['quant_block_size 128 on a float32 span (1.7.0)', edit(f => { f.spans[1].quantBlockSize = 128 }), 'InvalidLayerRecordError'],
  ['overlapping spans', edit(f => { f.spans[1] = span1(1, 3) }), 'InvalidLayerRecordError'],
  ['a span with one slot entry too few', edit(f => { f.spans[0].slots.pop() }), 'InvalidLayerRecordError'],
  ['a span with one slot entry too many', edit(f => { f.spans[1].slots.push(slot('11')) }), 'InvalidLayerRecordError'],
  ['claimed_at_ms 1 ms after issued_at_ms', edit(f => { f.spans[0].claimedAt = ISSUED + 1 }), 'InvalidLayerRecordError'],
  ['span past the model\'s last slot (known model: 3 slots)', base(), 'InvalidLayerRecordError', { slotCount: 3 }],
  // rule 7
  ['expired: expires_at_ms equal to now', edit(f => { f.expires_at_ms = NOW }), 'ExpiredLayerRecordError'],
  ['order: expired and spans not sorted (rule 6 before 7)', edit(f => { f.expires_at_ms = NOW; f.spans.reverse() }), 'InvalidLayerRecordError'],
  ['order: expired and claimed after issue (rule 6 before 7)', edit(f => { f.expires_at_ms = NOW - 1; f.spans[1].claimedAt = ISSUED + 5 }), 'InvalidLayerRecordError']
]

let disagreements = 0
function agree (what, got, want) {
  if (got !== want) {
    disagreements++
    console.error(`the TypeScript implementation disagrees on "${what}": ${got} (spec: ${want})`)
  }
}
async function outcome (fn) {
  try { await fn(); return null } catch (err) { return err.name }
}

const records = []
for (const [name, fields, error, o = {}] of recordCases) {
  const m = toPb(fields, fields === undefined ? undefined : peerId.toMultihash().bytes)
  o.pb?.(m)
  let payload = LayerRecord.encode(m)
  if (o.payload) payload = o.payload(payload)
  let envelope = await seal(payload, o.seal)
  if (o.envelope) envelope = o.envelope(envelope)
  const now = o.now ?? NOW
  const c = { name, envelope_hex: hex(envelope), now_ms: now, ...(o.slotCount ? { slot_count: o.slotCount } : {}) }
  if (error) c.error = error
  else c.fields = fields
  agree(name, await outcome(() => P.openLayerRecord(envelope, { now, slotCount: o.slotCount })), error)
  records.push(c)
}

// ---- DHT values and keys (§2.3, host "DHT records") ----
const validEnvelope = await seal(LayerRecord.encode(toPb(base())))
const u64le = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b }
const dhtKey = (model = 'devnet', version = 1, peer = peerId.toString()) => `/neuroshard/layer-pool/1/${model}/${version}/${peer}`
const dhtCases = [
  ['valid: uint64le(sequence) ‖ envelope under the record\'s key', dhtKey(), Buffer.concat([u64le(ISSUED), validEnvelope]), null],
  ['DHT sequence one more than the record\'s', dhtKey(), Buffer.concat([u64le(ISSUED + 1), validEnvelope]), 'InvalidLayerRecordError'],
  ['DHT sequence written big-endian', dhtKey(), Buffer.concat([(() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(ISSUED)); return b })(), validEnvelope]), 'InvalidLayerRecordError'],
  ['stored under another peer\'s key', dhtKey('devnet', 1, otherPeer.toString()), Buffer.concat([u64le(ISSUED), validEnvelope]), 'InvalidLayerRecordError'],
  ['stored under another version', dhtKey('devnet', 2), Buffer.concat([u64le(ISSUED), validEnvelope]), 'InvalidLayerRecordError'],
  ['stored under another model id', dhtKey('mainnet'), Buffer.concat([u64le(ISSUED), validEnvelope]), 'InvalidLayerRecordError'],
  ['stored under another protocol major', dhtKey().replace('/layer-pool/1/', '/layer-pool/2/'), Buffer.concat([u64le(ISSUED), validEnvelope]), 'InvalidLayerRecordError'],
  ['payload signed by another key', dhtKey(), Buffer.concat([u64le(ISSUED), await seal(LayerRecord.encode(toPb(base())), { signer: otherKey })]), 'ForgedLayerRecordError'],
  ['payload expired', dhtKey(), Buffer.concat([u64le(ISSUED), await seal(LayerRecord.encode(toPb(edit(f => { f.expires_at_ms = NOW }))))]), 'ExpiredLayerRecordError'],
  ['value shorter than the 8-byte header (host rule)', dhtKey(), Buffer.from('01020304050607', 'hex'), 'InvalidRecordError'],
  ['key without the /neuroshard/ prefix (host rule)', dhtKey().replace('/neuroshard/', '/ipns/'), Buffer.concat([u64le(ISSUED), validEnvelope]), 'InvalidRecordError']
]
const validate = createNeuroShardRecordValidator({ 'layer-pool': P.layerPoolRecordValidator({ now: () => NOW }) })
const dht = []
for (const [name, k, value, error] of dhtCases) {
  agree(name, await outcome(() => validate(new TextEncoder().encode(k), value)), error)
  dht.push({ name, key: k, value_hex: hex(value), now_ms: NOW, ...(error ? { error } : {}) })
}

// ---- architecture versions (§7) ----
const parent = { model_id: 'devnet', version: 1, config: { ...TINY }, init_seed: '7', parent_version: 0, issued_at_ms: 0 }
const grown = { model_id: 'devnet', version: 2, config: { ...TINY, nLayers: TINY.nLayers + 2 }, init_seed: '7', parent_version: 1, issued_at_ms: ISSUED }
const archPb = (a, configJson = canonicalConfigJson(a.config)) => ArchitectureRecord.encode({
  modelId: a.model_id, version: a.version, configJson, initSeed: BigInt(a.init_seed), parentVersion: a.parent_version, issuedAtMs: BigInt(a.issued_at_ms)
})
const archSeal = async (payload, { signer = key, domain = 'neuroshard-layer-pool-arch', type = Uint8Array.of(0x03, 0x51) } = {}) =>
  (await RecordEnvelope.seal(new P.EnvelopePayload(domain, type, payload), signer)).marshal()
const grow = (fn) => { const a = structuredClone(grown); fn(a); return a }
const childParams = countParameters(modelParameters(grown.config))
// [name, architecture fields, expected error or null, options]: configJson, seal, envelope, authorities, limits
const archCases = [
  ['a growth by two blocks, signed by the authority', grown, null],
  ['a growth within the node\'s limits (parameters and context exactly at the limit)', grown, null, { limits: { maxParameters: childParams, maxSeqLen: TINY.maxSeqLen } }],
  ['signed by a peer that is not an architecture authority', grown, 'ForgedLayerRecordError', { seal: { signer: otherKey } }],
  ['signature with its last byte flipped', grown, 'ForgedLayerRecordError', { envelope: breakSignature }],
  ['signature over the layer-record domain', grown, 'ForgedLayerRecordError', { seal: { domain: 'neuroshard-layer-pool' } }],
  ['payload type 0x0350 (a layer record\'s)', grown, 'InvalidLayerRecordError', { seal: { type: Uint8Array.of(0x03, 0x50) } }],
  ['order: a non-authority signs a version that is not a growth (the signer first)', grow(a => { a.config.nLayers = TINY.nLayers }), 'ForgedLayerRecordError', { seal: { signer: otherKey } }],
  ['config_json with a space (not the canonical form)', grown, 'InvalidLayerRecordError', { configJson: canonicalConfigJson(grown.config).replace(':', ': ') }],
  ['config_json with its keys in another order', grown, 'InvalidLayerRecordError', { configJson: JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(canonicalConfigJson(grown.config))).reverse())) }],
  ['config_json of an invalid config (dModel not a multiple of nHeads)', grow(a => { a.config.dModel = 65 }), 'InvalidLayerRecordError', { configJson: canonicalConfigJson(grown.config).replace('"dModel":64', '"dModel":65') }],
  ['order: config not canonical and not a growth (the config first)', grow(a => { a.config.nLayers = TINY.nLayers }), 'InvalidLayerRecordError', { configJson: canonicalConfigJson({ ...TINY }).replace(':', ': ') }],
  ['the same number of blocks', grow(a => { a.config.nLayers = TINY.nLayers }), 'UnsupportedArchitectureError'],
  ['fewer blocks', grow(a => { a.config.nLayers = TINY.nLayers - 1 }), 'UnsupportedArchitectureError'],
  ['more blocks and a wider model', grow(a => { a.config.dModel = TINY.dModel * 2; a.config.ffnHidden = TINY.ffnHidden * 2 }), 'UnsupportedArchitectureError'],
  ['more blocks and another init seed', grow(a => { a.init_seed = '8' }), 'UnsupportedArchitectureError'],
  ['more blocks under another model id', grow(a => { a.model_id = 'devnet2' }), 'UnsupportedArchitectureError'],
  ['version 3 after version 1', grow(a => { a.version = 3; a.parent_version = 2 }), 'UnsupportedArchitectureError'],
  ['version 2 naming parent version 0', grow(a => { a.parent_version = 0 }), 'UnsupportedArchitectureError'],
  ['more parameters than this node runs', grown, 'UnsupportedArchitectureError', { limits: { maxParameters: childParams - 1 } }],
  ['a longer context than this node runs', grown, 'UnsupportedArchitectureError', { limits: { maxSeqLen: TINY.maxSeqLen - 1 } }]
]
if (canonicalConfigJson(grown.config).indexOf('"dModel":64') < 0) throw new Error('TINY is no longer 64 wide: adjust the dModel case')
const { peerIdFromString } = await import('../../../packages/layer-pool/node_modules/@libp2p/peer-id/dist/src/index.js')
const architecture = []
for (const [name, a, error, o = {}] of archCases) {
  let envelope = await archSeal(archPb(a, o.configJson), o.seal)
  if (o.envelope) envelope = o.envelope(envelope)
  const authorities = o.authorities ?? [peerId.toString()]
  agree(name, await outcome(() => P.openArchitecture(envelope, {
    authorities: authorities.map(x => peerIdFromString(x)),
    parent: { modelId: parent.model_id, version: parent.version, config: parent.config, initSeed: BigInt(parent.init_seed), parentVersion: 0, issuedAt: 0 },
    limits: o.limits
  })), error)
  architecture.push({ name, envelope_hex: hex(envelope), authorities, ...(o.limits ? { limits: o.limits } : {}), ...(error ? { error } : { fields: a }) })
}

if (disagreements > 0) {
  console.error(`${disagreements} disagreement(s): rules.json not written`)
  process.exit(1)
}
const out = {
  description: 'One case per MUST rule of layer-pool §2.2 (record rules 1-7 in order, "order:" cases break two rules at once; §2.5 kv_tokens_left bounds), §2.3 (DHT value uint64le(sequence) ‖ envelope under /neuroshard/layer-pool/1/<model id>/<version>/<peer id>) and §7 (architecture versions). Written by gen-rules.mjs; expected outcomes from the spec text.',
  key: { ed25519_seed: hex(Uint8Array.from({ length: 32 }, (_, i) => i + 1)), peer_id: peerId.toString(), other_peer_id: otherPeer.toString() },
  records,
  dht,
  architecture: { parent, cases: architecture }
}
writeFileSync(new URL('rules.json', import.meta.url), JSON.stringify(out, null, 1) + '\n')
console.log(`wrote rules.json: ${records.length} records, ${dht.length} DHT values, ${architecture.length} architecture records`)
