/**
 * @packageDocumentation
 *
 * Chooses the chain Driver → Workers → Validator for `@neuroshard/pipeline` from layer-pool records
 * (specs/swarm-router/README.md): Petals' least-cost path over slot boundaries (RTT + span compute + load,
 * KV headroom as a filter), a standby per hop, exponential-backoff bans of failing peers, and SWARM's
 * capacity-weighted dispatch of training micro-batches over replicas. The routing core (`core.ts`) is pure.
 *
 * @example
 * ```ts
 * const host = await createNeuroShardHost({
 *   services: { layerPool: layerPool({ ... }), swarmRouter: swarmRouter(), pipeline: pipeline({ stages }) }
 * })
 * ```
 */
import { DefaultSwarmRouter } from './swarm-router.js'
import type { SwarmRouter, SwarmRouterComponents, SwarmRouterInit } from './swarm-router.js'

export * from './constants.js'
export * from './core.js'
export { NoRouteError } from './errors.js'
export type { Pinger, RecordSource, SwarmRouter, SwarmRouterComponents, SwarmRouterInit } from './swarm-router.js'

/** The router as a libp2p service; the pipeline finds it under the name `swarmRouter` */
export function swarmRouter (init: SwarmRouterInit = {}): (components: SwarmRouterComponents) => SwarmRouter {
  return (components) => new DefaultSwarmRouter(components, init)
}
