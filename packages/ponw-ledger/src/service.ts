import { pbStream } from '@libp2p/utils'
import { MalformedMessageError, MessageTooLargeError, NotStartedError, TimeoutError } from '@neuroshard/interface'
import { TypedEventEmitter } from 'main-event'
import { DEFAULT_SYNC_IDLE_TIMEOUT_MS, DEFAULT_MAX_GOSSIP_BYTES, DEFAULT_MAX_INBOUND_SYNC_STREAMS, DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_PER_SENDER, DEFAULT_MAX_REPORTED, DEFAULT_MAX_SYNC_RESPONSE_BYTES, DEFAULT_PUBSUB_SERVICE, DEFAULT_REPORT_BACKOFF_MS, DEFAULT_SYNC_PAGE_SIZE, DEFAULT_SYNC_TIMEOUT_MS, LEDGER_TOPIC, REPORT_EPOCHS, SYNC_PROTOCOL, DATA_CHALLENGE_PROTOCOL, DEFAULT_MAX_DATA_ANSWER_BYTES, DEFAULT_MAX_WEIGHTS_BYTES, POL_WEIGHTS_PROTOCOL, CHECKPOINT_PROTOCOL, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_MAX_SNAPSHOT_BYTES, MAX_CHECKPOINT_FRONTIER } from './constants.js'
import { Ledger } from './ledger.js'
import { digest, fromHex, toHex } from './keys.js'
import { buildTx, parseSignedTx } from './messages.js'
import { checkSlashReport, designatedReporter as designated, penaltyOf, reporterFor } from './state.js'
import { parseCheckpointCertificate } from './checkpoint.js'
import { checkSyncPage, syncServedTooMuch } from './sync.js'
import type { CheckpointProposal } from './checkpoint.js'

export { designatedReporter } from './state.js'
import { Certificate as CertificateCodec, CheckpointOffer, CheckpointRequest, SnapshotChunk, DataChallengeRequest, DataChallengeResponse, GossipMessage, SyncRequest, SyncResponse, WeightsChunk, WeightsRequest } from './pb/ledger.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { DataChallengeError, InvalidCheckpointError, ReExecutionMismatchError } from './errors.js'
import type { Chain, GenesisConfig } from './genesis.js'
import type { IdentityBinding, Wallet } from './keys.js'
import type { HeartbeatTracker, PeerBindings } from './uptime.js'
import type { LedgerEvents } from './ledger.js'
import type { Evidence, LedgerCertificate, LedgerTx, TxBody, VoteSigData } from './messages.js'
import type { SignatureVerifierPool } from './verify-pool.js'
import type { DataChallenge, DataChallengeAnswer, ProofVerifier } from './verify.js'
import type { AbortOptions, ComponentLogger, Connection, Logger, PeerId, Startable, Stream, TypedEventTarget, Libp2pEvents, StreamHandler } from '@libp2p/interface'

export interface PonwLedgerInit {
  /** the chain's genesis (required) */
  genesis: GenesisConfig | Chain
  /** level database directory (required) */
  path: string
  /** this node's ledger wallet (a genesis validator key makes the node vote) */
  wallet?: Wallet
  /** proof checks before voting (re-execution) */
  verifier?: ProofVerifier
  /** verify synced certificate pages in worker threads */
  verifierPool?: SignatureVerifierPool
  /** clock @default Date.now */
  now?: () => number
  /** @default LEDGER_TOPIC */
  topic?: string
  /** @default SYNC_PROTOCOL */
  syncProtocol?: string
  /** @default DEFAULT_PUBSUB_SERVICE */
  pubsubService?: string
  /** @default DEFAULT_SYNC_TIMEOUT_MS */
  syncTimeoutMs?: number
  /** @default DEFAULT_SYNC_IDLE_TIMEOUT_MS */
  syncIdleTimeoutMs?: number
  /** @default DEFAULT_MAX_SYNC_RESPONSE_BYTES */
  maxSyncResponseBytes?: number
  /** @default DEFAULT_SYNC_PAGE_SIZE */
  syncPageSize?: number
  /** sync from every newly connected peer @default true */
  syncOnConnect?: boolean
  /** @default DEFAULT_MAX_GOSSIP_BYTES */
  maxGossipBytes?: number
  /**
   * when evidence is seen and this node is a validator, submit the slash report if it is this validator's
   * turn (see reportBackoffMs) @default true
   */
  autoReport?: boolean
  /** @default DEFAULT_REPORT_BACKOFF_MS */
  reportBackoffMs?: number
  /** @default DEFAULT_MAX_PENDING */
  maxPending?: number
  /** @default DEFAULT_MAX_PENDING_PER_SENDER */
  maxPendingPerSender?: number
  /** @default DEFAULT_MAX_VOTE_MEMORY_BYTES */
  maxVoteMemoryBytes?: number
  /**
   * Heartbeats on the ledger topic (uptime attestation). With `tracker` and `bindings`, every heartbeat whose
   * gossipsub-signed source is the peer its binding names is verified, its binding recorded and the beat
   * recorded in the tracker (give the same two to a `HeartbeatUptimeVerifier`). With `binding` (this node's
   * wallet bound to its own peer id), the node publishes a heartbeat every `intervalMs`
   * (@default heartbeatSeconds · 1000).
   */
  heartbeat?: { tracker?: HeartbeatTracker, bindings?: PeerBindings, binding?: IdentityBinding, intervalMs?: number }
  /**
   * Prover side of data-possession challenges: opens leaf `index` of shard `shardId` of this node's data
   * (`{ sample, path: dataMerkleProof(...) }`), undefined if it does not hold it. With it the node answers
   * `DATA_CHALLENGE_PROTOCOL` streams.
   */
  dataProver?: (shardId: number, index: number) => DataChallengeAnswer | undefined | Promise<DataChallengeAnswer | undefined>
  /**
   * Prover side of Proof-of-Learning: the serialized weights this node committed to in its training proof
   * `proofId` at `checkpoint` (0 = base, the last = final), undefined if unknown. With it the node answers
   * `POL_WEIGHTS_PROTOCOL` streams.
   */
  trainingProver?: (proofId: string, checkpoint: number) => Uint8Array | undefined | Promise<Uint8Array | undefined>
  /**
   * Certified checkpoints (specs/ponw-ledger/checkpoints.md). `interval`: final messages applied since the
   * last checkpoint before the validator designated for (base, epoch) proposes the next (0: never propose;
   * votes for others' proposals are still given) @default DEFAULT_CHECKPOINT_INTERVAL. `prune`: forget the
   * history behind each adopted checkpoint @default false. `sync`: a node with an empty ledger first asks a
   * peer for its newest certified checkpoint over CHECKPOINT_PROTOCOL and starts from it @default true.
   * `maxSnapshotBytes` @default DEFAULT_MAX_SNAPSHOT_BYTES.
   */
  checkpoint?: { interval?: number, prune?: boolean, sync?: boolean, maxSnapshotBytes?: number }
}

/** The parts of libp2p's registrar and connection manager this service uses */
export interface PonwLedgerComponents {
  registrar: {
    handle(protocol: string, handler: StreamHandler, options?: { maxInboundStreams?: number }): Promise<void>
    unhandle(protocol: string): Promise<void>
  }
  connectionManager: {
    openStream(peer: PeerId, protocol: string, options?: AbortOptions): Promise<Stream>
  }
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

export interface PonwLedgerEvents extends LedgerEvents {
  /** a sync with a peer finished */
  'ponw-ledger:synced': CustomEvent<{ peer: PeerId, added: number }>
  /** a verified heartbeat of a bound peer was recorded */
  'ponw-ledger:heartbeat': CustomEvent<{ peer: string, atMs: number }>
}

/** The ledger as a libp2p service */
export interface PonwLedger extends TypedEventTarget<PonwLedgerEvents>, Startable {
  /** the underlying ledger (state, storage, queries); available after start() */
  readonly ledger: Ledger
  /** signs `body` with the node wallet at its next sequence and submits it */
  send(body: TxBody, options?: AbortOptions): Promise<LedgerTx>
  /** gossips a signed message (and votes on it when this node is a validator) */
  submit(tx: LedgerTx | Uint8Array, options?: AbortOptions): Promise<void>
  /** pulls every final message a peer has that this node lacks; returns how many were new */
  syncWith(peer: PeerId, options?: AbortOptions): Promise<number>
  /**
   * handles one message of the ledger topic as if gossipsub delivered it from `from` (what the topic listener
   * does); rejects with a typed error for anything invalid, which then has no effect
   */
  handleGossip(data: Uint8Array, from?: string): Promise<void>
  /**
   * Validator side of a data-possession challenge (a `DataChallenger` for `ShardManifestVerifier`): asks the
   * libp2p peer the proof's sender is bound to (`heartbeat.bindings`) over `DATA_CHALLENGE_PROTOCOL`
   */
  challengeData(challenge: DataChallenge, options: AbortOptions): Promise<DataChallengeAnswer[]>
  /**
   * Validator side of Proof-of-Learning: fetches the serialized weights of `checkpoint` of training proof
   * `proofId` from the peer `sender` is bound to (`heartbeat.bindings`), at most `maxBytes`
   * (@default DEFAULT_MAX_WEIGHTS_BYTES); decode them for a `TrainingWitness` (see `networkWitness`)
   */
  fetchWeights(sender: string, proofId: string, checkpoint: number, options: AbortOptions & { maxBytes?: number }): Promise<Uint8Array>
  /**
   * Asks `peer` for its newest certified checkpoint over CHECKPOINT_PROTOCOL: the certificate is verified
   * before the snapshot is downloaded (at most `maxSnapshotBytes`). Undefined when the peer has none.
   */
  fetchCheckpoint(peer: PeerId, options?: AbortOptions & { minHeight?: bigint }): Promise<{ certificate: Uint8Array, snapshot: Uint8Array } | undefined>
  /**
   * Starts this ledger from `peer`'s newest certified checkpoint ({@link fetchCheckpoint} then
   * `Ledger.installCheckpoint`); returns its height, or undefined when the peer had none newer. Typed errors
   * for a forged or invalid checkpoint (InvalidCheckpointError, InvalidSignatureError, InsufficientQuorumError).
   */
  syncCheckpoint(peer: PeerId, options?: AbortOptions): Promise<bigint | undefined>
}

/** gossipsub's message event: `from` is set (and signed) for signed messages */
interface GossipDetail { topic: string, data: Uint8Array, type?: string, from?: PeerId }

interface PubSubLike {
  subscribe(topic: string): void
  unsubscribe(topic: string): void
  publish(topic: string, data: Uint8Array): Promise<unknown>
  addEventListener(type: 'message', fn: (evt: CustomEvent<GossipDetail>) => void): void
  removeEventListener(type: 'message', fn: (evt: CustomEvent<GossipDetail>) => void): void
}

class PonwLedgerService extends TypedEventEmitter<PonwLedgerEvents> implements PonwLedger {
  readonly #c: PonwLedgerComponents
  readonly #init: PonwLedgerInit
  readonly #log: Logger
  readonly #topic: string
  readonly #protocol: string
  #ledger?: Ledger
  #pubsub?: PubSubLike
  #started = false
  /** messages a validator could not vote on yet (sequence gap, funds on the way) */
  readonly #pending = new Map<string, LedgerTx>()
  /** pending message ids per sender (each sender holds at most maxPendingPerSender of the queue) */
  readonly #pendingBy = new Map<string, Set<string>>()
  /** evidence keys (one per offender) this node has handled */
  readonly #reported = new Set<string>()
  readonly #reportTimers = new Set<ReturnType<typeof setTimeout>>()
  /** per-peer position in its sync log */
  readonly #cursor = new Map<string, number>()
  readonly #syncing = new Map<string, Promise<number>>()
  #retrying = false
  #heartbeatTimer?: ReturnType<typeof setInterval>
  /** checkpoints this validator signed (height/hash), bounded */
  readonly #ckSigned = new Set<string>()
  /** (base height @ epoch) this validator proposed for */
  #ckProposedFor?: string
  /** a proposal this validator could not re-derive yet (messages missing): retried as messages arrive */
  #ckToSign?: CheckpointProposal
  #ckBusy = false
  /** outcomes since the checkpoint duties last looked */
  #ckOutcomes = 0
  /** derivations run per (designated proposer @ epoch) */
  readonly #ckDerivations = new Map<string, number>()

  constructor (components: PonwLedgerComponents, init: PonwLedgerInit) {
    super()
    this.#c = components
    this.#init = init
    this.#log = components.logger.forComponent('neuroshard:ponw-ledger:service')
    this.#topic = init.topic ?? LEDGER_TOPIC
    this.#protocol = init.syncProtocol ?? SYNC_PROTOCOL
  }

  readonly [Symbol.toStringTag] = '@neuroshard/ponw-ledger'

  get ledger (): Ledger {
    if (this.#ledger == null) {
      throw new NotStartedError('ponw-ledger is not started')
    }
    return this.#ledger
  }

  async start (): Promise<void> {
    if (this.#started) {
      return
    }
    const ledger = await Ledger.open({ genesis: this.#init.genesis, path: this.#init.path, wallet: this.#init.wallet, verifier: this.#init.verifier, verifierPool: this.#init.verifierPool, now: this.#init.now, maxVoteMemoryBytes: this.#init.maxVoteMemoryBytes, pruneOnCheckpoint: this.#init.checkpoint?.prune === true })
    this.#ledger = ledger
    for (const type of ['ponw-ledger:final', 'ponw-ledger:outcome', 'ponw-ledger:evidence', 'ponw-ledger:checkpoint'] as const) {
      ledger.addEventListener(type, (evt: any) => this.safeDispatchEvent(type, { detail: evt.detail }))
    }
    ledger.addEventListener('ponw-ledger:evidence', this.#onEvidence)
    ledger.addEventListener('ponw-ledger:outcome', this.#onOutcome)
    await this.#c.registrar.handle(this.#protocol, this.#onSyncStream, { maxInboundStreams: DEFAULT_MAX_INBOUND_SYNC_STREAMS })
    await this.#c.registrar.handle(CHECKPOINT_PROTOCOL, this.#onCheckpointStream, { maxInboundStreams: DEFAULT_MAX_INBOUND_SYNC_STREAMS })
    if (this.#init.dataProver != null) {
      await this.#c.registrar.handle(DATA_CHALLENGE_PROTOCOL, this.#onDataChallenge, { maxInboundStreams: DEFAULT_MAX_INBOUND_SYNC_STREAMS })
    }
    if (this.#init.trainingProver != null) {
      await this.#c.registrar.handle(POL_WEIGHTS_PROTOCOL, this.#onWeights, { maxInboundStreams: DEFAULT_MAX_INBOUND_SYNC_STREAMS })
    }
    const pubsub = (this.#c as any)[this.#init.pubsubService ?? DEFAULT_PUBSUB_SERVICE] as PubSubLike | undefined
    if (pubsub == null) {
      throw new NotStartedError(`the ponw-ledger service needs gossipsub as the "${this.#init.pubsubService ?? DEFAULT_PUBSUB_SERVICE}" service`)
    }
    this.#pubsub = pubsub
    pubsub.addEventListener('message', this.#onGossip)
    pubsub.subscribe(this.#topic)
    this.#c.events.addEventListener('peer:connect', this.#onConnect)
    this.#started = true
    const hb = this.#init.heartbeat
    if (hb?.binding != null) {
      const b = hb.binding
      const msg = GossipMessage.encode({ heartbeat: { peerId: b.peerId, walletPublicKey: fromHex(b.walletPublicKey), issuedAtMs: BigInt(b.issuedAtMs), walletSignature: fromHex(b.walletSignature), peerSignature: fromHex(b.peerSignature) } })
      const beat = (): void => { this.#publish(msg).catch(() => {}) }
      this.#heartbeatTimer = setInterval(beat, hb.intervalMs ?? ledger.chain.genesis.params.heartbeatSeconds * 1000)
      beat()
    }
  }

  async stop (): Promise<void> {
    if (!this.#started) {
      return
    }
    this.#started = false
    clearInterval(this.#heartbeatTimer)
    this.#heartbeatTimer = undefined
    this.#c.events.removeEventListener('peer:connect', this.#onConnect)
    this.#pubsub?.removeEventListener('message', this.#onGossip)
    try {
      this.#pubsub?.unsubscribe(this.#topic)
    } catch {}
    await this.#c.registrar.unhandle(this.#protocol)
    await this.#c.registrar.unhandle(CHECKPOINT_PROTOCOL)
    if (this.#init.dataProver != null) {
      await this.#c.registrar.unhandle(DATA_CHALLENGE_PROTOCOL)
    }
    if (this.#init.trainingProver != null) {
      await this.#c.registrar.unhandle(POL_WEIGHTS_PROTOCOL)
    }
    this.#reportTimers.forEach(t => { clearTimeout(t) })
    this.#reportTimers.clear()
    await Promise.allSettled(this.#syncing.values())
    await this.#ledger?.close()
    this.#pending.clear()
    this.#pendingBy.clear()
  }

  async send (body: TxBody, options?: AbortOptions): Promise<LedgerTx> {
    const tx = this.ledger.createTx(body)
    // durable before it leaves the node: a restart must not sign another message for this sequence
    await this.ledger.recordOwn(tx)
    await this.submit(tx, options)
    return tx
  }

  async submit (tx: LedgerTx | Uint8Array, options?: AbortOptions): Promise<void> {
    const parsed = tx instanceof Uint8Array ? parseSignedTx(this.ledger.chain, tx) : tx
    await this.#publish(GossipMessage.encode({ signedTx: Uint8Array.from(parsed.signed) }))
    await this.#handleTx(parsed, options)
  }

  async #publish (data: Uint8Array): Promise<void> {
    if (!this.#started || this.#pubsub == null) {
      return
    }
    try {
      await this.#pubsub.publish(this.#topic, data)
    } catch (err: any) {
      // no peers subscribed yet: sync will carry the final messages later
      this.#log('publish failed - %s', err.message)
    }
  }

  /** validator: vote and gossip the vote; everyone: nothing else to do for a bare message */
  async #handleTx (tx: LedgerTx, options?: AbortOptions): Promise<void> {
    const ledger = this.ledger
    if (ledger.validatorIndex == null || ledger.state.known.has(tx.idHex)) {
      return
    }
    let vote: VoteSigData
    try {
      vote = await ledger.vote(tx, options)
    } catch (err: any) {
      if (err.name === 'SequenceGapError' || err.name === 'InsufficientFundsError') {
        this.#addPending(tx)
      } else {
        this.#log('not voting for %s - %s', tx.idHex, err.message)
      }
      return
    }
    this.#dropPending(tx)
    await this.#publish(GossipMessage.encode({ vote: { signedTx: Uint8Array.from(tx.signed), vote: { validator: vote.validator, signature: Uint8Array.from(vote.signature) } } }))
    await this.#handleVote(tx, vote)
  }

  /**
   * Keeps a message a validator cannot vote on yet. Bounded per sender and in total; when full, an expired
   * message (epoch outside the window) or one of a sender holding nothing (no balance, no stake: free to
   * create) is evicted first, and a sender holding nothing can evict only such messages, so unfunded keys
   * cannot push out the waiting messages of funded ones.
   */
  #addPending (tx: LedgerTx): void {
    if (this.#pending.has(tx.idHex)) {
      return
    }
    const ledger = this.ledger
    const mine = this.#pendingBy.get(tx.sender)
    if ((mine?.size ?? 0) >= (this.#init.maxPendingPerSender ?? DEFAULT_MAX_PENDING_PER_SENDER)) {
      return
    }
    const max = this.#init.maxPending ?? DEFAULT_MAX_PENDING
    if (this.#pending.size >= max) {
      const epoch = ledger.currentEpoch()
      const w = BigInt(ledger.chain.genesis.params.epochWindow)
      const unfunded = (sender: string): boolean => {
        const a = ledger.state.get(sender)
        return a.balance === 0n && a.bonded === 0n
      }
      let victim: LedgerTx | undefined
      for (const t of this.#pending.values()) {
        if (t.epoch + w < epoch) {
          victim = t
          break
        }
        if (victim == null && unfunded(t.sender)) {
          victim = t
        }
      }
      if (victim == null && !unfunded(tx.sender)) {
        victim = this.#pending.values().next().value
      }
      if (victim == null) {
        return
      }
      this.#dropPending(victim)
    }
    this.#pending.set(tx.idHex, tx)
    let set = this.#pendingBy.get(tx.sender)
    if (set == null) {
      set = new Set()
      this.#pendingBy.set(tx.sender, set)
    }
    set.add(tx.idHex)
  }

  #dropPending (tx: LedgerTx): void {
    if (this.#pending.delete(tx.idHex)) {
      const set = this.#pendingBy.get(tx.sender)
      set?.delete(tx.idHex)
      if (set?.size === 0) {
        this.#pendingBy.delete(tx.sender)
      }
    }
  }

  async #handleVote (tx: LedgerTx, vote: VoteSigData): Promise<void> {
    const cert = await this.ledger.addVote(tx, vote)
    if (cert != null) {
      await this.#publishCert(cert)
      return
    }
    await this.#catchUp(tx)
  }

  /**
   * Catch-up (spec §6.1): a validator that has not voted for an expired message for its sender's next slot
   * votes once it holds votes for it of at least a third of the voting power, so a message that reached a
   * third of the votes before it expired (its sender re-gossips it, the earlier voters vote again) completes
   * instead of stranding the slot. Only for expired messages, only once per slot (the vote is recorded).
   */
  async #catchUp (tx: LedgerTx): Promise<void> {
    const ledger = this.ledger
    if (ledger.validatorIndex == null || ledger.state.known.has(tx.idHex)) {
      return
    }
    const w = BigInt(ledger.chain.genesis.params.epochWindow)
    if (tx.epoch + w >= ledger.currentEpoch() || ledger.state.get(tx.sender).nextSeq !== tx.sequence || await ledger.hasVotedSlot(tx.sender, tx.sequence)) {
      return
    }
    const endorsements = ledger.votesFor(tx.idHex)
    let vote: VoteSigData
    try {
      vote = await ledger.vote(tx, { endorsements })
    } catch {
      return
    }
    await this.#publish(GossipMessage.encode({ vote: { signedTx: Uint8Array.from(tx.signed), vote: { validator: vote.validator, signature: Uint8Array.from(vote.signature) } } }))
    const cert = await ledger.addVote(tx, vote)
    if (cert != null) {
      await this.#publishCert(cert)
    }
  }

  async #publishCert (cert: LedgerCertificate): Promise<void> {
    // canonical: votes sorted by validator (receivers refuse any other order)
    const votes = [...cert.votes].sort((x, y) => x.validator - y.validator)
    await this.#publish(GossipMessage.encode({ certificate: { signedTx: Uint8Array.from(cert.tx.signed), votes: votes.map(v => ({ validator: v.validator, signature: Uint8Array.from(v.signature) })) } }))
  }

  readonly #onGossip = (evt: CustomEvent<GossipDetail>): void => {
    if (evt.detail.topic !== this.#topic || !this.#started) {
      return
    }
    this.#handleGossip(evt.detail.data, evt.detail.from?.toString()).catch(err => {
      this.#log('dropped gossip message - %s: %s', err.name, err.message)
    })
  }

  async handleGossip (data: Uint8Array, from?: string): Promise<void> {
    return this.#handleGossip(data, from)
  }

  async #handleGossip (data: Uint8Array, from?: string): Promise<void> {
    if (data.byteLength > (this.#init.maxGossipBytes ?? DEFAULT_MAX_GOSSIP_BYTES)) {
      throw new MessageTooLargeError(`gossip message of ${data.byteLength} bytes`)
    }
    let m: GossipMessage
    try {
      m = GossipMessage.decode(data)
    } catch (err: any) {
      throw new MalformedMessageError(err.message)
    }
    const ledger = this.ledger
    if (m.certificate != null) {
      await ledger.addCertificates([encodeCert(m.certificate)])
    } else if (m.vote != null && m.vote.vote != null) {
      const tx = parseSignedTx(ledger.chain, m.vote.signedTx)
      await this.#handleVote(tx, m.vote.vote)
    } else if (m.signedTx != null && m.signedTx.byteLength > 0) {
      await this.#handleTx(parseSignedTx(ledger.chain, m.signedTx))
    } else if (m.heartbeat != null) {
      await this.#handleHeartbeat(m.heartbeat, from)
    } else if (m.checkpointVote != null) {
      await this.#handleCheckpointVote(m.checkpointVote)
    }
  }

  /** a checkpoint vote: counted; a validator that has not signed it re-derives it and adds its own vote */
  async #handleCheckpointVote (cv: NonNullable<GossipMessage['checkpointVote']>): Promise<void> {
    if (cv.vote == null || cv.snapshotHash.byteLength !== 32 || (cv.baseHash.byteLength !== 0 && cv.baseHash.byteLength !== 32) || cv.frontier.length > MAX_CHECKPOINT_FRONTIER) {
      throw new InvalidCheckpointError('malformed checkpoint vote')
    }
    const p: CheckpointProposal = {
      height: cv.height,
      snapshotHash: cv.snapshotHash,
      baseHeight: cv.baseHeight,
      baseHash: cv.baseHash,
      frontier: cv.frontier.map(e => {
        if (e.address.byteLength !== 20) {
          throw new InvalidCheckpointError('frontier address must be 20 bytes')
        }
        return { address: toHex(e.address), nextSeq: e.nextSequence }
      })
    }
    await this.ledger.addCheckpointVote(p, { validator: cv.vote.validator, signature: cv.vote.signature })
    await this.#signCheckpoint(p)
  }

  async #signCheckpoint (p: CheckpointProposal, own = false): Promise<void> {
    const ledger = this.ledger
    const key = `${p.height}/${toHex(p.snapshotHash)}`
    if (ledger.validatorIndex == null || this.#ckSigned.has(key) || p.height <= (ledger.checkpoint?.height ?? 0n)) {
      return
    }
    // deriving costs a replay of the messages since the base: only for a proposal the designated proposer of
    // this epoch (or the last) voted for, and at most MAX_DERIVATIONS per proposer and epoch, so a faulty
    // validator cannot make the others replay at will
    const epoch = ledger.currentEpoch()
    const voters = ledger.checkpointVoters(p.height, p.snapshotHash)
    const epochs = epoch > 0n ? [epoch, epoch - 1n] : [epoch]
    const proposer = own ? ledger.validatorIndex : epochs.map(e => designated(ledger.chain, `checkpoint/${p.baseHeight}`, e)).find(i => voters.includes(i))
    if (proposer == null) {
      this.#log('not deriving checkpoint %s: no vote of its designated proposer', key)
      return
    }
    const budget = `${proposer}@${epoch}`
    const used = this.#ckDerivations.get(budget) ?? 0
    if (used >= MAX_DERIVATIONS) {
      return
    }
    const spend = (): void => {
      if (this.#ckDerivations.size >= 64) this.#ckDerivations.delete(this.#ckDerivations.keys().next().value!)
      this.#ckDerivations.set(budget, used + 1)
    }
    let vote: VoteSigData
    try {
      vote = await ledger.signCheckpoint(p)
      spend()
    } catch (err: any) {
      // waiting for messages costs no replay (it stops at the missing slots): only a full derivation spends
      if (err.name === 'CheckpointNotReadyError') {
        this.#ckToSign = p
      } else {
        spend()
      }
      this.#log('not signing checkpoint %s - %s', key, err.message)
      return
    }
    if (this.#ckToSign === p) {
      this.#ckToSign = undefined
    }
    if (this.#ckSigned.size >= 64) {
      this.#ckSigned.delete(this.#ckSigned.values().next().value!)
    }
    this.#ckSigned.add(key)
    await this.#publishCheckpointVote(p, vote)
    await ledger.addCheckpointVote(p, vote)
  }

  async #publishCheckpointVote (p: CheckpointProposal, vote: VoteSigData): Promise<void> {
    await this.#publish(GossipMessage.encode({
      checkpointVote: {
        height: p.height,
        snapshotHash: Uint8Array.from(p.snapshotHash),
        baseHeight: p.baseHeight,
        baseHash: Uint8Array.from(p.baseHash),
        frontier: p.frontier.map(e => ({ address: fromHex(e.address), nextSequence: e.nextSeq })),
        vote: { validator: vote.validator, signature: Uint8Array.from(vote.signature) }
      }
    }))
  }

  /**
   * Checkpoint duties after final messages applied: retry a proposal that could not be re-derived yet, and
   * propose when this validator is the one designated for (base height, epoch) and `interval` messages were
   * applied since the base (once per base and epoch)
   */
  async #checkpointDuties (): Promise<void> {
    const ledger = this.#ledger
    if (ledger == null || !this.#started || ledger.validatorIndex == null || this.#ckBusy) {
      return
    }
    this.#ckBusy = true
    try {
      if (this.#ckToSign != null) {
        const p = this.#ckToSign
        this.#ckToSign = undefined
        await this.#signCheckpoint(p)
      }
      const interval = this.#init.checkpoint?.interval ?? DEFAULT_CHECKPOINT_INTERVAL
      if (interval <= 0 || ledger.appliedSinceCheckpoint() < BigInt(interval)) {
        return
      }
      const baseHeight = ledger.checkpoint?.height ?? 0n
      const epoch = ledger.currentEpoch()
      const key = `${baseHeight}@${epoch}`
      if (this.#ckProposedFor === key || designated(ledger.chain, `checkpoint/${baseHeight}`, epoch) !== ledger.validatorIndex) {
        return
      }
      const p = ledger.proposeCheckpoint()
      if (p == null) {
        return
      }
      this.#ckProposedFor = key
      await this.#signCheckpoint(p, true)
    } finally {
      this.#ckBusy = false
    }
  }

  /** a heartbeat counts only from the peer its binding names, as the (signed) gossip source */
  async #handleHeartbeat (h: NonNullable<GossipMessage['heartbeat']>, from?: string): Promise<void> {
    const hb = this.#init.heartbeat
    if (hb?.tracker == null || hb.bindings == null) {
      return
    }
    if (from == null || from !== h.peerId) {
      throw new MalformedMessageError('heartbeat not sent by the peer its binding names')
    }
    const atMs = this.ledger.now()
    await hb.bindings.add({ peerId: h.peerId, walletPublicKey: toHex(h.walletPublicKey), issuedAtMs: Number(h.issuedAtMs), walletSignature: toHex(h.walletSignature), peerSignature: toHex(h.peerSignature) })
    // the beat counts for the wallet the peer is bound to now (its newest binding): one machine, one wallet
    const wallet = hb.bindings.walletOf(h.peerId)
    if (wallet == null) {
      return
    }
    hb.tracker.record(h.peerId, atMs, wallet)
    this.safeDispatchEvent('ponw-ledger:heartbeat', { detail: { peer: h.peerId, atMs } })
  }

  readonly #onOutcome = (): void => {
    if (this.#ledger?.validatorIndex != null) {
      // the height is a sum over all accounts: look at it every interval/64 outcomes, not on each
      const every = Math.max(1, Math.floor((this.#init.checkpoint?.interval ?? DEFAULT_CHECKPOINT_INTERVAL) / 64))
      if (++this.#ckOutcomes >= every || this.#ckToSign != null) {
        if (!this.#ckBusy) {
          this.#ckOutcomes = 0
          queueMicrotask(() => { this.#checkpointDuties().catch(err => { this.#log('checkpoint duties failed - %s', err.message) }) })
        }
      }
    }
    if (this.#pending.size === 0 || this.#retrying) {
      return
    }
    // retry once the current batch settles
    this.#retrying = true
    queueMicrotask(() => {
      this.#retrying = false
      const ready = [...this.#pending.values()].filter(t => {
        const acc = this.#ledger?.state.get(t.sender)
        return acc != null && acc.nextSeq === t.sequence
      })
      for (const t of ready) {
        this.#dropPending(t)
        this.#handleTx(t).catch(() => {})
      }
    })
  }

  /**
   * Reports evidence from this node's account. Every validator that sees an equivocation gets the event, but
   * validators vote only for the report of the validator designated for (evidence key, the report's epoch)
   * (`designatedReporter`): two reports of the same evidence can never split the votes. So this node reports
   * when it is the designated reporter of the current epoch, and otherwise looks again at each of the next
   * `REPORT_EPOCHS` epoch boundaries (another validator is designated each epoch, so an offline one delays
   * the report by an epoch) unless a report was seen or the key was used meanwhile.
   */
  readonly #onEvidence = (evt: CustomEvent<Evidence>): void => {
    const ledger = this.#ledger
    if (this.#init.autoReport === false || ledger?.wallet == null || ledger.validatorIndex == null || !this.#started) {
      return
    }
    const e = evt.detail
    let ev: ReturnType<typeof checkSlashReport>
    try {
      ev = checkSlashReport(ledger.chain, buildTx(ledger.chain, ledger.wallet.publicKey, 0n, 0n, { kind: 'slash', evidence: e }).slash!)
    } catch {
      return
    }
    if (!('key' in ev) || this.#reported.has(ev.key) || ev.validator === ledger.validatorIndex || ev.offender === ledger.wallet.address) {
      return
    }
    if (this.#reported.size >= DEFAULT_MAX_REPORTED) {
      this.#reported.delete(this.#reported.values().next().value!)
    }
    this.#reported.add(ev.key)
    const key = ev.key
    const checked = ev
    const chain = ledger.chain
    const firstEpoch = ledger.currentEpoch()
    const attempt = async (): Promise<void> => {
      if (!this.#started || ledger.state.proofKeys.has(`slash/${key}`) || await ledger.evidenceVoted(key)) {
        return
      }
      const epoch = ledger.currentEpoch()
      if (reporterFor(chain, checked, epoch) === ledger.validatorIndex) {
        // a report whose penalty is zero (the offender had nothing bonded) would be refused
        const penalty = penaltyOf(ledger.state, checked)
        if (penalty === 0n) {
          return
        }
        // the offender withdrew after the offence: validators would refuse the report, and this node's
        // account would be stuck behind a sequence that can never be final
        if (checked.validator == null && await ledger.slashConflicts(checked.offender, checked.sequence)) {
          return
        }
        await this.send({ kind: 'slash', evidence: e })
        return
      }
      if (epoch - firstEpoch >= BigInt(REPORT_EPOCHS)) {
        return
      }
      // not this node's turn: look again just after the next epoch boundary (+ a backoff against clock skew)
      const g = chain.genesis
      const next = g.genesisTimeMs + Number(epoch + 1n) * g.params.epochMs - ledger.now()
      schedule(Math.max(0, next) + (this.#init.reportBackoffMs ?? DEFAULT_REPORT_BACKOFF_MS))
    }
    const schedule = (ms: number): void => {
      const timer = setTimeout(() => {
        this.#reportTimers.delete(timer)
        attempt().catch(err => {
          this.#log('could not report evidence - %s', err.message)
        })
      }, ms)
      this.#reportTimers.add(timer)
    }
    schedule(0)
  }

  readonly #onConnect = (evt: CustomEvent<PeerId>): void => {
    if (this.#init.syncOnConnect === false) {
      this.#resubmitOwn()
      return
    }
    this.syncWith(evt.detail).catch(err => {
      this.#log('sync with %p failed - %s', evt.detail, err.message)
    }).finally(() => {
      this.#resubmitOwn()
    })
  }

  /** gossips again this wallet's recorded messages that are not final yet (e.g. signed before a restart) */
  #resubmitOwn (): void {
    if (!this.#started || this.#ledger?.wallet == null) {
      return
    }
    const ledger = this.#ledger
    ledger.unfinishedOwn().then(async txs => {
      for (const tx of txs) {
        if (this.#started && !ledger.state.known.has(tx.idHex)) {
          await this.submit(tx)
        }
      }
    }).catch(err => {
      this.#log('could not resubmit own messages - %s', err.message)
    })
  }

  async syncWith (peer: PeerId, options: AbortOptions = {}): Promise<number> {
    const key = peer.toString()
    const running = this.#syncing.get(key)
    if (running != null) {
      return running
    }
    const p = this.#syncOnce(peer, options).finally(() => this.#syncing.delete(key))
    this.#syncing.set(key, p)
    return p
  }

  async #syncOnce (peer: PeerId, options: AbortOptions): Promise<number> {
    let added = 0
    if (this.#init.checkpoint?.sync !== false && this.ledger.checkpoint == null && this.ledger.logLength === 0) {
      // an empty ledger starts from the peer's newest certified checkpoint (if it has one) instead of all history
      try {
        await this.syncCheckpoint(peer, options)
      } catch (err: any) {
        this.#log('no checkpoint from %p (%s: %s), syncing from genesis', peer, err.name, err.message)
      }
    }
    // a stream that breaks mid-sync is reopened, resuming from the per-peer cursor
    for (let attempt = 0; ; attempt++) {
      try {
        added += await this.#syncStream(peer, options)
        break
      } catch (err: any) {
        if (attempt >= 2 || options.signal?.aborted === true || !this.#started || err.name === 'InvalidSignatureError' || err.name === 'InvalidMessageError' || err.name === 'MalformedMessageError' || err.name === 'InsufficientQuorumError') {
          throw err
        }
        this.#log('sync with %p interrupted (%s), resuming', peer, err.message)
      }
    }
    this.safeDispatchEvent('ponw-ledger:synced', { detail: { peer, added } })
    return added
  }

  /** One sync stream: requests page i+1 before verifying and applying page i, so both sides keep busy */
  async #syncStream (peer: PeerId, options: AbortOptions): Promise<number> {
    const timeoutMs = this.#init.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
    const maxBytes = this.#init.maxSyncResponseBytes ?? DEFAULT_MAX_SYNC_RESPONSE_BYTES
    const limit = this.#init.syncPageSize ?? DEFAULT_SYNC_PAGE_SIZE
    const key = peer.toString()
    let added = 0
    let knownServed = 0
    const stream = await this.#c.connectionManager.openStream(peer, this.#protocol, { signal: timeoutSignal(timeoutMs, options.signal) })
    try {
      const pb = pbStream(stream, { maxDataLength: maxBytes + 1024 })
      let from = this.#cursor.get(key) ?? 0
      await pb.write({ from: BigInt(from), limit }, SyncRequest, { signal: timeoutSignal(timeoutMs, options.signal) })
      while (true) {
        const signal = timeoutSignal(timeoutMs, options.signal)
        let res: SyncResponse
        try {
          res = await pb.read(SyncResponse, { signal, limits: { certificates: limit } })
        } catch (err: any) {
          if (signal.aborted && options.signal?.aborted !== true) {
            throw new TimeoutError(`sync read from ${key} timed out after ${timeoutMs} ms`)
          }
          throw err
        }
        // a pruned log has gaps: `next` may jump past them, never fall short of the certificates served
        checkSyncPage(from, limit, res)
        const more = !res.done && res.certificates.length > 0
        if (more) {
          await pb.write({ from: res.next, limit }, SyncRequest, { signal: timeoutSignal(timeoutMs, options.signal) })
        }
        if (res.certificates.length > 0) {
          const before = this.ledger.finalCount
          await this.ledger.addCertificates(res.certificates, { ...options, partial: true })
          const fresh = this.ledger.finalCount - before
          added += fresh
          knownServed += res.certificates.length - fresh
        }
        from = Number(res.next)
        this.#cursor.set(key, from)
        // a log holds each final message once, so an honest peer never serves more already-known certificates
        // than this node knows: a peer that does repeats itself to keep this node paging. End the session.
        if (syncServedTooMuch(knownServed, this.ledger.finalCount)) {
          this.#log('sync with %p ended: the peer served %d known certificates, more than exist', peer, knownServed)
          break
        }
        if (!more) {
          break
        }
      }
      await stream.close({ signal: timeoutSignal(timeoutMs, options.signal) }).catch(() => {})
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
    return added
  }

  async fetchCheckpoint (peer: PeerId, options: AbortOptions & { minHeight?: bigint } = {}): Promise<{ certificate: Uint8Array, snapshot: Uint8Array } | undefined> {
    const timeoutMs = this.#init.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
    const max = this.#init.checkpoint?.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES
    const stream = await this.#c.connectionManager.openStream(peer, CHECKPOINT_PROTOCOL, { signal: timeoutSignal(timeoutMs, options.signal) })
    try {
      const pb = pbStream(stream, { maxDataLength: 1024 * 1024 + 64 })
      await pb.write({ minHeight: options.minHeight ?? 0n }, CheckpointRequest, { signal: timeoutSignal(timeoutMs, options.signal) })
      const offer = await pb.read(CheckpointOffer, { signal: timeoutSignal(timeoutMs, options.signal) })
      if (offer.certificate.byteLength === 0) {
        await stream.close({ signal: timeoutSignal(timeoutMs, options.signal) }).catch(() => {})
        return undefined
      }
      // the certificate first: a forged one is refused before any snapshot byte is downloaded
      const cert = parseCheckpointCertificate(this.ledger.chain, offer.certificate)
      if (cert.height < (options.minHeight ?? 0n)) {
        throw new InvalidCheckpointError('the peer offered a lower checkpoint than asked for')
      }
      if (offer.snapshotBytes > BigInt(max)) {
        throw new InvalidCheckpointError(`snapshot of ${offer.snapshotBytes} bytes exceeds ${max}`)
      }
      const total = Number(offer.snapshotBytes)
      const out = new Uint8Array(total)
      let got = 0
      while (true) {
        const c = await pb.read(SnapshotChunk, { signal: timeoutSignal(timeoutMs, options.signal) })
        if (got + c.data.byteLength > total) {
          throw new InvalidCheckpointError('snapshot longer than announced')
        }
        out.set(c.data, got)
        got += c.data.byteLength
        if (c.last) break
      }
      if (got !== total) {
        throw new InvalidCheckpointError('snapshot shorter than announced')
      }
      await stream.close({ signal: timeoutSignal(timeoutMs, options.signal) }).catch(() => {})
      return { certificate: offer.certificate, snapshot: out }
    } catch (err: any) {
      stream.abort(err)
      throw err
    }
  }

  async syncCheckpoint (peer: PeerId, options: AbortOptions = {}): Promise<bigint | undefined> {
    const have = this.ledger.checkpoint?.height ?? 0n
    const got = await this.fetchCheckpoint(peer, { ...options, minHeight: have + 1n })
    if (got == null) {
      return undefined
    }
    try {
      await this.ledger.installCheckpoint(got.certificate, got.snapshot)
    } catch (err: any) {
      // another sync (e.g. the one on connect) installed this checkpoint or a newer one meanwhile
      if (err.name === 'CheckpointConflictError' && (this.ledger.checkpoint?.height ?? 0n) >= parseCheckpointCertificate(this.ledger.chain, got.certificate).height) {
        return undefined
      }
      throw err
    }
    return this.ledger.checkpoint?.height
  }

  /** serves this node's adopted checkpoint and its snapshot in chunks of at most 1 MiB */
  readonly #onCheckpointStream = async (stream: Stream): Promise<void> => {
    const timeoutMs = this.#init.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
    const pb = pbStream(stream, { maxDataLength: 64 })
    try {
      const req = await pb.read(CheckpointRequest, { signal: AbortSignal.timeout(timeoutMs) })
      const ck = this.ledger.checkpoint
      if (ck == null || ck.height < req.minHeight) {
        await pb.write({ certificate: new Uint8Array(0), snapshotBytes: 0n }, CheckpointOffer, { signal: AbortSignal.timeout(timeoutMs) })
      } else {
        await pb.write({ certificate: Uint8Array.from(ck.certificate), snapshotBytes: BigInt(ck.snapshot.byteLength) }, CheckpointOffer, { signal: AbortSignal.timeout(timeoutMs) })
        const CHUNK = 1024 * 1024
        for (let o = 0; ; o += CHUNK) {
          const last = o + CHUNK >= ck.snapshot.byteLength
          await pb.write({ data: Uint8Array.from(ck.snapshot.subarray(o, o + CHUNK)), last }, SnapshotChunk, { signal: AbortSignal.timeout(timeoutMs) })
          if (last) break
        }
      }
      await stream.close().catch(() => {})
    } catch (err: any) {
      this.#log('checkpoint not served - %s', err.message)
      stream.abort(err)
    }
  }

  async challengeData (challenge: DataChallenge, options: AbortOptions): Promise<DataChallengeAnswer[]> {
    const peer = this.#init.heartbeat?.bindings?.peerOf(challenge.sender)
    if (peer == null) {
      throw new DataChallengeError(`${challenge.sender} is bound to no libp2p peer: its data cannot be challenged`)
    }
    if (challenge.indexes.length > 256) {
      throw new DataChallengeError('at most 256 leaves per challenge')
    }
    const stream = await this.#c.connectionManager.openStream(peerIdFromString(peer), DATA_CHALLENGE_PROTOCOL, options)
    try {
      const pb = pbStream(stream, { maxDataLength: DEFAULT_MAX_DATA_ANSWER_BYTES })
      await pb.write({ proofId: fromHex(challenge.proofId), shardId: challenge.shardId, indexes: challenge.indexes, round: challenge.round }, DataChallengeRequest, options)
      const res = await pb.read(DataChallengeResponse, { ...options, limits: { openings: challenge.indexes.length, openings$: { path: 64 } } } as any)
      await stream.close(options).catch(() => {})
      return res.openings.map(o => ({ sample: o.sample, path: o.path }))
    } catch (err: any) {
      stream.abort(err)
      throw err
    }
  }

  async fetchWeights (sender: string, proofId: string, checkpoint: number, options: AbortOptions & { maxBytes?: number }): Promise<Uint8Array> {
    const peer = this.#init.heartbeat?.bindings?.peerOf(sender)
    if (peer == null) {
      throw new ReExecutionMismatchError(`${sender} is bound to no libp2p peer: its committed weights cannot be fetched`)
    }
    const max = options.maxBytes ?? DEFAULT_MAX_WEIGHTS_BYTES
    const stream = await this.#c.connectionManager.openStream(peerIdFromString(peer), POL_WEIGHTS_PROTOCOL, options)
    try {
      const pb = pbStream(stream, { maxDataLength: 1024 * 1024 + 64 })
      await pb.write({ proofId: fromHex(proofId), checkpoint }, WeightsRequest, options)
      const parts: Uint8Array[] = []
      let total = 0
      while (true) {
        const c = await pb.read(WeightsChunk, options)
        total += c.data.byteLength
        if (total > max) {
          throw new ReExecutionMismatchError(`checkpoint ${checkpoint} weights exceed ${max} bytes`)
        }
        parts.push(c.data)
        if (c.last) break
      }
      await stream.close(options).catch(() => {})
      const out = new Uint8Array(total)
      let o = 0
      for (const p of parts) { out.set(p, o); o += p.byteLength }
      return out
    } catch (err: any) {
      stream.abort(err)
      throw err
    }
  }

  /** prover side of Proof-of-Learning: serves committed weights in chunks of at most 1 MiB */
  readonly #onWeights = async (stream: Stream): Promise<void> => {
    const timeoutMs = this.#init.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
    const pb = pbStream(stream, { maxDataLength: 128 })
    try {
      const req = await pb.read(WeightsRequest, { signal: AbortSignal.timeout(timeoutMs) })
      const bytes = await this.#init.trainingProver!(toHex(req.proofId), req.checkpoint)
      if (bytes == null) {
        throw new ReExecutionMismatchError(`no weights for checkpoint ${req.checkpoint} of ${toHex(req.proofId)}`)
      }
      const CHUNK = 1024 * 1024
      for (let o = 0; o === 0 || o < bytes.byteLength; o += CHUNK) {
        const last = o + CHUNK >= bytes.byteLength
        await pb.write({ data: Uint8Array.from(bytes.subarray(o, o + CHUNK)), last }, WeightsChunk, { signal: AbortSignal.timeout(timeoutMs) })
        if (last) break
      }
      await stream.close().catch(() => {})
    } catch (err: any) {
      this.#log('weights not served - %s', err.message)
      stream.abort(err)
    }
  }

  /** prover side: opens the asked leaves of this node's data, within the caps, against a deadline */
  readonly #onDataChallenge = async (stream: Stream): Promise<void> => {
    const timeoutMs = this.#init.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
    const pb = pbStream(stream, { maxDataLength: 2048 })
    try {
      const signal = AbortSignal.timeout(timeoutMs)
      const req = await pb.read(DataChallengeRequest, { signal, limits: { indexes: 256 } } as any)
      const openings = []
      for (const i of req.indexes) {
        const a = await this.#init.dataProver!(req.shardId, i)
        if (a == null) {
          throw new DataChallengeError(`leaf ${i} of shard ${req.shardId} is not held here`)
        }
        openings.push({ sample: Uint8Array.from(a.sample), path: a.path.map(p => Uint8Array.from(p)) })
      }
      await pb.write({ openings }, DataChallengeResponse, { signal })
      await stream.close({ signal }).catch(() => {})
    } catch (err: any) {
      this.#log('data challenge not answered - %s', err.message)
      stream.abort(err)
    }
  }

  readonly #onSyncStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const timeoutMs = this.#init.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
    const maxBytes = this.#init.maxSyncResponseBytes ?? DEFAULT_MAX_SYNC_RESPONSE_BYTES
    const pageSize = this.#init.syncPageSize ?? DEFAULT_SYNC_PAGE_SIZE
    const pb = pbStream(stream, { maxDataLength: 64 })
    try {
      while (this.#started) {
        let req: SyncRequest
        try {
          // the requester verifies a page before it may ask again: wait longer than one read
          req = await pb.read(SyncRequest, { signal: AbortSignal.timeout(this.#init.syncIdleTimeoutMs ?? DEFAULT_SYNC_IDLE_TIMEOUT_MS) })
        } catch {
          break // closed or idle
        }
        const from = Number(req.from)
        if (!Number.isSafeInteger(from) || from < 0) {
          throw new MalformedMessageError('bad sync cursor')
        }
        const limit = Math.max(1, Math.min(pageSize, req.limit))
        const page = await this.ledger.logRange(from, limit, maxBytes)
        await pb.write({ certificates: page.certificates.map(c => Uint8Array.from(c)), next: BigInt(page.next), done: page.next >= this.ledger.logLength }, SyncResponse, { signal: AbortSignal.timeout(timeoutMs) })
      }
      await stream.close().catch(() => {})
    } catch (err: any) {
      this.#log('sync stream from %p failed - %s', connection.remotePeer, err.message)
      stream.abort(err)
    }
  }
}

/**
 * Position of validator `self` in the reporting order of an evidence key: validators sorted by
 * sha256("neuroshard/ledger/v1/reporter" || 0 || utf8(key) || u32be(index)), the offending validator
 * (if any) left out. Undefined for the offender itself.
 */
export function reporterRank (validators: number, key: string, self: number, offender?: number): number | undefined {
  if (self === offender) {
    return undefined
  }
  const k = new TextEncoder().encode(key)
  const score = (i: number): string => {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, i)
    return Buffer.from(digest('neuroshard/ledger/v1/reporter', k, b)).toString('hex')
  }
  const mine = score(self)
  let rank = 0
  for (let i = 0; i < validators; i++) {
    if (i !== self && i !== offender && score(i) < mine) {
      rank++
    }
  }
  return rank
}

/** checkpoint proposals one designated proposer can make a validator derive per epoch */
const MAX_DERIVATIONS = 4

function timeoutSignal (ms: number, signal?: AbortSignal): AbortSignal {
  const t = AbortSignal.timeout(ms)
  return signal == null ? t : AbortSignal.any([t, signal])
}

function encodeCert (c: { signedTx: Uint8Array, votes: Array<{ validator: number, signature: Uint8Array }> }): Uint8Array {
  return CertificateCodec.encode({ signedTx: Uint8Array.from(c.signedTx), votes: c.votes.map(v => ({ validator: v.validator, signature: Uint8Array.from(v.signature) })) })
}

/**
 * The PoNW ledger as a libp2p service. Needs gossipsub registered as the `pubsub` service (or
 * `init.pubsubService`) BEFORE this one in `services`.
 *
 * @example
 * ```ts
 * const node = await createLibp2p({ ..., services: { pubsub: gossipsub(), ledger: ponwLedger({ genesis, path, wallet }) } })
 * await node.services.ledger.send({ kind: 'transfer', to: bob, amount: 10n ** 18n })
 * ```
 */
export function ponwLedger (init: PonwLedgerInit): (components: PonwLedgerComponents) => PonwLedger {
  return (components) => new PonwLedgerService(components, init)
}
