/**
 * Defaults and protocol constants of the pipeline (specs/pipeline/README.md). Values marked "protocol"
 * must match across implementations; the others are local policy.
 */

/** Protocol id of the pipeline (protocol, specs/pipeline/README.md) */
export const PIPELINE_PROTOCOL = '/neuroshard/pipeline/1.0.0'

/**
 * Protocol id of session streams (protocol, specs/pipeline/README.md §2): one long-lived stream per
 * (inference session, next hop) carrying a sequence of INFER / CLOSE requests and their responses
 */
export const PIPELINE_SESSION_PROTOCOL = '/neuroshard/pipeline/session/1.0.0'

/**
 * Protocol id of tokens streams (protocol, specs/pipeline/README.md §2): the Driver opens one to the Validator per
 * inference session; the Validator writes its answers to `direct` INFER requests there, straight to the Driver
 */
export const PIPELINE_TOKENS_PROTOCOL = '/neuroshard/pipeline/tokens/1.0.0'

/** Protocol id of remote generation, client → Driver (protocol, specs/pipeline/README.md §8) */
export const PIPELINE_GENERATE_PROTOCOL = '/neuroshard/pipeline/generate/1.0.0'

/** Largest GenerateRequest a Driver reads, bytes (protocol) @default 256 KiB */
export const MAX_GENERATE_REQUEST_SIZE = 256 * 1024

/** Stop strings / stop tokens a GenerateRequest may carry (protocol) @default 16 */
export const MAX_STOP_ENTRIES = 16

/** Concurrent remote generations a Driver serves @default 16 */
export const DEFAULT_MAX_REMOTE_GENERATIONS = 16

/** Length of a session / training-run id in bytes (protocol) */
export const SESSION_ID_BYTES = 16

/** Most hops a route may list, Driver and Validator included (protocol) @default 64 */
export const MAX_ROUTE_HOPS = 64

/** Elements per int8 block when activations are compressed (protocol) @default 64 */
export const INT8_BLOCK_SIZE = 64

/** zlib level of `deflate` frames (1: fastest; int8 activations gain little from higher levels) */
export const DEFLATE_LEVEL = 1

/** A Driver deflates a request's frames only when its first frame is at least this big (not single decode tokens) */
export const DEFLATE_MIN_BYTES = 1024

/**
 * Largest request or response body, bytes. A `[batch, seq, d]` float32 activation must fit, and for tied
 * embeddings the `vocab × d` gradient (TAKE_TIED / SET_TIED) too. @default 64 MiB
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024

/** Milliseconds each read or write of one message may take @default 30_000 */
export const DEFAULT_MESSAGE_TIMEOUT_MS = 30_000

/** Milliseconds a node waits for the rest of the route to answer a forwarded request @default 60_000 */
export const DEFAULT_HOP_TIMEOUT_MS = 60_000

/** Largest batch a node accepts in one request @default 64 */
export const DEFAULT_MAX_BATCH = 64

/** Inference sessions a node keeps at once (per node, all stages) @default 256 */
export const DEFAULT_MAX_SESSIONS = 256

/** Bytes of KV cache a node keeps for all sessions together @default 512 MiB */
export const DEFAULT_MAX_KV_BYTES = 512 * 1024 * 1024

/** A session unused this long (ms) is freed @default 300_000 */
export const DEFAULT_SESSION_TTL_MS = 5 * 60_000

/** How often expired sessions are swept, ms @default 10_000 */
export const DEFAULT_SWEEP_INTERVAL_MS = 10_000

/** Micro-batches a node remembers per training step (exactly-once accumulation; also the cap) @default 256 */
export const DEFAULT_MAX_MICRO_BATCHES_PER_STEP = 256

/** Concurrent inbound pipeline streams @default 64 */
export const DEFAULT_MAX_INBOUND_STREAMS = 64

/** Concurrent outbound pipeline streams @default 64 */
export const DEFAULT_MAX_OUTBOUND_STREAMS = 64

/** Tokens `generate()` produces unless told otherwise @default 32 */
export const DEFAULT_MAX_NEW_TOKENS = 32

/** How many times `generate()` / `trainStep()` re-route after a hop failure before giving up @default 8 */
export const DEFAULT_MAX_RETRIES = 8

/** Stages a node builds for parts of its spans (sub-span inference hops) @default 4 */
export const DEFAULT_MAX_SUB_STAGES = 4

/** Idle session streams kept open to standbys (warm standby links, spec §4.2) @default 16 */
export const DEFAULT_MAX_SPARE_LINKS = 16
