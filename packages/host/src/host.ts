import { noise } from '@chainsafe/libp2p-noise'
import { quic } from '@chainsafe/libp2p-quic'
import { yamux } from '@chainsafe/libp2p-yamux'
import { autoNAT } from '@libp2p/autonat'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { dcutr } from '@libp2p/dcutr'
import { gossipsub, StrictSign } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, removePrivateAddressesMapper, removePublicAddressesMapper } from '@libp2p/kad-dht'
import { logger } from '@libp2p/logger'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidParametersError } from '@neuroshard/interface'
import { createLibp2p } from 'libp2p'
import { coalescingEncrypter, halfWindowUpdates } from './transport-tuning.js'
import {
  DEFAULT_INBOUND_CONNECTION_THRESHOLD,
  DEFAULT_LISTEN_ADDRESSES,
  CONNECTION_PING_MIN_TIMEOUT_MS,
  PING_MAX_STREAMS,
  STREAM_MAX_READ_BUFFER,
  YAMUX_MAX_STREAM_WINDOW,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_INCOMING_PENDING_CONNECTIONS,
  DEFAULT_INBOUND_UPGRADE_TIMEOUT_MS,
  DEFAULT_PRIVATE_SWARM_LISTEN_ADDRESSES,
  DHT_RECORD_NAMESPACE,
  GOSSIPSUB_D,
  GOSSIPSUB_DHI,
  GOSSIPSUB_DLAZY,
  GOSSIPSUB_DLO,
  GOSSIPSUB_DOUT,
  GOSSIPSUB_HEARTBEAT_INTERVAL_MS,
  GOSSIPSUB_IDONTWANT_MIN_DATA_SIZE,
  GOSSIPSUB_IP_COLOCATION_EXEMPT,
  GOSSIPSUB_IP_COLOCATION_THRESHOLD,
  GOSSIPSUB_IP_COLOCATION_WEIGHT,
  GOSSIPSUB_MAX_OUTBOUND_BUFFER_SIZE,
  GOSSIPSUB_MAX_RPC_SIZE,
  GOSSIPSUB_SEEN_TTL_MS,
  KAD_DHT_PROTOCOL,
  SWARM_KEY_HANDSHAKE_TIMEOUT_MS
} from './constants.js'
import { loadOrCreateIdentity } from './identity.js'
import { IpRangeSet } from './ip-ranges.js'
import { joiner, validateJoinOptions } from './join.js'
import { createNeuroShardRecordValidator, selectNeuroShardRecord } from './records.js'
import { parseSwarmKey } from './swarm-key.js'
import type { Joiner, JoinOptions } from './join.js'
import type { NeuroShardRecordValidator } from './records.js'
import type { CircuitRelayServerInit, CircuitRelayService } from '@libp2p/circuit-relay-v2'
import type { GossipSub, GossipsubOpts } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { PrivateKey, Libp2p, PeerDiscovery, PeerId, Transport } from '@libp2p/interface'
import type { KadDHT, PeerInfoMapper } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { UPnPNAT } from '@libp2p/upnp-nat'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { TypedEventTarget } from 'main-event'

const log = logger('neuroshard:host')

/** Which peer addresses the DHT keeps and hands out */
export type DhtAddressFilter = 'all' | 'public' | 'private'

/** The transports a host can run */
export interface NeuroShardTransports {
  /** @default true */
  tcp?: boolean
  /** QUIC v1 (`@chainsafe/libp2p-quic`). Forced off when a swarm key is set. @default true */
  quic?: boolean
  /** WebRTC-direct (`@libp2p/webrtc`). Forced off when a swarm key is set. @default true */
  webrtcDirect?: boolean
  /** Dialing through circuit relay v2 (needed for DCUtR hole punching). @default true */
  circuitRelay?: boolean
}

/**
 * How gossipsub scores peers that share an IP address (its P6 "IP colocation" penalty). Part of the
 * profile: see specs/host/README.md, "Gossipsub", for the values and their security trade-off.
 */
export interface GossipsubScoringOptions {
  /**
   * Address ranges (CIDR blocks or single addresses) whose peers are never penalised for sharing an
   * address.
   *
   * @default GOSSIPSUB_IP_COLOCATION_EXEMPT (loopback, private and link-local ranges)
   */
  ipColocationExempt?: string[]
  /** Peers per address before the penalty applies @default GOSSIPSUB_IP_COLOCATION_THRESHOLD (10) */
  ipColocationThreshold?: number
  /**
   * Weight of the penalty (≤ 0; 0 turns it off).
   *
   * @default GOSSIPSUB_IP_COLOCATION_WEIGHT (−5), or 0 when `swarmKey` is set
   */
  ipColocationWeight?: number
}

/** Options of {@link createNeuroShardHost}; all are optional */
export interface NeuroShardHostOptions {
  /**
   * Directory holding the persistent identity key (`<dataDir>/identity.key`, mode 0600). Created with
   * mode 0700 when missing.
   *
   * @default undefined: a fresh ephemeral Ed25519 identity per process
   */
  dataDir?: string
  /** An explicit identity key; takes precedence over `dataDir` */
  privateKey?: PrivateKey
  /**
   * Multiaddrs to listen on.
   *
   * @default DEFAULT_LISTEN_ADDRESSES (TCP, QUIC and WebRTC-direct on 127.0.0.1, random ports), or
   * DEFAULT_PRIVATE_SWARM_LISTEN_ADDRESSES (TCP on 127.0.0.1) when `swarmKey` is set
   */
  listen?: string[]
  /** Multiaddrs to announce instead of the listen addresses (for example a public address behind NAT) */
  announce?: string[]
  /** Transport switches */
  transports?: NeuroShardTransports
  /**
   * Multiaddrs (with `/p2p/<peer id>`) of peers to join the swarm through. Several addresses of one peer
   * are all tried. With a non-empty list the host runs the joiner (`services.join`), which dials them at
   * start, retries with backoff until the host has `join.minPeers` peers and re-dials them whenever it
   * drops below that.
   *
   * @default []: there are no public NeuroShard bootstrap peers yet
   */
  bootstrap?: string[]
  /** Joiner settings (target peer count, retry backoff); used when `bootstrap` is not empty */
  join?: JoinOptions
  /** Discover peers on the LAN with multicast DNS @default false */
  mdns?: boolean
  /** Ask the gateway for port mappings with UPnP @default false */
  upnp?: boolean
  /**
   * Run a circuit relay v2 server (`services.relay`): hosts behind NAT may reserve a slot here (by listening on
   * `/p2p-circuit`) and be dialled through this host; DCUtR then tries to upgrade those connections to direct
   * ones. Only for hosts with a public address and bandwidth to spare. `true` for @libp2p/circuit-relay-v2's
   * defaults (reservations 2 min, relayed connections 2 min and 128 KiB each way), or its server options.
   *
   * @default false
   */
  relayServer?: boolean | CircuitRelayServerInit
  /**
   * Run DCUtR (`services.dcutr`): a relayed connection is upgraded to a direct one by hole punching (host spec R19,
   * SHOULD). `false` only for tests and measurements that need a host without it (the testbed's DCUtR control).
   *
   * @default true
   */
  holePunching?: boolean
  /**
   * Pre-shared key of a private swarm (`/key/swarm/psk/1.0.0/` format, see `generateSwarmKey`). Only
   * hosts with the same key can connect. Forces TCP only: QUIC and WebRTC-direct bypass the pnet
   * connection protector.
   */
  swarmKey?: Uint8Array | string
  /** Kad-DHT protocol id @default KAD_DHT_PROTOCOL ('/neuroshard/kad/1.0.0') */
  dhtProtocol?: string
  /**
   * Run the DHT in client mode (query only, never answer). Servers are what make the DHT work; use
   * client mode on short-lived or badly connected nodes.
   *
   * @default false
   */
  dhtClientMode?: boolean
  /**
   * Which peer addresses the DHT stores and returns. 'all' keeps loopback and private addresses, which
   * local devnets and LAN swarms need; 'public' is what an internet-only swarm wants.
   *
   * @default 'all'
   */
  dhtAddressFilter?: DhtAddressFilter
  /** Validators for NeuroShard DHT records, by namespace (`/neuroshard/<namespace>/<id>`) */
  recordValidators?: Record<string, NeuroShardRecordValidator>
  /** Gossipsub peer-scoring settings for peers that share an IP address */
  gossipsubScoring?: GossipsubScoringOptions
  /**
   * Overrides of the gossipsub profile (specs/host/README.md); changing them leaves the profile.
   * `scoreParams` is merged over the profile's score parameters.
   */
  gossipsub?: Partial<GossipsubOpts>
  /** Maximum number of open connections @default 300 */
  maxConnections?: number
  /**
   * Inbound connections accepted per second from one remote IP address.
   *
   * @default DEFAULT_INBOUND_CONNECTION_THRESHOLD (64; libp2p's own default of 5 refused join bursts)
   */
  inboundConnectionThreshold?: number
  /**
   * Inbound connections that may be in their upgrade at the same time.
   *
   * @default DEFAULT_MAX_INCOMING_PENDING_CONNECTIONS (64; libp2p's own default is 10)
   */
  maxIncomingPendingConnections?: number
  /**
   * Time an inbound connection may take for its upgrade (pnet, Noise, Yamux) from the accept, ms.
   *
   * @default DEFAULT_INBOUND_UPGRADE_TIMEOUT_MS (30 000; libp2p's own default is 10 000)
   */
  inboundUpgradeTimeout?: number
  /** Start the node before returning @default true */
  start?: boolean
  /**
   * Extra libp2p services (protocol packages such as layer-pool), added beside the profile's own. A name
   * that the profile already uses is refused.
   *
   * @default {}
   */
  services?: Record<string, (components: any) => unknown>
}

/** Events of the DHT routing table */
export interface DhtRoutingTableEvents {
  'peer:add': CustomEvent<PeerId>
  'peer:remove': CustomEvent<PeerId>
}

/**
 * The Kad-DHT service as `@libp2p/kad-dht` implements it: the public `KadDHT` API plus its routing table
 * (size and add/remove events), which the devnet and tests observe.
 */
export type NeuroShardDHT = KadDHT & {
  routingTable: { size: number } & TypedEventTarget<DhtRoutingTableEvents>
}

/** The gossipsub service, including the mesh view `@libp2p/gossipsub` implements */
export type NeuroShardPubSub = GossipSub & {
  /** Peer ids (strings) in this node's mesh for `topic` */
  getMeshPeers(topic: string): string[]
  /** This node's gossipsub score of a peer (peer id string); peers below 0 are left out of meshes */
  getScore(peerId: string): number
}

/** The services every NeuroShard host runs */
// a type alias (not an interface) so it satisfies libp2p's index-signature ServiceMap constraint
export type NeuroShardServices = {
  identify: Identify
  ping: Ping
  dht: NeuroShardDHT
  pubsub: NeuroShardPubSub
  autoNAT: unknown
  /** Present unless `holePunching: false` */
  dcutr?: unknown
  /** Present only when `upnp: true` */
  upnp?: UPnPNAT
  /** The circuit relay v2 server; present only with `relayServer` */
  relay?: CircuitRelayService
  /** The joiner; present only when the host has bootstrap peers */
  join?: Joiner
}

/** A libp2p 3 node running the NeuroShard host profile */
export type NeuroShardHost = Libp2p<NeuroShardServices>

/**
 * Creates (and by default starts) a libp2p 3 node with the NeuroShard host profile: TCP, QUIC and
 * WebRTC-direct, Noise, Yamux, identify, ping, Kad-DHT on `/neuroshard/kad/1.0.0`, gossipsub
 * (StrictSign), AutoNAT, DCUtR, circuit-relay transport, bootstrap, opt-in mDNS and UPnP, optional private
 * swarm key and a persistent identity.
 *
 * @example
 * ```ts
 * const host = await createNeuroShardHost({ dataDir: './.neuroshard' })
 * console.log(host.peerId.toString(), host.getMultiaddrs().map(String))
 * await host.stop()
 * ```
 */
export async function createNeuroShardHost<Extra extends Record<string, unknown> = Record<string, never>> (options: NeuroShardHostOptions = {}): Promise<NeuroShardHost & Libp2p<NeuroShardServices & Extra>> {
  const privateKey = options.privateKey ??
    (options.dataDir != null ? (await loadOrCreateIdentity(options.dataDir)).privateKey : await generateKeyPair('Ed25519'))

  const psk = options.swarmKey != null ? parseSwarmKey(options.swarmKey) : undefined
  const privateSwarm = psk != null
  const want = {
    tcp: options.transports?.tcp ?? true,
    quic: privateSwarm ? false : (options.transports?.quic ?? true),
    webrtcDirect: privateSwarm ? false : (options.transports?.webrtcDirect ?? true),
    circuitRelay: options.transports?.circuitRelay ?? true
  }
  if (privateSwarm && (options.transports?.quic === true || options.transports?.webrtcDirect === true)) {
    throw new InvalidParametersError('QUIC and WebRTC-direct cannot be used with a swarm key: they bypass the pnet connection protector')
  }

  const listen = options.listen ?? [...(privateSwarm ? DEFAULT_PRIVATE_SWARM_LISTEN_ADDRESSES : DEFAULT_LISTEN_ADDRESSES)]
    .filter(addr => (want.tcp || !addr.includes('/tcp/')) && (want.quic || !addr.includes('/quic-v1')) && (want.webrtcDirect || !addr.includes('/webrtc-direct')))
  for (const addr of listen) {
    let ma
    try {
      ma = multiaddr(addr)
    } catch (err: any) {
      throw new InvalidParametersError(`Invalid listen address ${addr}: ${err.message}`)
    }
    if (privateSwarm && !isTcpOnly(ma.toString())) {
      throw new InvalidParametersError(`Listen address ${addr} is not TCP; a private swarm runs over TCP only`)
    }
  }

  const transports: Array<(components: any) => Transport> = []
  if (want.tcp) transports.push(tcp())
  if (want.quic) transports.push(quic() as (components: any) => Transport)
  // WebRTC-direct and UPnP load only when used: importing @libp2p/webrtc costs ~0.5 s of CPU and @libp2p/upnp-nat
  // ~0.1 s (measured here, marginal over the rest of the host's imports; a node's start was ~2.3 s), which every
  // node of a join storm paid with them turned off
  if (want.webrtcDirect) transports.push((await import('@libp2p/webrtc')).webRTCDirect())
  if (want.circuitRelay) transports.push(circuitRelayTransport())
  if (transports.length === 0) {
    throw new InvalidParametersError('At least one transport must be enabled')
  }

  const bootstrapList = options.bootstrap ?? []
  // checks the bootstrap addresses (each needs /p2p/<id>) and the join options before anything starts
  validateJoinOptions({ ...options.join, bootstrap: bootstrapList })
  const inboundConnectionThreshold = positiveInteger('inboundConnectionThreshold', options.inboundConnectionThreshold ?? DEFAULT_INBOUND_CONNECTION_THRESHOLD)
  const maxIncomingPendingConnections = positiveInteger('maxIncomingPendingConnections', options.maxIncomingPendingConnections ?? DEFAULT_MAX_INCOMING_PENDING_CONNECTIONS)
  const inboundUpgradeTimeout = positiveInteger('inboundUpgradeTimeout', options.inboundUpgradeTimeout ?? DEFAULT_INBOUND_UPGRADE_TIMEOUT_MS)
  const maxConnections = positiveInteger('maxConnections', options.maxConnections ?? DEFAULT_MAX_CONNECTIONS)
  const scoreParams = gossipsubScoreParams(options.gossipsubScoring, privateSwarm)

  const peerDiscovery: Array<(components: any) => PeerDiscovery> = []
  if (options.mdns === true) {
    peerDiscovery.push(mdns())
  }

  const services: Record<string, (components: any) => unknown> = {
    identify: identify(),
    ping: ping({ maxOutboundStreams: PING_MAX_STREAMS, maxInboundStreams: PING_MAX_STREAMS }),
    dht: kadDHT({
      protocol: options.dhtProtocol ?? KAD_DHT_PROTOCOL,
      clientMode: options.dhtClientMode ?? false,
      peerInfoMapper: addressMapper(options.dhtAddressFilter ?? 'all'),
      validators: { [DHT_RECORD_NAMESPACE]: createNeuroShardRecordValidator(options.recordValidators) },
      selectors: { [DHT_RECORD_NAMESPACE]: selectNeuroShardRecord }
    }),
    pubsub: gossipsub({
      D: GOSSIPSUB_D,
      Dlo: GOSSIPSUB_DLO,
      Dhi: GOSSIPSUB_DHI,
      Dout: GOSSIPSUB_DOUT,
      Dlazy: GOSSIPSUB_DLAZY,
      heartbeatInterval: GOSSIPSUB_HEARTBEAT_INTERVAL_MS,
      seenTTL: GOSSIPSUB_SEEN_TTL_MS,
      globalSignaturePolicy: StrictSign,
      // a NeuroShard swarm speaks gossipsub only; floodsub peers are not part of the profile
      fallbackToFloodsub: false,
      maxInboundDataLength: GOSSIPSUB_MAX_RPC_SIZE,
      maxOutboundBufferSize: GOSSIPSUB_MAX_OUTBOUND_BUFFER_SIZE,
      idontwantMinDataSize: GOSSIPSUB_IDONTWANT_MIN_DATA_SIZE,
      ...options.gossipsub,
      scoreParams: { ...scoreParams, ...options.gossipsub?.scoreParams }
    }),
    autoNAT: autoNAT()
  }
  if (options.holePunching !== false) {
    services.dcutr = dcutr()
  }
  if (options.upnp === true) {
    services.upnp = (await import('@libp2p/upnp-nat')).uPnPNAT()
  }
  if (options.relayServer != null && options.relayServer !== false) {
    if (!want.circuitRelay) throw new InvalidParametersError('relayServer needs the circuitRelay transport')
    services.relay = circuitRelayServer(options.relayServer === true ? {} : options.relayServer)
  }
  if (bootstrapList.length > 0) {
    // replaces @libp2p/bootstrap, which dials each peer once and never retries (src/join.ts)
    services.join = joiner({ ...options.join, bootstrap: bootstrapList })
  }
  for (const [name, factory] of Object.entries(options.services ?? {})) {
    if (name in services || name === 'upnp' || name === 'join' || name === 'relay') {
      throw new InvalidParametersError(`Service name "${name}" is taken by the host profile`)
    }
    services[name] = factory
  }

  halfWindowUpdates()
  // set once libp2p exists: the gater below compares dial addresses with this host's own
  let self: Libp2p | undefined
  const node = await createLibp2p({
    privateKey,
    start: false,
    addresses: {
      listen,
      ...(options.announce != null ? { announce: options.announce } : {})
    },
    transports,
    connectionEncrypters: [coalescingEncrypter(noise())],
    // yamux's stream defaults, except the unread-buffer limit: see STREAM_MAX_READ_BUFFER
    streamMuxers: [yamux({
      streamOptions: {
        initialStreamWindowSize: 256 * 1024,
        maxStreamWindowSize: YAMUX_MAX_STREAM_WINDOW,
        inactivityTimeout: 120_000,
        maxReadBufferLength: STREAM_MAX_READ_BUFFER,
        maxWriteBufferLength: Infinity
      }
    })],
    ...(psk != null ? { connectionProtector: preSharedKey({ psk, timeout: SWARM_KEY_HANDSHAKE_TIMEOUT_MS }) } : {}),
    connectionManager: {
      maxConnections,
      // joining crowds: see DEFAULT_INBOUND_CONNECTION_THRESHOLD and DEFAULT_MAX_INCOMING_PENDING_CONNECTIONS
      inboundConnectionThreshold,
      maxIncomingPendingConnections,
      // starved bootstrap hosts: see DEFAULT_INBOUND_UPGRADE_TIMEOUT_MS
      inboundUpgradeTimeout
    },
    // busy nodes (training, a crowd of hosts in one process) answer pings late; libp2p's 5 s floor would
    // abort healthy connections and empty gossip meshes, so a ping may take CONNECTION_PING_MIN_TIMEOUT_MS
    connectionMonitor: { pingTimeout: { minTimeout: CONNECTION_PING_MIN_TIMEOUT_MS } },
    // never dial an address this host listens on: it reaches the host itself. Peers announce their loopback
    // address (R9 keeps it), so with a common port every dial of such a peer also tried its 127.0.0.1 address,
    // and the host spent a Noise handshake on both ends of a connection to itself that could only fail (in the
    // 24-node testbed start: 438 of 1280 inbound connections, #15)
    connectionGater: { denyDialMultiaddr: (ma) => self != null && ownsAddress(self, ma) },
    peerDiscovery,
    services
  }) as unknown as NeuroShardHost & Libp2p<NeuroShardServices & Extra>
  self = node

  if (options.start !== false) {
    try {
      await node.start()
    } catch (err) {
      // release whatever did start (listeners, timers) before reporting the failure
      await Promise.resolve(node.stop()).catch(() => {})
      throw err
    }
    log('started %p listening on %a', node.peerId, node.getMultiaddrs())
  }
  return node
}

/** The IP, transport and port of an address (`ip4/1.2.3.4/tcp/4001`), or undefined for one without them */
function socketOf (ma: Multiaddr): string | undefined {
  const c = ma.getComponents()
  if (c.length < 2 || (c[0].name !== 'ip4' && c[0].name !== 'ip6') || (c[1].name !== 'tcp' && c[1].name !== 'udp')) return undefined
  if (c.some(x => x.name === 'p2p-circuit')) return undefined // a relayed address: the socket is the relay's
  return `${c[0].name}/${String(c[0].value)}/${c[1].name}/${String(c[1].value)}`
}

/** Whether `ma` names a socket `node` listens on (a dial there reaches `node` itself) */
function ownsAddress (node: Libp2p, ma: Multiaddr): boolean {
  const target = socketOf(ma)
  if (target == null) return false
  return node.getMultiaddrs().some(own => socketOf(own) === target)
}

function positiveInteger (name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidParametersError(`${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}

/** The profile's peer-score parameters: gossipsub's defaults with a deliberate IP-colocation penalty */
function gossipsubScoreParams (scoring: GossipsubScoringOptions = {}, privateSwarm: boolean): Partial<GossipsubOpts['scoreParams']> {
  const weight = scoring.ipColocationWeight ?? (privateSwarm ? 0 : GOSSIPSUB_IP_COLOCATION_WEIGHT)
  const threshold = scoring.ipColocationThreshold ?? GOSSIPSUB_IP_COLOCATION_THRESHOLD
  if (!Number.isFinite(weight) || weight > 0) {
    throw new InvalidParametersError(`gossipsubScoring.ipColocationWeight must be 0 or negative, got ${String(weight)}`)
  }
  if (!Number.isInteger(threshold) || threshold < 1) {
    throw new InvalidParametersError(`gossipsubScoring.ipColocationThreshold must be a positive integer, got ${String(threshold)}`)
  }
  return {
    IPColocationFactorWeight: weight,
    IPColocationFactorThreshold: threshold,
    IPColocationFactorWhitelist: new IpRangeSet(scoring.ipColocationExempt ?? GOSSIPSUB_IP_COLOCATION_EXEMPT)
  }
}

function isTcpOnly (addr: string): boolean {
  return addr.includes('/tcp/') && !addr.includes('/ws') && !addr.includes('/quic') && !addr.includes('/webrtc')
}

function addressMapper (filter: DhtAddressFilter): PeerInfoMapper {
  switch (filter) {
    case 'all':
      return passthroughMapper
    case 'public':
      return removePrivateAddressesMapper
    case 'private':
      return removePublicAddressesMapper
    default:
      throw new InvalidParametersError(`Unknown dhtAddressFilter ${String(filter)}`)
  }
}
