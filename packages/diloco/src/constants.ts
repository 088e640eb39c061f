/**
 * Defaults and protocol ids of `@neuroshard/diloco`. Wire formats: specs/diloco/README.md.
 */

/** Gossipsub topic prefix; the topic of a replica group is `${DILOCO_TOPIC_PREFIX}/<group>` (specs/diloco §3) */
export const DILOCO_TOPIC_PREFIX = '/neuroshard/diloco/1'

/** Direct-stream protocol for payload ranges, commits and state downloads (specs/diloco §4) */
export const DILOCO_FETCH_PROTOCOL = '/neuroshard/diloco/fetch/1.0.0'

/** Signature domains (specs/diloco §2) */
export const ANNOUNCE_DOMAIN = 'neuroshard/diloco/announce/v1'
export const COMMIT_DOMAIN = 'neuroshard/diloco/commit/v1'

/** Outer Nesterov learning rate (DiLoCo, Douillard et al. 2023) */
export const DEFAULT_OUTER_LR = 0.7
/** Outer Nesterov momentum */
export const DEFAULT_OUTER_MOMENTUM = 0.9

/** int8 block size (elements per float32 scale) */
export const DEFAULT_INT8_BLOCK_SIZE = 64
/** Sparse codec: elements per chunk */
export const DEFAULT_SPARSE_CHUNK = 4096
/** Sparse codec: values kept per chunk (1.56 % density at the default chunk) */
export const DEFAULT_SPARSE_TOP_K = 64
/** Sparse codec: bits per kept value */
export const DEFAULT_SPARSE_BITS = 2
/** Error-feedback decay β (e ← β·e + Δ); 1 keeps every untransmitted part */
export const DEFAULT_ERROR_FEEDBACK_DECAY = 1

/** Gossipsub payload chunk size (well under the host's 4 MiB − 64 KiB message data limit) */
export const DEFAULT_GOSSIP_CHUNK_BYTES = 256 * 1024
/** Payloads above this size are not pushed over gossipsub; receivers fetch them over a direct stream */
export const DEFAULT_DIRECT_THRESHOLD_BYTES = 1024 * 1024
/** Pacing of gossipsub publishes (gossipsub has no backpressure): bytes per second */
export const DEFAULT_GOSSIP_BYTES_PER_SECOND = 16 * 1024 * 1024
/** Range size of one direct-stream fetch request */
export const DEFAULT_FETCH_RANGE_BYTES = 1024 * 1024
/** Direct-stream fetches one node runs at once */
export const DEFAULT_FETCH_CONCURRENCY = 2
/** Per-request timeout of the direct stream */
export const DEFAULT_FETCH_TIMEOUT_MS = 20_000

/** Largest payload this node accepts (bytes); the default is also capped at the span's fp32 size */
export const DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024 * 1024
/** Most pseudo-gradients collected in one round */
export const DEFAULT_MAX_CONTRIBUTIONS = 64
/** Largest announce / commit message (bytes) */
export const MAX_ANNOUNCE_BYTES = 16 * 1024
export const MAX_COMMIT_BYTES = 1024 * 1024
/** Most senders in one commit */
export const MAX_COMMIT_SENDERS = 256
/** Most data-shard ids in one announce */
export const MAX_DATA_SHARDS = 64

/** Round deadline: never shorter than this after the first pseudo-gradient of a round (ms) */
export const DEFAULT_MIN_DEADLINE_MS = 2_000
/** Round deadline: never longer than this (ms) */
export const DEFAULT_MAX_DEADLINE_MS = 120_000
/** Adaptive deadline: this many times the smoothed arrival spread of earlier rounds */
export const DEFAULT_DEADLINE_FACTOR = 3
/** Quorum: fraction of the group that must have contributed before a deadline commit */
export const DEFAULT_QUORUM = 0.5
/**
 * A round that has waited this long since its first pseudo-gradient (or a commit it refused) without a commit is
 * stalled (specs/diloco 1.3.0 §6 step 5a): the members that did not announce it are silent for the round (ms)
 */
export const DEFAULT_STALL_MS = 180_000
/** Delay between the commit turns of successive leader candidates (ms) */
export const DEFAULT_COMMIT_STAGGER_MS = 1_500

/** Round records kept in memory */
export const DEFAULT_RECORD_HISTORY = 256
/** Future-round announces buffered per round (from peers that are ahead) */
export const MAX_BUFFERED_FUTURE = 64

/** Accept rule of aggregators without a selection: an input farther than this × the median distance is rejected */
export const DEFAULT_REJECT_FACTOR = 2.5

/**
 * Default aggregator: nearest-neighbour mixing + trimmed mean, f = ⌊(n − 1)/3⌋. Chosen by the Byzantine
 * experiment in the README (best worst case over sign flip, ALIE, IPM and noise: 1.002× the clean mean run)
 */
export const DEFAULT_AGGREGATOR = 'nnm-trimmed-mean'
