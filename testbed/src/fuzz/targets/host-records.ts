/**
 * Host DHT records: the kad-dht validator of the `neuroshard` key namespace (key format, value header, size
 * cap) with the layer pool's namespace validator registered, plus the record selector.
 * Direct calls: the input is a DHT PUT_VALUE's (key, value) pair.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createNeuroShardRecordValidator, selectNeuroShardRecord, encodeNeuroShardRecord } from '@neuroshard/host'
import { layerPoolRecordValidator, layerRecordDhtKey, signLayerRecord } from '@neuroshard/layer-pool'
type ValidateFn = (key: Uint8Array, value: Uint8Array) => Promise<void> | void
import { concat, mutateBytes } from '../mutate.js'
import { eq, varint } from '../proto.js'
import type { FuzzInput, FuzzTarget, Outcome } from '../engine.js'
import type { Rng } from '../rng.js'

const NOW = 1_800_000_000_000
const PREFIX = new TextEncoder().encode('/neuroshard/')
const LAYER_NS = new TextEncoder().encode('/neuroshard/layer-pool/')

/** key and value travel as one input: varint(key length) ‖ key ‖ value */
function pack (key: Uint8Array, value: Uint8Array): Uint8Array { return concat(Uint8Array.from(varint(key.length)), key, value) }
function unpack (b: Uint8Array): { key: Uint8Array, value: Uint8Array } {
  let len = 0; let shift = 0; let pos = 0
  while (pos < b.length && pos < 4) { const x = b[pos++]; len |= (x & 0x7f) << shift; shift += 7; if ((x & 0x80) === 0) break }
  return { key: b.subarray(pos, Math.min(b.length, pos + len)), value: b.subarray(Math.min(b.length, pos + len)) }
}
function startsWith (b: Uint8Array, p: Uint8Array): boolean { return b.length >= p.length && eq(b.subarray(0, p.length), p) }

export function hostRecordsTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  let validate: ValidateFn
  const honest: Array<{ key: Uint8Array, value: Uint8Array }> = []
  const mustReject = (key: Uint8Array, value: Uint8Array): boolean => {
    if (!startsWith(key, PREFIX)) return true
    if (value.length < 8 || value.length > 16 * 1024) return true
    // the layer pool namespace: only honestly signed records under their own key pass
    if (startsWith(key, LAYER_NS)) return !honest.some(h => eq(h.key, key) && eq(h.value, value))
    return false
  }
  const input = (key: Uint8Array, value: Uint8Array, kind: string): FuzzInput => ({ bytes: pack(key, value), mustReject: mustReject(key, value), kind })
  return {
    name: options.vulnerable === true ? 'host-records (accept-all)' : 'host-records',
    handler: 'host: createNeuroShardRecordValidator + layer-pool namespace validator, selectNeuroShardRecord',
    mode: 'message',
    async setup () {
      validate = options.vulnerable === true ? async () => {} : createNeuroShardRecordValidator({ 'layer-pool': layerPoolRecordValidator({ now: () => NOW }) })
      for (let i = 0; i < 3; i++) {
        const key = await generateKeyPair('Ed25519')
        const peerId = peerIdFromPrivateKey(key)
        const record = {
          modelId: 'tiny', version: 1, peerId, sequence: BigInt(1 + i), issuedAt: NOW - 1000, expiresAt: NOW + 60_000, memoryBytes: 1 << 30,
          addresses: [multiaddr('/ip4/127.0.0.1/tcp/4001')],
          spans: [{ start: i, end: i + 1, state: 'serving' as const, throughput: 1.5, weightsStep: 0, claimedAt: NOW - 2000, slots: [{ weightsHash: 'ab'.repeat(32), chunksRoot: 'cd'.repeat(32) }] }]
        }
        const signed = await signLayerRecord(record, key)
        honest.push({ key: layerRecordDhtKey('tiny', 1, peerId), value: encodeNeuroShardRecord({ sequence: record.sequence, payload: signed.bytes }) })
      }
    },
    async teardown () {},
    generate (rng: Rng): FuzzInput {
      const h = rng.pick(honest)
      const r = rng.next()
      if (r < 0.3) return input(h.key, mutateBytes(rng, h.value), 'value-bytes')
      if (r < 0.45) return input(mutateBytes(rng, h.key), h.value, 'key-bytes')
      if (r < 0.55) {
        // the honest value under another peer's key, or with another DHT sequence header
        const other = rng.pick(honest)
        if (rng.bool()) return input(other.key, h.value, 'key-swap')
        const v = Uint8Array.from(h.value); new DataView(v.buffer).setBigUint64(0, BigInt(rng.u32()), true)
        return input(h.key, v, 'sequence')
      }
      if (r < 0.7) {
        const ns = rng.pick(['layer-pool', 'diloco', 'x', 'A', '-', 'a'.repeat(70), '', 'ledger'])
        const key = new TextEncoder().encode(`/neuroshard/${ns}/${rng.bool() ? '' : rng.bytes(rng.len(64)).toString()}`)
        return input(key, rng.bytes(rng.len(64)), 'random-namespace')
      }
      if (r < 0.8) return input(h.key, rng.bytes(rng.pick([0, 7, 8, 9, 16 * 1024 + 1, 20_000])), 'sizes')
      if (r < 0.9) return input(rng.bytes(rng.len(300)), rng.bytes(rng.len(300)), 'random')
      return input(h.key, h.value, 'honest')
    },
    async run (inp: FuzzInput): Promise<Outcome> {
      const { key, value } = unpack(inp.bytes)
      // the selector must never throw, whatever it is given
      selectNeuroShardRecord(key, [value, honest[0].value, value])
      try {
        await validate(key, value)
        return { accepted: true }
      } catch (err: any) {
        if (err?.name === 'InvalidRecordError' || err?.name === 'InvalidLayerRecordError' || err?.name === 'ForgedLayerRecordError' || err?.name === 'OversizedLayerRecordError' || err?.name === 'ExpiredLayerRecordError') return { accepted: false, error: err.name }
        throw err
      }
    },
    async alive () {
      for (const h of honest) await validate(h.key, h.value)
    }
  }
}
