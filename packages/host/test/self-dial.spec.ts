import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost } from '../src/index.js'
import type { NeuroShardHost } from '../src/index.js'

const TCP_ONLY = { quic: false, webrtcDirect: false, circuitRelay: false }

describe('dialing its own address', () => {
  let hosts: NeuroShardHost[] = []

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
  })

  async function host (): Promise<NeuroShardHost> {
    const h = await createNeuroShardHost({ listen: ['/ip4/127.0.0.1/tcp/0'], transports: TCP_ONLY })
    hosts.push(h)
    return h
  }

  it('a host never dials a socket it listens on (a peer on another machine announcing the same loopback address and port)', async () => {
    const a = await host()
    const b = await host()
    const own = a.getMultiaddrs()[0].toString().replace(/\/p2p\/.*$/, '')
    // a dial of "b" at a's own socket would reach a itself and fail its Noise handshake (EncryptionFailedError)
    // after a handshake on both ends: the gater refuses it before any connection
    await expect(a.dial(multiaddr(`${own}/p2p/${b.peerId.toString()}`))).rejects.toHaveProperty('name', 'DialDeniedError')
    // b known at that address and at its own: the dial goes to b's
    await a.peerStore.merge(b.peerId, { multiaddrs: [multiaddr(own), ...b.getMultiaddrs().map(m => multiaddr(m.toString().replace(/\/p2p\/.*$/, '')))] })
    const conn = await a.dial(b.peerId)
    expect(conn.remotePeer.equals(b.peerId)).toBe(true)
    expect(conn.remoteAddr.toString()).not.toContain(own)
  })
})
