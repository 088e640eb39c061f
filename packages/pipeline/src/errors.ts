/**
 * Typed errors of the pipeline. Each has a static `name`; a node that refuses a request answers with that
 * name in `Response.error`, and the Driver turns it back into the same class (see `errorFromResponse`).
 */

/** The route in a request is not a valid chain for this node (wrong hop, gap, unknown span) */
export class InvalidRouteError extends Error {
  static override name = 'InvalidRouteError'
  override name = 'InvalidRouteError'
}

/** An activation, gradient or target frame is malformed or has the wrong dtype/shape */
export class InvalidActivationError extends Error {
  static override name = 'InvalidActivationError'
  override name = 'InvalidActivationError'
}

/** The request names a session this node does not hold (expired, evicted, or never opened) */
export class UnknownSessionError extends Error {
  static override name = 'UnknownSessionError'
  override name = 'UnknownSessionError'
}

/** The session's cache holds a different number of tokens than the request says */
export class SessionPositionError extends Error {
  static override name = 'SessionPositionError'
  override name = 'SessionPositionError'
}

/** No room for this session's KV cache (memory cap or session cap reached; nothing expired to evict) */
export class KvCacheFullError extends Error {
  static override name = 'KvCacheFullError'
  override name = 'KvCacheFullError'
}

/** A hop of the route could not be reached or failed without answering */
export class HopFailedError extends Error {
  static override name = 'HopFailedError'
  override name = 'HopFailedError'
  /** Index in the route of the hop that failed */
  readonly hop: number
  constructor (message: string, hop: number) {
    super(message)
    this.hop = hop
  }
}

/** No chain covers the model with the peers that are live and not banned */
export class NoRouteError extends Error {
  static override name = 'NoRouteError'
  override name = 'NoRouteError'
}

/** The request is well-formed but breaks a rule of the protocol (wrong kind here, step out of order, caps) */
export class PipelineRequestError extends Error {
  static override name = 'PipelineRequestError'
  override name = 'PipelineRequestError'
}

/** A remote node refused or failed with an error this node does not know; `remoteName` is its name */
export class RemotePipelineError extends Error {
  static override name = 'RemotePipelineError'
  override name = 'RemotePipelineError'
  readonly remoteName: string
  constructor (message: string, remoteName: string) {
    super(message)
    this.remoteName = remoteName
  }
}

/** A speculative draft is malformed, or an INFER names a draft this Validator does not hold (spec §4.5) */
export class InvalidDraftError extends Error {
  static override name = 'InvalidDraftError'
  override name = 'InvalidDraftError'
}

/**
 * (spec §4.4 rule 7, 1.8.0) The Validator that owned the tied matrix is no longer on the route or no longer owns it: the
 * matrix's steps since the Driver's last `syncTied()` are lost with it
 */
export class TiedOwnerLostError extends Error {
  static override name = 'TiedOwnerLostError'
  override name = 'TiedOwnerLostError'
}
