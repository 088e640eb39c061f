import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost } from '../src/index.js'
import type { NeuroShardHost } from '../src/index.js'

const TCP_ONLY = { tcp: true, quic: false, webrtcDirect: false, circuitRelay: true }
const LISTEN = ['/ip4/127.0.0.1/tcp/0']

async function until (condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${message()}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

const circuitAddrs = (h: NeuroShardHost): string[] => h.getMultiaddrs().map(String).filter(a => a.includes('/p2p-circuit'))

describe('circuit relay server (relayServer option)', () => {
  let hosts: NeuroShardHost[] = []
  afterEach(async () => {
    await Promise.all(hosts.map(async h => { await Promise.resolve(h.stop()).catch(() => {}) }))
    hosts = []
  })

  it('a host with relayServer grants a reservation; a third host reaches the reserved host through it and pings it', async () => {
    const relay = await createNeuroShardHost({ listen: LISTEN, transports: TCP_ONLY, relayServer: true })
    hosts.push(relay)
    expect(relay.services.relay).toBeDefined()
    // the reserved host listens on /p2p-circuit: it asks a connected relay for a slot
    const target = await createNeuroShardHost({ listen: [...LISTEN, '/p2p-circuit'], transports: TCP_ONLY })
    const dialer = await createNeuroShardHost({ listen: LISTEN, transports: TCP_ONLY })
    hosts.push(target, dialer)
    await target.dial(relay.getMultiaddrs()[0])
    await until(() => circuitAddrs(target).length > 0, 60_000, () => `target addresses ${target.getMultiaddrs().map(String).join(' ')}`)
    const via = multiaddr(circuitAddrs(target)[0])
    expect(via.toString()).toContain(relay.peerId.toString())

    const rtt = await dialer.services.ping.ping(via, { signal: AbortSignal.timeout(30_000) })
    expect(rtt).toBeGreaterThanOrEqual(0)
    const conns = dialer.getConnections(target.peerId)
    expect(conns.some(c => c.remoteAddr.toString().includes('/p2p-circuit'))).toBe(true)
  }, 120_000)

  it('without relayServer (the default) a host runs no relay: a host listening on /p2p-circuit behind it gets no reservation', async () => {
    const plain = await createNeuroShardHost({ listen: LISTEN, transports: TCP_ONLY })
    hosts.push(plain)
    expect(plain.services.relay).toBeUndefined()
    const target = await createNeuroShardHost({ listen: [...LISTEN, '/p2p-circuit'], transports: TCP_ONLY })
    hosts.push(target)
    await target.dial(plain.getMultiaddrs()[0])
    // identify has run once the peer's protocols are known: it does not list the relay hop protocol
    await until(() => target.getConnections(plain.peerId).length > 0, 30_000, () => 'connection')
    const protocols = await (async () => {
      for (let i = 0; i < 100; i++) {
        const p = await target.peerStore.get(plain.peerId).then(x => x.protocols).catch(() => [])
        if (p.length > 0) return p
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      return []
    })()
    expect(protocols).toContain('/ipfs/id/1.0.0')
    expect(protocols).not.toContain('/libp2p/circuit/relay/0.2.0/hop')
    expect(circuitAddrs(target)).toEqual([])
  }, 60_000)

  it('relayServer without the circuit relay transport is refused', async () => {
    await expect(createNeuroShardHost({ listen: LISTEN, transports: { ...TCP_ONLY, circuitRelay: false }, relayServer: true }))
      .rejects.toHaveProperty('name', 'InvalidParametersError')
  })
})
