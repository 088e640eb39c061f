/**
 * Defaults of the `neuroshard` reference node.
 */

/** Number of hosts a devnet starts @default 3 */
export const DEFAULT_DEVNET_NODES = 3

/** Largest devnet the CLI starts on one machine @default 32 */
export const MAX_DEVNET_NODES = 32

/**
 * Gossipsub topic the devnet hosts publish heartbeats on. Devnet-only, not part of any protocol spec.
 *
 * @default '/neuroshard/devnet/heartbeat/1.0.0'
 */
export const DEVNET_HEARTBEAT_TOPIC = '/neuroshard/devnet/heartbeat/1.0.0'

/** How often each devnet host publishes a heartbeat, ms @default 1000 */
export const DEFAULT_DEVNET_HEARTBEAT_INTERVAL_MS = 1_000

/**
 * How often each devnet host runs a DHT closest-peers query for its own id while the devnet has not
 * converged, ms. Afterwards the interval grows tenfold.
 *
 * @default 1000
 */
export const DEFAULT_DEVNET_DISCOVERY_INTERVAL_MS = 1_000

/** Time limit of one DHT discovery query, ms @default 5000 */
export const DEVNET_DISCOVERY_TIMEOUT_MS = 5_000

/** Largest heartbeat message a devnet host decodes, bytes @default 1024 */
export const DEVNET_MAX_HEARTBEAT_SIZE = 1024
