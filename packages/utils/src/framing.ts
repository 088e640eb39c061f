import { AbortError, InvalidParametersError, MalformedMessageError, MessageTooLargeError, StreamClosedError, TimeoutError } from '@neuroshard/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Number of bytes of the unsigned-varint encoding of `value` */
export function varintLength (value: number): number {
  let bytes = 1

  while (value >= 0x80) {
    value = Math.floor(value / 0x80)
    bytes++
  }

  return bytes
}

/** Throws `InvalidParametersError` unless `size` is a positive safe integer */
export function assertMessageSize (size: number, name = 'maxMessageSize'): void {
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new InvalidParametersError(`${name} must be a positive integer, got ${String(size)}`)
  }
}

/** Thrown (and caught by lpStream) while a length prefix is still incomplete */
const INCOMPLETE_VARINT = new RangeError('incomplete varint')

/**
 * A strict length-prefix decoder for `lpStream` from `@libp2p/utils`.
 *
 * `lpStream` calls it after each byte of the prefix arrives and reads another byte while it throws a
 * `RangeError`. Its own decoder accepts any prefix it can eventually decode, so a peer sending
 * `0xff` bytes forever would keep a reader busy until its timeout. This one rejects as soon as the
 * prefix cannot describe an allowed length:
 *
 * - more prefix bytes than `maxMessageSize` needs → `MessageTooLargeError` (the body is never read)
 * - a prefix that is not the minimal encoding (a trailing `0x00` byte) → `MalformedMessageError`,
 *   as the unsigned-varint spec requires
 *
 * A complete prefix whose value exceeds `maxMessageSize` is rejected by `lpStream` itself
 * (`InvalidDataLengthError`, mapped to `MessageTooLargeError` by {@link toStreamError}).
 */
export function strictLengthDecoder (maxMessageSize: number): (prefix: Uint8ArrayList) => number {
  const maxPrefixLength = varintLength(maxMessageSize)

  return (prefix) => {
    const length = prefix.byteLength
    const last = prefix.get(length - 1)

    if ((last & 0x80) !== 0) {
      if (length >= maxPrefixLength) {
        throw new MessageTooLargeError(`length prefix is longer than ${maxPrefixLength} bytes so the message would exceed ${maxMessageSize} bytes`)
      }

      // incomplete - lpStream reads one more byte and calls again. The one shared instance: lpStream
      // only checks `instanceof RangeError`, and capturing a stack trace twice per large message
      // showed up in transfer profiles
      throw INCOMPLETE_VARINT
    }

    if (length > 1 && last === 0) {
      throw new MalformedMessageError('length prefix is not a minimally encoded unsigned varint')
    }

    let value = 0

    for (let i = 0; i < length; i++) {
      value += (prefix.get(i) & 0x7f) * 2 ** (7 * i)
    }

    return value
  }
}

/** Names of errors (libp2p's and `@libp2p/utils`') that mean the stream ended or was reset */
const CLOSED_ERRORS = new Set([
  'UnexpectedEOFError',
  'StreamResetError',
  'StreamAbortedError',
  'StreamStateError',
  'StreamClosedError',
  'ConnectionClosedError',
  'ConnectionClosingError',
  'MuxerClosedError',
  'UnwrappedError'
])

/** Names of errors from `@libp2p/utils` that mean a peer sent more than the cap allows */
const TOO_LARGE_ERRORS = new Set([
  'InvalidDataLengthError',
  'InvalidDataLengthLengthError',
  'StreamBufferError'
])

/** Names of errors from `@libp2p/utils` that mean a length prefix was not a valid length */
const MALFORMED_ERRORS = new Set([
  'InvalidMessageLengthError'
])

/** Our typed errors pass through unchanged */
function isTyped (err: unknown): err is Error {
  return err instanceof TimeoutError ||
    err instanceof AbortError ||
    err instanceof MessageTooLargeError ||
    err instanceof MalformedMessageError ||
    err instanceof StreamClosedError
}

/**
 * Map whatever a stream operation threw to a NeuroShard typed error.
 *
 * - the operation's deadline passed → `TimeoutError`; its signal aborted otherwise → `AbortError`
 * - `@libp2p/utils` length errors and read-buffer overflow → `MessageTooLargeError`
 * - EOF, reset, abort or a closed connection → `StreamClosedError`
 * - anything else is returned unchanged (wrapped in an `Error` if it is not one)
 *
 * The original error is kept as `cause`.
 */
export function toStreamError (err: unknown, signal?: AbortSignal, what = 'stream operation'): Error {
  if (isTyped(err)) {
    return err
  }

  if (signal?.aborted === true) {
    const reason: unknown = signal.reason

    if (isTyped(reason)) {
      return reason
    }

    return new AbortError(`${what} was aborted`, { cause: reason })
  }

  // p-event rejects with the 'close' Event when a stream closes while waiting for 'drain'
  if (typeof Event !== 'undefined' && err instanceof Event) {
    const cause: unknown = (err as Event & { error?: unknown }).error
    return new StreamClosedError(`stream closed during ${what}`, { cause: cause ?? err })
  }

  const name = (err as { name?: unknown } | null)?.name

  if (typeof name === 'string') {
    if (TOO_LARGE_ERRORS.has(name)) {
      return new MessageTooLargeError((err as Error).message, { cause: err })
    }

    if (MALFORMED_ERRORS.has(name)) {
      return new MalformedMessageError((err as Error).message, { cause: err })
    }

    if (CLOSED_ERRORS.has(name)) {
      return new StreamClosedError(`stream closed during ${what}: ${(err as Error).message}`, { cause: err })
    }
  }

  return err instanceof Error ? err : new Error(String(err), { cause: err })
}
