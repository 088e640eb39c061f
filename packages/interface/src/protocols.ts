/**
 * Protocol ids of the NeuroShard network, `/neuroshard/<proto>/<semver>`.
 * See specs/README.md for the conventions and each spec for its protocol.
 */

/** Kad-DHT protocol id of the NeuroShard network (specs/host/README.md) */
export const KAD_DHT_PROTOCOL = '/neuroshard/kad/1.0.0'

/** Protocol prefix every NeuroShard protocol id starts with */
export const PROTOCOL_PREFIX = '/neuroshard'
