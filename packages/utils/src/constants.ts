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
 * How long a single message may take to be read (from when the read starts waiting for it until its
 * last byte arrived) or written (until the transport accepted it), and how long `sendRequest` may take
 * to open a stream.
 *
 * @default 10_000 (10 s)
 */
export const DEFAULT_MESSAGE_TIMEOUT_MS = 10_000

/**
 * Unread bytes at which a message stream pauses the underlying stream, so the peer stops sending
 * (Yamux withholds window updates) until the reader catches up. The effective value is at least one
 * whole message (maximum size plus its prefix), so a pending read never waits on a paused stream.
 *
 * @default 1_048_576 (1 MiB)
 */
export const DEFAULT_READ_HIGH_WATER_MARK = 1024 * 1024
