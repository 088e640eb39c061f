/**
 * DiLoCo: the gossip handler (`receive`: announce / chunk / commit messages, signatures, round checks),
 * the payload decoder (`decodePayload`, all four codecs) and the fetch protocol server
 * (`/neuroshard/diloco/fetch/1.0.0`, on a real libp2p host over loopback).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Announce, ANNOUNCE_DOMAIN, DILOCO_FETCH_PROTOCOL, FetchKind, FetchRequest, GossipMessage, PayloadCodec, decodePayload, diloco, encodePayload, payloadSize, resolveCodec, signBody, codecToWire } from '@neuroshard/diloco'
import type { DefaultDiLoCo, DiLoCo, Span, CodecName, ResolvedCodec } from '@neuroshard/diloco'
import type { NeuroShardHost } from '@neuroshard/host'
import type { PrivateKey } from '@libp2p/interface'
import { handleAcceptAll } from '../accept-all.js'
import { mutateAny, mutateBytes, mutateProto, frame, concat } from '../mutate.js'
import { eq, parseFields, encodeFields, wireMismatch } from '../proto.js'
import type { Field } from '../proto.js'
import { exchange, firstMessage, loopbackHost, varintField } from '../net.js'
import type { FuzzInput, FuzzTarget, Outcome } from '../engine.js'
import type { Rng } from '../rng.js'

const SPAN: Span = { id: 'fuzz', parameters: [{ name: 'w', shape: [16, 8] }, { name: 'b', shape: [8] }] }
const ELEMENTS = 16 * 8 + 8

function params (seed: number): Map<string, Float32Array> {
  let x = seed
  const f = (n: number): Float32Array => Float32Array.from({ length: n }, () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648 - 0.5 })
  return new Map([['w', f(128)], ['b', f(8)]])
}

/** Signed{body 1, public_key 2, signature 3} units inside a GossipMessage (announce 1, commit 3); undefined when not well-formed */
function signedUnits (b: Uint8Array): Array<{ body: Uint8Array, key: Uint8Array, sig: Uint8Array }> | undefined {
  let f: Field[]
  try { f = parseFields(b) } catch { return undefined }
  if (wireMismatch(f, { 1: 2, 2: 2, 3: 2 })) return undefined
  const out = []
  for (const x of f) {
    if ((x.no === 1 || x.no === 3) && x.value instanceof Uint8Array) {
      let s: Field[]
      try { s = parseFields(x.value) } catch { return undefined }
      if (wireMismatch(s, { 1: 2, 2: 2, 3: 2 })) return undefined
      const last = (no: number): Uint8Array => { let v: Uint8Array = new Uint8Array(0); for (const y of s) if (y.no === no && y.value instanceof Uint8Array) v = y.value; return v }
      out.push({ body: last(1), key: last(2), sig: last(3) })
    }
  }
  return out
}

export function dilocoGossipTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  let host: NeuroShardHost
  let svc: DefaultDiLoCo
  const honest: Uint8Array[] = []
  const honestUnits: Array<{ body: Uint8Array, key: Uint8Array, sig: Uint8Array }> = []
  let announced = 0
  const isHonestUnit = (u: { body: Uint8Array, key: Uint8Array, sig: Uint8Array }): boolean => honestUnits.some(h => eq(h.body, u.body) && eq(h.key, u.key) && eq(h.sig, u.sig))
  return {
    name: options.vulnerable === true ? 'diloco gossip (accept-all)' : 'diloco gossip',
    handler: 'diloco: receive() of the group topic (announce, chunk, commit)',
    mode: 'message',
    async setup () {
      host = await loopbackHost({ diloco: diloco({ span: SPAN, codec: 'int8', membersOnly: false }) })
      svc = (host.services as any).diloco as DefaultDiLoCo
      ;(svc as unknown as DiLoCo).initialize(params(1))
      svc.addEventListener('diloco:announce', () => { announced++ })
      const codec = resolveCodec('int8')
      for (let i = 0; i < 6; i++) {
        const key: PrivateKey = await generateKeyPair('Ed25519')
        const payload = encodePayload(params(100 + i).get('w') != null ? Float32Array.from({ length: ELEMENTS }, (_, k) => Math.sin(k + i) * 0.01) : new Float32Array(ELEMENTS), codec)
        const { sha256 } = await import('@neuroshard/diloco')
        const a: Announce = {
          group: svc.group, span: SPAN.id, round: svc.round, sender: peerIdFromPrivateKey(key).toMultihash().bytes, baseHash: new Uint8Array(svc.baseHash),
          ...codecToWire(codec), elements: ELEMENTS, payloadSize: payloadSize(ELEMENTS, codec), payloadHash: sha256(payload),
          gossipChunk: 64, dataShards: ['s1'], innerSteps: 10, tokens: 1000, timestampMs: Date.now()
        } as Announce
        const signed = await signBody(ANNOUNCE_DOMAIN, Announce.encode(a), key)
        honestUnits.push({ body: signed.body, key: signed.publicKey, sig: signed.signature })
        honest.push(GossipMessage.encode({ announce: signed }))
        honest.push(GossipMessage.encode({ chunk: { round: svc.round, payloadHash: a.payloadHash, index: 0, data: new Uint8Array(payload.subarray(0, 64)) } }))
      }
    },
    async teardown () { await host?.stop() },
    generate (rng: Rng, i: number): FuzzInput {
      const bytes = i < honest.length ? honest[i] : mutateAny(rng, honest)
      const units = signedUnits(bytes)
      return { bytes, mustReject: units != null && units.some(u => !isHonestUnit(u)), kind: i < honest.length ? 'honest' : 'mutated' }
    },
    async run (input: FuzzInput): Promise<Outcome> {
      if (options.vulnerable === true) return { accepted: true }
      const before = announced
      const round = svc.round
      const records = svc.records().length
      await svc.receive(new Uint8Array(input.bytes), '')
      // an effect: an announce taken into the round, or a commit that moved the round on
      return { accepted: announced > before || svc.round !== round || svc.records().length !== records }
    },
    async alive () {
      await svc.receive(new Uint8Array(honest[1]), '') // a chunk: handled without error
    }
  }
}

const CODECS: CodecName[] = ['fp32', 'fp16', 'int8', 'sparse']

export function dilocoPayloadTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  const seeds: Array<{ codec: ResolvedCodec, bytes: Uint8Array }> = []
  return {
    name: options.vulnerable === true ? 'diloco payload (accept-all)' : 'diloco payload',
    handler: 'diloco: decodePayload (fp32, fp16, int8, sparse)',
    mode: 'message',
    async setup () {
      const v = Float32Array.from({ length: ELEMENTS }, (_, k) => Math.cos(k) * 0.02)
      for (const c of CODECS) { const codec = resolveCodec(c); seeds.push({ codec, bytes: encodePayload(v, codec) }) }
    },
    async teardown () {},
    generate (rng: Rng): FuzzInput {
      const ci = rng.int(seeds.length)
      const s = seeds[ci]
      let bytes: Uint8Array
      let mustReject: boolean
      let kind: string
      if (s.codec.codec === 'fp32' && rng.bool(0.2)) {
        bytes = Uint8Array.from(s.bytes)
        new DataView(bytes.buffer).setUint32(4 * rng.int(ELEMENTS), rng.pick([0x7fc00000, 0x7f800000, 0xff800000]), true)
        mustReject = true; kind = 'fp32-non-finite'
      } else {
        bytes = rng.bool(0.3) ? rng.bytes(rng.bool() ? s.bytes.length : rng.len(2048)) : mutateBytes(rng, s.bytes)
        mustReject = bytes.length !== s.bytes.length
        kind = `${s.codec.codec}-${mustReject ? 'length' : 'bytes'}`
      }
      return { bytes: concat(Uint8Array.of(ci), bytes), mustReject, kind }
    },
    async run (input: FuzzInput): Promise<Outcome> {
      if (options.vulnerable === true) return { accepted: true }
      decodePayload(input.bytes.subarray(1), ELEMENTS, seeds[input.bytes[0]].codec)
      return { accepted: true }
    },
    async alive () { for (const s of seeds) decodePayload(s.bytes, ELEMENTS, s.codec) }
  }
}

const ACCEPT_ALL = '/fuzz/accept-all/diloco-fetch'

export function dilocoFetchTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  let server: NeuroShardHost
  let client: NeuroShardHost
  let group = ''
  const honest: Uint8Array[] = []
  const protocol = options.vulnerable === true ? ACCEPT_ALL : DILOCO_FETCH_PROTOCOL
  return {
    name: options.vulnerable === true ? 'diloco fetch (accept-all)' : 'diloco fetch',
    handler: 'diloco: /neuroshard/diloco/fetch/1.0.0 server (payload, commit, state ranges)',
    mode: 'stream',
    concurrency: 8,
    async setup () {
      server = await loopbackHost({ diloco: diloco({ span: SPAN, codec: 'int8', membersOnly: false, fetchRangeBytes: 1024 }) })
      const svc = (server.services as any).diloco as DiLoCo
      svc.initialize(params(2))
      group = svc.group
      client = await loopbackHost()
      await client.dial(server.getMultiaddrs()[0])
      await handleAcceptAll(server, ACCEPT_ALL, encodeFields([{ no: 1, wire: 0, value: 1n }, { no: 2, wire: 2, value: new Uint8Array(8) }]))
      honest.push(FetchRequest.encode({ kind: FetchKind.STATE, group, round: 0, payloadHash: new Uint8Array(0), offset: 0, length: 64 }))
      honest.push(FetchRequest.encode({ kind: FetchKind.PAYLOAD, group, round: 0, payloadHash: new Uint8Array(32), offset: 0, length: 64 }))
      honest.push(FetchRequest.encode({ kind: FetchKind.COMMIT, group, round: 0, payloadHash: new Uint8Array(0), offset: 0, length: 0 }))
    },
    async teardown () { await Promise.all([client?.stop(), server?.stop()]) },
    generate (rng: Rng): FuzzInput {
      const msg = rng.bool(0.8) ? mutateProto(rng, rng.pick(honest)) : mutateAny(rng, honest)
      const { bytes, framing } = frame(rng, msg)
      // must not be answered OK: a request for another group, or a range over the server's range size
      let mustReject = false
      try {
        const f = parseFields(msg)
        if (wireMismatch(f, { 1: 0, 2: 2, 3: 0, 4: 2, 5: 0, 6: 0 })) throw new Error('no claim')
        const g = [...f].reverse().find(x => x.no === 2)
        const groupBytes = g?.value instanceof Uint8Array ? g.value : new Uint8Array(0)
        const length = varintField(f, 6)
        // protons-runtime reads at most 5 bytes of a uint32 varint (see layer-transfer.ts): no claim beyond 32 bits
        if (length >= 1n << 32n) throw new Error('no claim')
        mustReject = framing === 'ok' && (!eq(groupBytes, new TextEncoder().encode(group)) || length > 1024n)
        if (g != null && !(g.value instanceof Uint8Array)) mustReject = false // a wire-type mismatch: decoding fails, not our concern here
      } catch {}
      return { bytes, mustReject, kind: `framing-${framing}` }
    },
    async run (input: FuzzInput, signal: AbortSignal): Promise<Outcome> {
      const { response, ended } = await exchange(client, server.peerId, protocol, input.bytes, signal)
      const res = firstMessage(response)
      if (res == null) return { accepted: false, error: ended === 'reset' ? 'StreamReset' : 'StreamClosed' }
      const status = varintField(res, 1)
      return status === 1n ? { accepted: true } : { accepted: false, error: `status-${status}` }
    },
    async alive () {
      const { response } = await exchange(client, server.peerId, DILOCO_FETCH_PROTOCOL, concat(Uint8Array.of(honest[0].length), honest[0]), AbortSignal.timeout(20_000))
      const res = firstMessage(response)
      if (res == null || varintField(res, 1) !== 1n) throw new Error('the fetch server did not answer an honest STATE request')
    }
  }
}
void PayloadCodec
