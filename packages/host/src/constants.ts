/**
 * Defaults of the NeuroShard host profile. Every value here is part of the profile described in
 * specs/host/README.md; alternate clients must match the ones marked "profile" there.
 */

import { KAD_DHT_PROTOCOL } from '@neuroshard/interface'

export { KAD_DHT_PROTOCOL }

/**
 * Addresses a host listens on when the caller gives none: loopback only, one per transport.
 *
 * @default ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/udp/0/quic-v1', '/ip4/127.0.0.1/udp/0/webrtc-direct']
 */
export const DEFAULT_LISTEN_ADDRESSES: readonly string[] = Object.freeze([
  '/ip4/127.0.0.1/tcp/0',
  '/ip4/127.0.0.1/udp/0/quic-v1',
  '/ip4/127.0.0.1/udp/0/webrtc-direct'
])

/**
 * Listen addresses when a swarm key is set: TCP only, because QUIC and WebRTC-direct bring their own
 * encryption and bypass the pnet connection protector (specs/host/README.md, "Private swarms").
 *
 * @default ['/ip4/127.0.0.1/tcp/0']
 */
export const DEFAULT_PRIVATE_SWARM_LISTEN_ADDRESSES: readonly string[] = Object.freeze([
  '/ip4/127.0.0.1/tcp/0'
])

/** Name of the identity key file inside the data directory */
export const IDENTITY_KEY_FILE = 'identity.key'

/** File mode of the identity key file: owner read/write only */
export const IDENTITY_KEY_FILE_MODE = 0o600

/** Directory mode used when the host creates the data directory */
export const DATA_DIR_MODE = 0o700

/** Largest identity key file the host will read (an Ed25519 protobuf key is 68 bytes) */
export const MAX_IDENTITY_KEY_FILE_SIZE = 16 * 1024

/** Gossipsub mesh degree D (profile) @default 6 */
export const GOSSIPSUB_D = 6
/** Gossipsub mesh lower bound Dlo (profile) @default 4 */
export const GOSSIPSUB_DLO = 4
/** Gossipsub mesh upper bound Dhi (profile) @default 12 */
export const GOSSIPSUB_DHI = 12
/** Gossipsub outbound quota Dout (profile) @default 2 */
export const GOSSIPSUB_DOUT = 2
/** Gossipsub lazy gossip degree Dlazy (profile) @default 6 */
export const GOSSIPSUB_DLAZY = 6
/** Gossipsub heartbeat interval in ms (profile) @default 1000 */
export const GOSSIPSUB_HEARTBEAT_INTERVAL_MS = 1000
/** How long message ids stay in the seen cache, ms (profile) @default 120000 */
export const GOSSIPSUB_SEEN_TTL_MS = 120_000

/**
 * Largest length-prefixed gossipsub RPC frame (profile): 4 MiB, the libp2p framing default. The sender
 * in `@libp2p/gossipsub` refuses to encode larger frames (it logs `InvalidDataLengthError` and drops the
 * RPC) and receivers drop them without decoding.
 *
 * @default 4 MiB
 */
export const GOSSIPSUB_MAX_RPC_SIZE = 4 * 1024 * 1024

/**
 * Largest gossipsub message data a host guarantees to deliver (profile): the RPC frame cap minus 64 KiB
 * for the envelope (from, seqno, topic, signature, key, piggybacked control messages). Carries 1 MiB
 * payloads (pseudo-gradient chunks) with room to spare.
 *
 * @default 4 MiB - 64 KiB
 */
export const GOSSIPSUB_MAX_MESSAGE_DATA_SIZE = GOSSIPSUB_MAX_RPC_SIZE - 64 * 1024

/**
 * Smallest gossipsub message data, bytes, for which a host tells its other mesh peers IDONTWANT (gossipsub v1.2;
 * `@libp2p/gossipsub`'s `idontwantMinDataSize`, default 512). A host sends that control message at once, as its own RPC
 * (a Noise frame and a socket write) to each mesh peer but the sender, for every message it receives. For small
 * messages it costs about what the duplicate it might spare costs, and it rarely spares one: the peer has usually
 * forwarded its own copy by then. The layer pool's records (below 16 KiB, each node's every heartbeat) made it
 * about half the socket writes of a node's gossip (CPU profiles of the testbed's 24-node join storm, #15); large
 * payloads (pseudo-gradient chunks) still get it. A local choice: it changes nothing on the wire a peer must accept.
 *
 * @default 16384
 */
export const GOSSIPSUB_IDONTWANT_MIN_DATA_SIZE = 16 * 1024

/**
 * Largest amount of unsent gossipsub data buffered per outbound stream before the stream is reset.
 *
 * @default 64 MiB
 */
export const GOSSIPSUB_MAX_OUTBOUND_BUFFER_SIZE = 64 * 1024 * 1024

/** Namespace (first key segment) of NeuroShard DHT records: keys look like `/neuroshard/<ns>/<id>` */
export const DHT_RECORD_NAMESPACE = 'neuroshard'

/** Key prefix of NeuroShard DHT records */
export const DHT_RECORD_PREFIX = `/${DHT_RECORD_NAMESPACE}/`

/** Size of the record header: an unsigned 64-bit little-endian sequence number */
export const DHT_RECORD_HEADER_SIZE = 8

/**
 * Largest NeuroShard DHT record value (header + payload) a host accepts.
 *
 * @default 16 KiB
 */
export const DHT_MAX_RECORD_SIZE = 16 * 1024

/** Largest NeuroShard DHT record key in bytes @default 512 */
export const DHT_MAX_KEY_SIZE = 512

/** How long the pnet nonce exchange may take, ms @default 5000 */
export const SWARM_KEY_HANDSHAKE_TIMEOUT_MS = 5_000

/**
 * Shortest time libp2p's connection monitor waits for a ping before it aborts the connection (profile).
 * libp2p's default is 5 s (adaptive above it); a node whose event loop is busy with training or a crowd
 * start misses that and loses healthy connections, so the profile waits at least 30 s.
 *
 * @default 30_000
 */
export const CONNECTION_PING_MIN_TIMEOUT_MS = 30_000

/**
 * Ping streams a host may have open per connection, each way. Several parts of a node ping the same peer: libp2p's
 * connection monitor (its ping may take up to CONNECTION_PING_MIN_TIMEOUT_MS under load) and the swarm router's
 * probes; with @libp2p/ping's default of one outbound stream, a probe during a monitor ping failed with
 * TooManyOutboundProtocolStreamsError and the router banned a healthy peer.
 *
 * @default 4
 */
export const PING_MAX_STREAMS = 4

/** Largest receive window of a Yamux stream (yamux's default; the window grows to it while the reader keeps up) @default 16 MiB */
export const YAMUX_MAX_STREAM_WINDOW = 16 * 1024 * 1024

/**
 * Unread bytes a stream may hold before libp2p aborts it (`StreamBufferError`). A paused stream (a reader applying
 * backpressure) stops granting window, but the sender may still send what the window it had allows, so the limit
 * is the largest window plus a margin: yamux's default (4 MiB) aborted paused streams whose window had grown.
 *
 * @default 17 MiB
 */
export const STREAM_MAX_READ_BUFFER = YAMUX_MAX_STREAM_WINDOW + 1024 * 1024

/** Maximum number of open connections of a host @default 300 */
export const DEFAULT_MAX_CONNECTIONS = 300

/**
 * Inbound connections a host accepts per second from one remote IP address (libp2p's
 * `connectionManager.inboundConnectionThreshold`; libp2p's own default is 5). One address can
 * legitimately carry many nodes: a devnet on loopback, a site behind one NAT address, a swarm that
 * restarts together and re-joins one bootstrap host. With 5, the 6th and later joiners of such a crowd
 * were refused. 64 lets a burst of that size in at once, while one address still cannot open more than
 * 64 connections a second (the connection limit and pruning bound the total).
 *
 * @default 64
 */
export const DEFAULT_INBOUND_CONNECTION_THRESHOLD = 64

/**
 * Inbound connections that may be in their upgrade (pnet, Noise, Yamux) at the same time
 * (libp2p's `connectionManager.maxIncomingPendingConnections`; libp2p's own default is 10). A join burst
 * arrives together; each pending connection costs one socket and one Noise handshake and is dropped after
 * the upgrade timeout (DEFAULT_INBOUND_UPGRADE_TIMEOUT_MS), so 64 of them are cheap.
 *
 * @default 64
 */
export const DEFAULT_MAX_INCOMING_PENDING_CONNECTIONS = 64

/**
 * Time an inbound connection may take for its upgrade (pnet, Noise, Yamux), from the accept, ms (libp2p's
 * `connectionManager.inboundUpgradeTimeout`; libp2p's own default is 10 s). It must not be shorter than what a joiner
 * allows a bootstrap address (JOIN_BOOTSTRAP_DIAL_TIMEOUT_MS, 20 s): in the testbed's 24-node join storm the bootstrap
 * hosts, starved of CPU, accepted connections up to 15 s after the joiner's TCP connect and took 4–16 s more for the
 * handshake; with libp2p's 10 s the bootstrap host dropped handshakes its joiner was still waiting for, sometimes just
 * as the joiner's side had finished (its new connection closed at once). A slow or stalling dialer holds one of the
 * DEFAULT_MAX_INCOMING_PENDING_CONNECTIONS slots that much longer.
 *
 * @default 30000
 */
export const DEFAULT_INBOUND_UPGRADE_TIMEOUT_MS = 30_000

/**
 * Peers a host works towards when joining (`join.minPeers`): gossipsub's Dlo, the fewest peers with which
 * a topic mesh is at full strength. Below it, the joiner keeps dialing.
 *
 * @default 4
 */
export const JOIN_MIN_PEERS = 4

/** Delay before the joiner's first retry, ms; later retries double it (with jitter) @default 500 */
export const JOIN_RETRY_INITIAL_DELAY_MS = 500

/** Longest delay between two join retries, ms @default 30000 */
export const JOIN_RETRY_MAX_DELAY_MS = 30_000

/** Factor by which each join retry delay grows (before jitter) @default 2 */
export const JOIN_RETRY_BACKOFF_FACTOR = 2

/** Time limit of one join dial, ms @default 10000 */
export const JOIN_DIAL_TIMEOUT_MS = 10_000

/**
 * Time limit of one address of a bootstrap peer, TCP connect and upgrade (pnet, Noise, Yamux) together, ms. libp2p's
 * dial queue allows every address 6 s (`addressDialTimeout`) whatever the caller's signal: in the testbed's 24-node
 * join storm, processes starved to 3–8 % of a core took longer than that for the handshake, every bootstrap dial of a
 * node failed, and it stayed alone for 45 + 29 s of backed-off retries (#15). The joiner dials bootstrap addresses on
 * the transport itself, one at a time, with this limit; every other dial keeps libp2p's. The bootstrap host's own
 * limit for an inbound upgrade is DEFAULT_INBOUND_UPGRADE_TIMEOUT_MS (30 s; libp2p's 10 s dropped handshakes of 10–20 s).
 *
 * @default 20000
 */
export const JOIN_BOOTSTRAP_DIAL_TIMEOUT_MS = 20_000

/** Time limit of the joiner's DHT lookup for more peers, ms @default 10000 */
export const JOIN_LOOKUP_TIMEOUT_MS = 10_000

/** Peer-store tag the joiner puts on bootstrap peers it connected to (as `@libp2p/bootstrap` does) */
export const JOIN_BOOTSTRAP_TAG = 'bootstrap'

/** Value of the bootstrap tag (higher values are pruned last) @default 50 */
export const JOIN_BOOTSTRAP_TAG_VALUE = 50

/**
 * Address ranges exempt from gossipsub's IP-colocation penalty (P6) (profile): loopback, RFC 1918 and
 * RFC 4193 private and link-local ranges. P6 assumes addresses are scarce, which holds for public IPv4
 * addresses only: a peer reaching us over one of these ranges is on our machine or our own network, where
 * anyone can take as many addresses as they like, so the penalty stops no Sybil there and only breaks
 * devnets, in-process swarms and LAN clusters (12 or more hosts on 127.0.0.1 had empty meshes).
 *
 * @default ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', 'fc00::/7', 'fe80::/10']
 */
export const GOSSIPSUB_IP_COLOCATION_EXEMPT: readonly string[] = Object.freeze([
  '127.0.0.0/8',
  '::1/128',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  'fc00::/7',
  'fe80::/10'
])

/**
 * Peers from one (non-exempt) IP address before gossipsub's IP-colocation penalty applies (profile): the
 * gossipsub default. Each peer on an address with N > 10 peers scores weight · (N − 10)².
 *
 * @default 10
 */
export const GOSSIPSUB_IP_COLOCATION_THRESHOLD = 10

/**
 * Weight of gossipsub's IP-colocation penalty (profile): the gossipsub default. With the default score
 * thresholds (gossip −10, publish −50, graylist −80) peers on an address with 11 peers are left out of
 * meshes, with 12 they get no gossip, with 14 no publications, with 15 they are graylisted. A private swarm (swarm key) uses 0: its membership is the key.
 *
 * @default -5
 */
export const GOSSIPSUB_IP_COLOCATION_WEIGHT = -5
