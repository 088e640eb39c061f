/**
 * Which weights a node takes for a slot (spec §6 loading, §6.1 catching up): the votes of the records on a slot's
 * weights, the target among them, where a slot's weights come from, whether a served slot is behind its target,
 * and which behind slot is fetched again. Pure functions of a node's view, so that every node (and every client
 * in another language, specs/layer-pool/vectors/targets.json) decides the same
 */
import { slotWeightsStep } from './records.js'
import type { LayerSpan, SpanStateName } from './records.js'

const VOTING_STATES = new Set<SpanStateName>(['serving', 'training'])

/** The weights hash (and chunks root) of a slot listed but not loaded yet: it names no weights (spec §2.3, §6) */
export const PLACEHOLDER_HASH = '0'.repeat(64)

/** The replicas that list one (weights hash, chunks root) for a slot (spec §6) */
export interface SlotVote<P> {
  weightsHash: string
  chunksRoot: string
  /** the largest `weights_step` of the slot among its voters (a slot's own step when listed, else its span's) */
  step: number
  /** the voters that can serve it: live, and not known to be unreachable */
  holders: P[]
  votes: number
}

export interface VotingRecord<P> {
  peerId: P
  spans: readonly LayerSpan[]
}

/**
 * The votes on a slot's weights, by `weights hash/chunks root` (spec §6): every record this node counts (§2.2)
 * lists a vote for each slot of its `serving`/`training` spans, an all-zero weights hash none; a holder known to
 * be unreachable (§4, `serves: false`) votes but serves nothing. Records that stopped counting less than
 * `loading_grace_ms` ago (`lapsed`) vote, serving nothing, only when no counted record lists the slot
 */
export function slotVotes<P> (counted: Iterable<{ record: VotingRecord<P>, serves: boolean }>, lapsed: Iterable<VotingRecord<P>>, slot: number): Map<string, SlotVote<P>> {
  const votes = new Map<string, SlotVote<P>>()
  const vote = (record: VotingRecord<P>, serves: boolean): void => {
    for (const s of record.spans) {
      if (!VOTING_STATES.has(s.state) || slot < s.start || slot >= s.end) continue
      const info = s.slots[slot - s.start]
      // an all-zero hash is a placeholder (a slot still loading), never weights anyone can serve
      if (info == null || info.weightsHash === PLACEHOLDER_HASH) continue
      const id = `${info.weightsHash}/${info.chunksRoot}`
      const step = slotWeightsStep(s, slot)
      const v = votes.get(id) ?? { weightsHash: info.weightsHash, chunksRoot: info.chunksRoot, step, holders: [], votes: 0 }
      v.step = Math.max(v.step, step)
      v.votes++
      if (serves) v.holders.push(record.peerId)
      votes.set(id, v)
    }
  }
  for (const { record, serves } of counted) vote(record, serves)
  // records that lapsed a moment ago vote only when no counted record lists the slot: never against live holders,
  // whose weights moved on (the lapsed records of nodes that left before a round outvoted its trained holders)
  if (votes.size === 0) for (const record of lapsed) vote(record, false)
  return votes
}

/** The target among a slot's votes: most votes, then the larger step, then the smaller (weights hash, chunks root) as lowercase hex (spec §6) */
export function bestVote<P> (votes: Map<string, SlotVote<P>>): SlotVote<P> | undefined {
  let best: SlotVote<P> | undefined
  for (const v of votes.values()) {
    if (best == null || v.votes > best.votes || (v.votes === best.votes && (v.step > best.step ||
      (v.step === best.step && (v.weightsHash < best.weightsHash || (v.weightsHash === best.weightsHash && v.chunksRoot < best.chunksRoot)))))) best = v
  }
  return best
}

/**
 * Where a slot's weights come from (spec §6): the genesis when no record lists the slot or the target is the
 * slot's genesis hash; else a transfer from the live holders of the target that never served bad data; else
 * (the target has no such holder) nothing yet: the node waits, never taking the genesis instead
 */
export type SlotSource<P> =
  | { source: 'genesis', target?: SlotVote<P> }
  | { source: 'transfer', target: SlotVote<P>, replicas: P[] }
  | { source: 'wait', target: SlotVote<P>, reason: 'no-live-holder' | 'every-holder-misbehaved' }

export function slotSource<P> (target: SlotVote<P> | undefined, genesisHash: string, avoided: (peer: P) => boolean): SlotSource<P> {
  if (target == null) return { source: 'genesis' }
  if (target.weightsHash === genesisHash) return { source: 'genesis', target }
  if (target.holders.length === 0) return { source: 'wait', target, reason: 'no-live-holder' }
  const replicas = target.holders.filter(p => !avoided(p))
  if (replicas.length === 0) return { source: 'wait', target, reason: 'every-holder-misbehaved' }
  return { source: 'transfer', target, replicas }
}

/**
 * The slots a node took from the genesis while a span loaded that it must fetch before the span serves (spec §6):
 * those whose target, on the records of the moment every slot is loaded, is no longer the genesis
 */
export function genesisSlotsToFetch (fromGenesis: readonly number[], targetOf: (slot: number) => { weightsHash: string } | undefined, genesisHashOf: (slot: number) => string): number[] {
  return fromGenesis.filter(slot => {
    const target = targetOf(slot)
    return target != null && target.weightsHash !== genesisHashOf(slot)
  })
}

/** A node's own weights of a slot: what it lists for it */
export interface OwnSlotWeights { weightsHash: string, chunksRoot: string, step: number }

/**
 * Whether a served slot is behind its target (spec §6.1): the target has a live holder, differs from the node's
 * own weights hash, has a larger step than the node's own weights and more votes than the node's own (weights
 * hash, chunks root), the node itself counted — so a tie keeps the node's weights. `votes` are the other
 * replicas' (the node's own record left out)
 */
export function isBehind<P> (votes: Map<string, SlotVote<P>>, own: OwnSlotWeights): boolean {
  const target = bestVote(votes)
  if (target == null || target.holders.length === 0) return false
  if (target.weightsHash === own.weightsHash || target.step <= own.step) return false
  const agree = 1 + (votes.get(`${own.weightsHash}/${own.chunksRoot}`)?.votes ?? 0)
  return target.votes > agree
}

/**
 * One heartbeat's catch-up check (spec §6.1): `checked` are the slots of the node's `serving` spans with whether each
 * is behind now; `since` (updated in place) holds when each behind slot was first seen behind without a break.
 * Returns the slot to fetch again now, the smallest one behind for at least `graceMs`, or undefined
 */
export function catchUpDue (checked: Iterable<{ slot: number, behind: boolean }>, since: Map<number, number>, now: number, graceMs: number): number | undefined {
  const seen = new Set<number>()
  for (const { slot, behind } of checked) {
    seen.add(slot)
    if (behind) {
      if (!since.has(slot)) since.set(slot, now)
    } else {
      since.delete(slot)
    }
  }
  let due: number | undefined
  for (const [slot, at] of since) {
    if (!seen.has(slot)) {
      since.delete(slot)
      continue
    }
    if (now - at >= graceMs && (due == null || slot < due)) due = slot
  }
  return due
}
