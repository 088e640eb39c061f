/**
 * @packageDocumentation
 *
 * Who holds which slice of NeuroLLM (specs/layer-pool/README.md): signed, expiring layer records in the
 * Kad-DHT and on a gossipsub topic; memory-based span assignment that keeps every slot at `MIN_REPLICAS`
 * live replicas without a coordinator; hot swap when holders leave; weight transfer between peers.
 *
 * @example
 * ```ts
 * import { createNeuroShardHost } from '@neuroshard/host'
 * import { layerPool, layerPoolRecordValidator } from '@neuroshard/layer-pool'
 *
 * const host = await createNeuroShardHost({
 *   recordValidators: { 'layer-pool': layerPoolRecordValidator() },
 *   services: { layerPool: layerPool({ modelId: 'devnet', memoryBytes: 64 * 1024 * 1024 }) }
 * })
 * ```
 */

import { DefaultLayerPool } from './layer-pool.js'
import type { LayerPool, LayerPoolComponents, LayerPoolInit } from './layer-pool.js'

export * from './constants.js'
export * from './errors.js'
export * from './records.js'
export * from './slots.js'
export * from './assignment.js'
export * from './target.js'
export * from './weight-store.js'
export * from './architecture.js'
export * from './transfer/index.js'
export { membershipCid } from './layer-pool.js'
export type { LayerPool, LayerPoolComponents, LayerPoolEvents, LayerPoolInit, LayerPoolPubSub, OwnSpan, PoolEntry, SlotFetcher, SlotFetchRequest } from './layer-pool.js'

/**
 * The layer pool as a libp2p service. Give it a name in the host's services (`layerPool`) and register
 * `layerPoolRecordValidator()` for the `layer-pool` DHT namespace.
 */
export function layerPool (init: LayerPoolInit = {}): (components: LayerPoolComponents) => LayerPool {
  return (components) => new DefaultLayerPool(components, init)
}
