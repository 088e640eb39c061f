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

/** Maximum number of open connections of a host @default 300 */
export const DEFAULT_MAX_CONNECTIONS = 300
