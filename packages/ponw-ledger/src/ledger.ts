import { logger } from '@libp2p/logger'
import { InvalidParametersError, NotStartedError } from '@neuroshard/interface'
import { TypedEventEmitter } from 'main-event'
import { decodeAmount } from './amount.js'
import { CheckpointConflictError, CheckpointMismatchError, CheckpointNotReadyError, EquivocationError, EvidenceConflictError, ImplausibleProofError, InsufficientFundsError, InsufficientQuorumError, InvalidEvidenceError, NotDesignatedReporterError, InvalidSignatureError, ReplayError, SequenceGapError, StateMismatchError } from './errors.js'
import { loadChain } from './genesis.js'
import { toHex } from './keys.js'
import { encodeCertificate, hasQuorum, parseCertificate, peekCertificateId, parseSignedTx, signTx, signVote, verifyVote, voteDigest } from './messages.js'
import { LedgerState, checkEvidence, concurrent, lockedStake, penaltyOf, reporterFor, votingPowers } from './state.js'
import { KEYS, LedgerStore, b64, fromJSON, toJSON } from './store.js'
import { ProofVerifier, currentEpoch } from './verify.js'
import type { Chain, GenesisConfig } from './genesis.js'
import type { Address, Wallet } from './keys.js'
import type { Evidence, LedgerCertificate, LedgerTx, TxBody, VoteSigData } from './messages.js'
import type { AccountState, Outcome, StateDiff } from './state.js'
import type { Meta, Op } from './store.js'
import type { SignatureCheck, SignatureVerifierPool } from './verify-pool.js'
import { MAX_CHECKPOINT_FRONTIER } from './constants.js'
import { encodeCheckpointCertificate, frontierEntries, frontierOf, heightOf, signCheckpoint, snapshotOf, stateFromSnapshot, verifyCheckpoint, verifyCheckpointVote } from './checkpoint.js'
import type { CheckpointCertificateData, CheckpointProposal, Snapshot } from './checkpoint.js'
import type { AbortOptions } from '@libp2p/interface'

const log = logger('neuroshard:ponw-ledger:ledger')

/** message kinds whose check may be expensive (run outside the lock) */
const PROOF_KINDS = new Set(['training', 'uptime', 'data', 'inference'])

/** votes remembered per (validator, sender, sequence) to detect validator equivocation */
const MAX_SLOT_VOTES = 200_000
/** messages collecting votes at once */
const MAX_VOTING = 50_000
/**
 * Bytes of signed messages held by each of the two vote maps. The count caps alone would let one faulty
 * validator (votes verify, so only a validator can fill them) pin 250,000 messages of up to 16 KiB: GBs.
 */
export const DEFAULT_MAX_VOTE_MEMORY_BYTES = 64 * 1024 * 1024

export interface LedgerInit {
  /** the genesis (or an already loaded chain) */
  genesis: GenesisConfig | Chain
  /** directory of the level database */
  path: string
  /** this node's ledger wallet; if its key is a genesis validator, the ledger votes */
  wallet?: Wallet
  /** checks run before voting on proofs (re-execution etc.) @default new ProofVerifier() */
  verifier?: ProofVerifier
  /** clock, ms @default Date.now */
  now?: () => number
  /** verify large certificate batches (sync) in worker threads */
  verifierPool?: SignatureVerifierPool
  /** cap on the signed-message bytes each vote map holds @default DEFAULT_MAX_VOTE_MEMORY_BYTES */
  maxVoteMemoryBytes?: number
  /**
   * forget the history behind each certified checkpoint this node adopts (certificates, outcomes, history
   * index, votes of its slots) @default false
   */
  pruneOnCheckpoint?: boolean
}

/** The certified checkpoint a ledger adopted: its certificate, snapshot and frontier */
export interface AdoptedCheckpoint {
  height: bigint
  snapshotHash: Uint8Array
  /** canonical CheckpointCertificate bytes */
  certificate: Uint8Array
  /** canonical snapshot bytes */
  snapshot: Uint8Array
  /** next sequence of each account at the checkpoint */
  frontier: Map<Address, bigint>
  /** true when this node pruned the history behind it */
  pruned: boolean
}

export interface LedgerEvents {
  /** a message became final and was stored (it may still wait for its turn) */
  'ponw-ledger:final': CustomEvent<LedgerCertificate>
  /** a final message was applied (or failed deterministically) */
  'ponw-ledger:outcome': CustomEvent<Outcome>
  /** conflicting signatures were seen: a fraud proof is ready to be reported */
  'ponw-ledger:evidence': CustomEvent<Evidence>
  /** a certified checkpoint was adopted (after a quorum of votes, or installed from a peer) */
  'ponw-ledger:checkpoint': CustomEvent<{ height: bigint, snapshotHash: string, pruned: number, installed: boolean }>
}

function isChain (g: GenesisConfig | Chain): g is Chain {
  return (g as Chain).chainId instanceof Uint8Array
}

/**
 * The ledger of one node: the deterministic state, its level storage, and (for validators) the
 * first-seen voting rule. The network service (`ponwLedger`) feeds it; it can be used without a network.
 */
export class Ledger extends TypedEventEmitter<LedgerEvents> {
  readonly chain: Chain
  state: LedgerState
  readonly store: LedgerStore
  readonly wallet?: Wallet
  /** index of this node in the genesis validators, if it is one */
  readonly validatorIndex?: number
  readonly verifier: ProofVerifier
  readonly now: () => number
  readonly #pool?: SignatureVerifierPool
  #open = false
  #logLength = 0
  /** serialises every state change and storage batch */
  #lock: Promise<unknown> = Promise.resolve()
  /** votes collected per message id; `owner` is the validator whose vote created the entry */
  readonly #votes = new Map<string, { tx: LedgerTx, votes: Map<number, Uint8Array>, owner: number }>()
  /**
   * per validator: the entries of #votes its vote created (insertion order) and their bytes. Vote storage is
   * partitioned per validator: a validator's new entries evict only its own older ones, never another's.
   */
  readonly #votesBy = new Map<number, { ids: Set<string>, bytes: number }>()
  /** per validator: which message it voted for, per slot (detects validator equivocation), and the bytes held */
  readonly #slotVotes = new Map<number, { slots: Map<string, { tx: LedgerTx, sig: Uint8Array }>, bytes: number }>()
  /** next sequence this node's wallet will use */
  #nextOwnSeq?: bigint
  readonly #maxVoteBytes: number
  #votesBytes = 0
  #slotVotesBytes = 0
  readonly #prune: boolean
  /** the adopted checkpoint (the base of the next one) */
  #base?: AdoptedCheckpoint
  /** final messages stored since the base (id → slot), built on first use */
  #sinceBase?: Map<string, { sender: Address, seq: bigint }>
  /** checkpoint votes collected per (height, snapshot hash); an entry lives while some validator's vote is in it */
  readonly #ckVotes = new Map<string, { proposal: CheckpointProposal, votes: Map<number, Uint8Array> }>()
  /** per validator: the (at most 2) checkpoint keys its counted votes are for, oldest first */
  readonly #ckBy = new Map<number, string[]>()
  /** the last checkpoint this node derived (key: base hash / height / snapshot hash) */
  #derived?: { key: string, state: LedgerState, snapshot: Snapshot }
  /** a certified checkpoint waiting for final messages this node does not hold yet */
  #ckPending?: { proposal: CheckpointProposal, cert: CheckpointCertificateData }

  private constructor (init: LedgerInit) {
    super()
    this.chain = isChain(init.genesis) ? init.genesis : loadChain(init.genesis)
    this.state = new LedgerState(this.chain)
    this.store = new LedgerStore(init.path)
    this.wallet = init.wallet
    this.verifier = init.verifier ?? new ProofVerifier()
    this.now = init.now ?? Date.now
    this.#pool = init.verifierPool
    this.#maxVoteBytes = init.maxVoteMemoryBytes ?? DEFAULT_MAX_VOTE_MEMORY_BYTES
    this.#prune = init.pruneOnCheckpoint === true
    if (init.wallet != null) {
      const i = this.chain.validatorKeys.findIndex(k => toHex(k) === toHex(init.wallet!.publicKey))
      this.validatorIndex = i >= 0 ? i : undefined
    }
  }

  /** Opens (or creates) a ledger database and loads its state */
  static async open (init: LedgerInit): Promise<Ledger> {
    const l = new Ledger(init)
    await l.store.open()
    await l.#load()
    // sequences this wallet already signed survive a restart, so a message still on its way to finality
    // never has its sequence handed out again (that would be equivocation by an honest node)
    for await (const [k] of l.store.range('w!')) {
      const seq = BigInt(k.slice(2)) + 1n
      if (l.#nextOwnSeq == null || seq > l.#nextOwnSeq) {
        l.#nextOwnSeq = seq
      }
    }
    l.#open = true
    return l
  }

  async close (): Promise<void> {
    if (!this.#open) {
      return
    }
    this.#open = false
    await this.#lock.catch(() => {})
    await this.store.close()
  }

  get isOpen (): boolean {
    return this.#open
  }

  /** Number of final messages stored (the sync log length) */
  get logLength (): number {
    return this.#logLength
  }

  #exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const p = this.#lock.then(fn, fn)
    this.#lock = p.catch(() => {})
    return p
  }

  #assertOpen (): void {
    if (!this.#open) {
      throw new NotStartedError('ledger is closed')
    }
  }

  /** Loads the stored derived state; queued messages are the stored certificates without an outcome */
  async #load (): Promise<void> {
    const meta = await this.store.meta()
    if (meta == null) {
      return
    }
    const certB64 = await this.store.get(KEYS.checkpoint)
    const snap = await this.store.get(KEYS.snapshot)
    let base: AdoptedCheckpoint | undefined
    if (certB64 != null && snap != null) {
      const bytes = new TextEncoder().encode(snap)
      const { certificate, state } = verifyCheckpoint(this.chain, b64.dec(certB64), bytes)
      base = { height: certificate.height, snapshotHash: certificate.snapshotHash, certificate: b64.dec(certB64), snapshot: bytes, frontier: frontierOf(state), pruned: (await this.store.get(KEYS.pruned)) != null }
    }
    // accounts never touched since genesis are not stored: they keep their genesis values
    const s = new LedgerState(this.chain)
    if (base?.pruned === true) {
      for (const [a, n] of base.frontier) {
        s.floor.set(a, n)
      }
    }
    s.indexOffset = meta.indexOffset ?? 0
    for await (const [k, v] of this.store.range('a!')) {
      s.accounts.set(k.slice(2), fromJSON<AccountState>(v))
    }
    for await (const [k] of this.store.range('k!')) {
      s.restoreProofKey(k.slice(2))
    }
    for await (const [k, v] of this.store.range('o!')) {
      s.outcomes.set(k.slice(2), fromJSON<Outcome>(v))
    }
    Object.assign(s.totals, meta.totals)
    const pending: LedgerTx[] = []
    for await (const [k, v] of this.store.range('c!')) {
      const id = k.slice(2)
      s.known.add(id)
      if (!s.outcomes.has(id)) {
        pending.push(parseCertificate(this.chain, b64.dec(v), { verifySignature: false, verifyVotes: false }).tx)
      }
    }
    // re-queue waiting messages; nothing applies here unless the store was inconsistent
    for (const tx of pending) {
      s.known.delete(tx.idHex)
    }
    const diff = s.addFinal(pending)
    if (diff.outcomes.length > 0) {
      throw new StateMismatchError('stored state was not at its fixed point')
    }
    this.state = s
    this.#logLength = meta.logLength
    this.#base = base
    this.#sinceBase = undefined
  }

  /** Verifies certificates (signature, votes, quorum), stores them and applies them, in one atomic batch */
  async addCertificates (certs: Array<Uint8Array | LedgerCertificate>, options: AbortOptions & { verified?: boolean, partial?: boolean } = {}): Promise<StateDiff> {
    this.#assertOpen()
    // skip known messages before paying for signature checks
    let todo = certs.filter(c => {
      const id = c instanceof Uint8Array ? peekCertificateId(this.chain, c) : c.tx.idHex
      return id == null || !this.state.known.has(id)
    })
    if (this.state.floor.size > 0) {
      // messages behind the checkpoint this node pruned at are already in its state: skip them before
      // paying for signature checks (undecodable bytes go on to get their typed error)
      todo = todo.filter(c => {
        let tx: LedgerTx
        try {
          tx = c instanceof Uint8Array ? parseCertificate(this.chain, c, { verifySignature: false, verifyVotes: false }).tx : c.tx
        } catch {
          return true
        }
        return tx.sequence >= (this.state.floor.get(tx.sender) ?? 0n)
      })
    }
    let parsed: LedgerCertificate[]
    const bulk = this.#pool != null && this.#pool.size > 0 && options.verified !== true && todo.length >= 32
    if (bulk) {
      // decode and check everything but the signatures, then verify all signatures in parallel
      parsed = todo.map(c => c instanceof Uint8Array ? parseCertificate(this.chain, c, { verifySignature: false, verifyVotes: false }) : c)
      const checks: SignatureCheck[] = []
      for (const c of parsed) {
        checks.push({ signature: c.tx.signature, digest: c.tx.id, publicKey: c.tx.senderKey })
        const vd = voteDigest(this.chain.chainId, c.tx.id)
        for (const v of c.votes) {
          checks.push({ signature: v.signature, digest: vd, publicKey: this.chain.validatorKeys[v.validator] })
        }
      }
      const ok = await this.#pool!.verify(checks)
      const bad = ok.indexOf(false)
      if (bad >= 0) {
        throw new InvalidSignatureError('a signature in the certificate batch does not verify; nothing was applied')
      }
    } else {
      parsed = todo.map(c => c instanceof Uint8Array ? parseCertificate(this.chain, c, options.verified === true ? { verifySignature: false, verifyVotes: false } : {}) : c)
    }
    options.signal?.throwIfAborted()
    return this.#exclusive(async () => {
      // the quorum by the voting power of now: a slashed validator's votes count in proportion to what it kept.
      // Certificates short of it are left out (a sync page with one is not lost as a whole; another certificate
      // of the same message with enough votes still counts); when nothing is left the call fails, unless
      // `partial` (sync)
      const powers = votingPowers(this.state)
      const fresh: LedgerCertificate[] = []
      const short: LedgerCertificate[] = []
      const seen = new Set<string>()
      for (const c of parsed) {
        if (this.state.known.has(c.tx.idHex) || seen.has(c.tx.idHex)) {
          continue
        }
        if (!hasQuorum(this.chain, c.votes.map(v => v.validator), powers)) {
          short.push(c)
          continue
        }
        seen.add(c.tx.idHex)
        fresh.push(c)
      }
      if (fresh.length === 0) {
        if (short.length > 0 && options.partial !== true) {
          throw new InsufficientQuorumError(`certificate of ${short[0].tx.idHex} lacks a quorum of the validators' current (slashed) voting power; nothing was applied`)
        }
        return { accounts: new Set(), outcomes: [], proofKeys: [] }
      }
      if (short.length > 0) {
        log('left out %d certificate(s) short of a quorum of the current (slashed) voting power', short.length)
      }
      const diff = this.state.addFinal(fresh.map(c => c.tx))
      const ops: Op[] = []
      let n = this.#logLength
      for (const c of fresh) {
        ops.push({ type: 'put', key: KEYS.cert(c.tx.idHex), value: b64.enc(c.bytes) })
        ops.push({ type: 'put', key: KEYS.log(n++), value: c.tx.idHex })
      }
      for (const o of diff.outcomes) {
        ops.push({ type: 'put', key: KEYS.outcome(o.id), value: toJSON(o) })
        for (const a of new Set([o.sender, ...Object.keys(o.deltas)])) {
          ops.push({ type: 'put', key: KEYS.history(a, o.id), value: '1' })
        }
      }
      for (const a of diff.accounts) {
        ops.push({ type: 'put', key: KEYS.account(a), value: toJSON(this.state.get(a)) })
      }
      for (const k of diff.proofKeys) {
        ops.push({ type: 'put', key: KEYS.proofKey(k), value: '1' })
      }
      const meta: Meta = { logLength: n, totals: this.state.totals, indexOffset: this.state.indexOffset }
      ops.push({ type: 'put', key: KEYS.meta, value: toJSON(meta) })
      try {
        await this.store.batch(ops)
      } catch (err) {
        // memory ran ahead of a failed write: reload what is on disk so the two never differ
        log.error('storage batch failed, reloading state - %e', err)
        this.state = new LedgerState(this.chain)
        await this.#load()
        throw err
      }
      this.#logLength = n
      for (const c of fresh) {
        this.#sinceBase?.set(c.tx.idHex, { sender: c.tx.sender, seq: c.tx.sequence })
        this.#dropVoting(c.tx.idHex)
        this.safeDispatchEvent('ponw-ledger:final', { detail: c })
      }
      for (const o of diff.outcomes) {
        this.safeDispatchEvent('ponw-ledger:outcome', { detail: o })
      }
      if (this.#ckPending != null && diff.outcomes.length > 0) {
        const p = this.#ckPending
        queueMicrotask(() => { this.#tryAdopt(p.proposal, p.cert).catch(err => { log('checkpoint not adopted - %s', err.message) }) })
      }
      return diff
    })
  }

  /** Certificates of the sync log in [from, from+limit) */
  async logRange (from: number, limit: number, maxBytes = Infinity): Promise<{ certificates: Uint8Array[], next: number }> {
    this.#assertOpen()
    const out: Uint8Array[] = []
    let next = from
    let bytes = 0
    // after pruning the log has gaps: `next` is one past the last index served
    for await (const [k, id] of this.store.range('l!', { gte: KEYS.log(from), limit })) {
      const c = await this.store.get(KEYS.cert(id))
      if (c == null) {
        break
      }
      const b = b64.dec(c)
      if (out.length > 0 && bytes + b.byteLength > maxBytes) {
        break
      }
      bytes += b.byteLength
      out.push(b)
      next = Number(k.slice(2)) + 1
    }
    return { certificates: out, next }
  }

  /** Signs a message with this node's wallet at its next sequence */
  createTx (body: TxBody, options: { sequence?: bigint, epoch?: bigint } = {}): LedgerTx {
    if (this.wallet == null) {
      throw new InvalidParametersError('this ledger has no wallet')
    }
    const acc = this.state.get(this.wallet.address)
    const queued = this.state.queued.get(this.wallet.address)
    let seq = acc.nextSeq + BigInt(queued?.size ?? 0)
    if (this.#nextOwnSeq != null && this.#nextOwnSeq > seq) {
      seq = this.#nextOwnSeq
    }
    const sequence = options.sequence ?? seq
    this.#nextOwnSeq = sequence + 1n
    return signTx(this.chain, this.wallet, sequence, options.epoch ?? currentEpoch(this.chain, this.now()), body)
  }

  /**
   * Durably records a message signed by this node's wallet (synced) — call it BEFORE the message leaves the
   * node (`ponwLedger.send` does). After a restart {@link createTx} continues after the recorded sequences and
   * {@link unfinishedOwn} returns the ones not final yet, to be gossiped again.
   */
  async recordOwn (tx: LedgerTx): Promise<void> {
    this.#assertOpen()
    if (this.wallet == null || tx.sender !== this.wallet.address) {
      throw new InvalidParametersError('not a message of this ledger\'s wallet')
    }
    await this.store.batch([{ type: 'put', key: KEYS.own(tx.sequence), value: b64.enc(tx.signed) }], true)
  }

  /** Recorded own messages whose sequence is not final yet, in sequence order */
  async unfinishedOwn (): Promise<LedgerTx[]> {
    this.#assertOpen()
    if (this.wallet == null) {
      return []
    }
    const next = this.state.get(this.wallet.address).nextSeq
    const out: LedgerTx[] = []
    for await (const [, v] of this.store.range('w!', { gte: KEYS.own(next) })) {
      const tx = parseSignedTx(this.chain, b64.dec(v), { verifySignature: false })
      if (!this.state.known.has(tx.idHex)) {
        out.push(tx)
      }
    }
    return out
  }

  /**
   * Validator rule: check the message against this node's final state, record it as the first message
   * seen for its (sender, sequence) slot — synced to disk BEFORE signing — and sign. A different message
   * for an already-voted slot is refused with EquivocationError (its evidence is emitted as an event).
   */
  async vote (signedTx: Uint8Array | LedgerTx, options: AbortOptions & { endorsements?: VoteSigData[] } = {}): Promise<VoteSigData> {
    this.#assertOpen()
    if (this.validatorIndex == null || this.wallet == null) {
      throw new InvalidParametersError('this node is not a genesis validator')
    }
    const tx = signedTx instanceof Uint8Array ? parseSignedTx(this.chain, signedTx) : signedTx
    const wallet = this.wallet
    const index = this.validatorIndex
    const proof = PROOF_KINDS.has(tx.kind)
    if (proof && await this.store.get(KEYS.voted(tx.sender, tx.sequence)) == null) {
      // the expensive attestation (re-execution, challenges) runs OUTSIDE the lock, after the cheap checks, so
      // junk proofs never delay certificates or other votes; the cheap checks run again under the lock
      await this.#checkForVote(tx, { ...options, attest: false })
      await this.verifier.check(this.chain, this.state, tx, this.now(), options)
    }
    return this.#exclusive(async () => {
      const prev = await this.store.get(KEYS.voted(tx.sender, tx.sequence))
      if (prev != null) {
        const prevSigned = b64.dec(prev)
        // the same Tx under another valid signature is the same message (same id, same vote digest): ECDSA
        // signatures are not unique, and treating it as a conflict would emit evidence that can never verify
        if (toHex(prevSigned) === toHex(tx.signed) || parseSignedTx(this.chain, prevSigned, { verifySignature: false }).idHex === tx.idHex) {
          return signVote(this.chain, wallet, index, tx.id)
        }
        const prevTx = parseSignedTx(this.chain, prevSigned, { verifySignature: false })
        if (!concurrent(this.chain, prevTx.epoch, tx.epoch)) {
          // a replacement of an expired message this validator voted for: refused (it keeps its first vote),
          // but not evidence
          throw new EquivocationError(`slot ${tx.sequence} of ${tx.sender} holds this validator's vote for an expired message`)
        }
        const evidence: Evidence = { kind: 'account-equivocation', a: prevSigned, b: tx.signed }
        // from now on this validator refuses the offender's withdrawals (see slashConflicts)
        const suspect = await this.store.get(KEYS.suspect(tx.sender))
        if (suspect == null || BigInt(suspect) > tx.sequence) {
          await this.store.batch([{ type: 'put', key: KEYS.suspect(tx.sender), value: tx.sequence.toString() }], true)
        }
        this.safeDispatchEvent('ponw-ledger:evidence', { detail: evidence })
        throw Object.assign(new EquivocationError(`sender ${tx.sender} signed two messages for sequence ${tx.sequence}`), { evidence })
      }
      await this.#checkForVote(tx, { ...options, attest: !proof })
      const ops: Op[] = [{ type: 'put', key: KEYS.voted(tx.sender, tx.sequence), value: b64.enc(tx.signed) }]
      if (tx.kind === 'slash') {
        const ev = checkEvidence(this.chain, tx)
        if ('key' in ev) {
          const used = await this.store.get(KEYS.evidence(ev.key))
          if (used != null && used !== tx.idHex) {
            throw new ReplayError('this evidence was already reported')
          }
          if (ev.validator == null && await this.slashConflicts(ev.offender, ev.sequence)) {
            throw new EvidenceConflictError(`${ev.offender} withdrew after sequence ${ev.sequence}: this validator cannot also vote for its slash`)
          }
          ops.push({ type: 'put', key: KEYS.evidence(ev.key), value: tx.idHex })
        }
      } else if (tx.kind === 'withdraw') {
        if (await this.store.get(KEYS.evidence(`account/${tx.sender}`)) != null || await this.store.get(KEYS.suspect(tx.sender)) != null) {
          throw new EvidenceConflictError(`this validator holds evidence against ${tx.sender}: its withdrawals wait for the slash`)
        }
        ops.push({ type: 'put', key: KEYS.withdrawVoted(tx.sender), value: tx.sequence.toString() })
      }
      await this.store.batch(ops, true)
      return signVote(this.chain, wallet, index, tx.id)
    })
  }

  /**
   * True when a slash of `offender` for its message `sequence` must not be voted for: this validator voted
   * for one of the offender's withdrawals after that sequence, or one is final. An honest validator votes for
   * at most one of the two, so with less than 1/3 faulty stake they are never both final: a slash never
   * pays its reporter out of stake that already left (which would mint). Validator stake cannot leave.
   */
  async slashConflicts (offender: Address, sequence: bigint): Promise<boolean> {
    this.#assertOpen()
    const voted = await this.store.get(KEYS.withdrawVoted(offender))
    if (voted != null && BigInt(voted) > sequence) {
      return true
    }
    const pruned = await this.store.get(KEYS.withdrawFinal(offender))
    if (pruned != null && BigInt(pruned) > sequence) {
      return true
    }
    for (const o of this.state.outcomes.values()) {
      if (o.sender === offender && o.kind === 'withdraw' && o.status === 'applied' && o.sequence > sequence) {
        return true
      }
    }
    return false
  }

  /** True when this validator has voted for a slash report with this evidence key (one per offender) */
  async evidenceVoted (key: string): Promise<boolean> {
    this.#assertOpen()
    return (await this.store.get(KEYS.evidence(key))) != null
  }

  /**
   * Catch-up: an expired message (epoch before the window) for the sender's next slot may still be voted for
   * when votes of validators holding at least a third of the voting power are shown for it (so at least one
   * honest validator found it fresh): otherwise a message that reached a third but not a quorum before it
   * expired would strand its slot forever (its voters refuse any other message for the slot). Not for an
   * unbond, whose epoch sets its release.
   */
  #caughtUp (tx: LedgerTx, endorsements?: VoteSigData[]): boolean {
    if (endorsements == null || tx.kind === 'unbond') {
      return false
    }
    const powers = votingPowers(this.state)
    const total = powers.reduce((a, b) => a + b, 0n)
    let power = 0n
    const seen = new Set<number>()
    for (const v of endorsements) {
      if (!seen.has(v.validator) && v.validator !== this.validatorIndex && powers[v.validator] != null && verifyVote(this.chain, tx.id, v)) {
        seen.add(v.validator)
        power += powers[v.validator]
      }
    }
    return 3n * power >= total
  }

  async #checkForVote (tx: LedgerTx, options: AbortOptions & { attest?: boolean, endorsements?: VoteSigData[] }): Promise<void> {
    const s = this.state
    const acc = s.get(tx.sender)
    if (s.known.has(tx.idHex) || tx.sequence < acc.nextSeq || s.queued.get(tx.sender)?.has(tx.sequence) === true) {
      throw new ReplayError(`sequence ${tx.sequence} of ${tx.sender} is already final`)
    }
    if (tx.sequence > acc.nextSeq) {
      throw new SequenceGapError(`sender ${tx.sender} is at sequence ${acc.nextSeq}, not ${tx.sequence}`)
    }
    const now = this.now()
    const epoch = currentEpoch(this.chain, now)
    const w = BigInt(this.chain.genesis.params.epochWindow)
    if (tx.epoch > epoch + w || (tx.epoch + w < epoch && !this.#caughtUp(tx, options.endorsements))) {
      throw new ImplausibleProofError(`message epoch ${tx.epoch} is outside ${epoch} ± ${w}`)
    }
    const t = tx.tx
    const need = (amount: bigint, have: bigint): void => {
      if (have < amount) {
        throw new InsufficientFundsError(`needs ${amount}, has ${have}`)
      }
    }
    switch (tx.kind) {
      case 'transfer': need(decodeAmount(t.transfer!.amount), acc.balance); break
      case 'stake': need(decodeAmount(t.stake!.amount), acc.balance); break
      case 'payment': need(t.payment!.tokens * decodeAmount(t.payment!.pricePerToken), acc.balance); break
      case 'unbond': {
        // neither the slashed part nor a validator's genesis stake may leave
        const held = acc.slashed > lockedStake(this.chain, tx.sender) ? acc.slashed : lockedStake(this.chain, tx.sender)
        need(decodeAmount(t.unbond!.amount), acc.bonded > held ? acc.bonded - held : 0n)
        break
      }
      case 'withdraw':
        if (acc.slashed > 0n) {
          throw new InsufficientFundsError('a slashed account cannot withdraw')
        }
        if (!acc.unbonding.some(e => e.releaseEpoch <= tx.epoch)) {
          throw new InsufficientFundsError('no matured unbonding entry')
        }
        break
      case 'slash': {
        const ev = checkEvidence(this.chain, tx)
        if (!('key' in ev)) {
          throw new InvalidEvidenceError(ev.reason)
        }
        if (s.proofKeys.has(`slash/${ev.key}`)) {
          throw new ReplayError('evidence already used')
        }
        const penalty = penaltyOf(s, ev)
        if (penalty == null) {
          throw new SequenceGapError('offender has not reached the equivocated sequence')
        }
        // a zero-penalty report would only cost the reporter a sequence (and is not applied)
        if (penalty === 0n) {
          throw new InvalidEvidenceError('zero penalty: the offender had nothing bonded at the offence')
        }
        // one designated reporter per (evidence key, epoch): two reports of the same evidence never split the votes
        const r = reporterFor(this.chain, ev, tx.epoch)
        if (this.chain.validatorAddresses[r] !== tx.sender) {
          throw new NotDesignatedReporterError(`validator ${r} reports ${ev.key} in epoch ${tx.epoch}, not ${tx.sender}`)
        }
        break
      }
      default:
        await this.verifier.check(this.chain, s, tx, now, options)
    }
  }

  /**
   * Adds a validator vote. Detects validator equivocation (two votes of one validator for one slot).
   * When the votes for a message reach the quorum, stores the certificate and returns it.
   */
  async addVote (signedTx: Uint8Array | LedgerTx, vote: VoteSigData): Promise<LedgerCertificate | undefined> {
    this.#assertOpen()
    const tx = signedTx instanceof Uint8Array ? parseSignedTx(this.chain, signedTx) : signedTx
    if (!verifyVote(this.chain, tx.id, vote)) {
      throw new InvalidSignatureError(`vote of validator ${vote.validator} does not verify`)
    }
    const slot = `${tx.sender}/${tx.sequence}`
    const n = this.chain.genesis.validators.length
    // each validator gets an equal share of both caps (count and bytes): its junk only ever evicts its own
    const maxSlots = Math.max(1, Math.floor(MAX_SLOT_VOTES / n))
    const maxVoting = Math.max(1, Math.floor(MAX_VOTING / n))
    const maxBytes = Math.max(1, Math.floor(this.#maxVoteBytes / n))
    let mine = this.#slotVotes.get(vote.validator)
    if (mine == null) {
      mine = { slots: new Map(), bytes: 0 }
      this.#slotVotes.set(vote.validator, mine)
    }
    const prev = mine.slots.get(slot)
    if (prev != null && prev.tx.idHex !== tx.idHex) {
      const evidence: Evidence = { kind: 'validator-equivocation', validator: vote.validator, a: prev.tx.signed, voteA: prev.sig, b: tx.signed, voteB: vote.signature }
      this.safeDispatchEvent('ponw-ledger:evidence', { detail: evidence })
    } else if (prev == null) {
      // bounded memory (count and bytes) per validator: its oldest slots are forgotten first (conflicts are
      // detected while both votes circulate)
      while (mine.slots.size > 0 && (mine.slots.size >= maxSlots || mine.bytes + tx.signed.byteLength > maxBytes)) {
        const [k, old] = mine.slots.entries().next().value!
        mine.slots.delete(k)
        mine.bytes -= old.tx.signed.byteLength
        this.#slotVotesBytes -= old.tx.signed.byteLength
      }
      mine.slots.set(slot, { tx, sig: vote.signature })
      mine.bytes += tx.signed.byteLength
      this.#slotVotesBytes += tx.signed.byteLength
    }
    if (this.state.known.has(tx.idHex)) {
      return undefined
    }
    let entry = this.#votes.get(tx.idHex)
    if (entry == null) {
      let part = this.#votesBy.get(vote.validator)
      if (part == null) {
        part = { ids: new Set(), bytes: 0 }
        this.#votesBy.set(vote.validator, part)
      }
      while (part.ids.size > 0 && (part.ids.size >= maxVoting || part.bytes + tx.signed.byteLength > maxBytes)) {
        this.#dropVoting(part.ids.values().next().value!)
      }
      entry = { tx, votes: new Map(), owner: vote.validator }
      this.#votes.set(tx.idHex, entry)
      part.ids.add(tx.idHex)
      part.bytes += tx.signed.byteLength
      this.#votesBytes += tx.signed.byteLength
    }
    entry.votes.set(vote.validator, vote.signature)
    if (!hasQuorum(this.chain, entry.votes.keys(), votingPowers(this.state))) {
      return undefined
    }
    const votes = [...entry.votes].map(([validator, signature]) => ({ validator, signature }))
    const bytes = encodeCertificate(tx, votes)
    const cert: LedgerCertificate = { tx, votes, bytes }
    await this.addCertificates([cert])
    return cert
  }

  /** The votes this node holds for a message that is not final yet */
  votesFor (id: string): VoteSigData[] {
    const e = this.#votes.get(id)
    return e == null ? [] : [...e.votes].map(([validator, signature]) => ({ validator, signature }))
  }

  /** True when this validator has recorded a vote for some message in the slot */
  async hasVotedSlot (sender: Address, sequence: bigint): Promise<boolean> {
    this.#assertOpen()
    return (await this.store.get(KEYS.voted(sender, sequence))) != null
  }

  #dropVoting (id: string): void {
    const e = this.#votes.get(id)
    if (e != null) {
      this.#votes.delete(id)
      this.#votesBytes -= e.tx.signed.byteLength
      const part = this.#votesBy.get(e.owner)
      if (part != null && part.ids.delete(id)) {
        part.bytes -= e.tx.signed.byteLength
      }
    }
  }

  /** Bytes of signed messages held to collect votes and to detect validator equivocation (bounded) */
  get voteMemoryBytes (): number {
    return this.#votesBytes + this.#slotVotesBytes
  }

  /** The epoch of this node's clock */
  currentEpoch (): bigint {
    return currentEpoch(this.chain, this.now())
  }

  /** Balance etc. of an address */
  account (address: Address): AccountState {
    return this.state.get(address)
  }

  balance (address: Address): bigint {
    return this.state.get(address).balance
  }

  stateHash (): string {
    return this.state.stateHash()
  }

  /** Transaction history of an address, oldest first (local application order) */
  async history (address: Address, options: { limit?: number } = {}): Promise<Outcome[]> {
    this.#assertOpen()
    const out: Outcome[] = []
    for await (const [k] of this.store.range(`h!${address}!`)) {
      const o = this.state.outcomes.get(k.slice(k.lastIndexOf('!') + 1))
      if (o != null) {
        out.push(o)
      }
    }
    out.sort((a, b) => a.index - b.index)
    return options.limit != null ? out.slice(-options.limit) : out
  }

  /** Rebuilds the state from the stored certificates alone, in storage (id) order */
  async rebuild (): Promise<LedgerState> {
    this.#assertOpen()
    let s = new LedgerState(this.chain)
    if (this.#base?.pruned === true) {
      // the history behind the checkpoint is gone: start from its (certified) snapshot
      s = stateFromSnapshot(this.chain, this.#base.snapshot, this.#base.snapshotHash)
      for (const [a, n] of this.#base.frontier) {
        s.floor.set(a, n)
      }
      s.indexOffset = this.state.indexOffset
    }
    const txs: LedgerTx[] = []
    for await (const [, v] of this.store.range('c!')) {
      txs.push(parseCertificate(this.chain, b64.dec(v), { verifySignature: false, verifyVotes: false }).tx)
    }
    s.addFinal(txs)
    return s
  }

  /** Throws StateMismatchError if the loaded state differs from a rebuild from the stored messages */
  async verifyStored (): Promise<void> {
    const rebuilt = await this.rebuild()
    if (rebuilt.canonical() !== this.state.canonical()) {
      throw new StateMismatchError('stored state differs from the rebuild from stored messages')
    }
  }

  // ---- certified checkpoints (specs/ponw-ledger/checkpoints.md) ----

  /** The certified checkpoint this ledger adopted or installed, if any */
  get checkpoint (): AdoptedCheckpoint | undefined {
    return this.#base
  }

  /** Final messages this node holds or has behind its checkpoint (its known set, pruned ones included) */
  get finalCount (): number {
    return this.state.known.size + (this.#base?.pruned === true ? Number(this.#base.height) : 0)
  }

  /** Final messages applied since the adopted checkpoint (since genesis without one) */
  appliedSinceCheckpoint (): bigint {
    return heightOf(this.state) - (this.#base?.height ?? 0n)
  }

  /** outside the lock */
  async #ensureSinceBase (): Promise<Map<string, { sender: Address, seq: bigint }>> {
    if (this.#sinceBase != null) {
      return this.#sinceBase
    }
    return this.#exclusive(async () => this.#sinceBaseLocked())
  }

  /** under the lock (so no certificate is stored while the index is built) */
  async #sinceBaseLocked (): Promise<Map<string, { sender: Address, seq: bigint }>> {
    if (this.#sinceBase == null) {
      const m = new Map<string, { sender: Address, seq: bigint }>()
      const f = this.#base?.frontier
      for await (const [, v] of this.store.range('c!')) {
        const tx = parseCertificate(this.chain, b64.dec(v), { verifySignature: false, verifyVotes: false }).tx
        if (tx.sequence >= (f?.get(tx.sender) ?? 0n)) {
          m.set(tx.idHex, { sender: tx.sender, seq: tx.sequence })
        }
      }
      this.#sinceBase ??= m
    }
    return this.#sinceBase
  }

  /**
   * A checkpoint of this node's current state: every final message it applied (those below each account's
   * next sequence). Undefined when nothing was applied since the adopted checkpoint, or when more than
   * MAX_CHECKPOINT_FRONTIER accounts moved (the vote would not fit a gossip message: propose more often).
   */
  proposeCheckpoint (): (CheckpointProposal & { snapshot: Snapshot }) | undefined {
    this.#assertOpen()
    const snapshot = snapshotOf(this.state)
    const baseHeight = this.#base?.height ?? 0n
    if (snapshot.height <= baseHeight) {
      return undefined
    }
    const bf = this.#base?.frontier
    const moved = new Map<Address, bigint>()
    for (const [a, n] of frontierOf(this.state)) {
      if (n > (bf?.get(a) ?? 0n)) {
        moved.set(a, n)
      }
    }
    if (moved.size > MAX_CHECKPOINT_FRONTIER) {
      return undefined
    }
    return { height: snapshot.height, snapshotHash: snapshot.hash, baseHeight, baseHash: this.#base?.snapshotHash ?? new Uint8Array(0), frontier: frontierEntries(moved), snapshot }
  }

  /**
   * Re-derives a proposed checkpoint from this node's own final messages: the base must be this node's
   * adopted checkpoint, and applying exactly the messages below the proposed frontier to the base's
   * snapshot must reach that frontier and give the proposed snapshot hash and height.
   * CheckpointMismatchError otherwise; CheckpointNotReadyError while messages below the frontier are missing.
   */
  async deriveCheckpoint (p: CheckpointProposal): Promise<{ state: LedgerState, snapshot: Snapshot }> {
    this.#assertOpen()
    const base = this.#base
    if (p.baseHeight !== (base?.height ?? 0n) || toHex(p.baseHash) !== toHex(base?.snapshotHash ?? new Uint8Array(0))) {
      throw new CheckpointMismatchError(`proposal extends checkpoint ${p.baseHeight}, this node is at ${base?.height ?? 0n}`)
    }
    if (p.frontier.length === 0 || p.frontier.length > MAX_CHECKPOINT_FRONTIER) {
      throw new CheckpointMismatchError('proposal frontier is empty or too large')
    }
    const bf = base?.frontier
    const target = new Map<Address, bigint>()
    let last = ''
    for (const e of p.frontier) {
      if (e.address <= last || e.nextSeq <= (bf?.get(e.address) ?? 0n)) {
        throw new CheckpointMismatchError('proposal frontier must be sorted, distinct and above its base')
      }
      last = e.address
      target.set(e.address, e.nextSeq)
    }
    const since = await this.#ensureSinceBase()
    const ids: string[] = []
    const have = new Map<Address, Set<bigint>>()
    for (const [id, { sender, seq }] of since) {
      const t = target.get(sender)
      if (t != null && seq < t) {
        ids.push(id)
        let h = have.get(sender)
        if (h == null) {
          h = new Set()
          have.set(sender, h)
        }
        h.add(seq)
      }
    }
    for (const [a, t] of target) {
      if ((have.get(a)?.size ?? 0) < Number(t - (bf?.get(a) ?? 0n))) {
        throw new CheckpointNotReadyError(`messages of ${a} below sequence ${t} are not all final here yet`)
      }
    }
    const txs = await this.#readStored(new Set(ids))
    if (txs.length < ids.length) {
      throw new CheckpointNotReadyError('certificates behind the frontier are gone')
    }
    const s = base == null ? new LedgerState(this.chain) : stateFromSnapshot(this.chain, base.snapshot, base.snapshotHash)
    s.addFinal(txs)
    for (const [a, t] of target) {
      if (s.get(a).nextSeq !== t) {
        throw new CheckpointMismatchError(`the messages of ${a} below ${t} do not all apply on their own`)
      }
    }
    const snapshot = snapshotOf(s)
    if (snapshot.height !== p.height || toHex(snapshot.hash) !== toHex(p.snapshotHash)) {
      throw new CheckpointMismatchError('this node\'s final messages give another snapshot at that frontier')
    }
    this.#derived = { key: `${toHex(p.baseHash)}/${p.height}/${toHex(p.snapshotHash)}`, state: s, snapshot }
    return { state: s, snapshot }
  }

  /** stored certificates' messages with these ids, in one pass over the certificates (not one read each) */
  async #readStored (ids: Set<string>): Promise<LedgerTx[]> {
    const out: LedgerTx[] = []
    if (ids.size === 0) {
      return out
    }
    for await (const [k, v] of this.store.range('c!')) {
      if (ids.has(k.slice(2))) {
        out.push(parseCertificate(this.chain, b64.dec(v), { verifySignature: false, verifyVotes: false }).tx)
      }
    }
    return out
  }

  /** Validator: re-derives the proposal ({@link deriveCheckpoint}) and signs it */
  async signCheckpoint (p: CheckpointProposal): Promise<VoteSigData> {
    if (this.validatorIndex == null || this.wallet == null) {
      throw new InvalidParametersError('this node is not a genesis validator')
    }
    await this.deriveCheckpoint(p)
    return signCheckpoint(this.chain, this.wallet, this.validatorIndex, p.height, p.snapshotHash)
  }

  /**
   * Adds a validator's checkpoint vote (InvalidSignatureError if it does not verify). When the votes for a
   * snapshot hold more than 2/3 of the genesis stake and of the current voting power, the checkpoint is
   * certified and this node adopts it as soon as it holds the messages behind it (pruning them with
   * `pruneOnCheckpoint`). Returns the certificate once certified.
   */
  async addCheckpointVote (p: CheckpointProposal, vote: VoteSigData): Promise<CheckpointCertificateData | undefined> {
    this.#assertOpen()
    if (!verifyCheckpointVote(this.chain, p.height, p.snapshotHash, vote)) {
      throw new InvalidSignatureError(`checkpoint vote of validator ${vote.validator} does not verify`)
    }
    if (p.height <= (this.#base?.height ?? 0n)) {
      return undefined
    }
    const key = `${p.height}/${toHex(p.snapshotHash)}`
    // partitioned per validator: each validator's votes count for at most its 2 newest checkpoints, so a
    // faulty validator voting for junk only ever drops its own older votes, never another validator's
    const mine = this.#ckBy.get(vote.validator) ?? []
    if (!mine.includes(key)) {
      while (mine.length >= 2) {
        const old = mine.shift()!
        const oe = this.#ckVotes.get(old)
        oe?.votes.delete(vote.validator)
        if (oe != null && oe.votes.size === 0) {
          this.#ckVotes.delete(old)
        }
      }
      mine.push(key)
      this.#ckBy.set(vote.validator, mine)
    }
    let e = this.#ckVotes.get(key)
    if (e == null) {
      e = { proposal: p, votes: new Map() }
      this.#ckVotes.set(key, e)
    }
    e.votes.set(vote.validator, vote.signature)
    if (!hasQuorum(this.chain, e.votes.keys()) || !hasQuorum(this.chain, e.votes.keys(), votingPowers(this.state))) {
      return undefined
    }
    const cert: CheckpointCertificateData = { height: p.height, snapshotHash: p.snapshotHash, votes: [...e.votes].map(([validator, signature]) => ({ validator, signature })).sort((a, b) => a.validator - b.validator) }
    this.#ckVotes.delete(key)
    for (const [v, keys] of this.#ckBy) {
      const i = keys.indexOf(key)
      if (i >= 0) keys.splice(i, 1)
      if (keys.length === 0) this.#ckBy.delete(v)
    }
    await this.#tryAdopt(e.proposal, cert)
    return cert
  }

  /** Validators whose votes for checkpoint (height, snapshot hash) this node holds while it is not certified */
  checkpointVoters (height: bigint, snapshotHash: Uint8Array): number[] {
    return [...(this.#ckVotes.get(`${height}/${toHex(snapshotHash)}`)?.votes.keys() ?? [])]
  }

  async #tryAdopt (p: CheckpointProposal, cert: CheckpointCertificateData): Promise<void> {
    if (cert.height <= (this.#base?.height ?? 0n) || !this.#open) {
      if (this.#ckPending?.cert === cert) this.#ckPending = undefined
      return
    }
    let derived: { state: LedgerState, snapshot: Snapshot }
    try {
      // a validator usually derived it a moment ago to sign it: reuse that (same base, same proposal)
      const key = `${toHex(p.baseHash)}/${p.height}/${toHex(p.snapshotHash)}`
      const cached = this.#derived
      derived = cached?.key === key && toHex(p.baseHash) === toHex(this.#base?.snapshotHash ?? new Uint8Array(0)) ? cached : await this.deriveCheckpoint(p)
    } catch (err: any) {
      if (err.name === 'CheckpointNotReadyError') {
        this.#ckPending = { proposal: p, cert }
        return
      }
      if (this.#ckPending?.cert === cert) this.#ckPending = undefined
      throw err
    }
    if (this.#ckPending?.cert === cert) this.#ckPending = undefined
    await this.#exclusive(async () => this.#adopt(cert, derived.state, derived.snapshot, false))
  }

  /** under the lock: records the checkpoint as the new base and (with pruning) forgets the history behind it */
  async #adopt (cert: CheckpointCertificateData, snapState: LedgerState, snapshot: Snapshot, installed: boolean): Promise<number> {
    if (cert.height <= (this.#base?.height ?? 0n)) {
      return 0
    }
    const frontier = frontierOf(snapState)
    const since = await this.#sinceBaseLocked()
    const behind: Array<[string, { sender: Address, seq: bigint }]> = []
    for (const e of since) {
      if (e[1].seq < (frontier.get(e[1].sender) ?? 0n)) {
        behind.push(e)
      }
    }
    const certBytes = encodeCheckpointCertificate(cert)
    const ops: Op[] = [
      { type: 'put', key: KEYS.checkpoint, value: b64.enc(certBytes) },
      { type: 'put', key: KEYS.snapshot, value: new TextDecoder().decode(snapshot.bytes) }
    ]
    let pruned = 0
    if (this.#prune) {
      const gone = new Set(behind.map(([id]) => id))
      const withdraws = new Map<Address, bigint>()
      for (const [id, { sender, seq }] of behind) {
        ops.push({ type: 'del', key: KEYS.cert(id) }, { type: 'del', key: KEYS.outcome(id) }, { type: 'del', key: KEYS.voted(sender, seq) })
        const o = this.state.outcomes.get(id)
        for (const a of new Set([sender, ...Object.keys(o?.deltas ?? {})])) {
          ops.push({ type: 'del', key: KEYS.history(a, id) })
        }
        if (o?.kind === 'withdraw' && o.status === 'applied' && seq > (withdraws.get(sender) ?? -1n)) {
          withdraws.set(sender, seq)
        }
        if (sender === this.wallet?.address) {
          ops.push({ type: 'del', key: KEYS.own(seq) })
        }
      }
      for (const [a, seq] of withdraws) {
        const prev = await this.store.get(KEYS.withdrawFinal(a))
        if (prev == null || BigInt(prev) < seq) {
          ops.push({ type: 'put', key: KEYS.withdrawFinal(a), value: seq.toString() })
        }
      }
      for await (const [k, id] of this.store.range('l!')) {
        if (gone.has(id)) {
          ops.push({ type: 'del', key: k })
        }
      }
      for (const id of gone) {
        if (this.state.outcomes.has(id)) {
          pruned++
        }
      }
      ops.push({ type: 'put', key: KEYS.pruned, value: '1' })
      ops.push({ type: 'put', key: KEYS.meta, value: toJSON({ logLength: this.#logLength, totals: this.state.totals, indexOffset: this.state.indexOffset + pruned } satisfies Meta) })
    }
    // one atomic batch; memory follows only once it is on disk
    await this.store.batch(ops, true)
    if (this.#prune) {
      for (const [id] of behind) {
        this.state.outcomes.delete(id)
        this.state.known.delete(id)
      }
      this.state.indexOffset += pruned
      this.state.floor.clear()
      for (const [a, n] of frontier) {
        this.state.floor.set(a, n)
      }
    }
    for (const [id] of behind) {
      since.delete(id)
    }
    this.#derived = undefined
    this.#base = { height: cert.height, snapshotHash: cert.snapshotHash, certificate: certBytes, snapshot: snapshot.bytes, frontier, pruned: this.#prune || installed || this.#base?.pruned === true }
    log('adopted checkpoint %s at height %d, pruned %d messages', toHex(cert.snapshotHash), cert.height, behind.length)
    this.safeDispatchEvent('ponw-ledger:checkpoint', { detail: { height: cert.height, snapshotHash: toHex(cert.snapshotHash), pruned: this.#prune ? behind.length : 0, installed } })
    return behind.length
  }

  /**
   * Starts this ledger from a certified checkpoint a peer offered instead of replaying history: verifies the
   * certificate and the snapshot ({@link verifyCheckpoint}: InvalidCheckpointError, InvalidSignatureError,
   * InsufficientQuorumError), refuses one that is not newer than this node's checkpoint or behind this
   * node's own state for some account (CheckpointConflictError), then replaces the state with the snapshot
   * plus this node's final messages above its frontier, in one atomic batch. History behind it is gone here.
   */
  async installCheckpoint (certificate: Uint8Array, snapshot: Uint8Array): Promise<void> {
    this.#assertOpen()
    const { certificate: cert, state: snap } = verifyCheckpoint(this.chain, certificate, snapshot)
    await this.#exclusive(async () => {
      if (cert.height <= (this.#base?.height ?? 0n)) {
        throw new CheckpointConflictError(`checkpoint ${cert.height} is not newer than this node's (${this.#base?.height ?? 0n})`)
      }
      for (const [a, acc] of this.state.accounts) {
        if (acc.nextSeq > snap.get(a).nextSeq) {
          throw new CheckpointConflictError(`this node is ahead of the checkpoint for ${a}`)
        }
      }
      const frontier = frontierOf(snap)
      const since = await this.#sinceBaseLocked()
      const want = new Set<string>()
      for (const [id, { sender, seq }] of since) {
        if (seq >= (frontier.get(sender) ?? 0n)) {
          want.add(id)
        }
      }
      const keep = await this.#readStored(want)
      const s = stateFromSnapshot(this.chain, snapshot, cert.snapshotHash)
      for (const [a, n] of frontier) {
        s.floor.set(a, n)
      }
      s.indexOffset = this.state.outcomes.size + this.state.indexOffset
      s.addFinal(keep)
      const kept = new Set(keep.map(t => t.idHex))
      const ops: Op[] = []
      for (const prefix of ['a!', 'k!', 'o!', 'h!']) {
        for await (const [k] of this.store.range(prefix)) {
          ops.push({ type: 'del', key: k })
        }
      }
      for await (const [k, id] of this.store.range('l!')) {
        if (!kept.has(id)) {
          ops.push({ type: 'del', key: k }, { type: 'del', key: KEYS.cert(id) })
        }
      }
      for (const [a, acc] of s.accounts) {
        ops.push({ type: 'put', key: KEYS.account(a), value: toJSON(acc) })
      }
      for (const k of s.proofKeys) {
        ops.push({ type: 'put', key: KEYS.proofKey(k), value: '1' })
      }
      for (const o of s.outcomes.values()) {
        ops.push({ type: 'put', key: KEYS.outcome(o.id), value: toJSON(o) })
        for (const a of new Set([o.sender, ...Object.keys(o.deltas)])) {
          ops.push({ type: 'put', key: KEYS.history(a, o.id), value: '1' })
        }
      }
      ops.push({ type: 'put', key: KEYS.pruned, value: '1' })
      ops.push({ type: 'put', key: KEYS.meta, value: toJSON({ logLength: this.#logLength, totals: s.totals, indexOffset: s.indexOffset } satisfies Meta) })
      const certBytes = encodeCheckpointCertificate(cert)
      ops.push({ type: 'put', key: KEYS.checkpoint, value: b64.enc(certBytes) }, { type: 'put', key: KEYS.snapshot, value: new TextDecoder().decode(snapshot) })
      await this.store.batch(ops, true)
      this.state = s
      this.#sinceBase = new Map(keep.map(t => [t.idHex, { sender: t.sender, seq: t.sequence }]))
      this.#base = { height: cert.height, snapshotHash: cert.snapshotHash, certificate: certBytes, snapshot: Uint8Array.from(snapshot), frontier, pruned: true }
      log('installed checkpoint %s at height %d', toHex(cert.snapshotHash), cert.height)
      this.safeDispatchEvent('ponw-ledger:checkpoint', { detail: { height: cert.height, snapshotHash: toHex(cert.snapshotHash), pruned: 0, installed: true } })
    })
  }
}

