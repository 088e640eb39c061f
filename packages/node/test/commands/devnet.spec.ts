import { describe, expect, it } from 'vitest'
import { formatPeerTable } from '../../src/index.js'
import type { DevnetSnapshot } from '../../src/index.js'

describe('formatPeerTable', () => {
  it('renders one row per node with transports, DHT size, mesh and heartbeats', () => {
    const now = 1_700_000_000_000
    const snapshot: DevnetSnapshot = {
      time: now,
      converged: false,
      nodes: [
        {
          index: 0,
          peerId: '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1111',
          shortId: 'AAAA1111',
          addresses: ['/ip4/127.0.0.1/tcp/4001/p2p/x', '/ip4/127.0.0.1/udp/4002/quic-v1/p2p/x'],
          connections: [{ node: 1, peerId: 'y', transport: 'quic', direction: 'inbound' }],
          routingTableSize: 1,
          meshPeers: 1,
          heartbeats: { 1: now - 1500 },
          lastHeartbeatAt: now - 1500
        },
        {
          index: 1,
          peerId: '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2222',
          shortId: 'BBBB2222',
          addresses: ['/ip4/127.0.0.1/tcp/4003/p2p/y'],
          connections: [],
          routingTableSize: 0,
          meshPeers: 0,
          heartbeats: {}
        }
      ]
    }
    const lines = formatPeerTable(snapshot).split('\n')
    expect(lines[0]).toBe('NeuroShard devnet: 2 nodes, converging')
    const row0 = lines.find(l => l.startsWith('0 '))
    const row1 = lines.find(l => l.startsWith('1 '))
    expect(row0).toMatch(/…AAAA1111\s+tcp:4001 quic:4002\s+1\s+quic×1\s+1\s+1\s+1\/1\s+1\.5s ago/)
    expect(row1).toMatch(/…BBBB2222\s+tcp:4003\s+0\s+-\s+0\s+0\s+0\/1\s+-/)
  })
})
