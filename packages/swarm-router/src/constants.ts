/** Defaults of the swarm router (specs/swarm-router/README.md). All local policy: routing is not a wire protocol. */

/** RTT assumed for a peer not measured yet, ms @default 50 */
export const DEFAULT_UNKNOWN_RTT_MS = 50

/** Throughput (tokens/s) assumed for a span whose record carries none @default 100 */
export const DEFAULT_UNMEASURED_THROUGHPUT = 100

/** Tokens per request the compute cost is counted for (1: a decode step) @default 1 */
export const DEFAULT_TOKENS_PER_REQUEST = 1

/** Cost added per session this router has routed to a peer and not released, ms @default 5 */
export const DEFAULT_LOAD_PENALTY_MS = 5

/**
 * Cost added to a hop whose KV-cache headroom the session would fill, ms; `kvTokens / headroom` of it in general
 * (a hop with 10× the room the session needs costs 2 ms more) @default 20
 */
export const DEFAULT_KV_PENALTY_MS = 20

/** First ban of a failing peer, ms; each further failure doubles it @default 1_000 */
export const DEFAULT_BAN_BASE_MS = 1_000

/** Longest ban, ms @default 300_000 */
export const DEFAULT_BAN_MAX_MS = 300_000

/** A peer's failure count is forgotten after it has been good for this long, ms @default 600_000 */
export const DEFAULT_BAN_FORGET_MS = 600_000

/** How often the chain's hops and their standbys are pinged, ms @default 5_000 */
export const DEFAULT_PROBE_INTERVAL_MS = 5_000

/** Peers pinged per probe round at most @default 16 */
export const DEFAULT_MAX_PROBES_PER_ROUND = 16

/** Timeout of one ping, ms @default 2_000 */
export const DEFAULT_PING_TIMEOUT_MS = 2_000

/** Weight of a new RTT sample in the moving average @default 0.3 */
export const DEFAULT_RTT_ALPHA = 0.3

/** Candidates the shortest-path search considers at most (records beyond are ignored) @default 4096 */
export const DEFAULT_MAX_CANDIDATES = 4096
