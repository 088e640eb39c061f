/**
 * Defaults of the stream helpers. The framing they implement is specified in `specs/README.md`
 * ("Framing").
 */

/**
 * Largest message body (the bytes after the length prefix) a helper reads or writes.
 *
 * @default 4_194_304 (4 MiB)
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024

/**
 * How long a single message may take to be read (from the first byte of its length prefix to its
 * last byte) or written (until the transport accepted it), and how long opening a stream may take.
 *
 * @default 10_000 (10 s)
 */
export const DEFAULT_MESSAGE_TIMEOUT_MS = 10_000

/**
 * How many bytes a peer may have in flight beyond the message being read, as a multiple of the
 * maximum message size, before the stream is reset. A value of 2 lets a peer pipeline one more
 * message while the current one is read.
 *
 * @default 2
 */
export const DEFAULT_READ_BUFFER_MESSAGES = 2
