import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost, GOSSIPSUB_MAX_MESSAGE_DATA_SIZE, GOSSIPSUB_MAX_RPC_SIZE } from '../src/index.js'
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
