/**
 * Constants of the weight transfer protocol (specs/layer-pool/transfer.md).
 */

/** Protocol id of the weight transfer (specs/layer-pool/transfer.md) */
export const WEIGHTS_PROTOCOL = '/neuroshard/layer-pool/weights/1.0.0'

/** Bytes of a chunk of the canonical stream (the last chunk is shorter) */
export const CHUNK_SIZE = 1024 * 1024

/** Domain tag that starts the chunks-root input */
export const CHUNKS_ROOT_DOMAIN = 'neuroshard/layer-pool/chunks/v1'

/** Bytes of a sha256 digest */
export const HASH_BYTES = 32

/** Longest model id a request may carry, in UTF-8 bytes */
export const MAX_MODEL_ID_BYTES = 256

/**
 * Largest request a server reads. A request is a few fixed fields plus up to
 * `maxChunksPerRequest` varint chunk indices (at most 5 bytes each).
 *
 * @default 65_536 (64 KiB)
 */
export const DEFAULT_MAX_REQUEST_SIZE = 64 * 1024

/**
 * Largest response message (a manifest, or a chunk: chunk size plus a few bytes of framing). A
 * manifest holds 34 bytes per chunk, so 4 MiB describes spans of up to ≈ 120 GB.
 *
 * @default 4_194_304 (4 MiB)
 */
export const DEFAULT_MAX_RESPONSE_SIZE = 4 * 1024 * 1024

/**
 * Most chunks one request may ask for (a server answers BAD_REQUEST beyond it)
 *
 * @default 64
 */
export const DEFAULT_MAX_CHUNKS_PER_REQUEST = 64

/**
 * Concurrent inbound transfer streams a server serves per peer (BUSY beyond it)
 *
 * @default 4
 */
export const DEFAULT_MAX_STREAMS_PER_PEER = 4

/**
 * Concurrent inbound transfer streams a server serves in total (BUSY beyond it)
 *
 * @default 32
 */
export const DEFAULT_MAX_STREAMS_TOTAL = 32

/**
 * Span contents whose chunk hashes a server keeps
 *
 * @default 8
 */
export const DEFAULT_DIGEST_CACHE_SIZE = 8

/**
 * Milliseconds a single message read or write may take, on either side
 *
 * @default 10_000 (10 s)
 */
export const DEFAULT_TRANSFER_MESSAGE_TIMEOUT_MS = 10_000

/**
 * Chunks a client asks one replica for per request
 *
 * @default 16
 */
export const DEFAULT_CHUNKS_PER_REQUEST = 16

/**
 * Concurrent streams a client keeps open to each replica (pipelining: one request is served while
 * the next is on its way)
 *
 * @default 2
 */
export const DEFAULT_STREAMS_PER_PEER = 2

/**
 * Times a client retries a replica that answered BUSY before giving up on it
 *
 * @default 5
 */
export const DEFAULT_BUSY_RETRIES = 5

/**
 * Milliseconds a client waits before retrying a replica that answered BUSY
 *
 * @default 250
 */
export const DEFAULT_BUSY_RETRY_DELAY_MS = 250
