import { logger } from '@libp2p/logger'
import { createNeuroShardHost } from '@neuroshard/host'
import { InvalidParametersError } from '@neuroshard/interface'
import { TypedEventEmitter } from 'main-event'
import { join } from 'node:path'
import {
  DEFAULT_DEVNET_DISCOVERY_INTERVAL_MS,
  DEFAULT_DEVNET_HEARTBEAT_INTERVAL_MS,
  DEFAULT_DEVNET_NODES,
  DEVNET_DISCOVERY_TIMEOUT_MS,
  DEVNET_HEARTBEAT_TOPIC,
  DEVNET_MAX_HEARTBEAT_SIZE,
  MAX_DEVNET_NODES
} from './constants.js'
import type { Connection } from '@libp2p/interface'
import type { NeuroShardHost, NeuroShardHostOptions } from '@neuroshard/host'

const log = logger('neuroshard:node:devnet')

/** Options of {@link startDevnet} */
export interface DevnetOptions {
  /** Number of hosts @default 3 */
  nodes?: number
  /**
   * Parent directory for the hosts' identities (`<dataDir>/node-<i>/identity.key`), so peer ids survive
   * restarts. @default undefined: ephemeral identities
   */
  dataDir?: string
  /** Heartbeat publish interval, ms @default 1000 */
  heartbeatIntervalMs?: number
  /** DHT discovery query interval before convergence, ms @default 1000 */
  discoveryIntervalMs?: number
  /** Extra options for every host (listen addresses, transports, …) */
  host?: Omit<NeuroShardHostOptions, 'dataDir' | 'bootstrap'>
  /** Called whenever the structure of the devnet changes (not for ageing timestamps) */
  onUpdate?(snapshot: DevnetSnapshot): void
}

/** One open connection as the peer table shows it */
export interface DevnetConnection {
  /** Index of the remote node in the devnet, or -1 for a peer outside it */
  node: number
  peerId: string
  transport: string
  direction: 'inbound' | 'outbound'
}

/** State of one devnet host */
export interface DevnetNodeStatus {
  index: number
  peerId: string
  /** Last 8 characters of the peer id */
  shortId: string
  addresses: string[]
  connections: DevnetConnection[]
  routingTableSize: number
  /** Number of peers in this node's gossipsub mesh for the heartbeat topic */
  meshPeers: number
  /** Index of each devnet node a heartbeat was received from → time of the latest one (ms since epoch) */
  heartbeats: Record<number, number>
  /** Time of the latest heartbeat received from anyone (ms since epoch) */
  lastHeartbeatAt?: number
}

/** State of the whole devnet */
export interface DevnetSnapshot {
  time: number
  converged: boolean
  nodes: DevnetNodeStatus[]
}

export interface DevnetEvents {
  /** The structure of the devnet changed */
  'devnet:update': CustomEvent<DevnetSnapshot>
  /** Every node is connected to every other and has a heartbeat from every other */
  'devnet:converged': CustomEvent<DevnetSnapshot>
}

/** A running devnet */
export interface Devnet extends TypedEventEmitter<DevnetEvents> {
  readonly hosts: NeuroShardHost[]
  readonly converged: boolean
  /** Current state (computed on each call) */
  snapshot(): DevnetSnapshot
  /** Resolves once the devnet has converged; rejects on timeout or abort */
  waitForConvergence(options?: { signal?: AbortSignal }): Promise<DevnetSnapshot>
  /** Stops timers and all hosts; idempotent */
  stop(): Promise<void>
}

/**
 * Starts `nodes` NeuroShard hosts on loopback. Host 0 is the bootstrap peer of all others; the others find
 * each other through DHT closest-peer queries for their own ids (not through host 0 relaying anything),
 * and every host publishes a heartbeat on {@link DEVNET_HEARTBEAT_TOPIC} each second.
 */
export async function startDevnet (options: DevnetOptions = {}): Promise<Devnet> {
  const count = options.nodes ?? DEFAULT_DEVNET_NODES
  if (!Number.isInteger(count) || count < 1 || count > MAX_DEVNET_NODES) {
    throw new InvalidParametersError(`nodes must be an integer from 1 to ${MAX_DEVNET_NODES}, got ${count}`)
  }
  const devnet = new DevnetImpl(options, count)
  try {
    await devnet.start()
  } catch (err) {
    await devnet.stop()
    throw err
  }
  return devnet
}

interface Heartbeat {
  seq: number
  sentAt: number
}

class DevnetImpl extends TypedEventEmitter<DevnetEvents> implements Devnet {
  readonly hosts: NeuroShardHost[] = []
  private readonly options: DevnetOptions
  private readonly count: number
  private readonly heartbeats: Array<Map<string, number>> = []
  private readonly timers: Array<ReturnType<typeof setInterval>> = []
  private readonly controller = new AbortController()
  private readonly detach: Array<() => void> = []
  private lastKey = ''
  private updateScheduled = false
  private isConverged = false
  private stopped = false
  private seq = 0

  constructor (options: DevnetOptions, count: number) {
    super()
    this.options = options
    this.count = count
  }

  get converged (): boolean {
    return this.isConverged
  }

  async start (): Promise<void> {
    const seed = await this.createHost(0, [])
    const seedAddrs = seed.getMultiaddrs().map(String)
    // node i bootstraps over one of host 0's transports in turn (TCP, QUIC, WebRTC-direct, …) so a devnet
    // exercises all of them; identify then teaches it host 0's other addresses
    await Promise.all(Array.from({ length: this.count - 1 }, async (_, i) =>
      this.createHost(i + 1, [seedAddrs[i % seedAddrs.length]])))

    const heartbeatMs = this.options.heartbeatIntervalMs ?? DEFAULT_DEVNET_HEARTBEAT_INTERVAL_MS
    this.timers.push(setInterval(() => { this.publishHeartbeats() }, heartbeatMs))
    this.scheduleDiscovery(this.options.discoveryIntervalMs ?? DEFAULT_DEVNET_DISCOVERY_INTERVAL_MS)
    this.scheduleUpdate()
  }

  private async createHost (index: number, bootstrap: string[]): Promise<NeuroShardHost> {
    const host = await createNeuroShardHost({
      ...this.options.host,
      ...(this.options.dataDir != null ? { dataDir: join(this.options.dataDir, `node-${index}`) } : {}),
      bootstrap
    })
    this.hosts[index] = host
    const seen = new Map<string, number>()
    this.heartbeats[index] = seen

    const onChange = (): void => { this.scheduleUpdate() }
    const onMessage = (evt: CustomEvent<any>): void => {
      const msg = evt.detail
      if (msg.topic !== DEVNET_HEARTBEAT_TOPIC || msg.type !== 'signed') {
        return
      }
      if (parseHeartbeat(msg.data) == null) {
        log('node %d ignored a malformed heartbeat from %p', index, msg.from)
        return
      }
      seen.set(msg.from.toString(), Date.now())
      this.scheduleUpdate()
    }
    const events = ['connection:open', 'connection:close', 'peer:identify'] as const
    for (const name of events) host.addEventListener(name, onChange)
    host.services.dht.routingTable.addEventListener('peer:add', onChange)
    host.services.dht.routingTable.addEventListener('peer:remove', onChange)
    host.services.pubsub.addEventListener('gossipsub:graft', onChange)
    host.services.pubsub.addEventListener('gossipsub:prune', onChange)
    host.services.pubsub.addEventListener('message', onMessage)
    this.detach.push(() => {
      for (const name of events) host.removeEventListener(name, onChange)
      host.services.dht.routingTable.removeEventListener('peer:add', onChange)
      host.services.dht.routingTable.removeEventListener('peer:remove', onChange)
      host.services.pubsub.removeEventListener('gossipsub:graft', onChange)
      host.services.pubsub.removeEventListener('gossipsub:prune', onChange)
      host.services.pubsub.removeEventListener('message', onMessage)
    })
    host.services.pubsub.subscribe(DEVNET_HEARTBEAT_TOPIC)
    return host
  }

  private publishHeartbeats (): void {
    const beat: Heartbeat = { seq: this.seq++, sentAt: Date.now() }
    const data = new TextEncoder().encode(JSON.stringify(beat))
    for (const host of this.hosts) {
      host.services.pubsub.publish(DEVNET_HEARTBEAT_TOPIC, data).catch((err: Error) => {
        // before the first subscriber is known, publishing fails with NoPeersSubscribedToTopic
        log.trace('heartbeat of %p not published: %s', host.peerId, err.message)
      })
    }
  }

  /**
   * Every host asks the DHT for the peers closest to its own id. The query walks the routing tables of the
   * peers it reaches and dials the peers they return, which is how non-bootstrap hosts meet.
   */
  private scheduleDiscovery (intervalMs: number): void {
    const run = async (): Promise<void> => {
      if (this.stopped) return
      await Promise.all(this.hosts.map(async host => {
        if (host.services.dht.routingTable.size === 0) return
        try {
          const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(DEVNET_DISCOVERY_TIMEOUT_MS)])
          // draining the query is the point: it dials the peers it learns about
          // eslint-disable-next-line @typescript-eslint/no-unused-vars
          for await (const _ of host.peerRouting.getClosestPeers(host.peerId.toMultihash().bytes, { signal })) {}
        } catch (err: any) {
          log.trace('discovery query of %p failed: %s', host.peerId, err.message)
        }
      }))
      if (this.stopped) return
      const timer = setTimeout(() => { void run() }, this.isConverged ? intervalMs * 10 : intervalMs)
      this.timers.push(timer)
    }
    const timer = setTimeout(() => { void run() }, intervalMs)
    this.timers.push(timer)
  }

  private scheduleUpdate (): void {
    if (this.updateScheduled || this.stopped) return
    this.updateScheduled = true
    // coalesce bursts of events (a dial fires several) into one update
    queueMicrotask(() => {
      this.updateScheduled = false
      if (this.stopped) return
      const snapshot = this.snapshot()
      const key = structuralKey(snapshot)
      const wasConverged = this.isConverged
      this.isConverged = snapshot.converged
      if (key !== this.lastKey) {
        this.lastKey = key
        this.options.onUpdate?.(snapshot)
        this.safeDispatchEvent('devnet:update', { detail: snapshot })
      }
      if (snapshot.converged && !wasConverged) {
        this.safeDispatchEvent('devnet:converged', { detail: snapshot })
      }
    })
  }

  snapshot (): DevnetSnapshot {
    const index = new Map(this.hosts.map((h, i) => [h.peerId.toString(), i]))
    const nodes = this.hosts.map((host, i): DevnetNodeStatus => {
      const heartbeats: Record<number, number> = {}
      let lastHeartbeatAt: number | undefined
      for (const [peer, at] of this.heartbeats[i] ?? []) {
        const j = index.get(peer)
        if (j != null) heartbeats[j] = at
        lastHeartbeatAt = Math.max(lastHeartbeatAt ?? 0, at)
      }
      const peerId = host.peerId.toString()
      return {
        index: i,
        peerId,
        shortId: peerId.slice(-8),
        addresses: host.getMultiaddrs().map(String),
        connections: host.getConnections().map(conn => connectionStatus(conn, index)),
        routingTableSize: host.services.dht.routingTable.size,
        meshPeers: host.services.pubsub.getMeshPeers(DEVNET_HEARTBEAT_TOPIC).length,
        heartbeats,
        ...(lastHeartbeatAt != null ? { lastHeartbeatAt } : {})
      }
    })
    const converged = nodes.every(node => nodes.every(other => other.index === node.index || (
      this.hosts[node.index].getConnections(this.hosts[other.index].peerId).length > 0 &&
      node.heartbeats[other.index] != null
    )))
    return { time: Date.now(), converged, nodes }
  }

  async waitForConvergence (options: { signal?: AbortSignal } = {}): Promise<DevnetSnapshot> {
    if (this.isConverged) return this.snapshot()
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.removeEventListener('devnet:converged', onConverged)
        reject(options.signal?.reason ?? new Error('aborted'))
      }
      const onConverged = (evt: CustomEvent<DevnetSnapshot>): void => {
        options.signal?.removeEventListener('abort', onAbort)
        resolve(evt.detail)
      }
      this.addEventListener('devnet:converged', onConverged, { once: true })
      options.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.controller.abort()
    for (const timer of this.timers) clearTimeout(timer)
    for (const fn of this.detach) fn()
    await Promise.all(this.hosts.map(async h => h.stop()))
  }
}

function connectionStatus (conn: Connection, index: Map<string, number>): DevnetConnection {
  const peerId = conn.remotePeer.toString()
  return {
    node: index.get(peerId) ?? -1,
    peerId,
    transport: transportName(conn.remoteAddr.toString()),
    direction: conn.direction
  }
}

/** Short transport name of a multiaddr: tcp, quic, webrtc-direct or relay */
export function transportName (addr: string): string {
  if (addr.includes('/p2p-circuit')) return 'relay'
  if (addr.includes('/webrtc-direct')) return 'webrtc-direct'
  if (addr.includes('/quic-v1')) return 'quic'
  if (addr.includes('/tcp/')) return 'tcp'
  return 'other'
}

function parseHeartbeat (data: Uint8Array): Heartbeat | undefined {
  if (data.byteLength > DEVNET_MAX_HEARTBEAT_SIZE) return undefined
  try {
    const beat = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data))
    if (Number.isSafeInteger(beat?.seq) && Number.isSafeInteger(beat?.sentAt)) {
      return { seq: beat.seq, sentAt: beat.sentAt }
    }
  } catch {}
  return undefined
}

/** The parts of a snapshot that matter for "did something change" (no timestamps) */
function structuralKey (snapshot: DevnetSnapshot): string {
  return JSON.stringify({
    converged: snapshot.converged,
    nodes: snapshot.nodes.map(n => ({
      a: n.addresses,
      c: n.connections.map(c => `${c.peerId}/${c.transport}/${c.direction}`).sort(),
      r: n.routingTableSize,
      m: n.meshPeers,
      h: Object.keys(n.heartbeats).sort()
    }))
  })
}
