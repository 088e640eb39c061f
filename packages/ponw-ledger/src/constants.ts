/** Sync protocol id — spec: specs/ponw-ledger/README.md#sync-protocol */
export const SYNC_PROTOCOL = '/neuroshard/ledger/sync/1.0.0'

/** Gossipsub topic carrying messages, votes and certificates — spec: specs/ponw-ledger/README.md#gossip */
export const LEDGER_TOPIC = '/neuroshard/ledger/1.0.0'

/** @default 'pubsub' — the libp2p service name of gossipsub */
export const DEFAULT_PUBSUB_SERVICE = 'pubsub'

/** @default 10_000 ms — every sync read and the whole sync page must arrive within this */
export const DEFAULT_SYNC_TIMEOUT_MS = 10_000

/** @default 120_000 ms — a sync responder closes a stream after this long without a request */
export const DEFAULT_SYNC_IDLE_TIMEOUT_MS = 120_000

/** @default 4 MiB — cap on one sync response (and on what a responder puts in one) */
export const DEFAULT_MAX_SYNC_RESPONSE_BYTES = 4 * 1024 * 1024

/** @default 1024 — certificates per sync page */
export const DEFAULT_SYNC_PAGE_SIZE = 1024

/** @default 80 KiB — cap on one gossip message */
export const DEFAULT_MAX_GOSSIP_BYTES = 80 * 1024

/** @default 10_000 — messages a validator keeps to retry when their turn comes */
export const DEFAULT_MAX_PENDING = 10_000

/** @default 8 — of those, at most this many per sender */
export const DEFAULT_MAX_PENDING_PER_SENDER = 8

/** @default 4 — concurrent inbound sync streams */
export const DEFAULT_MAX_INBOUND_SYNC_STREAMS = 4

/**
 * @default 5_000 ms — evidence is reported by one validator chosen from the evidence key; the validator
 * ranked r reports only after r × this, and only if no report for that offender was seen meanwhile
 */
export const DEFAULT_REPORT_BACKOFF_MS = 5_000

/** @default 10_000 — offenders remembered as already reported (oldest forgotten first) */
export const DEFAULT_MAX_REPORTED = 10_000

/** @default 8 — epochs a validator keeps looking for its turn to report a piece of evidence */
export const REPORT_EPOCHS = 8

/** Data-possession challenge protocol id — spec: specs/ponw-ledger/README.md#data-challenge-protocol */
export const DATA_CHALLENGE_PROTOCOL = '/neuroshard/ledger/data-challenge/1.0.0'

/** @default 4 MiB — cap on one data-challenge answer (16 leaves of up to 64 KiB each fit) */
export const DEFAULT_MAX_DATA_ANSWER_BYTES = 4 * 1024 * 1024

/** Proof-of-Learning weights protocol id — spec: specs/ponw-ledger/README.md#pol-weights-protocol */
export const POL_WEIGHTS_PROTOCOL = '/neuroshard/ledger/pol-weights/1.0.0'

/** @default 256 MiB — cap on the weights of one checkpoint a validator fetches */
export const DEFAULT_MAX_WEIGHTS_BYTES = 256 * 1024 * 1024

/** Checkpoint protocol id — spec: specs/ponw-ledger/checkpoints.md#checkpoint-protocol */
export const CHECKPOINT_PROTOCOL = '/neuroshard/ledger/checkpoint/1.0.0'

/** @default 10_000 — final messages applied since the last certified checkpoint before the designated validator proposes the next */
export const DEFAULT_CHECKPOINT_INTERVAL = 10_000

/** @default 256 MiB — cap on a snapshot a joining node downloads */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024

/** 2,048 — accounts in one checkpoint vote's frontier (what fits a gossip message) */
export const MAX_CHECKPOINT_FRONTIER = 2_048
