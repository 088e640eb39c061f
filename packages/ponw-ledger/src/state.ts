import { equals } from 'uint8arrays/equals'
import { decodeAmount } from './amount.js'
import { canonicalJSON } from './genesis.js'
import { digest, toHex } from './keys.js'
import { EvidenceKind, parseSignedTx, verifyVote } from './messages.js'
import { assignShards } from './shards.js'
import { dataBase, inferenceBase, reward, share, trainingBase, uptimeBase } from './rewards.js'
import type { Chain } from './genesis.js'
import type { Address } from './keys.js'
import type { LedgerTx } from './messages.js'
import type { SlashReport } from './pb/ledger.js'

/** One account. Balances are exact bigint base units. */
export interface AccountState {
  /** liquid, spendable */
  balance: bigint
  /** stake bonded by the account's own STAKE/UNBOND messages (genesis stake for validators) */
  bonded: bigint
  /** unbonded stake waiting for its release epoch */
  unbonding: Array<{ amount: bigint, releaseEpoch: bigint }>
  /** total penalties assessed by slashes (effective stake = max(0, bonded − slashed)) */
  slashed: bigint
  /** next sequence number this account's next final message must carry */
  nextSeq: bigint
  /** bonded stake after each own message that changed it: [sequence, bondedAfter] */
  bondHistory: Array<[bigint, bigint]>
}

/** An applied inference payment: what an inference proof naming it may claim */
export interface PaidSession {
  provider: Address
  tokens: bigint
  /** the part of the fee burned: the most an inference proof of this payment mints */
  burned: bigint
}

export type OutcomeStatus = 'applied' | 'failed'

/** What a final message did */
export interface Outcome {
  id: string
  sender: Address
  sequence: bigint
  kind: string
  status: OutcomeStatus
  reason?: string
  /** balance changes it caused, by address (signed), and other effects */
  deltas: Record<Address, bigint>
  minted: bigint
  burned: bigint
  /** local application order on this node (not part of the consensus state) */
  index: number
}

export interface LedgerTotals {
  genesisSupply: bigint
  minted: bigint
  burned: bigint
  slashed: bigint
}

/** Everything changed by one call (for the atomic storage batch) */
export interface StateDiff {
  accounts: Set<Address>
  outcomes: Outcome[]
  proofKeys: string[]
}

function emptyAccount (): AccountState {
  return { balance: 0n, bonded: 0n, unbonding: [], slashed: 0n, nextSeq: 0n, bondHistory: [] }
}

class Hold {
  /** waitOn: an address (its chain must advance) or `pay:<payment id>` (that payment must apply) */
  constructor (readonly reason: string, readonly waitOn?: string) {}
}

class Fail {
  constructor (readonly reason: string) {}
}

/**
 * The deterministic state machine. The state is a pure function of the SET of final messages:
 * - each account's messages apply in sequence order (a later sequence waits for the earlier ones);
 * - a message that needs funds it does not have yet waits (credits only ever add, so waiting is monotone);
 * - every other check depends only on the sender's own earlier messages and the genesis, so it gives the
 *   same answer whenever the message gets its turn.
 * The set of applied messages is therefore the least fixed point of a monotone rule, the same in any
 * arrival order, and every effect is an addition, which commutes.
 */
export class LedgerState {
  readonly chain: Chain
  readonly accounts = new Map<Address, AccountState>()
  /** final messages not yet applied, by sender then sequence */
  readonly queued = new Map<Address, Map<bigint, LedgerTx>>()
  /** every final message id seen */
  readonly known = new Set<string>()
  /** proof keys already rewarded */
  readonly proofKeys = new Set<string>()
  /**
   * Applied inference payments by message id (hex): an index of the `paid/<id>/<provider>/<tokens>/<burned>`
   * proof keys, which are what is stored and hashed
   */
  readonly payments = new Map<string, PaidSession>()
  readonly outcomes = new Map<string, Outcome>()
  readonly totals: LedgerTotals
  /**
   * The frontier of the checkpoint this state was pruned at or started from (empty: none): a final message
   * below its sender's floor is behind the checkpoint, already applied there, and is ignored
   */
  readonly floor = new Map<Address, bigint>()
  /** outcomes forgotten by pruning: local outcome indexes continue after them */
  indexOffset = 0
  /**
   * final messages that lost their slot to another final message (`sender/sequence` → losers; only beyond
   * the trust assumption): recorded as failed when the slot is passed, so a store holding both reopens
   */
  readonly #shadow = new Map<string, LedgerTx[]>()
  /** senders waiting for an offender's chain to reach a sequence, or for a payment (`pay:<id>`) */
  readonly #waiters = new Map<string, Set<Address>>()

  constructor (chain: Chain) {
    this.chain = chain
    let supply = 0n
    for (const a of chain.genesis.allocations) {
      this.account(a.address).balance += a.balance
      supply += a.balance
    }
    chain.genesis.validators.forEach((v, i) => {
      const acc = this.account(chain.validatorAddresses[i])
      acc.bonded += v.stake
      acc.bondHistory.push([-1n, acc.bonded])
      supply += v.stake
    })
    this.totals = { genesisSupply: supply, minted: 0n, burned: 0n, slashed: 0n }
  }

  account (address: Address): AccountState {
    let a = this.accounts.get(address)
    if (a == null) {
      a = emptyAccount()
      this.accounts.set(address, a)
    }
    return a
  }

  /** Read-only view (does not create the account) */
  get (address: Address): AccountState {
    return this.accounts.get(address) ?? emptyAccount()
  }

  /**
   * Adds final messages (already verified: signature and quorum) and applies everything that becomes
   * applicable. Returns what changed. Adding a known message is a no-op.
   */
  addFinal (txs: LedgerTx[]): StateDiff {
    const diff: StateDiff = { accounts: new Set(), outcomes: [], proofKeys: [] }
    const work: Address[] = []
    for (const tx of txs) {
      if (this.known.has(tx.idHex) || tx.sequence < (this.floor.get(tx.sender) ?? 0n)) {
        continue
      }
      this.known.add(tx.idHex)
      // its slot was passed already (another final message took it): failed now, as the spec says (§7), not
      // left queued while the sender's next message waits
      if (tx.sequence < this.get(tx.sender).nextSeq) {
        this.#record(diff, this.#outcome(tx, 'failed', 'slot already taken by another final message'))
        continue
      }
      let q = this.queued.get(tx.sender)
      if (q == null) {
        q = new Map()
        this.queued.set(tx.sender, q)
      }
      const held = q.get(tx.sequence)
      if (held == null) {
        q.set(tx.sequence, tx)
      } else {
        // two final messages for one slot only exist if more than 1/3 of the stake is faulty; the lower id
        // wins deterministically, the other is recorded as failed when the slot is passed
        const [win, lose] = tx.idHex < held.idHex ? [tx, held] : [held, tx]
        q.set(tx.sequence, win)
        const k = `${tx.sender}/${tx.sequence}`
        this.#shadow.set(k, [...(this.#shadow.get(k) ?? []), lose])
      }
      work.push(tx.sender)
    }
    this.#drain(work, diff)
    return diff
  }

  #drain (work: Address[], diff: StateDiff): void {
    while (work.length > 0) {
      const addr = work.pop()!
      const q = this.queued.get(addr)
      if (q == null) {
        continue
      }
      while (true) {
        const acc = this.get(addr)
        const tx = q.get(acc.nextSeq)
        if (tx == null) {
          // drop final messages for slots already passed (conflicting duplicates): record them as failed
          for (const [seq, t] of q) {
            if (seq < acc.nextSeq) {
              q.delete(seq)
              this.#record(diff, this.#outcome(t, 'failed', 'slot already taken by another final message'))
            }
          }
          break
        }
        const outcome = this.#outcome(tx, 'applied')
        const r = this.#execute(tx, outcome, diff)
        if (r instanceof Hold) {
          if (r.waitOn != null) {
            let s = this.#waiters.get(r.waitOn)
            if (s == null) {
              s = new Set()
              this.#waiters.set(r.waitOn, s)
            }
            s.add(addr)
          }
          break
        }
        if (r instanceof Fail) {
          outcome.status = 'failed'
          outcome.reason = r.reason
          outcome.deltas = {}
          outcome.minted = 0n
          outcome.burned = 0n
        }
        q.delete(tx.sequence)
        this.account(addr).nextSeq = tx.sequence + 1n
        diff.accounts.add(addr)
        this.#record(diff, outcome)
        const losers = this.#shadow.get(`${addr}/${tx.sequence}`)
        if (losers != null) {
          this.#shadow.delete(`${addr}/${tx.sequence}`)
          for (const t of losers) {
            this.#record(diff, this.#outcome(t, 'failed', 'slot already taken by another final message'))
          }
        }
        for (const credited of Object.keys(outcome.deltas)) {
          if (credited !== addr && outcome.deltas[credited] > 0n) {
            work.push(credited)
          }
        }
        // proofs naming this payment as their session wait on it (whoever sent them)
        const onPayment = tx.kind === 'payment' ? this.#waiters.get(`pay:${tx.idHex}`) : undefined
        if (onPayment != null) {
          this.#waiters.delete(`pay:${tx.idHex}`)
          work.push(...onPayment)
        }
        const waiting = this.#waiters.get(addr)
        if (waiting != null) {
          this.#waiters.delete(addr)
          work.push(...waiting)
        }
      }
      if (q.size === 0) {
        this.queued.delete(addr)
      }
    }
  }

  #outcome (tx: LedgerTx, status: OutcomeStatus, reason?: string): Outcome {
    return { id: tx.idHex, sender: tx.sender, sequence: tx.sequence, kind: tx.kind, status, reason, deltas: {}, minted: 0n, burned: 0n, index: 0 }
  }

  #record (diff: StateDiff, o: Outcome): void {
    o.index = this.outcomes.size + this.indexOffset
    this.outcomes.set(o.id, o)
    diff.outcomes.push(o)
  }

  #credit (o: Outcome, diff: StateDiff, to: Address, amount: bigint): void {
    if (amount === 0n) {
      return
    }
    this.account(to).balance += amount
    o.deltas[to] = (o.deltas[to] ?? 0n) + amount
    diff.accounts.add(to)
  }

  #debit (o: Outcome, diff: StateDiff, from: Address, amount: bigint): void {
    this.account(from).balance -= amount
    o.deltas[from] = (o.deltas[from] ?? 0n) - amount
    diff.accounts.add(from)
  }

  /** Adds a proof key loaded from storage (keeps the payment index in step) */
  restoreProofKey (key: string): void {
    this.proofKeys.add(key)
    if (key.startsWith('paid/')) {
      const [, id, provider, tokens, burned] = key.split('/')
      this.payments.set(id, { provider, tokens: BigInt(tokens), burned: BigInt(burned) })
    }
  }

  #addKey (diff: StateDiff, key: string): void {
    this.restoreProofKey(key)
    diff.proofKeys.push(key)
  }

  #mint (o: Outcome, diff: StateDiff, to: Address, amount: bigint, key: string): void {
    this.#addKey(diff, key)
    this.#credit(o, diff, to, amount)
    o.minted += amount
    this.totals.minted += amount
  }

  /** stake used by the reward multiplier: the claim, capped by what the sender's own messages bonded */
  #stakeFor (acc: AccountState, claim: Uint8Array): bigint {
    const c = decodeAmount(claim)
    return c < acc.bonded ? c : acc.bonded
  }

  #execute (tx: LedgerTx, o: Outcome, diff: StateDiff): Hold | Fail | undefined {
    const p = this.chain.genesis.params
    const addr = tx.sender
    const acc = this.get(addr)
    const t = tx.tx
    switch (tx.kind) {
      case 'transfer': {
        const amount = decodeAmount(t.transfer!.amount)
        if (acc.balance < amount) {
          return new Hold('insufficient balance')
        }
        this.#debit(o, diff, addr, amount)
        this.#credit(o, diff, toHex(t.transfer!.to), amount)
        return
      }
      case 'stake': {
        const amount = decodeAmount(t.stake!.amount)
        if (acc.balance < amount) {
          return new Hold('insufficient balance')
        }
        this.#debit(o, diff, addr, amount)
        const a = this.account(addr)
        a.bonded += amount
        a.bondHistory.push([tx.sequence, a.bonded])
        return
      }
      case 'unbond': {
        const amount = decodeAmount(t.unbond!.amount)
        // a validator's genesis stake backs its (fixed) voting power and its slashing: it never unbonds
        if (acc.bonded - lockedStake(this.chain, addr) < amount) {
          return new Fail('unbond exceeds bonded stake (a validator\'s genesis stake stays bonded)')
        }
        const a = this.account(addr)
        a.bonded -= amount
        // validators accept Tx.epoch within ±epochWindow of their clock on both the unbond and the withdraw:
        // + 2·epochWindow so that stamping the edges of the window never shortens the real period
        a.unbonding.push({ amount, releaseEpoch: tx.epoch + p.unbondingEpochs + 2n * BigInt(p.epochWindow) })
        a.bondHistory.push([tx.sequence, a.bonded])
        diff.accounts.add(addr)
        return
      }
      case 'withdraw': {
        const max = t.withdraw!.maxEntries === 0 ? Infinity : t.withdraw!.maxEntries
        const a = this.account(addr)
        let total = 0n
        let n = 0
        a.unbonding = a.unbonding.filter(e => {
          if (e.releaseEpoch <= tx.epoch && n < max) {
            n++
            total += e.amount
            return false
          }
          return true
        })
        if (n === 0) {
          return new Fail('no matured unbonding entry')
        }
        this.#credit(o, diff, addr, total)
        return
      }
      case 'uptime': {
        const u = t.uptime!
        const seconds = BigInt(u.heartbeats) * BigInt(p.heartbeatSeconds)
        if (seconds * 1000n > BigInt(p.epochMs)) {
          return new Fail('more heartbeats than an epoch holds')
        }
        const key = `uptime/${addr}/${u.epoch}`
        if (this.proofKeys.has(key)) {
          return new Fail('proof already rewarded')
        }
        this.#mint(o, diff, addr, reward(p, uptimeBase(p, seconds), this.#stakeFor(acc, u.stakeClaim)), key)
        return
      }
      case 'inference': {
        const i = t.inference!
        const ms = i.endedMs - i.startedMs
        if (i.tokens * 1000n > BigInt(p.maxInferenceTokensPerSecond) * ms) {
          return new Fail('implausible token rate')
        }
        // the session id is the id of the client's payment: served tokens must have been paid for, to
        // this provider. A payment only ever gets applied (monotone), so a proof waits for its payment.
        const session = toHex(i.sessionId)
        const paid = this.payments.get(session)
        if (paid == null) {
          return new Hold('waiting for the client\'s payment', `pay:${session}`)
        }
        if (paid.provider !== addr) {
          return new Fail('the payment is for another provider')
        }
        if (i.tokens > paid.tokens) {
          return new Fail('more tokens than paid')
        }
        const key = `inference/${addr}/${session}`
        if (this.proofKeys.has(key)) {
          return new Fail('proof already rewarded')
        }
        // never more than the payment burned: a client paying itself (or a friend) cannot mint net NEURO
        const r = reward(p, inferenceBase(p, i.tokens), this.#stakeFor(acc, i.stakeClaim))
        this.#mint(o, diff, addr, r < paid.burned ? r : paid.burned, key)
        return
      }
      case 'training': {
        const tr = t.training!
        if (tr.tokens > p.maxTrainingTokensPerProof || tr.batches > BigInt(p.maxBatchesPerProof)) {
          return new Fail('implausible amount of training work')
        }
        const key = `training/${addr}/${tr.round}`
        if (this.proofKeys.has(key)) {
          return new Fail('proof already rewarded')
        }
        this.#mint(o, diff, addr, reward(p, trainingBase(p, tr.batches, tr.lossBeforeMicro, tr.lossAfterMicro), this.#stakeFor(acc, tr.stakeClaim)), key)
        return
      }
      case 'data': {
        const d = t.data!
        if (d.samples > p.maxSamplesPerProof || d.shardId >= p.totalShards) {
          return new Fail('implausible data contribution')
        }
        if (!assignShards(this.chain, addr, d.round).includes(d.shardId)) {
          return new Fail('shard not in the sender\'s assignment for the round')
        }
        const key = `data/${addr}/${d.round}/${d.shardId}`
        if (this.proofKeys.has(key)) {
          return new Fail('proof already rewarded')
        }
        this.#mint(o, diff, addr, reward(p, dataBase(p, d.samples), this.#stakeFor(acc, d.stakeClaim)), key)
        return
      }
      case 'payment': {
        const pay = t.payment!
        const fee = pay.tokens * decodeAmount(pay.pricePerToken)
        if (acc.balance < fee) {
          return new Hold('insufficient balance')
        }
        const burned = share(fee, p.inferenceFeeBurn)
        this.#debit(o, diff, addr, fee)
        this.#credit(o, diff, toHex(pay.provider), fee - burned)
        o.burned += burned
        this.totals.burned += burned
        // what the provider's inference proof for this payment may claim
        this.#addKey(diff, `paid/${tx.idHex}/${toHex(pay.provider)}/${pay.tokens}/${burned}`)
        return
      }
      case 'slash':
        return this.#slash(tx, o, diff)
    }
  }

  /** Deterministic checks of a fraud proof; returns the offender, the evidence key and the penalty base */
  #slash (tx: LedgerTx, o: Outcome, diff: StateDiff): Hold | Fail | undefined {
    const p = this.chain.genesis.params
    const ev = checkEvidence(this.chain, tx)
    if (ev instanceof Fail) {
      return ev
    }
    const key = `slash/${ev.key}`
    if (this.proofKeys.has(key)) {
      return new Fail('evidence already used')
    }
    let base: bigint
    if (ev.validator != null) {
      base = this.chain.genesis.validators[ev.validator].stake
    } else {
      // the offender's own chain must have reached the equivocated sequence so its stake there is known
      const off = this.get(ev.offender)
      if (off.nextSeq < ev.sequence) {
        return new Hold('offender has not reached the equivocated sequence', ev.offender)
      }
      base = bondedAt(off, ev.sequence)
    }
    const penalty = share(base, p.slashFraction)
    if (penalty === 0n) {
      // nothing to take: the report must not use up the offender's one evidence key (a later offence with
      // stake behind it must stay punishable)
      return new Fail('zero penalty (nothing bonded at the offence): the evidence key is not used')
    }
    const toReporter = share(penalty, p.reporterShare)
    this.proofKeys.add(key)
    diff.proofKeys.push(key)
    const off = this.account(ev.offender)
    off.slashed += penalty
    diff.accounts.add(ev.offender)
    o.deltas[ev.offender] = (o.deltas[ev.offender] ?? 0n)
    this.#credit(o, diff, tx.sender, toReporter)
    o.burned += penalty - toReporter
    this.totals.burned += penalty - toReporter
    this.totals.slashed += penalty
  }

  /** Sum of everything held (balance + bonded + unbonding − slashed); equals genesis + minted − burned */
  holdings (): bigint {
    let s = 0n
    for (const a of this.accounts.values()) {
      s += a.balance + a.bonded + a.unbonding.reduce((x, e) => x + e.amount, 0n) - a.slashed
    }
    return s
  }

  /** Canonical JSON of the consensus state (accounts, totals, rewarded proofs, applied/failed/queued ids) */
  canonical (): string {
    const accounts: Record<string, unknown> = {}
    for (const [addr, a] of [...this.accounts.entries()].sort(([x], [y]) => x < y ? -1 : 1)) {
      if (a.balance === 0n && a.bonded === 0n && a.unbonding.length === 0 && a.slashed === 0n && a.nextSeq === 0n) {
        continue
      }
      accounts[addr] = a
    }
    const outcomes = [...this.outcomes.values()].map(o => `${o.id}:${o.status}`).sort()
    const queued = [...this.queued.values()].flatMap(q => [...q.values()].map(t => t.idHex)).sort()
    return canonicalJSON({ accounts, totals: this.totals, proofKeys: [...this.proofKeys].sort(), outcomes, queued })
  }

  /** sha256 of {@link canonical}: equal on every node that holds the same set of final messages */
  stateHash (): string {
    return toHex(digest('neuroshard/ledger/v1/state', new TextEncoder().encode(this.canonical())))
  }
}

/**
 * Stake that can never be unbonded: a genesis validator's genesis stake (its voting power is fixed at
 * genesis, so the stake behind it, and behind its slashing, must stay too). 0 for other accounts.
 */
export function lockedStake (chain: Chain, address: Address): bigint {
  const i = chain.validatorAddresses.indexOf(address)
  return i >= 0 ? chain.genesis.validators[i].stake : 0n
}

/** bonded stake of an account just before its own message `sequence` (genesis stake is entry -1) */
export function bondedAt (acc: AccountState, sequence: bigint): bigint {
  let bonded = 0n
  for (const [seq, after] of acc.bondHistory) {
    if (seq >= sequence) {
      break
    }
    bonded = after
  }
  return bonded
}

export interface CheckedEvidence {
  offender: Address
  sequence: bigint
  validator?: number
  key: string
}

/** Verifies a fraud proof from its bytes alone (used by the state machine and by validators) */
export function checkEvidence (chain: Chain, tx: LedgerTx): CheckedEvidence | Fail {
  return checkSlashReport(chain, tx.tx.slash!)
}

/** {@link checkEvidence} on the SlashReport body alone */
export function checkSlashReport (chain: Chain, s: SlashReport): CheckedEvidence | Fail {
  let a: LedgerTx
  let b: LedgerTx
  try {
    a = parseSignedTx(chain, s.signedTxA)
    b = parseSignedTx(chain, s.signedTxB)
  } catch (err: any) {
    return new Fail(`evidence message invalid: ${err.name}`)
  }
  if (a.sender !== b.sender || a.sequence !== b.sequence || equals(a.txBytes, b.txBytes)) {
    return new Fail('evidence messages do not conflict')
  }
  // a message that expired (validators no longer vote for it) may be replaced at its slot: two messages whose
  // epochs are more than 2·epochWindow + 1 apart were never both votable and are not account equivocation
  if (s.kind === EvidenceKind.ACCOUNT_EQUIVOCATION && !concurrent(chain, a.epoch, b.epoch)) {
    return new Fail('the two messages were never votable at the same time (a replacement of an expired message)')
  }
  // The evidence key names the offender only: one penalty per offender and kind. A per-slot key would let
  // one account (or validator) equivocate on slot after slot and have each report pay the reporter out of
  // a debt that is never collected once `slashed` exceeds the stake: minted money.
  if (s.kind === EvidenceKind.ACCOUNT_EQUIVOCATION) {
    return { offender: a.sender, sequence: a.sequence, key: `account/${a.sender}` }
  }
  if (s.kind === EvidenceKind.VALIDATOR_EQUIVOCATION) {
    const v = s.validator
    if (v >= chain.genesis.validators.length) {
      return new Fail('unknown validator')
    }
    if (!verifyVote(chain, a.id, { validator: v, signature: s.voteSigA }) || !verifyVote(chain, b.id, { validator: v, signature: s.voteSigB })) {
      return new Fail('evidence votes do not verify')
    }
    return { offender: chain.validatorAddresses[v], sequence: a.sequence, validator: v, key: `validator/${v}` }
  }
  return new Fail('unknown evidence kind')
}

/** The penalty a report of `ev` would charge now, or undefined while the offender's chain has not reached it */
export function penaltyOf (state: LedgerState, ev: CheckedEvidence): bigint | undefined {
  const p = state.chain.genesis.params
  if (ev.validator != null) {
    return share(state.chain.genesis.validators[ev.validator].stake, p.slashFraction)
  }
  const off = state.get(ev.offender)
  if (off.nextSeq < ev.sequence) {
    return undefined
  }
  return share(bondedAt(off, ev.sequence), p.slashFraction)
}

/**
 * Voting power of each genesis validator: its genesis stake less the penalties charged to its account
 * (never below 0). A slashed validator loses voting power in proportion to its penalty.
 */
export function votingPowers (state: LedgerState): bigint[] {
  return state.chain.genesis.validators.map((v, i) => {
    const slashed = state.get(state.chain.validatorAddresses[i]).slashed
    return v.stake > slashed ? v.stake - slashed : 0n
  })
}

/**
 * The one validator whose report of evidence `key` validators vote for when the report is stamped `epoch`:
 * the lowest sha256("neuroshard/ledger/v1/reporter" || 0 || utf8(key "@" epoch) || u32be(index)) among the
 * validators other than the offending one. One designated reporter per (key, epoch) means a second report of
 * the same evidence can never split the votes; the next epoch designates another validator if the first is
 * offline.
 */
export function designatedReporter (chain: Chain, key: string, epoch: bigint, offender?: number): number {
  const k = new TextEncoder().encode(`${key}@${epoch}`)
  let best = -1
  let bestScore = ''
  for (let i = 0; i < chain.genesis.validators.length; i++) {
    if (i === offender) continue
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, i)
    const score = toHex(digest('neuroshard/ledger/v1/reporter', k, b))
    if (best < 0 || score < bestScore) {
      best = i
      bestScore = score
    }
  }
  return best
}

/** True when two messages of one slot stamped `a` and `b` could both be voted for (their windows meet) */
export function concurrent (chain: Chain, a: bigint, b: bigint): boolean {
  const d = a > b ? a - b : b - a
  return d <= 2n * BigInt(chain.genesis.params.epochWindow) + 1n
}

/** The designated reporter of checked evidence for a report stamped `epoch` (the offender, validator or not, never reports itself) */
export function reporterFor (chain: Chain, ev: CheckedEvidence, epoch: bigint): number {
  const i = chain.validatorAddresses.indexOf(ev.offender)
  return designatedReporter(chain, ev.key, epoch, ev.validator ?? (i >= 0 ? i : undefined))
}

export { Fail as EvidenceFailure }
