/**
 * @packageDocumentation
 *
 * `createNeuroShardHost()`: the libp2p 3 host profile every NeuroShard node runs (specs/host/README.md).
 */

export * from './constants.js'
export * from './errors.js'
export { createNeuroShardHost } from './host.js'
export type { NeuroShardHost, NeuroShardHostOptions, NeuroShardServices, NeuroShardTransports, DhtAddressFilter, NeuroShardDHT, NeuroShardPubSub, DhtRoutingTableEvents, GossipsubScoringOptions } from './host.js'
export { joiner, joinRetryDelay } from './join.js'
export type { Joiner, JoinOptions, JoinInit, JoinEvents, JoinComponents } from './join.js'
export { IpRangeSet } from './ip-ranges.js'
export { loadOrCreateIdentity } from './identity.js'
export type { Identity } from './identity.js'
export { generateSwarmKey, parseSwarmKey } from './swarm-key.js'
export {
  neuroShardRecordKey,
  parseNeuroShardRecordKey,
  encodeNeuroShardRecord,
  decodeNeuroShardRecord,
  createNeuroShardRecordValidator,
  selectNeuroShardRecord
} from './records.js'
export type { NeuroShardRecord, NeuroShardRecordKey, NeuroShardRecordValidator } from './records.js'
export { putNeuroShardRecord, getNeuroShardRecord } from './dht-records.js'
export type { PutRecordResult } from './dht-records.js'
