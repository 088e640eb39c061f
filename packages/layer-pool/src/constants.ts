/**
 * Defaults and protocol constants of the layer pool (specs/layer-pool/README.md). Values marked
 * "protocol" must match across clients; the others are local policy.
 */

/** Version of the layer-pool protocols (records topic and weight transfer) */
export const LAYER_POOL_PROTOCOL_VERSION = '1.0.0'

/** Gossipsub topic prefix of layer records (protocol): the topic is `<prefix>/<modelId>` (1: the protocol's major) */
export const LAYER_POOL_TOPIC_PREFIX = '/neuroshard/layer-pool/1'

/** DHT record namespace (protocol): keys are `/neuroshard/layer-pool/1/<modelId>/<version>/<peerId>` */
export const LAYER_POOL_DHT_NAMESPACE = 'layer-pool'

/** Signed-envelope domain of layer records (protocol) */
export const LAYER_RECORD_DOMAIN = 'neuroshard-layer-pool'

/** Signed-envelope payload type of layer records (protocol): the bytes 0x03 0x50 */
export const LAYER_RECORD_PAYLOAD_TYPE = Uint8Array.of(0x03, 0x50)

/** Largest signed record (envelope bytes) a node accepts (protocol) @default 8 KiB */
export const MAX_RECORD_SIZE = 8 * 1024

/** Most spans one record may list (protocol) @default 8 */
export const MAX_SPANS_PER_RECORD = 8

/** Most addresses one record may list (protocol) @default 16 */
export const MAX_ADDRESSES_PER_RECORD = 16

/** Longest lifetime a record may claim, ms (protocol) @default 5 minutes */
export const MAX_RECORD_TTL_MS = 5 * 60_000

/** How far in the future `issued_at_ms` may be before a record is refused, ms (protocol) @default 30 s */
export const MAX_CLOCK_SKEW_MS = 30_000

/** Smallest number of live replicas every slot should have @default 2 */
export const MIN_REPLICAS = 2

/** How often a node re-publishes its record on the topic, ms @default 2000 */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 2_000

/** Lifetime of a published record, ms: a holder that misses this many heartbeats is gone @default 10 s */
export const DEFAULT_RECORD_TTL_MS = 10_000

/** How often a node re-puts its record in the DHT, ms @default 30 s */
export const DEFAULT_DHT_REFRESH_INTERVAL_MS = 30_000

/**
 * How long a joiner waits after announcing a `loading` claim before it re-checks the claims of peers that
 * announced at the same time, ms (about two gossip heartbeats) @default 1500
 */
export const DEFAULT_SETTLE_MS = 1_500

/** Random extra wait (0..jitter) before claiming, so concurrent joiners do not decide in lockstep, ms @default 500 */
export const DEFAULT_CLAIM_JITTER_MS = 500

/** How long another peer's `loading` claim counts as a pending replica before it is ignored, ms @default 60 s */
export const DEFAULT_LOADING_GRACE_MS = 60_000

/** How often a node checks whether moving its span would raise the swarm's throughput, ms (Petals: 60 s) @default 60 s */
export const DEFAULT_REBALANCE_INTERVAL_MS = 60_000

/**
 * Move when the swarm's bottleneck throughput is below this fraction of what the move would give
 * (Petals' `balance_quality`) @default 0.75
 */
export const DEFAULT_BALANCE_QUALITY = 0.75

/** Bytes of memory per parameter of a span that only serves (fp32 weights) @default 4 */
export const SERVING_BYTES_PER_PARAMETER = 4

/** Bytes of memory per parameter of a span that trains (weights, gradient, AdamW m and v) @default 16 */
export const TRAINING_BYTES_PER_PARAMETER = 16

/** Most records a node keeps in its table (one per peer) @default 4096 */
export const DEFAULT_MAX_RECORDS = 4096

/** How long a dial to a peer whose connection closed may take before the peer is taken for dead, ms @default 3000 */
export const DEFAULT_LIVENESS_PROBE_TIMEOUT_MS = 3_000

/**
 * How long a node loading a slot that no record it holds lists may ask the DHT for the holders' records
 * before it takes the genesis, ms (spec §6)
 */
export const LOAD_DHT_SYNC_TIMEOUT_MS = 10_000

/**
 * How long a node about to fetch a slot may take to connect to a replica it is not connected to, at the
 * addresses of the replica's record, ms (handshakes took up to 11 s on loaded test machines)
 */
export const ANNOUNCED_DIAL_TIMEOUT_MS = 30_000

/**
 * Share of its memory a joining node leaves free, so that nodes have room to take over the slots of holders
 * that leave without moving what they serve @default 0.25
 */
export const DEFAULT_RESERVE_FRACTION = 0.25
