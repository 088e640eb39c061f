import { createServer, connect } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost } from '../src/index.js'
import { peerCount, peersAtLeast, waitFor, waitUntil } from './fixtures.js'
import type { NeuroShardHost, NeuroShardHostOptions } from '../src/index.js'
import type { Server, Socket } from 'node:net'

// TCP only keeps the hosts light; the join logic does not depend on the transport
// (the tests with crowds of full hosts are in crowd.spec.ts)
const TCP_ONLY = { quic: false, webrtcDirect: false, circuitRelay: false }
const CROWD = 32

describe('joining the swarm', () => {
  let hosts: NeuroShardHost[] = []

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
  })

  async function host (options: NeuroShardHostOptions = {}): Promise<NeuroShardHost> {
    const h = await createNeuroShardHost({ listen: ['/ip4/127.0.0.1/tcp/0'], transports: TCP_ONLY, ...options })
    hosts.push(h)
    return h
  }

  it(`a bootstrap host accepts ${CROWD} connections opened at the same instant from one IP address`, async () => {
    const boot = await host()
    // bare libp2p nodes (TCP, Noise, Yamux, nothing else) as the crowd: they cost the test process next to
    // nothing, so what is measured is the bootstrap host's inbound limits, not 33 hosts sharing one CPU
    const crowd = await Promise.all(Array.from({ length: CROWD }, async () => createLibp2p({
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionManager: { dialTimeout: 60_000, addressDialTimeout: 60_000 }
    })))
    try {
      const results = await Promise.allSettled(crowd.map(async node => node.dial(boot.getMultiaddrs()[0])))
      const refused = results.filter(r => r.status === 'rejected').map(r => String((r as PromiseRejectedResult).reason?.name))
      // libp2p's stock limits (5 per second per IP, 10 pending) refused all but the first few
      expect(refused).toEqual([])
      // the dialer finishes its upgrade a moment before the bootstrap host does
      await waitUntil(boot, 'connection:open', () => peerCount(boot) === CROWD, 30_000)
    } finally {
      await Promise.all(crowd.map(async node => node.stop()))
    }
  })

  it('a node whose peers all stop re-dials its bootstrap peer with backoff and reconnects when it comes back', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const boot = await host({ privateKey })
    const bootKey = boot.peerId
    const bootAddr = boot.getMultiaddrs()[0].toString()
    const other = await host({ bootstrap: [bootAddr], join: { minPeers: 1 } })
    const node = await host({ bootstrap: [bootAddr], join: { minPeers: 1, retryInitialDelayMs: 100, retryMaxDelayMs: 1_000 } })
    await peersAtLeast(node, 1, 30_000)
    expect(node.getConnections(bootKey).length).toBeGreaterThan(0)

    const retries: Array<{ attempt: number, delayMs: number }> = []
    node.services.join?.addEventListener('join:retry', (evt) => { retries.push(evt.detail) })
    // every peer of `node` leaves
    await Promise.all([boot.stop(), other.stop()])
    await waitUntil(node, 'connection:close', () => peerCount(node) === 0, 30_000)
    // it keeps retrying (and failing) while nobody is there
    await waitUntil(node.services.join!, 'join:retry', () => retries.length >= 3, 30_000)
    expect(retries.slice(0, 3).map(r => r.attempt)).toEqual([1, 2, 3])
    // exponential backoff with equal jitter: attempt n waits between half and all of min(1000, 100 · 2^(n-1)) ms
    retries.forEach(({ attempt, delayMs }) => {
      const base = Math.min(1_000, 100 * 2 ** (attempt - 1))
      expect(delayMs).toBeGreaterThanOrEqual(base / 2)
      expect(delayMs).toBeLessThanOrEqual(base)
    })

    // the bootstrap peer comes back: same identity, same address
    const back = await host({ privateKey, listen: [bootAddr.replace(/\/p2p\/.*$/, '')] })
    expect(back.peerId.equals(bootKey)).toBe(true)
    await waitUntil(node, 'connection:open', () => node.getConnections(bootKey).length > 0, 30_000)
    // and the joiner counts it as joined again: backoff reset for the next time
    await waitUntil(node.services.join!, 'join:joined', () => node.services.join!.attempt === 0, 30_000)
  })

  it('a node that loses its last peer while a long retry backoff is pending joins again at once', async () => {
    const boot = await host()
    const bootAddr = boot.getMultiaddrs()[0].toString()
    // minPeers 2 with one peer in the swarm: every round ends one short, and the backoff grows by 10^4 a retry
    // to the cap, so the second retry waits 150-300 s
    const node = await host({ bootstrap: [bootAddr], join: { minPeers: 2, retryInitialDelayMs: 100, retryMaxDelayMs: 300_000, retryBackoffFactor: 10_000 } })
    const retries: Array<{ attempt: number, delayMs: number, peers: number }> = []
    node.services.join?.addEventListener('join:retry', (evt) => { retries.push(evt.detail) })
    await waitUntil(node.services.join!, 'join:retry', () => retries.some(r => r.delayMs >= 150_000), 60_000)
    expect(retries.at(-1)?.peers).toBe(1)

    // the one peer drops the connection: the node is alone, its pending retry 150 s or more away
    await boot.hangUp(node.peerId)
    await waitUntil(node, 'connection:close', () => peerCount(node) === 0, 30_000)
    // it dials its bootstrap peer again after the first retry's pause (100 ms), not after the pending backoff
    await waitUntil(node, 'connection:open', () => node.getConnections(boot.peerId).length > 0, 60_000)
  }, 120_000)

  it('a bootstrap handshake slower than libp2p\'s 6 s per address still connects (a starved bootstrap host)', async () => {
    const boot = await host()
    const [, targetHost, targetPort] = /^\/ip4\/([^/]+)\/tcp\/(\d+)/.exec(boot.getMultiaddrs()[0].toString())!
    // a TCP relay that accepts at once and forwards nothing for 7 s: to the joiner the bootstrap host answers
    // the upgrade (multistream-select, Noise, Yamux) 7 s late, as a process starved of CPU does. The bootstrap
    // host's own upgrade timer starts when the relay connects to it, after the pause
    const STALL_MS = 7_000
    const sockets = new Set<Socket>()
    const relay: Server = createServer({ pauseOnConnect: true }, (client) => {
      sockets.add(client)
      client.on('error', () => {})
      setTimeout(() => {
        if (client.destroyed) return
        const upstream = connect(Number(targetPort), targetHost, () => { client.pipe(upstream); upstream.pipe(client); client.resume() })
        sockets.add(upstream)
        upstream.on('error', () => { client.destroy() })
        client.on('close', () => upstream.destroy())
        upstream.on('close', () => client.destroy())
      }, STALL_MS)
    })
    await new Promise<void>(resolve => relay.listen(0, '127.0.0.1', resolve))
    try {
      const port = (relay.address() as { port: number }).port
      const started = Date.now()
      const node = await host({ bootstrap: [`/ip4/127.0.0.1/tcp/${port}/p2p/${boot.peerId.toString()}`], join: { minPeers: 1 } })
      // with libp2p's per-address limit every round's dial failed after 6 s, however often it was retried
      await waitUntil(node, 'connection:open', () => node.getConnections(boot.peerId).length > 0, 40_000)
      expect(Date.now() - started).toBeGreaterThanOrEqual(STALL_MS)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise(resolve => relay.close(resolve))
    }
  }, 60_000)

  /**
   * A TCP relay in front of `target`: it accepts at once; `connectAfterMs` later it connects to the target, and
   * `forwardAfterMs` after the accept it passes the dialer's bytes on (the target's bytes go back as they come). To
   * the dialer the target answers the upgrade late, as a process starved of CPU does. `accepted` counts the dialer's
   * connections.
   */
  async function stallingRelay (target: string, { connectAfterMs, forwardAfterMs }: { connectAfterMs: number, forwardAfterMs: number }): Promise<{ port: number, accepted: () => number, close: () => Promise<void> }> {
    const [, targetHost, targetPort] = /^\/ip4\/([^/]+)\/tcp\/(\d+)/.exec(target)!
    const sockets = new Set<Socket>()
    let accepted = 0
    const relay: Server = createServer({ pauseOnConnect: true }, (client) => {
      accepted++
      sockets.add(client)
      client.on('error', () => {})
      setTimeout(() => {
        if (client.destroyed) return
        const upstream = connect(Number(targetPort), targetHost, () => {
          upstream.pipe(client)
          setTimeout(() => { if (!client.destroyed) { client.pipe(upstream); client.resume() } }, Math.max(0, forwardAfterMs - connectAfterMs))
        })
        sockets.add(upstream)
        upstream.on('error', () => { client.destroy() })
        client.on('close', () => upstream.destroy())
        upstream.on('close', () => client.destroy())
      }, connectAfterMs)
    })
    await new Promise<void>(resolve => relay.listen(0, '127.0.0.1', resolve))
    return {
      port: (relay.address() as { port: number }).port,
      accepted: () => accepted,
      close: async () => {
        for (const s of sockets) s.destroy()
        await new Promise(resolve => relay.close(resolve))
      }
    }
  }

  it('a bootstrap host waits for an inbound handshake longer than libp2p\'s 10 s (a starved joiner or a late accept)', async () => {
    const boot = await host()
    // the relay connects to the bootstrap host at once and passes the joiner's bytes on 13 s later: the bootstrap
    // host's upgrade timer runs for the whole pause. libp2p's inbound limit (10 s) dropped every such connection,
    // so every retry failed the same way; the joiner itself waits up to join.bootstrapDialTimeoutMs (20 s)
    const STALL_MS = 13_000
    const relay = await stallingRelay(boot.getMultiaddrs()[0].toString(), { connectAfterMs: 0, forwardAfterMs: STALL_MS })
    try {
      const started = Date.now()
      const node = await host({ bootstrap: [`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${boot.peerId.toString()}`], join: { minPeers: 1 } })
      await waitUntil(node, 'connection:open', () => node.getConnections(boot.peerId).length > 0, 45_000)
      expect(Date.now() - started).toBeGreaterThanOrEqual(STALL_MS)
      // the first dial got through: no retry was needed
      expect(relay.accepted()).toBe(1)
    } finally {
      await relay.close()
    }
  }, 70_000)

  it('a bootstrap dial in flight is not given up when the node loses its other peers meanwhile', async () => {
    const boot = await host()
    // the bootstrap host answers 8 s late (through the relay); meanwhile another host dials the node and hangs up
    const relay = await stallingRelay(boot.getMultiaddrs()[0].toString(), { connectAfterMs: 8_000, forwardAfterMs: 8_000 })
    try {
      const node = await host({ bootstrap: [`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${boot.peerId.toString()}`], join: { minPeers: 1 } })
      const other = await host()
      await other.dial(node.getMultiaddrs()[0])
      await waitUntil(node, 'connection:open', () => node.getConnections(other.peerId).length > 0, 10_000)
      await other.hangUp(node.peerId)
      await waitUntil(node, 'connection:close', () => peerCount(node) === 0, 10_000)
      // all of that inside the relay's pause: the joiner's first bootstrap dial was still in flight
      expect(relay.accepted()).toBe(1)
      await waitUntil(node, 'connection:open', () => node.getConnections(boot.peerId).length > 0, 40_000)
      // the node lost its only peer, but the dial that was half-way through the bootstrap host's handshake went on:
      // before, the joiner aborted it with the rest of the round and started a new one from the beginning
      expect(relay.accepted()).toBe(1)
    } finally {
      await relay.close()
    }
  }, 70_000)

  it('a round whose bootstrap dial failed does not dial that bootstrap peer again among the peers it knows of', async () => {
    const boot = await host()
    // the relay never passes anything on within the test: every dial of the bootstrap peer through it fails
    const relay = await stallingRelay(boot.getMultiaddrs()[0].toString(), { connectAfterMs: 120_000, forwardAfterMs: 120_000 })
    try {
      const bootAddr = `/ip4/127.0.0.1/tcp/${relay.port}/p2p/${boot.peerId.toString()}`
      // a short bootstrap limit, and the next round far away: the test looks at the first round only
      const node = await host({ bootstrap: [bootAddr], join: { minPeers: 1, bootstrapDialTimeoutMs: 1_500, retryInitialDelayMs: 60_000, retryMaxDelayMs: 60_000 }, start: false })
      // the node knows the bootstrap peer's address, as a node in a swarm learns it from identify and the DHT
      await node.peerStore.merge(boot.peerId, { multiaddrs: [multiaddr(bootAddr).decapsulateCode(CODE_P2P)] })
      const retry = waitFor(node.services.join!, 'join:retry', () => true, 40_000)
      await node.start()
      await retry
      // the round dialled the bootstrap peer once (its bootstrap phase); before, its known-peers phase dialled the
      // peer again through libp2p's dial queue
      expect(relay.accepted()).toBe(1)
    } finally {
      await relay.close()
    }
  }, 60_000)

  it('refuses impossible join options with InvalidParametersError', async () => {
    const bootstrap = ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRUVh2upnNaRMqd3JQRUWBcVURMpf7W5bj2dQoKKNwh4']
    for (const join of [{ minPeers: 0 }, { minPeers: 1.5 }, { retryInitialDelayMs: 0 }, { retryMaxDelayMs: 10, retryInitialDelayMs: 100 }, { retryBackoffFactor: 0.5 }, { dialTimeoutMs: -1 }, { bootstrapDialTimeoutMs: 0 }]) {
      await expect(createNeuroShardHost({ start: false, transports: TCP_ONLY, bootstrap, join })).rejects.toHaveProperty('name', 'InvalidParametersError')
    }
    await expect(createNeuroShardHost({ start: false, transports: TCP_ONLY, bootstrap: ['/ip4/127.0.0.1/tcp/4001'] })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createNeuroShardHost({ start: false, transports: TCP_ONLY, inboundConnectionThreshold: 0 })).rejects.toHaveProperty('name', 'InvalidParametersError')
  })
})
