import { generateKeyPair } from '@libp2p/crypto/keys'
import { createNeuroShardHost } from '@neuroshard/host'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ab, Announce, ANNOUNCE_DOMAIN, codecToWire, diloco, encodePayload, GossipMessage, resolveCodec, sha256, signBody
} from '../src/index.js'
import { connect, TOY_SPAN, toyParams, until } from './helpers.js'
import type { DiLoCoHost } from './helpers.js'
import type { RefusedDetail } from '../src/index.js'
import type { PrivateKey } from '@libp2p/interface'

/** An honest node at round 5 and a hostile peer that publishes hand-made messages on the group topic */
describe('refused pseudo-gradients (typed errors, real hosts)', () => {
  let honest: DiLoCoHost
  let hostile: DiLoCoHost
  let key: PrivateKey
  const refused: RefusedDetail[] = []
  const fp32 = resolveCodec('fp32')
  const payload = encodePayload(Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]), fp32)

  beforeAll(async () => {
    key = await generateKeyPair('Ed25519')
    const init = { span: TOY_SPAN, codec: 'fp32' as const, maxPayloadBytes: 40, minDeadlineMs: 60_000 }
    honest = await createNeuroShardHost({ transports: { quic: false, webrtcDirect: false, circuitRelay: false }, services: { diloco: diloco(init) } }) as DiLoCoHost
    hostile = await createNeuroShardHost({ privateKey: key, transports: { quic: false, webrtcDirect: false, circuitRelay: false }, services: { diloco: diloco(init) } }) as DiLoCoHost
    honest.services.diloco.initialize(toyParams([1, 2, 3], [4, 5, 6, 7]), { round: 5 })
    honest.services.diloco.addEventListener('diloco:refused', (e) => refused.push(e.detail))
    await connect(hostile, honest)
    const topic = honest.services.diloco.topic
    await until(() => honest.services.pubsub.getSubscribers(topic).length === 1 && hostile.services.pubsub.getSubscribers(topic).length === 1, 20_000, () => 'subscriptions')
    // wait for the gossipsub mesh so publishes reach the honest node
    await until(() => hostile.services.pubsub.getMeshPeers(topic).length === 1, 20_000, () => 'mesh')
  })

  afterAll(async () => { await Promise.all([honest?.stop(), hostile?.stop()]) })

  function announce (over: Partial<Announce> = {}): Announce {
    return {
      group: honest.services.diloco.group,
      span: 'toy',
      round: 5,
      sender: ab(hostile.peerId.toMultihash().bytes),
      baseHash: ab(honest.services.diloco.baseHash),
      ...codecToWire(fp32),
      elements: 7,
      payloadSize: payload.byteLength,
      payloadHash: sha256(payload),
      gossipChunk: 4096,
      dataShards: [],
      innerSteps: 1,
      tokens: 1,
      timestampMs: Date.now(),
      ...over
    }
  }

  /** Publishes raw bytes on the topic and waits for the honest node to refuse them */
  async function refusedName (data: Uint8Array): Promise<string> {
    const before = refused.length
    await hostile.services.pubsub.publish(honest.services.diloco.topic, data)
    await until(() => refused.length > before, 10_000, () => 'a refusal')
    const r = refused[before]
    expect(r.from).toBe(hostile.peerId.toString())
    return r.error.name
  }

  async function signedAnnounce (a: Announce, signer = key): Promise<Uint8Array> {
    return GossipMessage.encode({ announce: await signBody(ANNOUNCE_DOMAIN, Announce.encode(a), signer) })
  }

  it('malformed: bytes that are no gossip message', async () => {
    expect(await refusedName(Uint8Array.from([0xff, 0xff, 0xff, 0x01, 0x02]))).toBe('MalformedPseudoGradientError')
  })

  it('malformed: payload_size not the codec size of the elements', async () => {
    expect(await refusedName(await signedAnnounce(announce({ payloadSize: 27 })))).toBe('MalformedPseudoGradientError')
  })

  it('forged: an announce naming another sender than its signer', async () => {
    const other = await generateKeyPair('Ed25519')
    expect(await refusedName(await signedAnnounce(announce(), other))).toBe('InvalidSignatureError')
  })

  it('oversized: a payload over maxPayloadBytes, and an announce over 16 KiB', async () => {
    // sparse with chunk 1, top-1, 8 bits: 7 bytes per element, 49 bytes for the span, over this node's 40
    const sparse = resolveCodec({ codec: 'sparse', chunk: 1, topK: 1, bits: 8 })
    expect(await refusedName(await signedAnnounce(announce({ ...codecToWire(sparse), payloadSize: 49 })))).toBe('OversizedPseudoGradientError')
    // an unknown length-delimited field 99 of 20 000 bytes (protobuf would skip it) makes the body too large
    const body = Uint8Array.from([...Announce.encode(announce()), 0x9a, 0x06, 0xa0, 0x9c, 0x01, ...new Uint8Array(20_000)])
    expect(await refusedName(GossipMessage.encode({ announce: await signBody(ANNOUNCE_DOMAIN, body, key) }))).toBe('OversizedPseudoGradientError')
  })

  it('wrong span, wrong round, wrong base hash', async () => {
    expect(await refusedName(await signedAnnounce(announce({ span: 'blocks:0-2' })))).toBe('WrongSpanError')
    expect(await refusedName(await signedAnnounce(announce({ elements: 8, payloadSize: 32 })))).toBe('WrongSpanError')
    expect(await refusedName(await signedAnnounce(announce({ round: 3 })))).toBe('WrongRoundError')
    expect(await refusedName(await signedAnnounce(announce({ baseHash: sha256(Uint8Array.of(1)) })))).toBe('BaseHashMismatchError')
  })

  it('replayed: the same sender twice in a round, and an old payload under a new announce', async () => {
    const first = await signedAnnounce(announce())
    const accepted = new Promise<void>(resolve => { honest.services.diloco.addEventListener('diloco:announce', () => { resolve() }, { once: true }) })
    await hostile.services.pubsub.publish(honest.services.diloco.topic, first)
    await accepted
    expect(await refusedName(await signedAnnounce(announce({ timestampMs: Date.now() + 1 })))).toBe('ReplayedPseudoGradientError')
  })

  it('a refused message changes nothing: still round 5 with the same base', () => {
    expect(honest.services.diloco.round).toBe(5)
    expect(honest.services.diloco.parameters().get('a')).toEqual(Float32Array.from([1, 2, 3]))
  })
})
