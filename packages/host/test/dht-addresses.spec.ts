/**
 * specs/host R9: a host MUST NOT drop loopback or private addresses from DHT peer records unless it is configured
 * for an internet-only swarm (`dhtAddressFilter: 'public'`). Three hosts on loopback: A and C know only B; A looks C up
 * through the DHT and must learn C's loopback address. The control (every host 'public') shows the lookup loses it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost } from '../src/index.js'
import { waitFor, waitUntil } from './fixtures.js'
import type { DhtAddressFilter, NeuroShardHost } from '../src/index.js'

let hosts: NeuroShardHost[] = []

async function trio (filter?: DhtAddressFilter): Promise<NeuroShardHost[]> {
  // with 'public', loopback peers never enter the routing tables (the same mapper filters them): wait for identify only
  hosts = await Promise.all([0, 1, 2].map(async () => createNeuroShardHost({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    ...(filter != null ? { dhtAddressFilter: filter } : {})
  })))
  const [A, B, C] = hosts
  for (const from of [A, C]) {
    const identified = waitFor(from, 'peer:identify', evt => evt.detail.peerId.equals(B.peerId))
    await from.dial(B.getMultiaddrs()[0])
    await identified
  }
  if (filter === 'public') return hosts
  const table = B.services.dht.routingTable
  await waitUntil(table, 'peer:add', () => table.size >= 2, 20_000)
  for (const h of [A, C]) await waitUntil(h.services.dht.routingTable, 'peer:add', () => h.services.dht.routingTable.size >= 1, 20_000)
  return hosts
}

/** C's addresses as A learns them from a DHT lookup (FIND_NODE through B), or [] when the lookup finds none */
async function lookedUp (A: NeuroShardHost, C: NeuroShardHost, timeoutMs = 20_000): Promise<string[]> {
  expect(A.getConnections(C.peerId)).toHaveLength(0)
  expect((await A.peerStore.has(C.peerId))).toBe(false)
  try {
    const found = await A.peerRouting.findPeer(C.peerId, { signal: AbortSignal.timeout(timeoutMs) })
    return found.multiaddrs.map(String)
  } catch (err: any) {
    if (['NotFoundError', 'NoPeersError', 'TimeoutError', 'AbortError'].includes(err.name)) return []
    throw err
  }
}

afterEach(async () => {
  await Promise.all(hosts.map(async h => h.stop()))
  hosts = []
})

describe('DHT peer records keep loopback and private addresses (host R9)', () => {
  it('A finds C\'s loopback address through B by default', async () => {
    const [A, , C] = await trio()
    const addrs = await lookedUp(A, C)
    expect(addrs.some(a => a.startsWith('/ip4/127.0.0.1/tcp/')), addrs.join(' ')).toBe(true)
    // and can dial C with what it learned
    await A.dial(C.peerId)
    expect(A.getConnections(C.peerId).length).toBeGreaterThan(0)
  }, 60_000)

  it('control: hosts configured for an internet-only swarm (\'public\') drop it', async () => {
    const [A, B, C] = await trio('public')
    expect(B.services.dht.routingTable.size).toBe(0)
    const addrs = await lookedUp(A, C, 5_000)
    expect(addrs.filter(a => a.startsWith('/ip4/127.0.0.1/'))).toEqual([])
  }, 60_000)
})
