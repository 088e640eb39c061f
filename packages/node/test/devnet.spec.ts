import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startDevnet } from '../src/index.js'
import type { Devnet, DevnetSnapshot } from '../src/index.js'

describe('startDevnet', () => {
  let devnet: Devnet | undefined

  afterEach(async () => {
    await devnet?.stop()
    devnet = undefined
  })

  it('starts 3 hosts that meet through the DHT, gossip heartbeats and converge', async () => {
    const updates: DevnetSnapshot[] = []
    devnet = await startDevnet({ nodes: 3, onUpdate: (s) => updates.push(s) })
    expect(devnet.hosts).toHaveLength(3)
    const snapshot = await devnet.waitForConvergence({ signal: AbortSignal.timeout(30_000) })
    expect(snapshot.converged).toBe(true)
    expect(devnet.converged).toBe(true)
    expect(updates.length).toBeGreaterThan(0)

    const [seed, b, c] = devnet.hosts
    // not a star: the two non-bootstrap hosts were only told about host 0, yet they are connected to each
    // other (through DHT closest-peer queries)
    expect(b.getConnections(c.peerId).length).toBeGreaterThan(0)
    expect(c.getConnections(b.peerId).length).toBeGreaterThan(0)
    // every host's DHT routing table holds both others; it fills in after identify, asynchronously to
    // the convergence signal (connections + heartbeats), so give it a few seconds rather than a race
    const deadline = Date.now() + 60_000
    while (devnet.hosts.some(h => h.services.dht.routingTable.size !== 2) && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    expect(devnet.hosts.map(h => h.services.dht.routingTable.size)).toEqual([2, 2, 2])
    for (const node of snapshot.nodes) {
      // a heartbeat from each other node was received over gossipsub
      expect(Object.keys(node.heartbeats).map(Number).sort()).toEqual([0, 1, 2].filter(i => i !== node.index))
      expect(node.addresses.every(a => a.startsWith('/ip4/127.0.0.1/'))).toBe(true)
      expect(node.connections.filter(conn => conn.node >= 0).map(conn => conn.node).sort())
        .toEqual(expect.arrayContaining([0, 1, 2].filter(i => i !== node.index)))
    }
    expect(snapshot.nodes[0].peerId).toBe(seed.peerId.toString())

    await devnet.stop()
    expect(devnet.hosts.every(h => h.status === 'stopped')).toBe(true)
    // idempotent
    await devnet.stop()
  })

  it('keeps node identities in --data-dir across restarts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'neuroshard-devnet-'))
    try {
      devnet = await startDevnet({ nodes: 2, dataDir: dir })
      const first = devnet.hosts.map(h => h.peerId.toString())
      await devnet.stop()
      expect((await stat(join(dir, 'node-1', 'identity.key'))).mode & 0o777).toBe(0o600)
      devnet = await startDevnet({ nodes: 2, dataDir: dir })
      expect(devnet.hosts.map(h => h.peerId.toString())).toEqual(first)
      await devnet.waitForConvergence({ signal: AbortSignal.timeout(30_000) })
    } finally {
      await devnet?.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('rejects an invalid node count with InvalidParametersError', async () => {
    await expect(startDevnet({ nodes: 0 })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(startDevnet({ nodes: 1.5 })).rejects.toHaveProperty('name', 'InvalidParametersError')
  })
})
