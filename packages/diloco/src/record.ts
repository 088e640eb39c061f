/**
 * The round record (specs/diloco §7): what a DiLoCo round leaves as evidence for training proofs. It is
 * rebuildable by anyone from the signed commit (which carries every sender's signed announce) and the
 * payloads: `verifyRoundRecord` re-checks the signatures, the contribution list and, given the payloads,
 * the aggregation's accept/reject per sender.
 */

import { aggregateRound, byzantineBound, minRoundInputs } from './aggregate.js'
import { decodePayload } from './compress.js'
import { DEFAULT_AGGREGATOR, DEFAULT_REJECT_FACTOR } from './constants.js'
import { InvalidCommitError } from './errors.js'
import { openCommit, sha256, Signed, toHex } from './messages.js'
import type { AggregatorChoice } from './aggregate.js'

export interface ContributionRecord {
  /** Sender peer id */
  sender: string
  /** sha256 of the payload (hex): the pseudo-gradient hash training proofs name */
  payloadHash: string
  /** Genesis data shards its inner steps read */
  dataShards: string[]
  innerSteps: number
  tokens: number
  /** Did the aggregation accept it */
  accepted: boolean
  /** ‖xᵢ − aggregate‖ */
  distance: number
}

export interface RoundRecord {
  group: string
  span: string
  round: number
  /** Weights hash of the round's base (hex) */
  baseHash: string
  /** Leader peer id */
  leader: string
  /** The leader's signed commit (protobuf `Signed`), which carries every sender's signed announce */
  commit: Uint8Array
  /** robust-agg name of the aggregator that ran */
  aggregator: string
  contributions: ContributionRecord[]
  /** Weights hash after the outer step (hex) */
  resultHash: string
}

export interface VerifyRoundRecordOptions {
  /** Payloads by sha256 hex; with them the accept/reject outcome is recomputed */
  payloads?: ReadonlyMap<string, Uint8Array>
  /** Elements of the span (needed with `payloads`) */
  elements?: number
  aggregator?: AggregatorChoice
  rejectFactor?: number
}

/**
 * Checks a record against its signed commit: signatures, round, base hash, and that the contributions are
 * exactly the commit's announces with their data shards, steps and tokens. With payloads, re-runs the
 * aggregation and checks every accept/reject. Throws `InvalidCommitError` (or the signature / format error).
 */
export async function verifyRoundRecord (record: RoundRecord, options: VerifyRoundRecordOptions = {}): Promise<void> {
  const opened = await openCommit(Signed.decode(record.commit))
  const c = opened.commit
  if (c.round !== record.round || c.group !== record.group || c.span !== record.span || toHex(c.baseHash) !== record.baseHash || opened.leader !== record.leader) {
    throw new InvalidCommitError('record does not match its commit (round, group, span, base hash or leader)')
  }
  if (opened.announces.length !== record.contributions.length) throw new InvalidCommitError('record and commit list different senders')
  opened.announces.forEach((a, i) => {
    const r = record.contributions[i]
    if (r.sender !== a.sender || r.payloadHash !== a.payloadHashHex || r.innerSteps !== a.announce.innerSteps || r.tokens !== a.announce.tokens ||
      JSON.stringify(r.dataShards) !== JSON.stringify(a.announce.dataShards)) {
      throw new InvalidCommitError(`record entry ${i} does not match the signed announce of ${a.sender}`)
    }
  })
  if (options.payloads !== undefined) {
    const n = options.elements ?? opened.announces[0].announce.elements
    const inputs = opened.announces.map(a => {
      const bytes = options.payloads?.get(a.payloadHashHex)
      if (bytes === undefined || toHex(sha256(bytes)) !== a.payloadHashHex) throw new InvalidCommitError(`payload of ${a.sender} missing or not matching its hash`)
      return decodePayload(bytes, n, a.codec)
    })
    const choice = options.aggregator ?? DEFAULT_AGGREGATOR
    const needed = minRoundInputs(choice, byzantineBound(Math.max(c.members, inputs.length)))
    if (inputs.length < needed) throw new InvalidCommitError(`commit of ${inputs.length} pseudo-gradients from a group of ${c.members}: a robust aggregate needs ${needed}`)
    const agg = aggregateRound(inputs, choice, options.rejectFactor ?? DEFAULT_REJECT_FACTOR, c.members)
    agg.accepted.forEach((ok, i) => {
      if (ok !== record.contributions[i].accepted) throw new InvalidCommitError(`accept/reject of ${record.contributions[i].sender} does not follow from the payloads`)
    })
  }
}
