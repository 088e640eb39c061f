import { afterEach, describe, expect, it } from 'vitest'
import {
  createNeuroShardHost,
  GOSSIPSUB_IP_COLOCATION_EXEMPT,
  IpRangeSet,
  JOIN_MIN_PEERS,
  JOIN_RETRY_BACKOFF_FACTOR,
  JOIN_RETRY_INITIAL_DELAY_MS,
  JOIN_RETRY_MAX_DELAY_MS,
  joinRetryDelay,
  KAD_DHT_PROTOCOL
} from '../src/index.js'
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

describe('join backoff and IP ranges', () => {
  it('joinRetryDelay grows by the factor up to the cap, with equal jitter', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map(n => joinRetryDelay(n, 500, 30_000, 2, () => 1))).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000])
    expect([1, 2, 3, 8].map(n => joinRetryDelay(n, 500, 30_000, 2, () => 0))).toEqual([250, 500, 1000, 15000])
    expect(joinRetryDelay(1, JOIN_RETRY_INITIAL_DELAY_MS, JOIN_RETRY_MAX_DELAY_MS, JOIN_RETRY_BACKOFF_FACTOR)).toBeLessThanOrEqual(JOIN_RETRY_INITIAL_DELAY_MS)
  })

  it('IpRangeSet matches addresses inside its CIDR blocks and refuses malformed ranges', () => {
    const exempt = new IpRangeSet(GOSSIPSUB_IP_COLOCATION_EXEMPT)
    for (const ip of ['127.0.0.1', '127.8.9.10', '::1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.3.4', 'fd00::1', 'fe80::1', '::ffff:192.168.0.7']) {
      expect(exempt.has(ip), ip).toBe(true)
    }
    for (const ip of ['8.8.8.8', '172.32.0.1', '100.64.0.1', '2001:db8::1', '::2', '11.0.0.1', 'not an ip']) {
      expect(exempt.has(ip), ip).toBe(false)
    }
    expect(new IpRangeSet(['203.0.113.7']).has('203.0.113.7')).toBe(true)
    for (const bad of ['10.0.0.0/33', '10.0.0.0/', 'fc00::/129', 'example.com/8', '10.0.0.0/8/1', '10.0.0.0/x']) {
      expect(() => new IpRangeSet([bad]), bad).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    }
  })

  it('refuses impossible scoring and connection options with InvalidParametersError', async () => {
    await expect(createNeuroShardHost({ start: false, gossipsubScoring: { ipColocationWeight: 1 } })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createNeuroShardHost({ start: false, gossipsubScoring: { ipColocationThreshold: 0 } })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createNeuroShardHost({ start: false, gossipsubScoring: { ipColocationExempt: ['10.0.0.0/40'] } })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createNeuroShardHost({ start: false, maxIncomingPendingConnections: 0.5 })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createNeuroShardHost({ start: false, inboundUpgradeTimeout: 0 })).rejects.toHaveProperty('name', 'InvalidParametersError')
  })

  it('adds the joiner only when there are bootstrap peers, and refuses "join" as an extra service name', async () => {
    const plain = await createNeuroShardHost({ start: false })
    expect(plain.services.join).toBeUndefined()
    const joining = await createNeuroShardHost({ start: false, bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRUVh2upnNaRMqd3JQRUWBcVURMpf7W5bj2dQoKKNwh4'] })
    expect(joining.services.join?.minPeers).toBe(JOIN_MIN_PEERS)
    await expect(createNeuroShardHost({ start: false, services: { join: () => ({}) } })).rejects.toHaveProperty('name', 'InvalidParametersError')
  })
})
