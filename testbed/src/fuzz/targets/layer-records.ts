/**
 * Layer-pool records: `openLayerRecord` (what the pool runs on every gossip message and DHT value) and
 * `openArchitecture` (architecture epochs). Direct calls on the signed envelope bytes.
 *
 * Oracle: both are canonically encoded signed envelopes, so any byte sequence other than an honest record
 * must be refused; honest re-signed records that break a rule of the spec (sequence 0, expiry not after
 * issue, a span beyond the model, a short slot hash, an invalid model id, another peer's id) must be
 * refused too.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import { EnvelopePayload, genesisArchitecture, openArchitecture, openLayerRecord, signArchitecture, signLayerRecord, encodeLayerRecord, LAYER_RECORD_DOMAIN, LAYER_RECORD_PAYLOAD_TYPE } from '@neuroshard/layer-pool'
import { preset } from '@neuroshard/model'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { concat, mutateAny, mutateBytes, mutateProto } from '../mutate.js'
import { encodeFields, eq, parseFields, wireMismatch } from '../proto.js'
import type { Field } from '../proto.js'
import type { FuzzInput, FuzzTarget, Outcome } from '../engine.js'
import type { Rng } from '../rng.js'

const NOW = 1_800_000_000_000
const SLOTS = preset('tiny').nLayers + 2

interface Honest { key: PrivateKey, peerId: PeerId, payload: Uint8Array, bytes: Uint8Array }

/** A rule-breaking edit of a layer record payload (fields of specs/layer-pool LayerRecord) */
function breakRule (rng: Rng, payload: Uint8Array, other: PeerId): { payload: Uint8Array, rule: string } {
  const fields = parseFields(payload)
  const set = (no: number, value: Field['value'], wire = value instanceof Uint8Array ? 2 : 0): Uint8Array => encodeFields([...fields.filter(f => f.no !== no), { no, wire, value }])
  const issued = fields.find(f => f.no === 5)?.value as bigint
  const span = fields.find(f => f.no === 9)?.value as Uint8Array
  const spanFields = parseFields(span)
  const setSpan = (no: number, value: Field['value']): Uint8Array => encodeFields([...fields.filter(f => f.no !== 9), { no: 9, wire: 2, value: encodeFields([...spanFields.filter(f => f.no !== no), { no, wire: value instanceof Uint8Array ? 2 : 0, value }]) }])
  switch (rng.int(7)) {
    case 0: return { payload: set(4, 0n), rule: 'sequence-0' }
    case 1: return { payload: set(6, issued), rule: 'expires-at-issue' }
    case 2: return { payload: set(1, new TextEncoder().encode(rng.pick(['Tiny', '', '-x', 'a'.repeat(65), 'ti ny']))), rule: 'model-id' }
    case 3: return { payload: set(3, other.toMultihash().bytes), rule: 'other-peer' }
    case 4: return { payload: setSpan(2, BigInt(SLOTS + 1 + rng.int(1000))), rule: 'span-beyond-model' }
    case 5: return { payload: setSpan(5, encodeFields([{ no: 1, wire: 2, value: rng.bytes(31) }, { no: 2, wire: 2, value: rng.bytes(32) }])), rule: 'short-slot-hash' }
    default: return { payload: set(6, issued + 10n ** 12n), rule: 'ttl-too-long' }
  }
}

/** libp2p signed envelope fields: payload_type 2, payload 3, signature 5 (last value wins) */
function tupleChanged (b: Uint8Array, honest: Uint8Array): boolean {
  let f: Field[]
  try { f = parseFields(b) } catch { return false }
  if (wireMismatch(f, { 1: 2, 2: 2, 3: 2, 5: 2 })) return false
  const h = parseFields(honest)
  const last = (fs: Field[], no: number): Uint8Array => { let v: Uint8Array = new Uint8Array(0); for (const x of fs) if (x.no === no && x.value instanceof Uint8Array) v = x.value; return v }
  // the public key (1) is left out: protons reads a known field whatever its wire type, so a key whose
  // bytes differ can still decode to the same key; another key cannot verify the signature anyway
  return [2, 3, 5].some(no => !eq(last(f, no), last(h, no)))
}

export function layerRecordsTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  const layer: Honest[] = []
  const arch: Honest[] = []
  let authority: PeerId
  const isHonest = (list: Honest[], b: Uint8Array): boolean => list.some(h => eq(h.bytes, b))
  return {
    name: options.vulnerable === true ? 'layer-pool records (accept-all)' : 'layer-pool records',
    handler: 'layer-pool: openLayerRecord (gossip/DHT), openArchitecture',
    mode: 'message',
    async setup () {
      for (let i = 0; i < 3; i++) {
        const key = await generateKeyPair('Ed25519')
        const peerId = peerIdFromPrivateKey(key)
        const record = {
          modelId: 'tiny', version: 1, peerId, sequence: BigInt(1 + i), issuedAt: NOW - 1000, expiresAt: NOW + 60_000, memoryBytes: 1 << 30,
          addresses: [multiaddr('/ip4/127.0.0.1/tcp/4001'), multiaddr('/ip4/10.0.0.1/tcp/4001')],
          spans: [{ start: i, end: i + 2, state: 'serving' as const, throughput: 2.5, weightsStep: 3, claimedAt: NOW - 2000, slots: [{ weightsHash: 'ab'.repeat(32), chunksRoot: 'cd'.repeat(32) }, { weightsHash: 'ef'.repeat(32), chunksRoot: '01'.repeat(32), optimizerRoot: '23'.repeat(32) }] }]
        }
        const signed = await signLayerRecord(record, key)
        layer.push({ key, peerId, payload: encodeLayerRecord(record), bytes: signed.bytes })
      }
      const key = await generateKeyPair('Ed25519')
      authority = peerIdFromPrivateKey(key)
      const a = genesisArchitecture('tiny', preset('tiny'), 7, NOW - 5000)
      arch.push({ key, peerId: authority, payload: new Uint8Array(0), bytes: await signArchitecture(a, key) })
    },
    async teardown () {},
    generate (rng: Rng): FuzzInput {
      const r = rng.next()
      if (r < 0.12) {
        // honestly signed by the peer it names, but breaking a rule
        const h = rng.pick(layer)
        const { payload, rule } = breakRule(rng, h.payload, rng.pick(layer.filter(x => x !== h)).peerId)
        // sealed synchronously below (run) — the input carries the key index and the payload
        return { bytes: concat(Uint8Array.of(0xfe, layer.indexOf(h)), payload), mustReject: true, kind: `resigned:${rule}` }
      }
      if (r < 0.2) {
        // the envelope is not canonically checked (its payload is): refusal is required when the signed
        // tuple (public key, payload type, payload, signature) differs from the honest one
        const b = mutateBytes(rng, rng.pick(arch).bytes)
        return { bytes: concat(Uint8Array.of(0xfd), b), mustReject: tupleChanged(b, arch[0].bytes), kind: 'arch-bytes' }
      }
      if (r < 0.25) return { bytes: concat(Uint8Array.of(0xfd), rng.pick(arch).bytes), mustReject: false, kind: 'arch-honest' }
      if (r < 0.3) return { bytes: rng.pick(layer).bytes, mustReject: false, kind: 'honest' }
      if (r < 0.45) {
        // the envelope's payload field replaced by a mutated payload (signature left as it was)
        const h = rng.pick(layer)
        const env = parseFields(h.bytes).map(f => f.no === 3 ? { ...f, value: mutateProto(rng, h.payload) } : f)
        const bytes = encodeFields(env)
        // (a protobuf edit can be a no-op, e.g. reordering a one-field message)
        return { bytes, mustReject: !isHonest(layer, bytes), kind: 'payload-proto' }
      }
      const bytes = mutateAny(rng, layer.map(h => h.bytes))
      return { bytes, mustReject: !isHonest(layer, bytes), kind: 'envelope' }
    },
    async run (input: FuzzInput): Promise<Outcome> {
      let b = input.bytes
      if (b[0] === 0xfe && input.kind.startsWith('resigned:')) {
        const h = layer[b[1]]
        b = (await RecordEnvelope.seal(new EnvelopePayload(LAYER_RECORD_DOMAIN, LAYER_RECORD_PAYLOAD_TYPE, b.subarray(2)), h.key)).marshal()
      } else if (b[0] === 0xfd && input.kind.startsWith('arch')) {
        if (options.vulnerable === true) return { accepted: true }
        await openArchitecture(b.subarray(1), { authorities: [authority] })
        return { accepted: true }
      }
      if (options.vulnerable === true) return { accepted: true }
      await openLayerRecord(b, { now: NOW, slotCount: SLOTS })
      return { accepted: true }
    },
    async alive () {
      for (const h of layer) await openLayerRecord(h.bytes, { now: NOW, slotCount: SLOTS })
      await openArchitecture(arch[0].bytes, { authorities: [authority] })
    }
  }
}
