/**
 * Typed errors of the weight transfer. Each carries a static `name` (tests and callers branch on
 * `err.name`). Errors that end a fetch carry what it had verified so far (`partial`, pass it back as
 * `resume`) and the replicas that misbehaved.
 */

import type { PartialSpanWeights, ReplicaFault } from './types.js'

/** Details every fetch-ending error carries */
export interface TransferErrorDetails {
  /** What was verified before the failure; pass it as `resume` to fetch only the rest */
  partial?: PartialSpanWeights
  /** Replicas dropped during this fetch, and why */
  faults?: ReplicaFault[]
  cause?: unknown
}

/** Base of the errors that end a fetch */
export class WeightsTransferError extends Error {
  static override name = 'WeightsTransferError'
  override name = 'WeightsTransferError'
  readonly partial?: PartialSpanWeights
  readonly faults: ReplicaFault[]

  constructor (message: string, details: TransferErrorDetails = {}) {
    super(message, details.cause != null ? { cause: details.cause } : undefined)
    this.partial = details.partial
    this.faults = details.faults ?? []
  }
}

/** Every replica answered NOT_FOUND: none holds content with the expected chunks root */
export class WeightsNotFoundError extends WeightsTransferError {
  static override name = 'WeightsNotFoundError'
  override name = 'WeightsNotFoundError'
}

/** Every replica was dropped (faults, time-outs, refusals) before all chunks were verified */
export class NoReplicaError extends WeightsTransferError {
  static override name = 'NoReplicaError'
  override name = 'NoReplicaError'
}

/**
 * All chunks matched the expected chunks root but the assembled tensors do not hash to the expected
 * weights hash: the record's two hashes disagree (no replica can be blamed)
 */
export class WeightsHashMismatchError extends WeightsTransferError {
  static override name = 'WeightsHashMismatchError'
  override name = 'WeightsHashMismatchError'
}

/** The caller's signal aborted the fetch (`cause` is the signal's reason) */
export class WeightsTransferAbortedError extends WeightsTransferError {
  static override name = 'WeightsTransferAbortedError'
  override name = 'WeightsTransferAbortedError'
}

/** A replica sent a chunk whose sha256 is not the manifest's (per-replica fault, see `ReplicaFault`) */
export class ChunkHashMismatchError extends Error {
  static override name = 'ChunkHashMismatchError'
  override name = 'ChunkHashMismatchError'
}

/**
 * A replica's manifest does not hash to the expected chunks root, or its tensor names, shapes, sizes
 * or chunk size are not the ones of the requested span (per-replica fault)
 */
export class ManifestMismatchError extends Error {
  static override name = 'ManifestMismatchError'
  override name = 'ManifestMismatchError'
}

/** A replica broke the protocol: a chunk it was not asked for, twice, of the wrong length, a missing manifest, too few chunks (per-replica fault) */
export class ProtocolViolationError extends Error {
  static override name = 'ProtocolViolationError'
  override name = 'ProtocolViolationError'
}

/** A replica answered NOT_FOUND (per-replica; `WeightsNotFoundError` when all did) */
export class ReplicaNotFoundError extends Error {
  static override name = 'ReplicaNotFoundError'
  override name = 'ReplicaNotFoundError'
}

/** No stream to a replica could be opened (dial or protocol negotiation failed, or took longer than the timeout) */
export class ReplicaUnreachableError extends Error {
  static override name = 'ReplicaUnreachableError'
  override name = 'ReplicaUnreachableError'
}

/** A replica answered BAD_REQUEST, BUSY (after the retries) or INTERNAL_ERROR (per-replica) */
export class RequestRejectedError extends Error {
  static override name = 'RequestRejectedError'
  override name = 'RequestRejectedError'
  /** The response status (`BAD_REQUEST`, `BUSY`, `INTERNAL_ERROR`, …) */
  readonly status: string

  constructor (status: string, message: string) {
    super(message)
    this.status = status
  }
}

/** Tensors given to a transfer function are not a valid span content (duplicate names, wrong lengths) */
export class InvalidSpanContentError extends Error {
  static override name = 'InvalidSpanContentError'
  override name = 'InvalidSpanContentError'
}
