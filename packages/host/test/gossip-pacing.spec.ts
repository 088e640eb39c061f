/**
 * specs/host R15: gossipsub has no backpressure; unsent data per peer beyond the outbound buffer (64 MiB) makes the
 * host reset that gossipsub stream, so a publisher MUST pace large publications. A burst of 24 messages of 4 MB to one
 * peer (96 MB unsent at once) makes A reset its gossipsub stream to B and loses messages; the same 24 published one at a
 * time, each after the last arrived, all arrive.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost, GOSSIPSUB_MAX_OUTBOUND_BUFFER_SIZE } from '../src/index.js'
import { waitFor, waitUntil } from './fixtures.js'
import type { NeuroShardHost } from '../src/index.js'

const TOPIC = '/neuroshard/test/1/gossip-pacing'
const SIZE = 4_000_000
const COUNT = 24

let hosts: NeuroShardHost[] = []

afterEach(async () => {
  await Promise.all(hosts.map(async h => h.stop()))
  hosts = []
})

async function pair (): Promise<[NeuroShardHost, NeuroShardHost, number[]]> {
  const transports = { quic: false, webrtcDirect: false, circuitRelay: false }
  const [a, b] = await Promise.all([createNeuroShardHost({ transports }), createNeuroShardHost({ transports })])
  hosts.push(a, b)
  await a.dial(b.getMultiaddrs()[0])
  a.services.pubsub.subscribe(TOPIC)
  b.services.pubsub.subscribe(TOPIC)
  await waitUntil(a.services.pubsub, 'gossipsub:graft', () => a.services.pubsub.getMeshPeers(TOPIC).includes(b.peerId.toString()), 20_000)
  const got: number[] = []
  b.services.pubsub.addEventListener('message', (evt) => { if (evt.detail.topic === TOPIC) got.push(evt.detail.data[0]) })
  return [a, b, got]
}

const message = (i: number): Uint8Array => { const m = new Uint8Array(SIZE); m[0] = i; m[SIZE - 1] = i; return m }

describe('gossipsub pacing (host R15)', () => {
  it('the outbound buffer is 64 MiB', () => {
    expect(GOSSIPSUB_MAX_OUTBOUND_BUFFER_SIZE).toBe(64 * 1024 * 1024)
    expect(COUNT * SIZE).toBeGreaterThan(GOSSIPSUB_MAX_OUTBOUND_BUFFER_SIZE + 16 * 1024 * 1024) // beyond the buffer and a yamux window
  })

  it('a burst of 96 MB to one peer loses messages (the stream is reset); paced, every message arrives', async () => {
    const [a, b, got] = await pair()
    // A's outbound gossipsub stream to B
    const outbound = a.getConnections(b.peerId).flatMap(c => c.streams).find(s => s.direction === 'outbound' && s.protocol?.startsWith('/meshsub/') === true)
    expect(outbound, 'an outbound gossipsub stream').toBeDefined()
    const closed = new Promise<Error | undefined>((resolve, reject) => {
      const t = setTimeout(() => { reject(new Error('the outbound gossipsub stream stayed open')) }, 60_000)
      outbound?.addEventListener('close', (evt: any) => { clearTimeout(t); resolve(evt.error) }, { once: true })
    })
    // burst: every publication handed to gossipsub before any of it can drain
    await Promise.allSettled(Array.from({ length: COUNT }, async (_, i) => await a.services.pubsub.publish(TOPIC, message(i))))
    const error = await closed
    expect(error, 'the stream was reset with an error, not closed').toBeDefined()
    expect(got.length, `burst: ${got.length} of ${COUNT} arrived`).toBeLessThan(COUNT)

    // paced: the next message only after the previous one arrived (the stream may have to be re-opened first)
    const [c, , paced] = await pair()
    for (let i = 0; i < COUNT; i++) {
      const arrived = waitFor(hosts[3].services.pubsub, 'message', evt => evt.detail.topic === TOPIC && evt.detail.data[0] === i, 30_000)
      await c.services.pubsub.publish(TOPIC, message(i))
      await arrived
    }
    expect(paced).toEqual(Array.from({ length: COUNT }, (_, i) => i))
    void b
  }, 120_000)
})
