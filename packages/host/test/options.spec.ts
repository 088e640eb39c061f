import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost, KAD_DHT_PROTOCOL } from '../src/index.js'
import type { NeuroShardHost } from '../src/index.js'

describe('createNeuroShardHost options', () => {
  let hosts: NeuroShardHost[] = []

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
  })

  it('honours listen, transports, dhtClientMode and dhtProtocol', async () => {
    const host = await createNeuroShardHost({
      listen: ['/ip4/127.0.0.1/tcp/0'],
      transports: { quic: false, webrtcDirect: false },
      dhtClientMode: true,
      dhtProtocol: '/neuroshard-test/kad/1.0.0'
    })
    hosts.push(host)
    const addrs = host.getMultiaddrs().map(String)
    expect(addrs).toHaveLength(1)
    expect(addrs[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\//)
    expect(host.services.dht.getMode()).toBe('client')
    // a DHT client does not register the DHT protocol handler
    expect(host.getProtocols()).not.toContain(KAD_DHT_PROTOCOL)
    expect(host.getProtocols()).not.toContain('/neuroshard-test/kad/1.0.0')
    await host.services.dht.setMode('server')
    expect(host.getProtocols()).toContain('/neuroshard-test/kad/1.0.0')
  })

  it('does not start when start is false, and adds UPnP only on request', async () => {
    const host = await createNeuroShardHost({ start: false, upnp: true })
    hosts.push(host)
    expect(host.status).toBe('stopped')
    expect(host.services.upnp).toBeDefined()
    const plain = await createNeuroShardHost({ start: false })
    hosts.push(plain)
    expect(plain.services.upnp).toBeUndefined()
  })

  it('refuses impossible options with InvalidParametersError', async () => {
    await expect(createNeuroShardHost({ listen: ['not a multiaddr'] })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createNeuroShardHost({ transports: { tcp: false, quic: false, webrtcDirect: false, circuitRelay: false } }))
      .rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createNeuroShardHost({ dhtAddressFilter: 'lan' as any })).rejects.toHaveProperty('name', 'InvalidParametersError')
  })
})
