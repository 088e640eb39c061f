import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import * as raw from 'multiformats/codecs/raw'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createNeuroShardHost,
  getNeuroShardRecord,
  neuroShardRecordKey,
  putNeuroShardRecord,
  DEFAULT_LISTEN_ADDRESSES,
  KAD_DHT_PROTOCOL
} from '../src/index.js'
import { waitFor, waitUntil } from './fixtures.js'
import type { NeuroShardHost } from '../src/index.js'
import type { Connection } from '@libp2p/interface'

type Transport = 'tcp' | 'quic-v1' | 'webrtc-direct'

function addrOf (host: NeuroShardHost, transport: Transport): ReturnType<typeof multiaddr> {
  const addr = host.getMultiaddrs().find(ma => {
    const s = ma.toString()
    return transport === 'tcp' ? s.includes('/tcp/') : s.includes(`/${transport}/`) || s.endsWith(`/${transport}`)
  })
  if (addr == null) {
    throw new Error(`host has no ${transport} address`)
  }
  return addr
}

function transportOf (conn: Connection): Transport {
  const s = conn.remoteAddr.toString()
  if (s.includes('/webrtc-direct')) return 'webrtc-direct'
  if (s.includes('/quic-v1')) return 'quic-v1'
  if (s.includes('/tcp/')) return 'tcp'
  throw new Error(`unexpected remote address ${s}`)
}

/** Waits until `host`'s DHT routing table holds at least `size` peers */
async function routingTableAtLeast (host: NeuroShardHost, size: number): Promise<void> {
  const table = host.services.dht.routingTable
  await waitUntil(table, 'peer:add', () => table.size >= size, 15_000)
}

describe('five NeuroShard hosts on loopback', () => {
  let hosts: NeuroShardHost[] = []
  let links: Array<{ from: number, to: number, transport: Transport, conn: Connection }> = []

  beforeEach(async () => {
    hosts = await Promise.all(Array.from({ length: 5 }, async () => createNeuroShardHost()))
    const [A, B, C, D, E] = hosts
    // a connected topology that uses every transport: B→A TCP, C→A QUIC, D→B WebRTC-direct, E→C TCP
    const plan: Array<[NeuroShardHost, NeuroShardHost, Transport]> = [
      [B, A, 'tcp'], [C, A, 'quic-v1'], [D, B, 'webrtc-direct'], [E, C, 'tcp']
    ]
    links = []
    for (const [from, to, transport] of plan) {
      const identified = waitFor(from, 'peer:identify', evt => evt.detail.peerId.equals(to.peerId))
      const conn = await from.dial(addrOf(to, transport))
      await identified
      links.push({ from: hosts.indexOf(from), to: hosts.indexOf(to), transport, conn })
    }
  })

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
  })

  it('listens on loopback TCP, QUIC and WebRTC-direct by default, with the NeuroShard DHT protocol', async () => {
    const [A] = hosts
    const addrs = A.getMultiaddrs().map(String)
    expect(addrs).toHaveLength(DEFAULT_LISTEN_ADDRESSES.length)
    for (const addr of addrs) {
      expect(addr.startsWith('/ip4/127.0.0.1/')).toBe(true)
    }
    expect(A.getProtocols()).toContain(KAD_DHT_PROTOCOL)
    expect(A.getProtocols().some(p => p.startsWith('/meshsub/'))).toBe(true)
    expect(A.getProtocols()).not.toContain('/ipfs/kad/1.0.0')
    expect(A.services.dht.getMode()).toBe('server')
  })

  it('uses TCP, QUIC and WebRTC-direct connections', async () => {
    expect(links.map(l => transportOf(l.conn))).toEqual(['tcp', 'quic-v1', 'webrtc-direct', 'tcp'])
    const [A, B] = hosts
    // the listener side sees the same transport
    const atA = A.getConnections(hosts[2].peerId)
    expect(atA.some(c => transportOf(c) === 'quic-v1')).toBe(true)
    const atB = B.getConnections(hosts[3].peerId)
    expect(atB.some(c => transportOf(c) === 'webrtc-direct')).toBe(true)
    // every link carries a working stream: ping across each
    for (const { from, to } of links) {
      const rtt = await hosts[from].services.ping.ping(hosts[to].peerId)
      expect(rtt).toBeGreaterThanOrEqual(0)
    }
  })

  it('puts a record on A and gets it from E; provides on A and finds the provider from E', async () => {
    const [A, , , , E] = hosts
    await Promise.all(hosts.map(async h => routingTableAtLeast(h, 1)))

    const key = neuroShardRecordKey('test', 'hello')
    const { storedBy } = await putNeuroShardRecord(A, key, { sequence: 1n, payload: new TextEncoder().encode('world') })
    expect(storedBy.length).toBeGreaterThan(0)
    const record = await getNeuroShardRecord(E, key)
    expect(record.sequence).toBe(1n)
    expect(new TextDecoder().decode(record.payload)).toBe('world')

    // a newer sequence put by another host wins when E reads again
    await putNeuroShardRecord(hosts[3], key, { sequence: 2n, payload: new TextEncoder().encode('world v2') })
    const record2 = await getNeuroShardRecord(E, key)
    expect(record2.sequence).toBe(2n)
    expect(new TextDecoder().decode(record2.payload)).toBe('world v2')

    // an invalid record is refused locally with a typed error...
    const badKey = neuroShardRecordKey('test', 'bad')
    await expect(putNeuroShardRecord(A, new TextEncoder().encode('/neuroshard/Bad Namespace/x'), { sequence: 1n, payload: new Uint8Array() }))
      .rejects.toHaveProperty('name', 'InvalidRecordError')
    // ...and by remote peers: force a 3-byte value (no header) through the raw DHT API; no peer stores it
    // and E refuses the copy A keeps locally
    let stored = 0
    let refused = 0
    for await (const event of A.services.dht.put(badKey, new Uint8Array(3))) {
      if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') stored++
      if (event.name === 'QUERY_ERROR') refused++
    }
    expect(stored).toBe(0)
    expect(refused).toBeGreaterThan(0)
    await expect(getNeuroShardRecord(E, badKey, { signal: AbortSignal.timeout(10_000) })).rejects.toHaveProperty('name', 'NotFoundError')

    const cid = CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode('layer 7 weights')))
    await A.contentRouting.provide(cid)
    let found = false
    for await (const provider of E.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(15_000) })) {
      if (provider.id.equals(A.peerId)) {
        found = true
        break
      }
    }
    expect(found).toBe(true)
  })

  it('delivers a gossipsub message from A to all other hosts', async () => {
    const topic = 'neuroshard-test/1'
    const neighbours = new Map<number, number[]>()
    for (const { from, to } of links) {
      neighbours.set(from, [...(neighbours.get(from) ?? []), to])
      neighbours.set(to, [...(neighbours.get(to) ?? []), from])
    }
    for (const h of hosts) {
      h.services.pubsub.subscribe(topic)
    }
    // wait until every host has every topology neighbour in its mesh (grafts happen on heartbeats)
    await Promise.all(hosts.map(async (h, i) => {
      const want = (neighbours.get(i) ?? []).map(j => hosts[j].peerId.toString())
      await waitUntil(h.services.pubsub, 'gossipsub:graft',
        () => want.every(p => h.services.pubsub.getMeshPeers(topic).includes(p)), 15_000)
    }))

    const data = new TextEncoder().encode(`hello from ${hosts[0].peerId.toString()}`)
    const received = hosts.slice(1).map(async h => waitFor(h.services.pubsub, 'message', evt => evt.detail.topic === topic))
    await hosts[0].services.pubsub.publish(topic, data)
    const messages = await Promise.all(received)
    for (const evt of messages) {
      expect(new Uint8Array(evt.detail.data)).toEqual(data)
      expect(evt.detail.type).toBe('signed')
      if (evt.detail.type === 'signed') {
        expect(evt.detail.from.equals(hosts[0].peerId)).toBe(true)
      }
    }

    // the profile carries 1 MiB messages, over every transport in this topology (WebRTC-direct included)
    const big = new Uint8Array(1024 * 1024).map((_, i) => i % 251)
    const receivedBig = hosts.slice(1).map(async h => waitFor(h.services.pubsub, 'message', evt => evt.detail.topic === topic && evt.detail.data.byteLength === big.byteLength, 15_000))
    await hosts[0].services.pubsub.publish(topic, big)
    for (const evt of await Promise.all(receivedBig)) {
      expect(Buffer.compare(evt.detail.data, big)).toBe(0)
    }
  })
})
