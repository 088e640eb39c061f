/**
 * Proof of Neural Work on a network node: the ledger (`@neuroshard/ponw-ledger` as a libp2p service on the
 * node's host), heartbeats and uptime proofs, and training proofs for the DiLoCo rounds the node's
 * pseudo-gradients were accepted in — with the onnxruntime stage re-executor ({@link StageTrainingModel})
 * and the round-record check ({@link StageAggregationRecords}) the node plugs into the ledger's verifier.
 */
import { logger } from '@libp2p/logger'
import { ApiError } from '../api/errors.js'
import { openCommit, Signed } from '@neuroshard/diloco'
import {
  HeartbeatUptimeVerifier, MemoryHeartbeatTracker, PeerBindings, ProofOfLearningVerifier, ProofVerifier, ShardManifestVerifier,
  assignShards, createBinding, loadChain, currentEpoch, currentRound, networkWitness, ponwLedger
} from '@neuroshard/ponw-ledger'
import { StageAggregationRecords, StageTrainingModel, codecTuple, stagePseudoGradientHash } from './stage-verifier.js'
import { manifestEntries, openDataLeaf } from './data-shards.js'
import { decodeWitness, encodeWitness, sha256 } from './stage-work.js'
import type { LedgerDataShard } from './data-shards.js'
import type { RecordedRound, SlotEvidence, SlotPayload, StageWitness } from './stage-work.js'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import type { AggregatorChoice, DiLoCo, RoundRecord } from '@neuroshard/diloco'
import type { ModelConfig } from '@neuroshard/model'
import type { DataChallengeAnswer, GenesisConfig, PonwLedger, TrainingReExecutor, TrainingWitness, TxBody, Wallet } from '@neuroshard/ponw-ledger'
import type { AdamWOptions } from '@neuroshard/runtime'
import type { ServedSession } from '../api/backend.js'

const log = logger('neuroshard:node:ponw')

/** Largest committed witness a verifier downloads (a stage's weights, moments and one round's activations) */
export const MAX_WITNESS_BYTES = 256 * 1024 * 1024
/** Proofs whose witnesses a node keeps (validators fetch them while voting; one is in flight at a time, and a
 * witness holds a round of activations: megabytes) */
const KEEP_PROOFS = 4

export interface NodePonwInit {
  genesis: GenesisConfig
  wallet: Wallet
  /** level database directory */
  path: string
  config: ModelConfig
  modelId: string
  innerSteps: number
  /** the inner AdamW of the network (verifiers replay with it) */
  optimizer?: AdamWOptions
  /** the slot groups' aggregator */
  aggregator?: AggregatorChoice
  rejectFactor?: number
  /** submit uptime proofs at the end of each epoch @default true */
  uptime?: boolean
  /** submit training proofs for accepted rounds @default true */
  trainingProofs?: boolean
  /**
   * The genesis data as ledger shards (`ledgerDataShards(train)`): the node proves possession of its assigned
   * shards (data proofs), answers challenges, and as a validator checks others' data proofs
   */
  data?: { shards: LedgerDataShard[] }
  now?: () => number
  /**
   * Awaited before each re-executed step of another node's training proof (a validator's duty): the node lets its
   * inference go first (NetworkNode `yieldTraining`)
   */
  yieldTo?: () => Promise<void>
  /** Linux nice value of the re-executions' worker threads (runtime `niceness`; NetworkNode `trainingNiceness`) @default 0 */
  niceness?: number
}

/** `model` with `yieldTo()` awaited before each of its re-executed steps */
export function yieldingModel<M extends { step: (...args: any[]) => Promise<any> }> (model: M, yieldTo: () => Promise<void>): M {
  return new Proxy(model, {
    get (target, prop) {
      if (prop === 'step') return async (...args: any[]) => { await yieldTo(); return await target.step(...args) }
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

export interface NodePonwEvents {
  /** a proof this node signed */
  proof: { kind: 'training' | 'uptime' | 'inference', id: string }
}

/** A slot's settled contribution, as the node saw it */
export interface SlotContribution {
  slot: number
  group: DiLoCo
  round: number
  included: boolean
}

/**
 * What the outbox does about its own message that is not final (specs/node/ponw §1): `wait` while it is votable;
 * once its epoch window passed, `regossip` it once (catch-up completes it if a third of the voting power voted
 * for it); `replace` it at its slot only an epoch after that AND once the two messages can never have been
 * votable together (epochs more than 2·epochWindow + 1 apart: closer, the pair would be equivocation evidence).
 */
export function expiredOwnAction (old: { epoch: bigint, id: string }, now: { epoch: bigint, nowMs: number, epochWindow: number, epochMs: number }, regossiped?: { id: string, at: number }): 'wait' | 'regossip' | 'replace' {
  const w = BigInt(now.epochWindow)
  if (now.epoch <= old.epoch + w) return 'wait'
  if (regossiped?.id !== old.id) return 'regossip'
  if (now.epoch <= old.epoch + 2n * w + 1n || now.nowMs < regossiped.at + now.epochMs) return 'wait'
  return 'replace'
}

/**
 * The node's ledger and proof duties. `service` is created after the host started (its wallet ↔ peer
 * binding needs the host's key), like the DiLoCo groups.
 */
export class NodePonw {
  readonly init: NodePonwInit
  service!: PonwLedger
  readonly bindings = new PeerBindings()
  readonly #proofs = new Map<string, Uint8Array[]>()
  readonly #claims = new Map<string, TxBody>()
  readonly #usedPayments = new Set<string>()
  readonly #witnessCache = new Map<string, Promise<StageWitness | undefined>>()
  #model?: StageTrainingModel
  /** the checks this node runs before voting for a proof (as a validator) */
  verifier!: ProofVerifier
  /** the round-record check of training proofs (part of `verifier`) */
  aggregation!: StageAggregationRecords
  #lastTrainingRound = -1n
  #lastDataRound = -1n
  readonly #dataSent = new Set<string>()
  #uptimeFrom = 0n
  #training?: { body: Omit<Extract<TxBody, { kind: 'training' }>, 'round' | 'shardIds'>, witnesses: Uint8Array[] }
  readonly #served: ServedSession[] = []
  #ticking = false
  /** the expired own message last gossiped again for catch-up, and when */
  #regossiped?: { id: string, at: number }
  #tracker?: MemoryHeartbeatTracker
  #tickTimer?: ReturnType<typeof setInterval>
  #beatTimer?: ReturnType<typeof setInterval>
  #startedAt = 0
  #running = false
  #peer = ''
  readonly #listeners: Array<(e: NodePonwEvents['proof']) => void> = []

  /** Sign training proofs (from `init.trainingProofs`; an operator may pause them) */
  signTraining: boolean

  constructor (init: NodePonwInit) {
    this.init = init
    this.signTraining = init.trainingProofs ?? true
  }

  get now (): number {
    return this.init.now?.() ?? Date.now()
  }

  onProof (fn: (e: NodePonwEvents['proof']) => void): void {
    this.#listeners.push(fn)
  }

  async start (components: any, peerId: PeerId, privateKey: PrivateKey): Promise<PonwLedger> {
    const { genesis, wallet, config } = this.init
    this.#peer = peerId.toString()
    const binding = await createBinding(wallet, privateKey, peerId.toString())
    await this.bindings.add(binding)
    const tracker = this.#tracker = new MemoryHeartbeatTracker({ chain: loadChain(genesis) })
    const fetcher = (): PonwLedger => this.service
    const raw = networkWitness<StageWitness>(fetcher, decodeWitness, { maxBytes: MAX_WITNESS_BYTES })
    // the aggregation check and the re-execution both read checkpoint 0: fetch it once per proof
    const witness: TrainingWitness<StageWitness> = {
      fetchWeights: async (claim, checkpoint, options) => {
        const key = `${claim.proofId}/${checkpoint}`
        let p = this.#witnessCache.get(key)
        if (p == null) {
          // a validator voting for its own proof reads its witnesses locally (a host cannot dial itself)
          const own = claim.sender === wallet.address ? this.#proofs.get(claim.proofId)?.[checkpoint] : undefined
          p = own != null ? Promise.resolve(decodeWitness(own)) : raw.fetchWeights(claim, checkpoint, options)
          this.#witnessCache.set(key, p)
          p.catch(() => { this.#witnessCache.delete(key) })
          while (this.#witnessCache.size > 4) this.#witnessCache.delete(this.#witnessCache.keys().next().value!)
        }
        return await p
      }
    }
    this.#model = new StageTrainingModel({ config, ...(this.init.optimizer != null ? { optimizer: this.init.optimizer } : {}), ...(this.init.niceness != null ? { niceness: this.init.niceness } : {}) })
    const yieldTo = this.init.yieldTo
    const pol = new ProofOfLearningVerifier({ model: yieldTo != null ? yieldingModel(this.#model, yieldTo) : this.#model, witness, segments: 1, lossSamples: 1 })
    const model = this.#model
    // one re-execution at a time (they share the model's executors), which are closed afterwards
    let queue: Promise<unknown> = Promise.resolve()
    const training: TrainingReExecutor = {
      verifyTraining: async (claim, options) => {
        const run = queue.then(async () => {
          try {
            return await pol.verifyTraining(claim, options)
          } finally {
            await model.close()
          }
        })
        queue = run.catch(() => {})
        return await run
      }
    }
    const verifier = this.verifier = new ProofVerifier({
      training,
      aggregation: this.aggregation = new StageAggregationRecords({
        config,
        modelId: this.init.modelId,
        witness,
        peerOf: (address) => this.bindings.peerOf(address),
        ...(this.init.aggregator != null ? { aggregator: this.init.aggregator } : {}),
        ...(this.init.rejectFactor != null ? { rejectFactor: this.init.rejectFactor } : {})
      }),
      uptime: new HeartbeatUptimeVerifier({ tracker, peerOf: (address) => this.bindings.peerOf(address) }),
      ...(this.init.data != null && genesis.dataManifestHash != null
        ? { data: new ShardManifestVerifier({ chain: loadChain(genesis), shards: manifestEntries(this.init.data.shards), challenge: async (c, o) => {
          // a validator checking its own data proof opens its own leaves (a host cannot dial itself)
          if (c.sender === wallet.address) return c.indexes.map(i => openDataLeaf(this.init.data!.shards, c.shardId, i)).filter((x): x is DataChallengeAnswer => x != null)
          return await this.service.challengeData(c, o)
        } }) }
        : {})
    })
    this.service = ponwLedger({
      genesis,
      path: this.init.path,
      wallet,
      verifier,
      ...(this.init.now != null ? { now: this.init.now } : {}),
      heartbeat: { tracker, bindings: this.bindings, binding },
      trainingProver: (proofId, checkpoint) => this.#proofs.get(proofId)?.[checkpoint],
      ...(this.init.data != null ? { dataProver: (shardId: number, index: number) => openDataLeaf(this.init.data!.shards, shardId, index) } : {})
    })(components)
    await (this.service as any).start()
    this.#running = true
    this.#startedAt = this.now
    // gossipsub does not deliver a node's own heartbeats back to it: a validator records its own beats, so
    // that it can vote for its own uptime like the others do
    const beat = (): void => { tracker.record(this.#peer, this.now, wallet.address) }
    beat()
    this.#beatTimer = setInterval(beat, genesis.params.heartbeatSeconds * 1000)
    this.#uptimeFrom = currentEpoch(this.service.ledger.chain, this.now)
    this.#tickTimer = setInterval(() => { void this.#tick() }, 1_000)
    return this.service
  }

  async stop (): Promise<void> {
    this.#running = false
    clearInterval(this.#tickTimer)
    clearInterval(this.#beatTimer)
    await (this.service as any)?.stop?.()
    await this.#model?.close()
  }

  // ---- the outbox: one own message in flight ------------------------------------------------------

  /**
   * Signs the next due proof when no own message is in flight. A message that is not final holds up the
   * account's later ones. One that expired without a quorum (voted on too late: a training proof's re-execution
   * can outlast the epoch window on a busy machine) is first gossiped again: if validators holding a third of
   * the voting power voted for it, the others complete it by catch-up (specs/ponw-ledger §6.1). If it is still
   * not final an epoch later, the next due proof is signed for the same slot: the validators that did not vote
   * for the old message vote for it, and two messages never votable together are not equivocation (§5), so a
   * late proof never strands the account.
   */
  async #tick (): Promise<void> {
    if (!this.#running || this.#ticking) return
    this.#ticking = true
    try {
      const ledger = this.service.ledger
      const open = await ledger.unfinishedOwn()
      let sequence: bigint | undefined
      if (open.length > 0) {
        const old = open[0]
        const p = ledger.chain.genesis.params
        const action = expiredOwnAction({ epoch: old.epoch, id: old.idHex }, { epoch: currentEpoch(ledger.chain, this.now), nowMs: this.now, epochWindow: p.epochWindow, epochMs: p.epochMs }, this.#regossiped)
        if (action === 'wait') return
        if (action === 'regossip') {
          this.#regossiped = { id: old.idHex, at: this.now }
          await this.service.submit(old)
          log('own message %s at slot %d expired without a quorum: gossiped again for catch-up', old.idHex.slice(0, 12), old.sequence)
          return
        }
        sequence = old.sequence
      }
      // nothing before the validators can know this node: its wallet ↔ peer binding travels with its heartbeats
      const p0 = ledger.chain.genesis.params
      if (this.now < this.#startedAt + Math.max(15_000, 3_000 * p0.heartbeatSeconds)) return
      const next = await this.#nextProof()
      if (next == null) return
      const tx = ledger.createTx(next.body, sequence != null ? { sequence } : {})
      // witnesses are served before the proof leaves the node (validators fetch them while voting)
      if (next.witnesses != null) {
        this.serve(tx.idHex, next.witnesses)
        this.#claims.set(tx.idHex, next.body)
        while (this.#claims.size > KEEP_PROOFS) this.#claims.delete(this.#claims.keys().next().value!)
      }
      await ledger.recordOwn(tx)
      await this.service.submit(tx)
      if (sequence != null) log('%s proof %s replaces the expired message at slot %d', next.body.kind, tx.idHex.slice(0, 12), sequence)
      else log('%s proof %s sent', next.body.kind, tx.idHex.slice(0, 12))
      this.#emit({ kind: next.body.kind as NodePonwEvents['proof']['kind'], id: tx.idHex })
    } catch (err: any) {
      if (this.#running) log('proof not sent: %s', err.message)
    } finally {
      this.#ticking = false
    }
  }

  /** The most urgent due proof: paid sessions, ended epochs, the latest provable training round, data */
  async #nextProof (): Promise<{ body: TxBody, witnesses?: Uint8Array[] } | undefined> {
    const ledger = this.service.ledger
    const chain = ledger.chain
    const p = chain.genesis.params
    const now = this.now
    const epoch = currentEpoch(chain, now)
    const round = currentRound(chain, now)
    while (this.#served.length > 0) {
      const s = this.#served.shift()!
      // a session's proof is plausible within the epoch window of its start
      if (s.startedMs + p.epochMs * (p.epochWindow + 1) < now) continue
      return {
        body: {
          kind: 'inference',
          sessionId: Uint8Array.from(Buffer.from(s.payment, 'hex')),
          tokens: BigInt(s.tokens),
          outputHash: sha256(new TextEncoder().encode(s.text)),
          startedMs: BigInt(s.startedMs),
          endedMs: BigInt(Math.max(s.endedMs, s.startedMs + 1))
        }
      }
    }
    if (this.init.uptime ?? true) {
      for (let e = this.#uptimeFrom; e < epoch; e++) {
        this.#uptimeFrom = e + 1n
        if (e + BigInt(p.epochWindow) < epoch) continue
        const heartbeats = this.#uptimeHeartbeats(e)
        if (heartbeats > 0) return { body: { kind: 'uptime', epoch: e, heartbeats } }
      }
    }
    const training = this.#training
    if (training != null && round > this.#lastTrainingRound && this.signTraining) {
      this.#training = undefined
      this.#lastTrainingRound = round
      return { body: { ...training.body, round, shardIds: assignShards(chain, ledger.wallet!.address, round) } as TxBody, witnesses: training.witnesses }
    }
    const data = this.init.data
    if (data != null && round > this.#lastDataRound) {
      const shards = assignShards(chain, ledger.wallet!.address, round).filter(id => !this.#dataSent.has(`${round}/${id}`))
      const id = shards.find(i => data.shards[i] != null)
      if (id == null) {
        this.#lastDataRound = round
        return undefined
      }
      this.#dataSent.add(`${round}/${id}`)
      if (this.#dataSent.size > 64) this.#dataSent.delete(this.#dataSent.values().next().value!)
      const shard = data.shards[id]
      return { body: { kind: 'data', shardId: id, samples: BigInt(shard.samples.length), dataHash: shard.root, round } }
    }
    return undefined
  }

  /**
   * Uptime claimed for `epoch`, conservatively (a claim above what a validator saw is refused): the slots
   * this node's own heartbeat timer fired in (on a busy machine timers drift and fewer beats go out than the
   * epoch has slots), less a fifth and one for beats lost before the gossip mesh formed, and never more than
   * the slots from 10 s after it started.
   */
  #uptimeHeartbeats (epoch: bigint): number {
    const p = this.init.genesis.params
    const from = Math.max(this.#startedAt + 10_000, this.init.genesis.genesisTimeMs + Number(epoch) * p.epochMs)
    const to = this.init.genesis.genesisTimeMs + (Number(epoch) + 1) * p.epochMs
    const slots = Math.floor((to - from) / (p.heartbeatSeconds * 1000))
    const own = this.#tracker?.heartbeatsSeen(this.#peer, epoch, this.init.wallet.address) ?? 0
    return Math.min(slots, Math.floor(0.8 * own) - 1)
  }

  // ---- paid inference ------------------------------------------------------------------------------

  /** The API's paid-session hooks: sessions paid to this node's wallet, and their inference proofs */
  payments (): { paidSession: (id: string) => Promise<{ tokens: number }>, served: (s: ServedSession) => void } {
    return {
      paidSession: async (id) => {
        const ledger = this.service.ledger
        const paid = ledger.state.payments.get(id)
        if (paid == null) throw new ApiError(402, `payment ${id.slice(0, 16)}… is not final on this node's ledger`, 'invalid_request_error', { param: 'neuroshard_payment', code: 'payment_required' })
        if (paid.provider !== ledger.wallet!.address) throw new ApiError(402, `payment ${id.slice(0, 16)}… pays another provider`, 'invalid_request_error', { param: 'neuroshard_payment', code: 'payment_required' })
        if (this.#usedPayments.has(id) || ledger.state.proofKeys.has(`inference/${paid.provider}/${id}`)) throw new ApiError(402, `payment ${id.slice(0, 16)}… was used already`, 'invalid_request_error', { param: 'neuroshard_payment', code: 'payment_used' })
        this.#usedPayments.add(id)
        return { tokens: Number(paid.tokens > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : paid.tokens) }
      },
      served: (s) => {
        if (this.#served.length < 256) this.#served.push(s)
      }
    }
  }

  // ---- training ----------------------------------------------------------------------------------------

  /**
   * A stage finished a round: when every slot's pseudo-gradient was accepted by its group, prepare a training
   * proof of it (signed by the outbox, at most one per ledger round) with its witnesses for the validators.
   */
  /**
   * Whether a training proof of a round that ends from now on could still be signed (the node signs at most one per
   * ledger round): stages record their inner loops only when it can (`StageRecorder`'s `wanted`). Asked when a
   * loop starts; a ledger round that begins during the loop is proved with the next loop.
   */
  trainingProofWanted (): boolean {
    return this.#running && this.signTraining && currentRound(this.service.ledger.chain, this.now) > this.#lastTrainingRound
  }

  async roundDone (work: RecordedRound, contributions: SlotContribution[]): Promise<boolean | undefined> {
    if (!this.#running || !this.signTraining) return undefined
    // this ledger round has its proof already: a later round's work is prepared when the next one begins
    if (currentRound(this.service.ledger.chain, this.now) <= this.#lastTrainingRound) return undefined
    const me = this.#peer
    const skip = (why: string): undefined => { log('no training proof for slots %d-%d: %s', work.start, work.end - 1, why); return undefined }
    const evidence: SlotEvidence[] = []
    const payloads: SlotPayload[] = []
    for (const c of contributions.sort((a, b) => a.slot - b.slot)) {
      if (!c.included) return skip(`slot ${c.slot}: not included in round ${c.round}`)
      const record: RoundRecord | undefined = c.group.record(c.round)
      const mine = record?.contributions.find(x => x.sender === me)
      if (record == null || mine == null || !mine.accepted) return skip(`slot ${c.slot}: no accepted contribution in the record of round ${c.round}`)
      const bytes = new Map<string, Uint8Array>()
      for (const x of record.contributions) {
        const b = c.group.payload(x.payloadHash)
        if (b == null) return skip(`slot ${c.slot}: payload ${x.payloadHash.slice(0, 12)} of round ${c.round} is gone`)
        bytes.set(x.payloadHash, b)
      }
      const opened = await openCommit(Signed.decode(record.commit))
      const announce = opened.announces.find(a => a.sender === me)
      if (announce == null) return skip('own announce missing from the commit')
      evidence.push({ slot: c.slot, record, payloads: bytes })
      payloads.push({ slot: c.slot, codec: codecTuple(announce.codec), bytes: bytes.get(mine.payloadHash)! })
    }
    const slots = Array.from({ length: work.end - work.start }, (_, i) => work.start + i)
    if (payloads.length !== slots.length || payloads.some((p, i) => p.slot !== slots[i])) return skip('not every slot of the span contributed')
    const w0 = encodeWitness({ start: work.start, end: work.end, states: work.before, opsFrom: work.opsFrom, ops: work.ops, evidence, payloads: [] })
    const wf = encodeWitness({ start: work.start, end: work.end, states: work.after, opsFrom: work.opsFrom, ops: [], evidence: [], payloads })
    let tokens = 0n
    for (const step of work.ops[0]) {
      for (const op of step) {
        if (op.kind !== 'backward') continue
        const t = Object.values(op.feeds)[0]
        tokens += BigInt((t.dims[0] ?? 1) * (t.dims[1] ?? 1))
      }
    }
    const batches = work.ops[0].length
    // signed when the outbox is free, for the ledger round of that moment (the latest round replaces this)
    this.#training = {
      body: {
        kind: 'training',
        modelHash: sha256(w0),
        tokens: tokens > 0n ? tokens : 1n,
        batches: BigInt(batches),
        lossBeforeMicro: 0n,
        lossAfterMicro: 0n,
        pseudoGradientHash: stagePseudoGradientHash(payloads.map(p => ({ slot: p.slot, payloadHash: sha256(p.bytes), codec: p.codec }))),
        batchLossMicro: Array.from({ length: batches }, () => 0n),
        checkpointInterval: 0,
        checkpointHashes: []
      },
      witnesses: [w0, wf]
    }
    log('training proof of DiLoCo round %d of slots %d-%d ready', contributions[0]?.round, work.start, work.end - 1)
    return true
  }

  /** Serve `witnesses` (checkpoint 0, …, final) for proof `proofId` to verifiers */
  serve (proofId: string, witnesses: Uint8Array[]): void {
    this.#proofs.set(proofId, witnesses)
    while (this.#proofs.size > KEEP_PROOFS) this.#proofs.delete(this.#proofs.keys().next().value!)
  }

  /** The body of a training proof this node signed (recent ones) */
  claim (proofId: string): TxBody | undefined {
    return this.#claims.get(proofId)
  }

  /** The witnesses this node serves for one of its proofs */
  witnesses (proofId: string): Uint8Array[] | undefined {
    return this.#proofs.get(proofId)
  }

  #emit (e: NodePonwEvents['proof']): void {
    for (const fn of this.#listeners) {
      try { fn(e) } catch {}
    }
  }
}

