/**
 * Typed errors shared by every NeuroShard package. Following js-libp2p, each error class carries a
 * static `name` so callers (and tests) can branch on `err.name` across package boundaries.
 */

/** A caller passed an argument that can never be valid */
export class InvalidParametersError extends Error {
  static override name = 'InvalidParametersError'
  override name = 'InvalidParametersError'
}

/** An operation did not finish inside its named time limit */
export class TimeoutError extends Error {
  static override name = 'TimeoutError'
  override name = 'TimeoutError'
}

/** An operation was aborted through its AbortSignal */
export class AbortError extends Error {
  static override name = 'AbortError'
  override name = 'AbortError'
}

/** A remote sent (or a caller tried to send) a message larger than the configured cap */
export class MessageTooLargeError extends Error {
  static override name = 'MessageTooLargeError'
  override name = 'MessageTooLargeError'
}

/** Bytes that do not decode as the expected message */
export class MalformedMessageError extends Error {
  static override name = 'MalformedMessageError'
  override name = 'MalformedMessageError'
}

/** The stream closed (or reset) before a complete message arrived */
export class StreamClosedError extends Error {
  static override name = 'StreamClosedError'
  override name = 'StreamClosedError'
}

/** A remote spoke a protocol version this node does not implement */
export class UnsupportedProtocolVersionError extends Error {
  static override name = 'UnsupportedProtocolVersionError'
  override name = 'UnsupportedProtocolVersionError'
}

/** A component was used before `start()` or after `stop()` */
export class NotStartedError extends Error {
  static override name = 'NotStartedError'
  override name = 'NotStartedError'
}
