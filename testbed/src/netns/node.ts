/**
 * One testbed node: a NeuroShard host with the layer pool (the tiny model), started with bootstrap
 * addresses, printing one JSON line a second on stdout (what the runner measures). This is the default
 * per-node command of a scenario; once the reference node has `neuroshard start --bootstrap ... --port ...
 * --data-dir ...`, a scenario can run that instead (`node.command`).
 *
 *   node dist/src/netns/node.js --name n0 --port 4001 --data-dir /tmp/n0 [--bootstrap /ip4/.../p2p/...,...]
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createNeuroShardHost } from '@neuroshard/host'
import { layerPool, layerPoolRecordValidator } from '@neuroshard/layer-pool'
import { TINY } from '@neuroshard/model'
import type { LayerPool } from '@neuroshard/layer-pool'

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'node' },
    port: { type: 'string', default: '4001' },
    'data-dir': { type: 'string' },
    bootstrap: { type: 'string', default: '' },
    'stats-interval-ms': { type: 'string', default: '1000' }
  }
})

const SLOT_BYTES = 4 * 46_208 // one tiny block in fp32

function emit (event: string, fields: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ event, t: Date.now(), name: values.name, ...fields }) + '\n')
}

const bootstrap = (values.bootstrap ?? '').split(',').filter(s => s.length > 0)
// NAT / relay scenarios (environment): a public node that runs a circuit relay server, nodes behind NAT that
// reserve a slot on it (listen on /p2p-circuit), and nodes that dial every peer whose layer record lists a
// relayed address through that address and ping it (the runner's `relayed` check reads those lines)
const relayServer = process.env.TESTBED_RELAY_SERVER === '1'
const relayListen = process.env.TESTBED_RELAY_LISTEN === '1'
const pingRelayed = process.env.TESTBED_PING_RELAYED === '1'
const host = await createNeuroShardHost<{ layerPool: LayerPool }>({
  listen: [`/ip4/0.0.0.0/tcp/${values.port}`, ...(relayListen ? ['/p2p-circuit'] : [])],
  transports: { quic: false, webrtcDirect: false, circuitRelay: relayServer || relayListen || pingRelayed },
  relayServer,
  mdns: false,
  dataDir: values['data-dir'],
  bootstrap,
  recordValidators: { 'layer-pool': layerPoolRecordValidator() },
  services: {
    layerPool: layerPool({
      modelId: 'testbed',
      config: TINY,
      initSeed: 42,
      memoryBytes: Math.round(2.9 * SLOT_BYTES),
      // scenarios may shorten these (node.env) to make a small run fast
      heartbeatIntervalMs: Number(process.env.TESTBED_HEARTBEAT_MS ?? 2_000),
      recordTtlMs: Number(process.env.TESTBED_RECORD_TTL_MS ?? 20_000)
    })
  }
} as any)

emit('ready', { peerId: host.peerId.toString(), addrs: host.getMultiaddrs().map(String) })

const pool = host.services.layerPool
// diagnostics: how starved this process is (event-loop delay, CPU share) and what the gossip mesh and the
// connections do, so a scenario that does not converge can tell load from a protocol problem
const loop = monitorEventLoopDelay({ resolution: 20 })
loop.enable()
let cpu = process.cpuUsage()
let cpuAt = performance.now()
let opened = 0
let closed = 0
host.addEventListener('connection:open', () => { opened++ })
host.addEventListener('connection:close', () => { closed++ })
const pubsub = (host.services as any).pubsub
const timer = setInterval(() => {
  const mem = process.memoryUsage()
  const cpuNow = process.cpuUsage(cpu)
  const cpuPct = (cpuNow.user + cpuNow.system) / 10 / (performance.now() - cpuAt)
  cpu = process.cpuUsage()
  cpuAt = performance.now()
  const lag = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 }
  loop.reset()
  let mesh = -1
  let topicPeers = -1
  try { mesh = pubsub.getMeshPeers(pool.topic).length; topicPeers = pubsub.getSubscribers(pool.topic).length } catch {}
  let recordPeers: string[] = []
  let covered = false
  try {
    const now = Date.now()
    recordPeers = [...pool.records().entries()].filter(([, e]) => e.liveUntil > now).map(([k]) => k)
    covered = pool.view().every(v => v.live >= 1)
  } catch {}
  emit('stats', { peerId: host.peerId.toString(), connections: host.getConnections().length, peers: host.getPeers().length, opened, closed, mesh, topicPeers, recordPeers, covered, rss: mem.rss, heapUsed: mem.heapUsed, cpuPct: Math.round(cpuPct), lagMs: { p50: Math.round(lag.p50), p99: Math.round(lag.p99), max: Math.round(lag.max) } })
}, Number(values['stats-interval-ms']))

// relayed pings: each peer whose record lists a /p2p-circuit address, until one ping through it succeeds;
// a direct connection that appears later to such a peer is DCUtR's hole punch (reported, not required)
const relayedOk = new Set<string>()
const relayedTimer = !pingRelayed
  ? undefined
  : setInterval(() => {
    for (const [peer, entry] of pool.records()) {
      if (relayedOk.has(peer) || peer === host.peerId.toString()) continue
      const addr = entry.record.addresses.map(String).find(a => a.includes('/p2p-circuit'))
      if (addr == null) continue
      relayedOk.add(peer) // one attempt at a time per peer
      const t0 = performance.now()
      host.services.ping.ping(multiaddr(addr), { signal: AbortSignal.timeout(20_000) }).then(rtt => {
        const conns = host.getConnections(peerIdFromString(peer)).map(c => c.remoteAddr.toString())
        emit('relayed-ping', { peer, ok: true, rttMs: rtt, ms: Math.round(performance.now() - t0), addr, connections: conns })
      }, (err: Error) => {
        relayedOk.delete(peer)
        emit('relayed-ping', { peer, ok: false, error: `${err.name}: ${err.message}`, addr })
      })
    }
  }, 3_000)
host.addEventListener('connection:open', (evt) => {
  const c = evt.detail
  if (relayedOk.has(c.remotePeer.toString()) && !c.remoteAddr.toString().includes('/p2p-circuit')) {
    emit('direct-after-relay', { peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), direction: c.direction })
  }
})

const stop = async (): Promise<void> => {
  clearInterval(timer)
  clearInterval(relayedTimer)
  await Promise.resolve(host.stop()).catch(() => {})
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.on('SIGINT', () => { void stop() })
