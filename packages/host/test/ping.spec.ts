/**
 * Several parts of a node ping the same peer at once (libp2p's connection monitor, the swarm router's probes): the
 * profile allows PING_MAX_STREAMS concurrent pings per connection (with @libp2p/ping's default of one, the second
 * failed with TooManyOutboundProtocolStreamsError and the router banned a healthy peer)
 */
import { afterEach, describe, expect, it } from 'vitest'
import { PING_MAX_STREAMS, createNeuroShardHost } from '../src/index.js'
import type { NeuroShardHost } from '../src/index.js'

describe('concurrent pings', () => {
  const hosts: NeuroShardHost[] = []
  afterEach(async () => {
    await Promise.all(hosts.splice(0).map(async h => { await h.stop() }))
  })

  it(`${PING_MAX_STREAMS} pings of one peer at once all answer`, async () => {
    const a = await createNeuroShardHost({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    hosts.push(a)
    const b = await createNeuroShardHost({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    hosts.push(b)
    await a.dial(b.getMultiaddrs()[0])
    const rtts = await Promise.all(Array.from({ length: PING_MAX_STREAMS }, async () => await a.services.ping.ping(b.peerId)))
    expect(rtts).toHaveLength(PING_MAX_STREAMS)
    for (const ms of rtts) expect(ms).toBeGreaterThanOrEqual(0)
  }, 60_000)
})
