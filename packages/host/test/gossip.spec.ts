import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost, GOSSIPSUB_IDONTWANT_MIN_DATA_SIZE, GOSSIPSUB_MAX_MESSAGE_DATA_SIZE, GOSSIPSUB_MAX_RPC_SIZE } from '../src/index.js'
import { waitFor, waitUntil } from './fixtures.js'
import type { NeuroShardHost, NeuroShardTransports } from '../src/index.js'

const TOPIC = '/neuroshard/test/1/gossip-size'

describe('gossipsub message size limits of the profile', () => {
  let hosts: NeuroShardHost[] = []

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
  })

  for (const [name, transports] of [
    ['tcp', { quic: false, webrtcDirect: false }],
    ['quic', { tcp: false, webrtcDirect: false }]
  ] as Array<[string, NeuroShardTransports]>) {
    it(`delivers a message of GOSSIPSUB_MAX_MESSAGE_DATA_SIZE over ${name}; a message whose frame exceeds the RPC cap is not delivered`, async () => {
      const [a, b] = await Promise.all([createNeuroShardHost({ transports }), createNeuroShardHost({ transports })])
      hosts.push(a, b)
      await a.dial(b.getMultiaddrs()[0])
      a.services.pubsub.subscribe(TOPIC)
      b.services.pubsub.subscribe(TOPIC)
      await waitUntil(a.services.pubsub, 'gossipsub:graft', () => a.services.pubsub.getMeshPeers(TOPIC).includes(b.peerId.toString()), 15_000)

      const sizes: number[] = []
      b.services.pubsub.addEventListener('message', (evt) => { sizes.push(evt.detail.data.byteLength) })

      const max = new Uint8Array(GOSSIPSUB_MAX_MESSAGE_DATA_SIZE).fill(1)
      const gotMax = waitFor(b.services.pubsub, 'message', evt => evt.detail.data.byteLength === max.byteLength, 20_000)
      await a.services.pubsub.publish(TOPIC, max)
      await gotMax

      // over the cap: the sender drops the RPC; a small message sent after it on the same stream arrives and
      // proves the big one never will (one stream delivers in order)
      await a.services.pubsub.publish(TOPIC, new Uint8Array(GOSSIPSUB_MAX_RPC_SIZE).fill(2))
      const gotSmall = waitFor(b.services.pubsub, 'message', evt => evt.detail.data.byteLength === 3, 20_000)
      await a.services.pubsub.publish(TOPIC, new Uint8Array([1, 2, 3]))
      await gotSmall
      expect(sizes).toEqual([GOSSIPSUB_MAX_MESSAGE_DATA_SIZE, 3])
    })
  }
})

describe('gossipsub IDONTWANT in the profile', () => {
  let hosts: NeuroShardHost[] = []

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
  })

  it('a host tells its other mesh peers IDONTWANT for large messages only', async () => {
    const IDW_TOPIC = '/neuroshard/test/1/idontwant'
    const transports = { quic: false, webrtcDirect: false, circuitRelay: false }
    // a line a - b - c: what a publishes reaches c through b
    const [a, b, c] = await Promise.all([0, 1, 2].map(async () => createNeuroShardHost({ transports })))
    hosts.push(a, b, c)
    await a.dial(b.getMultiaddrs()[0])
    await c.dial(b.getMultiaddrs()[0])
    for (const h of [a, b, c]) h.services.pubsub.subscribe(IDW_TOPIC)
    const meshOfB = (): string[] => b.services.pubsub.getMeshPeers(IDW_TOPIC)
    await waitUntil(b.services.pubsub, 'gossipsub:graft', () => meshOfB().includes(a.peerId.toString()) && meshOfB().includes(c.peerId.toString()), 20_000)
    await waitUntil(a.services.pubsub, 'gossipsub:graft', () => a.services.pubsub.getMeshPeers(IDW_TOPIC).includes(b.peerId.toString()), 20_000)

    // c's record of the IDONTWANTs b sent it (gossipsub keeps them for a few heartbeats). b sends its IDONTWANT
    // before it forwards the message on the same stream, so c has it by the time the message is delivered
    const fromB = (): number => ((c.services.pubsub as any).idontwants as Map<string, Map<string, number>>).get(b.peerId.toString())?.size ?? 0
    const deliver = async (size: number, fill: number): Promise<void> => {
      const got = waitFor(c.services.pubsub, 'message', evt => evt.detail.data.byteLength === size && evt.detail.data[0] === fill, 20_000)
      await a.services.pubsub.publish(IDW_TOPIC, new Uint8Array(size).fill(fill))
      await got
    }

    // a small message (a layer record's size): no IDONTWANT (@libp2p/gossipsub's own threshold is 512 bytes)
    await deliver(2048, 1)
    expect(fromB()).toBe(0)
    // at the profile's threshold it is sent
    await deliver(GOSSIPSUB_IDONTWANT_MIN_DATA_SIZE, 2)
    expect(fromB()).toBe(1)
  }, 60_000)
})
