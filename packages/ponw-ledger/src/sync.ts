/**
 * A sync requester's checks (specs/ponw-ledger §10, §6.3 "Sync"): whether a `SyncResponse` answers the request, and
 * when a session ends. Pure: the service's sync stream calls them (specs/ponw-ledger/vectors/sync.json replays them)
 */
import { MalformedMessageError } from '@neuroshard/interface'

/**
 * A page answers `SyncRequest{from, limit}` when it holds at most `limit` certificates, `next ≥ from + n` (a pruned
 * log's `next` may jump over its gaps, checkpoints.md), and `next = from` when it holds none
 */
export function checkSyncPage (from: number, limit: number, page: { certificates: readonly unknown[], next: bigint }): void {
  const n = page.certificates.length
  if (n > limit || page.next < BigInt(from + n) || (n === 0 && page.next !== BigInt(from))) {
    throw new MalformedMessageError('sync response does not match the request')
  }
}

/**
 * Whether a session ends after a page (`served` certificates the requester already knew, over the session, against
 * the final messages it knows in all): an honest log holds each message once, so a responder that served more known
 * certificates than exist repeats itself to keep the requester paging
 */
export function syncServedTooMuch (knownServed: number, finalCount: number): boolean {
  return knownServed > finalCount
}
