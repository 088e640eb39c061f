/**
 * The DiLoCo round service (specs/diloco): a libp2p service that, for one replica group, takes each round's
 * local weights, publishes the compressed pseudo-gradient (announce + chunks on the group's gossipsub topic,
 * or a direct-stream fetch for large payloads), lets the round's leader commit the contribution set (quorum +
 * adaptive deadline, fallback leaders), aggregates the committed set robustly, applies the outer Nesterov
 * step, checks the replicas agree and resyncs from the majority when they do not.
 */

import { InvalidParametersError, NotStartedError } from '@neuroshard/interface'
import { sendRequest } from '@neuroshard/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import { TypedEventEmitter } from 'main-event'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { StateDownload } from './state-download.js'
import { aggregateRound, byzantineBound, minRoundInputs } from './aggregate.js'
import { decodePayload, ErrorFeedback, resolveCodec } from './compress.js'
import {
  COMMIT_DOMAIN, ANNOUNCE_DOMAIN, DEFAULT_COMMIT_STAGGER_MS, DEFAULT_DEADLINE_FACTOR, DEFAULT_DIRECT_THRESHOLD_BYTES,
  DEFAULT_FETCH_CONCURRENCY, DEFAULT_FETCH_RANGE_BYTES, DEFAULT_FETCH_TIMEOUT_MS, DEFAULT_GOSSIP_BYTES_PER_SECOND,
  DEFAULT_GOSSIP_CHUNK_BYTES, DEFAULT_MAX_DEADLINE_MS, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MIN_DEADLINE_MS, DEFAULT_QUORUM,
  DEFAULT_RECORD_HISTORY, DEFAULT_REJECT_FACTOR, DEFAULT_STALL_MS, DILOCO_FETCH_PROTOCOL, DILOCO_TOPIC_PREFIX, MAX_BUFFERED_FUTURE, MAX_COMMIT_SENDERS, DEFAULT_MAX_CONTRIBUTIONS, DEFAULT_AGGREGATOR
} from './constants.js'
import { GaussianPrivatizer } from './dp.js'
import { serveGroupFetch } from './fetch-mux.js'
import {
  InvalidCommitError, MalformedPseudoGradientError, OversizedPseudoGradientError, PayloadUnavailableError, ReplayedPseudoGradientError,
  RoundStalledError, StateSyncError, WrongRoundError, WrongSpanError
} from './errors.js'
import {
  Announce, checkAnnounce, codecToWire, Commit, FetchKind, FetchRequest, FetchResponse, FetchStatus, GossipMessage, leaderKey,
  openAnnounce, openCommit, sha256, signBody, toHex, Signed, ab
} from './messages.js'
import { encodeState } from './state.js'
import { flatten, spanLayout, unflatten, weightsHash } from './span.js'
import { outerStep } from './outer.js'
import type { AggregatorChoice } from './aggregate.js'
import type { CodecName, CodecParams, ResolvedCodec } from './compress.js'
import type { PrivacyOptions } from './dp.js'
import type { OpenedAnnounce, OpenedCommit } from './messages.js'
import type { RoundRecord } from './record.js'
import type { Span, SpanLayout } from './span.js'
import type { AbortOptions, ComponentLogger, Connection, Libp2pEvents, Logger, PeerId, PrivateKey, Startable, TypedEventTarget } from '@libp2p/interface'
type Bytes = Uint8Array<ArrayBuffer>
import type { HandlerRegistrar, StreamOpener } from '@neuroshard/utils'

/** The gossipsub service as DiLoCo uses it (the host's `pubsub`) */
export interface DiLoCoPubSub extends EventTarget {
  subscribe(topic: string): void
  unsubscribe(topic: string): void
  publish(topic: string, data: Bytes): Promise<unknown>
  getSubscribers(topic: string): PeerId[]
}

/**
 * The replica set of a group as the caller's assignment has it (e.g. the layer pool's live holders of the slot):
 * when given, it is the group (specs/diloco §1 "Member"), the same on every replica once the assignment has
 * settled, instead of the topic view each node has of its own neighbours. Read on every use; this node counts
 * as a member whether or not it is listed.
 */
export interface ReplicaSet {
  members(): Iterable<PeerId | string>
}

/** libp2p components the service uses (the host's `pubsub` service is looked up by name) */
export interface DiLoCoComponents {
  peerId: PeerId
  privateKey: PrivateKey
  logger: ComponentLogger
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: StreamOpener & { getConnections(peer?: PeerId): Connection[] }
  registrar: HandlerRegistrar
  [service: string]: unknown
}

export interface DiLoCoInit {
  /** The span this replica group holds (explicit: the full model, or one pipeline stage's parameters) */
  span: Span
  /** Replica group id, part of the topic @default `${modelId}/${span.id}` */
  group?: string
  /** Model / network name used in the default group id @default 'devnet' */
  modelId?: string
  /** Payload codec @default 'int8' (blockwise, block 64) */
  codec?: CodecName | CodecParams
  /** Error-feedback decay β @default 1 */
  errorFeedbackDecay?: number
  /** Robust aggregator @default 'nnm-trimmed-mean' (chosen by the experiment in the README) */
  aggregator?: AggregatorChoice
  /** Reject factor of the accept rule (record) @default 2.5 */
  rejectFactor?: number
  /** Outer Nesterov lr @default 0.7 */
  outerLr?: number
  /** Outer Nesterov momentum @default 0.9 */
  outerMomentum?: number
  /** Differential privacy of this node's pseudo-gradients (off by default) */
  privacy?: PrivacyOptions
  /** Fraction of the group needed for a deadline commit @default 0.5 */
  quorum?: number
  /** @default 2000 */
  minDeadlineMs?: number
  /** @default 120000 */
  maxDeadlineMs?: number
  /** Deadline = this × the smoothed arrival spread of earlier rounds (clamped) @default 3 */
  deadlineFactor?: number
  /** Delay between successive leader candidates' commit turns @default 1500 */
  commitStaggerMs?: number
  /**
   * A round without a commit this long after its first pseudo-gradient (or a commit this node refused) is stalled
   * (specs/diloco 1.3.0 §6 step 5a): members that did not announce it are silent for the round, the group is the
   * members that did, and it commits if they are at least half of the group (else `contribute()` rejects with
   * `RoundStalledError` and the round stays open) @default 180000
   */
  stallMs?: number
  /** Gossip chunk size @default 256 KiB */
  gossipChunkBytes?: number
  /** Payloads over this many bytes are fetched over a direct stream @default 1 MiB */
  directThresholdBytes?: number
  /** Gossip publish pacing @default 16 MiB/s */
  gossipBytesPerSecond?: number
  /** Direct-stream range size @default 1 MiB */
  fetchRangeBytes?: number
  /** @default 2 */
  fetchConcurrency?: number
  /** @default 20000 */
  fetchTimeoutMs?: number
  /** Largest payload accepted @default the fp32 size of the span (4 bytes per element) */
  maxPayloadBytes?: number
  /** Most pseudo-gradients collected in one round (bounds the memory peers can make this node use) @default 64 */
  maxContributions?: number
  /**
   * Accept announces only from members (specs/diloco §6 step 3): with `replicas`, peers of the replica set; without
   * it, peers subscribed to the group topic, or relayed to this node through the mesh (not connected to it) @default true
   */
  membersOnly?: boolean
  /** The group's replica set from the assignment (specs/diloco 1.2.0): the group is this set, not the topic view */
  replicas?: ReplicaSet
  /** Round records kept @default 256 */
  recordHistory?: number
  /** @default 'pubsub' */
  pubsubService?: string
  /** Override of the fetch protocol id (specs/diloco §4) */
  fetchProtocol?: string
}

/** What `contribute` returns once its round is applied */
export interface RoundOutcome {
  /** The round that was applied (this node's contribution was made for `contributedRound`) */
  round: number
  contributedRound: number
  /** Was this node's pseudo-gradient in the committed set (if not, it is folded into the next round) */
  included: boolean
  /** The new base weights (this node's copy) */
  parameters: Map<string, Float32Array>
  baseHash: Uint8Array
  record?: RoundRecord
  /** This node downloaded the group's state instead of applying the round itself */
  resynced: boolean
}

export interface RefusedDetail { from: string, error: Error }

export interface DiLoCoEvents {
  /** A pseudo-gradient, chunk or commit from the network was refused (typed error) */
  'diloco:refused': CustomEvent<RefusedDetail>
  /** A valid announce of the current round arrived */
  'diloco:announce': CustomEvent<{ round: number, sender: string }>
  /** A round was applied: the record */
  'diloco:round': CustomEvent<RoundRecord>
  /** This node downloaded the group's state (join, catch-up or divergence) */
  'diloco:resync': CustomEvent<{ round: number, from: string, reason: string }>
  /** A round stalled (§6 step 5a): its silent members, and whether the members that announced it can commit */
  'diloco:stalled': CustomEvent<StalledDetail>
}

export interface StalledDetail {
  round: number
  /** The group's size as this node saw it when the round stalled */
  members: number
  /** Members that announced the round (the group from now on in this round) */
  announced: number
  /** Announces a stalled round needs: at least half of the group (and the `quorum` fraction) */
  needed: number
  /** Members that did not announce the round */
  silent: string[]
  /** `announced` ≥ `needed`: the round commits without the silent members */
  committable: boolean
}

export interface DiLoCo extends TypedEventEmitter<DiLoCoEvents> {
  readonly group: string
  readonly topic: string
  readonly layout: SpanLayout
  readonly codec: ResolvedCodec
  /** The round being collected (the base weights are its base) */
  readonly round: number
  readonly baseHash: Uint8Array
  readonly initialized: boolean
  /** Start from these weights (genesis; every replica must start from the same) at `round` (default 0) */
  initialize(parameters: ReadonlyMap<string, Float32Array>, options?: { round?: number }): void
  /** Download the group's state (round, base weights, outer momentum) from a member; does not stop anyone */
  sync(options?: AbortOptions & { peer?: PeerId }): Promise<void>
  /** The base weights of the current round (copies) */
  parameters(): Map<string, Float32Array>
  /** Publishes Δ = base − local for the current round and resolves when the round is applied */
  contribute(local: ReadonlyMap<string, Float32Array>, meta?: ContributionMeta, options?: AbortOptions): Promise<RoundOutcome>
  record(round: number): RoundRecord | undefined
  records(): RoundRecord[]
  /** A payload this node still holds (its current and previous round), by sha256 hex */
  payload(hash: string): Uint8Array | undefined
  /** The ledger's `AggregationRecords` check: did round `round`'s aggregation accept this pseudo-gradient */
  acceptedPseudoGradient(query: { round: bigint | number, sender: string, baseWeightsHash: Bytes, pseudoGradientHash: Bytes }): Promise<boolean>
  /** ε spent so far with DP on (zCDP accountant), else undefined */
  privacy(): { epsilon: number, delta: number, rounds: number } | undefined
  /** Bytes this node published on gossipsub and served over streams */
  readonly bytesSent: number
}

export interface ContributionMeta {
  dataShards?: string[]
  innerSteps?: number
  tokens?: number
  /**
   * The weights the inner steps started from, when the group applied rounds while they ran (a straggler):
   * Δ = startedFrom − local, this replica's own progress, is folded into the current round. Without it Δ is
   * taken against the current base, which also carries minus the rounds applied meanwhile and so pulls the
   * group back toward the old base. @default the current base
   */
  startedFrom?: ReadonlyMap<string, Float32Array>
}

/** A pseudo-gradient known for the current round */
interface Contribution {
  opened: OpenedAnnounce
  payload?: Uint8Array
  chunks?: Array<Bytes | undefined>
  received: number
  waiters: Array<() => void>
}

interface RoundState {
  round: number
  firstSeen?: number
  lastSeen?: number
  contributions: Map<string, Contribution>
  timers: Array<ReturnType<typeof setTimeout>>
  commitTimer?: ReturnType<typeof setTimeout>
  committed?: OpenedCommit
  /** When the stall clock started: the first pseudo-gradient of the round, or the first commit refused in it */
  clockStart?: number
  stallTimer?: ReturnType<typeof setTimeout>
  /** Set once the round stalled (§6 step 5a): from then on the group is the members that announced it */
  stalled?: { at: number, silent: Set<string> }
  /** The last commit refused only because its declared group was below this node's: checked again at the stall */
  refusedCommit?: { signed: Signed, from: string }
}

interface Waiter { round: number, resolve: (o: RoundOutcome) => void, reject: (e: Error) => void }

/** Factory in the js-libp2p style: `services: { diloco: diloco({ span }) }` */
export function diloco (init: DiLoCoInit): (components: DiLoCoComponents) => DiLoCo {
  return (components) => new DefaultDiLoCo(components, init)
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export class DefaultDiLoCo extends TypedEventEmitter<DiLoCoEvents> implements DiLoCo, Startable {
  readonly group: string
  readonly topic: string
  readonly layout: SpanLayout
  readonly codec: ResolvedCodec
  readonly [Symbol.toStringTag] = '@neuroshard/diloco'
  bytesSent = 0

  private readonly components: DiLoCoComponents
  private readonly log: Logger
  private readonly opts: Required<Omit<DiLoCoInit, 'span' | 'group' | 'modelId' | 'codec' | 'privacy' | 'aggregator' | 'replicas'>> & { aggregator: AggregatorChoice }
  private readonly replicas?: ReplicaSet
  private readonly ef: ErrorFeedback
  private readonly dp?: GaussianPrivatizer
  private started = false
  private unhandle?: () => Promise<void>
  private controller = new AbortController()

  private base?: Float32Array
  private momentum?: Float32Array
  private currentRound = 0
  private currentHash = new Uint8Array(32)
  private state?: RoundState
  private future = new Map<number, Signed[]>()
  private readonly commits = new Map<number, Signed>()
  private readonly payloads = new Map<string, { round: number, bytes: Bytes }>()
  private readonly seenPayloads = new Set<string>()
  private readonly history = new Map<number, RoundRecord>()
  /**
   * Without a replica set: the group size g = max(members, announces) of the commit this node applied for the
   * previous round, a floor under the group it sees in the current one (specs/diloco 1.4.0 §6 step 4); 0 after a
   * state download, at genesis and with a replica set
   */
  private floor = 0
  private readonly waiters: Waiter[] = []
  private snapshot?: { blob: Bytes, hash: Bytes, round: number, baseHash: Bytes }
  private spreadEwma = 0
  private applying: Promise<void> = Promise.resolve()
  private syncing?: Promise<void>
  private ownPending?: { round: number, decoded: Float32Array, payloadHash: string }

  constructor (components: DiLoCoComponents, init: DiLoCoInit) {
    super()
    if (init?.span == null) throw new InvalidParametersError('diloco needs a span')
    this.components = components
    this.log = components.logger.forComponent('neuroshard:diloco')
    this.layout = spanLayout(init.span)
    this.group = init.group ?? `${init.modelId ?? 'devnet'}/${init.span.id}`
    if (Buffer.byteLength(this.group) > 128 || this.group.length === 0) throw new InvalidParametersError('group id must be 1–128 bytes')
    this.topic = `${DILOCO_TOPIC_PREFIX}/${this.group}`
    this.codec = resolveCodec(init.codec ?? 'int8')
    this.opts = {
      errorFeedbackDecay: init.errorFeedbackDecay ?? 1,
      aggregator: init.aggregator ?? DEFAULT_AGGREGATOR,
      rejectFactor: init.rejectFactor ?? DEFAULT_REJECT_FACTOR,
      outerLr: init.outerLr ?? 0.7,
      outerMomentum: init.outerMomentum ?? 0.9,
      quorum: init.quorum ?? DEFAULT_QUORUM,
      minDeadlineMs: init.minDeadlineMs ?? DEFAULT_MIN_DEADLINE_MS,
      maxDeadlineMs: init.maxDeadlineMs ?? DEFAULT_MAX_DEADLINE_MS,
      deadlineFactor: init.deadlineFactor ?? DEFAULT_DEADLINE_FACTOR,
      commitStaggerMs: init.commitStaggerMs ?? DEFAULT_COMMIT_STAGGER_MS,
      stallMs: init.stallMs ?? DEFAULT_STALL_MS,
      gossipChunkBytes: init.gossipChunkBytes ?? DEFAULT_GOSSIP_CHUNK_BYTES,
      directThresholdBytes: init.directThresholdBytes ?? DEFAULT_DIRECT_THRESHOLD_BYTES,
      gossipBytesPerSecond: init.gossipBytesPerSecond ?? DEFAULT_GOSSIP_BYTES_PER_SECOND,
      fetchRangeBytes: init.fetchRangeBytes ?? DEFAULT_FETCH_RANGE_BYTES,
      fetchConcurrency: init.fetchConcurrency ?? DEFAULT_FETCH_CONCURRENCY,
      fetchTimeoutMs: init.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
      maxPayloadBytes: init.maxPayloadBytes ?? Math.min(DEFAULT_MAX_PAYLOAD_BYTES, 4 * spanLayout(init.span).size),
      maxContributions: Math.min(init.maxContributions ?? DEFAULT_MAX_CONTRIBUTIONS, MAX_COMMIT_SENDERS),
      membersOnly: init.membersOnly ?? true,
      recordHistory: init.recordHistory ?? DEFAULT_RECORD_HISTORY,
      pubsubService: init.pubsubService ?? 'pubsub',
      fetchProtocol: init.fetchProtocol ?? DILOCO_FETCH_PROTOCOL
    }
    if (!(this.opts.quorum > 0 && this.opts.quorum <= 1)) throw new InvalidParametersError('quorum must be in (0, 1]')
    if (!(this.opts.stallMs > 0 && Number.isFinite(this.opts.stallMs))) throw new InvalidParametersError('stallMs must be a positive number of ms')
    if (!(this.opts.gossipChunkBytes >= 1024 && this.opts.gossipChunkBytes <= 2 * 1024 * 1024)) throw new InvalidParametersError('gossipChunkBytes must be in [1 KiB, 2 MiB]')
    if (!(this.opts.fetchRangeBytes >= 1024 && this.opts.fetchRangeBytes <= 2 * 1024 * 1024)) throw new InvalidParametersError('fetchRangeBytes must be in [1 KiB, 2 MiB]')
    this.ef = new ErrorFeedback(this.layout.size, this.opts.errorFeedbackDecay)
    if (init.replicas !== undefined) this.replicas = init.replicas
    if (init.privacy !== undefined) this.dp = new GaussianPrivatizer(init.privacy)
  }

  private get pubsub (): DiLoCoPubSub {
    const p = this.components[this.opts.pubsubService] as DiLoCoPubSub | undefined
    if (p == null) throw new NotStartedError(`no ${this.opts.pubsubService} service on this node`)
    return p
  }

  get round (): number { return this.currentRound }
  get baseHash (): Bytes { return this.currentHash }
  get initialized (): boolean { return this.base !== undefined }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    this.controller = new AbortController()
    // several groups on one node share the protocol's handler (requests name their group)
    this.unhandle = await serveGroupFetch(this.components.registrar, this.opts.fetchProtocol, this.group, (req, connection) => this.serve(req, connection), {
      timeout: this.opts.fetchTimeoutMs,
      maxMessageSize: this.opts.fetchRangeBytes + 4096
    })
  }

  /** Gossipsub starts with the node's other services: subscribe once every service runs */
  afterStart (): void {
    if (!this.started || this.subscribed) return
    this.subscribed = true
    this.pubsub.addEventListener('message', this.onMessage)
    this.pubsub.subscribe(this.topic)
  }

  private subscribed = false

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.controller.abort(new NotStartedError('diloco stopped'))
    if (this.subscribed) {
      this.subscribed = false
      try { this.pubsub.removeEventListener('message', this.onMessage); this.pubsub.unsubscribe(this.topic) } catch {}
    }
    await this.unhandle?.()
    if (this.state !== undefined) for (const t of this.state.timers) clearTimeout(t)
    for (const w of this.waiters.splice(0)) w.reject(new NotStartedError('diloco stopped'))
  }

  // ---- state -------------------------------------------------------------------------------------

  initialize (parameters: ReadonlyMap<string, Float32Array>, options: { round?: number } = {}): void {
    const round = options.round ?? 0
    if (!Number.isSafeInteger(round) || round < 0) throw new InvalidParametersError('round must be a non-negative integer')
    for (const v of parameters.values()) for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new InvalidParametersError('initial weights must be finite')
    this.setState(round, flatten(this.layout, parameters), new Float32Array(this.layout.size))
  }

  private setState (round: number, base: Float32Array, momentum: Float32Array): void {
    this.base = base
    this.momentum = momentum
    this.currentRound = round
    this.currentHash = weightsHash(this.layout, base)
    this.floor = 0
    const blob = encodeState(round, base, momentum)
    this.snapshot = { blob, hash: sha256(blob), round, baseHash: this.currentHash }
    if (this.state !== undefined) for (const t of this.state.timers) clearTimeout(t)
    this.state = { round, contributions: new Map(), timers: [] }
    this.divergence.clear()
    this.forkChecks?.clear()
    // forget payloads of rounds before the previous one (late peers can still fetch the previous round's)
    for (const [k, v] of this.payloads) if (v.round < round - 1) this.payloads.delete(k)
    for (const r of this.commits.keys()) if (r < round - this.opts.recordHistory) this.commits.delete(r)
    const buffered = this.future.get(round)
    for (const r of [...this.future.keys()]) if (r <= round) this.future.delete(r)
    // announces buffered for this round are checked now; one that is refused (e.g. another base) is reported
    // like any refused message — never an unhandled rejection
    if (buffered !== undefined) {
      for (const s of buffered) {
        this.receiveAnnounce(s, '').catch((err: any) => {
          const error = err instanceof Error ? err : new Error(String(err))
          this.log('refused buffered announce: %s', error.message)
          this.safeDispatch('diloco:refused', { from: '', error })
        })
      }
    }
  }

  parameters (): Map<string, Float32Array> {
    if (this.base === undefined) throw new NotStartedError('diloco is not initialized: call initialize() or sync()')
    return unflatten(this.layout, this.base)
  }

  record (round: number): RoundRecord | undefined { return this.history.get(round) }
  payload (hash: string): Uint8Array | undefined { return this.payloads.get(hash)?.bytes }
  records (): RoundRecord[] { return [...this.history.values()] }

  async acceptedPseudoGradient (q: { round: bigint | number, sender: string, baseWeightsHash: Bytes, pseudoGradientHash: Bytes }): Promise<boolean> {
    const r = this.history.get(Number(q.round))
    if (r === undefined || r.baseHash !== toHex(q.baseWeightsHash)) return false
    return r.contributions.some(c => c.sender === q.sender && c.accepted && c.payloadHash === toHex(q.pseudoGradientHash))
  }

  privacy (): { epsilon: number, delta: number, rounds: number } | undefined {
    if (this.dp === undefined) return undefined
    return { epsilon: this.dp.epsilon(), delta: this.dp.options.delta, rounds: this.dp.rounds }
  }

  // ---- contributing ------------------------------------------------------------------------------

  async contribute (local: ReadonlyMap<string, Float32Array>, meta: ContributionMeta = {}, options: AbortOptions = {}): Promise<RoundOutcome> {
    if (!this.started) throw new NotStartedError('diloco is not started')
    if (this.base === undefined) throw new NotStartedError('diloco is not initialized: call initialize() or sync()')
    await this.syncing
    const round = this.currentRound
    const st0 = this.state
    if (st0?.stalled !== undefined && st0.contributions.has(this.components.peerId.toString())) {
      // one pseudo-gradient per round: this node's is in the stalled round already (peers would refuse another)
      if (!this.stallCommittable(st0)) throw this.stalledError(st0)
      return await new Promise<RoundOutcome>((resolve, reject) => { this.waiters.push({ round, resolve, reject }) })
    }
    const base = meta.startedFrom !== undefined ? flatten(this.layout, meta.startedFrom) : this.base
    const flat = flatten(this.layout, local)
    const delta = new Float32Array(flat.length)
    for (let i = 0; i < delta.length; i++) {
      delta[i] = Math.fround(base[i] - flat[i])
      if (!Number.isFinite(delta[i])) throw new InvalidParametersError(`local weights are not finite at ${i}`)
    }
    this.dp?.apply(delta)
    const compressed = this.ef.compress(delta, this.codec)
    const payload = ab(compressed.payload)
    const decoded = compressed.decoded
    const payloadHash = sha256(payload)
    const hex = toHex(payloadHash)
    this.ownPending = { round, decoded, payloadHash: hex }
    const gossip = payload.byteLength <= this.opts.directThresholdBytes
    const announce: Announce = {
      group: this.group,
      span: this.layout.span.id,
      round,
      sender: this.components.peerId.toMultihash().bytes,
      baseHash: this.currentHash,
      ...codecToWire(this.codec),
      elements: this.layout.size,
      payloadSize: payload.byteLength,
      payloadHash,
      gossipChunk: gossip ? this.opts.gossipChunkBytes : 0,
      dataShards: meta.dataShards ?? [],
      innerSteps: meta.innerSteps ?? 0,
      tokens: meta.tokens ?? 0,
      timestampMs: Date.now()
    }
    const signed = await signBody(ANNOUNCE_DOMAIN, Announce.encode(announce), this.components.privateKey)
    const opened = await openAnnounce(signed)
    const outcome = new Promise<RoundOutcome>((resolve, reject) => {
      this.waiters.push({ round, resolve, reject })
    })
    // an abort can reject it while the announce is still being published (before it is awaited below)
    outcome.catch(() => {})
    const onAbort = (): void => {
      const i = this.waiters.findIndex(w => w.round === round)
      if (i >= 0) this.waiters.splice(i, 1)[0].reject(options.signal?.reason ?? new Error('aborted'))
    }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      if (this.currentRound === round) {
        this.payloads.set(hex, { round, bytes: ab(payload) })
        this.seenPayloads.add(hex)
        this.addContribution({ opened, payload, received: payload.byteLength, waiters: [] })
        await this.publish({ announce: signed })
        if (gossip) {
          const size = this.opts.gossipChunkBytes
          for (let i = 0, off = 0; off < payload.byteLength || i === 0; i++, off += size) {
            if (this.currentRound !== round) break
            const data = payload.subarray(off, Math.min(off + size, payload.byteLength))
            await this.publish({ chunk: { round, payloadHash, index: i, data: ab(data) } })
            await sleep(1000 * data.byteLength / this.opts.gossipBytesPerSecond)
            if (off + size >= payload.byteLength) break
          }
        }
      }
      // a commit this node missed (it was published before this node subscribed, or lost): ask for it
      const poll = setInterval(() => {
        if (this.currentRound === round && this.state?.committed === undefined && this.syncing === undefined) void this.pollCommit(round)
      }, this.opts.minDeadlineMs + this.opts.commitStaggerMs * 4)
      try {
        return await outcome
      } finally {
        clearInterval(poll)
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
    }
  }

  private async publish (msg: GossipMessage): Promise<void> {
    const bytes = GossipMessage.encode(msg)
    try {
      await this.pubsub.publish(this.topic, bytes)
      this.bytesSent += bytes.byteLength
    } catch (err: any) {
      // no peers subscribed yet is not an error for a round: others fetch what they miss
      this.log('publish failed: %s', err?.message ?? err)
    }
  }

  /** Asks the group's members for the commit of `round`; applies the first valid one */
  private async pollCommit (round: number): Promise<void> {
    for (const peer of this.pubsub.getSubscribers(this.topic).slice(0, 4)) {
      try {
        const res = await this.request(peer.toString(), { kind: FetchKind.COMMIT, group: this.group, round, payloadHash: new Uint8Array(0), offset: 0, length: 0 })
        if (res.status === FetchStatus.OK && res.commit != null) {
          await this.receiveCommit(res.commit, peer.toString())
          return
        }
      } catch (err: any) {
        this.log('commit poll of %s failed: %s', peer.toString(), err.message)
      }
    }
  }

  // ---- receiving ---------------------------------------------------------------------------------

  private readonly onMessage = (evt: Event): void => {
    const msg = (evt as CustomEvent<{ type?: string, from?: PeerId, topic: string, data: Bytes }>).detail
    if (msg.topic !== this.topic) return
    const from = msg.from?.toString() ?? ''
    void this.receive(msg.data, from).catch((error: Error) => {
      this.log('refused message from %s: %s', from, error.message)
      this.safeDispatch('diloco:refused', { from, error })
    })
  }

  private safeDispatch<K extends keyof DiLoCoEvents>(type: K, detail: DiLoCoEvents[K]['detail']): void {
    try { this.safeDispatchEvent(type, { detail } as any) } catch {}
  }

  /** Handles one gossip message; throws the typed error that refuses it */
  async receive (data: Bytes, from: string): Promise<void> {
    if (data.byteLength > 4 * 1024 * 1024) throw new OversizedPseudoGradientError('gossip message over 4 MiB')
    let msg: GossipMessage
    try {
      msg = GossipMessage.decode(data)
    } catch (err: any) {
      throw new MalformedPseudoGradientError(`gossip message does not decode: ${String(err?.message ?? err)}`)
    }
    const set = (msg.announce != null ? 1 : 0) + (msg.chunk != null ? 1 : 0) + (msg.commit != null ? 1 : 0)
    if (set !== 1) throw new MalformedPseudoGradientError('a gossip message carries exactly one of announce, chunk, commit')
    if (msg.announce != null) await this.receiveAnnounce(msg.announce, from)
    else if (msg.chunk != null) this.receiveChunk(msg.chunk)
    else if (msg.commit != null) await this.receiveCommit(msg.commit, from)
  }

  private async receiveAnnounce (signed: Signed, from: string): Promise<void> {
    const opened = await openAnnounce(signed)
    const a = opened.announce
    if (this.base === undefined || this.state === undefined) return
    // an announce of a later round: the sender is ahead (buffer a few); maybe this node missed a commit
    if (a.round > this.currentRound && a.group === this.group && a.span === this.layout.span.id) {
      const list = this.future.get(a.round) ?? []
      if (list.length < MAX_BUFFERED_FUTURE && this.future.size < 4) { list.push(signed); this.future.set(a.round, list) }
      // one round ahead is normal for a moment (a fast peer, or this node still applying): catch up only if this
      // node is still on its round after a grace period; further ahead means rounds were missed
      const at = this.currentRound
      const why = `announce of round ${a.round} while at ${at}`
      if (a.round > at + 1) void this.catchUp(opened.sender, why)
      else {
        const t = setTimeout(() => { if (this.currentRound === at && this.started) void this.catchUp(opened.sender, why) }, this.opts.minDeadlineMs + this.opts.commitStaggerMs)
        this.state.timers.push(t)
      }
      return
    }
    try {
      checkAnnounce(a, this.expectation())
    } catch (err: any) {
      if (err.name === 'BaseHashMismatchError') this.checkDivergence(opened)
      throw err
    }
    const st = this.state
    if (st.contributions.has(opened.sender)) throw new ReplayedPseudoGradientError(`${opened.sender} already sent a pseudo-gradient in round ${a.round}`)
    if (this.seenPayloads.has(opened.payloadHashHex)) throw new ReplayedPseudoGradientError(`payload ${opened.payloadHashHex.slice(0, 16)}… was already sent`)
    if (st.contributions.size >= this.opts.maxContributions) throw new OversizedPseudoGradientError(`round ${a.round} already holds ${this.opts.maxContributions} pseudo-gradients`)
    // announces buffered for a later round come back with no sender hop (from = ''): a replica set still applies
    if (this.opts.membersOnly && (from !== '' || this.replicas !== undefined)) this.checkMember(opened.sender)
    if (st.committed !== undefined) {
      // too late for this round: the sender folds it into the next one
      throw new WrongRoundError(`round ${a.round} is already committed`)
    }
    this.seenPayloads.add(opened.payloadHashHex)
    if (this.seenPayloads.size > 8192) this.seenPayloads.delete(this.seenPayloads.values().next().value as string)
    const c: Contribution = { opened, received: 0, waiters: [] }
    if (a.gossipChunk > 0) {
      c.chunks = new Array(Math.max(1, Math.ceil(a.payloadSize / a.gossipChunk))).fill(undefined)
    }
    this.addContribution(c)
    this.safeDispatch('diloco:announce', { round: a.round, sender: opened.sender })
    if (a.gossipChunk === 0) void this.ensurePayload(c, [opened.sender], true).catch(() => {})
    else {
      // chunks that do not arrive in time are fetched from the sender
      const t = setTimeout(() => { if (c.payload === undefined) void this.ensurePayload(c, [opened.sender], true).catch(() => {}) }, Math.max(2000, this.opts.minDeadlineMs))
      st.timers.push(t)
    }
    void from
  }

  private expectation (): Parameters<typeof checkAnnounce>[1] {
    return { group: this.group, span: this.layout.span.id, elements: this.layout.size, round: this.currentRound, baseHash: this.currentHash, maxPayloadBytes: this.opts.maxPayloadBytes }
  }

  private addContribution (c: Contribution): void {
    const st = this.state as RoundState
    st.contributions.set(c.opened.sender, c)
    const now = Date.now()
    st.firstSeen ??= now
    st.lastSeen = now
    this.armStall(st)
    if (c.payload !== undefined) this.payloadReady(c)
    this.scheduleCommit()
  }

  // ---- stalled rounds (§6 step 5a) ------------------------------------------------------------------

  /** Starts the round's stall clock (once per round) */
  private armStall (st: RoundState): void {
    if (st.stallTimer !== undefined || st.committed !== undefined) return
    st.clockStart ??= Date.now()
    st.stallTimer = setTimeout(() => { this.onStall(st) }, Math.max(0, st.clockStart + this.opts.stallMs - Date.now()))
    st.timers.push(st.stallTimer)
  }

  /** The group as it was before the stall: its members and every sender of the round */
  private fullIds (st: RoundState): Set<string> {
    const ids = this.memberIds(st)
    for (const sender of st.contributions.keys()) ids.add(sender)
    return ids
  }

  /** Announces a stalled round needs: half of the group, rounded up (§6 step 5a), and this node's quorum fraction */
  private stallQuorum (st: RoundState): number {
    const m = this.fullIds(st).size
    return Math.max(1, Math.ceil(m / 2), Math.ceil(this.opts.quorum * m))
  }

  private stallCommittable (st: RoundState): boolean {
    return st.contributions.size >= this.stallQuorum(st)
  }

  private stalledError (st: RoundState): RoundStalledError {
    const silent = [...(st.stalled?.silent ?? [])].filter(id => !st.contributions.has(id))
    return new RoundStalledError(`round ${st.round} stalled: ${st.contributions.size} of ${this.fullIds(st).size} members announced it, ` +
      `${this.stallQuorum(st)} needed; silent: ${silent.join(', ')}`)
  }

  private onStall (st: RoundState): void {
    if (this.state !== st || st.committed !== undefined || !this.started || st.stalled !== undefined) return
    const full = this.fullIds(st)
    const silent = [...full].filter(id => !st.contributions.has(id))
    // every member announced: the round waits for payloads, not for members (fetches have their own timeouts). The
    // floor (1.4.0) cannot hold a round here: the previous commit's senders, at least minInputs(f) of its group,
    // are members of this round (§1), so with all of them announced the round has its quorum
    if (silent.length === 0) return
    st.stalled = { at: Date.now(), silent: new Set(silent) }
    const needed = this.stallQuorum(st)
    const committable = this.stallCommittable(st)
    this.log('round %d stalled: %d of %d members announced (%d needed), silent %s', st.round, st.contributions.size, full.size, needed, silent.join(', '))
    this.safeDispatch('diloco:stalled', { round: st.round, members: full.size, announced: st.contributions.size, needed, silent, committable })
    if (!committable) {
      const error = this.stalledError(st)
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i].round === st.round) this.waiters.splice(i, 1)[0].reject(error)
      }
    }
    const refused = st.refusedCommit
    st.refusedCommit = undefined
    if (refused !== undefined) {
      this.receiveCommit(refused.signed, refused.from).catch((error: Error) => {
        this.log('refused commit of stalled round %d: %s', st.round, error.message)
        this.safeDispatch('diloco:refused', { from: refused.from, error })
      })
    }
    this.scheduleCommit()
  }

  private receiveChunk (chunk: { round: number, payloadHash: Bytes, index: number, data: Bytes }): void {
    const st = this.state
    if (st === undefined || chunk.round !== st.round) return // chunks of other rounds are not needed
    const hex = toHex(chunk.payloadHash)
    const c = [...st.contributions.values()].find(x => x.opened.payloadHashHex === hex)
    if (c === undefined || c.chunks === undefined || c.payload !== undefined) return
    const a = c.opened.announce
    if (!Number.isSafeInteger(chunk.index) || chunk.index >= c.chunks.length) throw new MalformedPseudoGradientError(`chunk ${chunk.index} of a payload with ${c.chunks.length} chunks`)
    const expected = Math.min(a.gossipChunk, a.payloadSize - chunk.index * a.gossipChunk)
    if (chunk.data.byteLength !== expected) throw new MalformedPseudoGradientError(`chunk ${chunk.index} is ${chunk.data.byteLength} bytes, expected ${expected}`)
    if (c.chunks[chunk.index] !== undefined) return
    c.chunks[chunk.index] = new Uint8Array(chunk.data)
    c.received += chunk.data.byteLength
    if (c.received === a.payloadSize) {
      const bytes = new Uint8Array(a.payloadSize)
      let off = 0
      for (const part of c.chunks) { bytes.set(part as Bytes, off); off += (part as Bytes).byteLength }
      c.chunks = undefined
      if (!this.acceptPayload(c, bytes)) throw new MalformedPseudoGradientError(`payload of ${c.opened.sender} does not match its hash`)
    }
  }

  /** Checks a complete payload against its announce (hash, decodes); stores it */
  private acceptPayload (c: Contribution, bytes: Bytes): boolean {
    if (toHex(sha256(bytes)) !== c.opened.payloadHashHex) return false
    try {
      decodePayload(bytes, this.layout.size, c.opened.codec)
    } catch (err: any) {
      this.safeDispatch('diloco:refused', { from: c.opened.sender, error: err })
      return false
    }
    c.payload = bytes
    this.payloads.set(c.opened.payloadHashHex, { round: c.opened.announce.round, bytes })
    this.payloadReady(c)
    return true
  }

  private payloadReady (c: Contribution): void {
    for (const w of c.waiters.splice(0)) w()
    this.scheduleCommit()
  }

  /**
   * Fetches a contribution's payload over direct streams from the given peers, in order; with `neighbours`, then
   * from a few topic neighbours (a sender this node reaches only through the mesh may not be dialable from here)
   */
  private async ensurePayload (c: Contribution, peers: string[], neighbours = false): Promise<void> {
    if (c.payload !== undefined) return
    const a = c.opened.announce
    let lastErr: Error | undefined
    const order = neighbours ? [...peers, ...this.pubsub.getSubscribers(this.topic).slice(0, 3).map(p => p.toString())] : peers
    for (const p of [...new Set(order)]) {
      if (c.payload !== undefined) return
      if (p === this.components.peerId.toString()) continue
      try {
        const bytes = await this.fetchPayload(p, a.round, a.payloadHash, a.payloadSize)
        if (c.payload !== undefined) return
        if (this.acceptPayload(c, bytes)) return
        lastErr = new MalformedPseudoGradientError(`payload from ${p} does not match its hash`)
      } catch (err: any) {
        lastErr = err
      }
    }
    if (c.payload === undefined) throw new PayloadUnavailableError(`payload ${c.opened.payloadHashHex.slice(0, 16)}… unavailable: ${lastErr?.message ?? 'no peer'}`)
  }

  private fetchSlots = 0
  private readonly fetchQueue: Array<() => void> = []

  private async withFetchSlot<T>(fn: () => Promise<T>): Promise<T> {
    while (this.fetchSlots >= this.opts.fetchConcurrency) await new Promise<void>(resolve => this.fetchQueue.push(resolve))
    this.fetchSlots++
    try { return await fn() } finally { this.fetchSlots--; this.fetchQueue.shift()?.() }
  }

  private async request (peer: string, req: FetchRequest): Promise<FetchResponse> {
    return await sendRequest(this.components.connectionManager, peerIdFromString(peer), this.opts.fetchProtocol, req, {
      requestCodec: FetchRequest,
      responseCodec: FetchResponse,
      maxMessageSize: this.opts.fetchRangeBytes + 4096,
      timeout: this.opts.fetchTimeoutMs,
      signal: this.controller.signal
    })
  }

  private async fetchPayload (peer: string, round: number, hash: Bytes, size: number): Promise<Bytes> {
    return await this.withFetchSlot(async () => {
      const out = new Uint8Array(size)
      for (let off = 0; off < size; off += this.opts.fetchRangeBytes) {
        const length = Math.min(this.opts.fetchRangeBytes, size - off)
        const res = await this.request(peer, { kind: FetchKind.PAYLOAD, group: this.group, round, payloadHash: hash, offset: off, length })
        if (res.status !== FetchStatus.OK) throw new PayloadUnavailableError(`${peer} answered ${res.status}`)
        if (res.total !== size || res.data.byteLength !== length) throw new MalformedPseudoGradientError(`${peer} sent a range of ${res.data.byteLength} bytes of ${res.total}, asked ${length} of ${size}`)
        out.set(res.data, off)
      }
      return out
    })
  }

  // ---- serving -----------------------------------------------------------------------------------

  private serve (req: FetchRequest, _connection: Connection): FetchResponse {
    const empty = { status: FetchStatus.OK, data: new Uint8Array(0), total: 0, round: 0, baseHash: new Uint8Array(0), stateHash: new Uint8Array(0) }
    if (req.group !== this.group) return { ...empty, status: FetchStatus.NOT_FOUND }
    if (req.length > this.opts.fetchRangeBytes) return { ...empty, status: FetchStatus.BAD_REQUEST }
    if (req.kind === FetchKind.PAYLOAD) {
      const p = this.payloads.get(toHex(req.payloadHash))
      if (p === undefined) return { ...empty, status: FetchStatus.NOT_FOUND }
      if (req.offset > p.bytes.byteLength || req.offset + req.length > p.bytes.byteLength) return { ...empty, status: FetchStatus.BAD_REQUEST }
      this.bytesSent += req.length
      return { ...empty, data: p.bytes.subarray(req.offset, req.offset + req.length), total: p.bytes.byteLength }
    }
    if (req.kind === FetchKind.COMMIT) {
      const c = this.commits.get(req.round)
      if (c === undefined) return { ...empty, status: FetchStatus.NOT_FOUND }
      return { ...empty, commit: c }
    }
    if (req.kind === FetchKind.STATE) {
      const s = this.snapshot
      if (s === undefined) return { ...empty, status: FetchStatus.NOT_FOUND }
      if (req.offset > s.blob.byteLength || req.offset + req.length > s.blob.byteLength) return { ...empty, status: FetchStatus.BAD_REQUEST }
      this.bytesSent += req.length
      return { ...empty, data: s.blob.subarray(req.offset, req.offset + req.length), total: s.blob.byteLength, round: s.round, baseHash: s.baseHash, stateHash: s.hash }
    }
    return { ...empty, status: FetchStatus.BAD_REQUEST }
  }

  // ---- committing --------------------------------------------------------------------------------

  /**
   * The group's members as this node sees them in a round (specs/diloco §1, 1.2.0), itself included: the
   * assignment's replica set when the caller gives one; else the peers subscribed to the topic and the senders of
   * the previous round's record (a member it reaches only through the mesh, counted again in the next round) and
   * the senders whose announces of the round it accepted (with a replica set those are replicas already)
   */
  private memberIds (st: RoundState | undefined = this.state): Set<string> {
    const ids = new Set<string>([this.components.peerId.toString()])
    if (this.replicas !== undefined) {
      for (const p of this.replicas.members()) ids.add(p.toString())
      return ids
    }
    for (const p of this.pubsub.getSubscribers(this.topic)) ids.add(p.toString())
    for (const c of this.history.get(this.currentRound - 1)?.contributions ?? []) ids.add(c.sender)
    if (st !== undefined) for (const sender of st.contributions.keys()) ids.add(sender)
    return ids
  }

  /** Refuses an announce of a non-member (WrongSpanError): §6 step 3 */
  private checkMember (sender: string): void {
    if (this.replicas !== undefined) {
      for (const p of this.replicas.members()) if (p.toString() === sender) return
      throw new WrongSpanError(`${sender} is not a replica of the group`)
    }
    if (this.pubsub.getSubscribers(this.topic).some(p => p.toString() === sender)) return
    // not subscribed as this node sees it: a peer it is not connected to reached it through the mesh (a member
    // relayed the announce); a peer connected to it that publishes without subscribing is no member
    let connected = true
    try { connected = this.components.connectionManager.getConnections(peerIdFromString(sender)).length > 0 } catch {}
    if (connected) throw new WrongSpanError(`${sender} is not subscribed to the group topic`)
  }

  /** The group's members as this node sees them, in leader order for the current round (a stalled round: its announcers) */
  private leaderOrder (): string[] {
    const keyed: Array<{ id: string, key: string }> = []
    const st = this.state
    const ids = st?.stalled !== undefined ? new Set(st.contributions.keys()) : this.memberIds()
    for (const id of ids) {
      try { keyed.push({ id, key: leaderKey(this.currentRound, peerIdFromString(id).toMultihash().bytes) }) } catch {} // not a peer id: no member
    }
    return keyed
      .sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
      .map(p => p.id)
  }

  /**
   * The group's size as this node sees it in a round: its members, the round's senders and, without a replica set
   * and until the round stalls, the group of the commit it applied for the previous round (§6 step 4, 1.4.0)
   */
  private groupSize (st: RoundState): number {
    return Math.max(this.leaderOrder().length, st.contributions.size, st.stalled === undefined ? this.floor : 0)
  }

  private deadlineMs (): number {
    const d = this.opts.deadlineFactor * this.spreadEwma
    return Math.min(this.opts.maxDeadlineMs, Math.max(this.opts.minDeadlineMs, d))
  }

  /** Runs whenever a contribution or payload arrives: commit now if this node's turn has come */
  private scheduleCommit (): void {
    const st = this.state
    if (st === undefined || st.committed !== undefined || st.firstSeen === undefined || !this.started) return
    const order = this.leaderOrder()
    const rank = order.indexOf(this.components.peerId.toString())
    const ready = [...st.contributions.values()].filter(c => c.payload !== undefined)
    const members = order.length
    // never fewer than the aggregator needs to stay robust against the f members this group may hold
    // (2f + 1): below that the round waits for more contributions instead of committing at its deadline
    let quorum = Math.max(1, Math.ceil(this.opts.quorum * members), minRoundInputs(this.opts.aggregator, byzantineBound(this.groupSize(st))))
    // a stalled round (§6 step 5a): its announcers are the group, at least half of the group as it was before
    if (st.stalled !== undefined) quorum = Math.max(quorum, this.stallQuorum(st))
    const now = Date.now()
    const turn = (st.stalled?.at ?? st.firstSeen + this.deadlineMs()) + rank * this.opts.commitStaggerMs
    // a member that did not announce a stalled round is no leader candidate of it
    if (rank >= 0 && ((rank === 0 && ready.length >= Math.max(members, quorum)) || (now >= turn && ready.length >= quorum))) {
      this.commit().catch((err: Error) => { this.log('commit of round %d refused: %s', st.round, err.message) })
      return
    }
    // one pending check per round: the newest replaces the previous one
    const wait = Math.max(250, turn - now)
    const round = st.round
    if (st.commitTimer !== undefined) {
      // the replaced check leaves the round's timers too: a round that waits long re-checks every 250 ms or more
      clearTimeout(st.commitTimer)
      const i = st.timers.indexOf(st.commitTimer)
      if (i >= 0) st.timers.splice(i, 1)
    }
    st.commitTimer = setTimeout(() => { if (this.state?.round === round) this.scheduleCommit() }, Math.min(wait, 60_000))
    st.timers.push(st.commitTimer)
  }

  private committing = false

  private async commit (): Promise<void> {
    const st = this.state
    if (st === undefined || st.committed !== undefined || this.committing) return
    this.committing = true
    try {
      const ready = [...st.contributions.values()].filter(c => c.payload !== undefined)
        .sort((x, y) => Buffer.compare(x.opened.announce.sender, y.opened.announce.sender))
      const body: Commit = {
        group: this.group,
        span: this.layout.span.id,
        round: st.round,
        leader: this.components.peerId.toMultihash().bytes,
        baseHash: this.currentHash,
        announces: ready.map(c => c.opened.signed),
        timestampMs: Date.now(),
        members: this.groupSize(st)
      }
      const signed = await signBody(COMMIT_DOMAIN, Commit.encode(body), this.components.privateKey)
      if (this.state !== st || st.committed !== undefined) return
      await this.publish({ commit: signed })
      await this.receiveCommit(signed, this.components.peerId.toString())
    } finally {
      this.committing = false
    }
  }

  private async receiveCommit (signed: Signed, from: string): Promise<void> {
    const opened = await openCommit(signed)
    const c = opened.commit
    if (c.group !== this.group || c.span !== this.layout.span.id) {
      throw new WrongSpanError(`commit for ${c.group} span ${c.span}`)
    }
    if (this.base === undefined) return
    if (c.round < this.currentRound) {
      // old news (gossip re-delivery), or a competing commit of the round just applied: the better one wins
      const mine = this.commits.get(c.round)
      if (c.round === this.currentRound - 1 && mine !== undefined && !uint8ArrayEquals(mine.body, signed.body) &&
        DefaultDiLoCo.betterCommit(opened, await openCommit(mine))) {
        void this.catchUp(opened.leader, `fork choice: ${opened.leader}'s commit of round ${c.round} beats this node's`)
      }
      return
    }
    if (c.round > this.currentRound) {
      void this.catchUp(opened.leader, `commit of round ${c.round} while at ${this.currentRound}`)
      return
    }
    if (!uint8ArrayEquals(c.baseHash, this.currentHash)) {
      void this.catchUp(opened.leader, `commit of round ${c.round} from another base`)
      return
    }
    const st = this.state as RoundState
    if (this.replicas !== undefined) {
      // with an assigned replica set, a commit may hold only replicas' pseudo-gradients (else a leader could pad a
      // commit of the set's 2f + 1 with outsiders' inputs)
      const members = this.memberIds(st)
      const outsider = opened.announces.find(a => !members.has(a.sender))
      if (outsider !== undefined) throw new InvalidCommitError(`commit of round ${c.round} holds ${outsider.sender}, not a replica of the group`)
    }
    // a commit must be robust for the group as this node sees it: its declared size may not hide members
    // (f of the group this node sees, or of the senders announcing in the round), and it must hold 2f + 1
    const group = Math.max(c.members, c.announces.length)
    const seen = st.stalled === undefined ? this.groupSize(st) : this.fullIds(st).size
    if (byzantineBound(group) < byzantineBound(seen)) {
      if (st.stalled === undefined) {
        // maybe a stalled round's commit (§6 step 5a) that this node's own stall clock has not reached: kept, and
        // weighed again when it does
        st.refusedCommit = { signed, from }
        this.armStall(st)
        throw new InvalidCommitError(`commit of round ${c.round} declares a group of ${group}; this node sees ${seen} members`)
      }
      // a stalled round: the group is the members that announced it, and they must be half of the group at least
      const announced = st.contributions.size
      if (byzantineBound(group) < byzantineBound(announced)) {
        throw new InvalidCommitError(`commit of stalled round ${c.round} declares a group of ${group}; ${announced} members announced it to this node`)
      }
      if (c.announces.length < Math.ceil(seen / 2)) {
        throw new InvalidCommitError(`commit of stalled round ${c.round} holds ${c.announces.length} pseudo-gradients, fewer than half of the group of ${seen}`)
      }
    }
    const needed = minRoundInputs(this.opts.aggregator, byzantineBound(group))
    if (c.announces.length < needed) {
      throw new InvalidCommitError(`commit of round ${c.round} holds ${c.announces.length} pseudo-gradients; a group of ${group} needs ${needed} for a robust aggregate`)
    }
    if (st.committed !== undefined) {
      // first commit wins for now; a different one is weighed again (fork choice) once this round is applied
      if (!uint8ArrayEquals(st.committed.signed.body, signed.body)) void this.applying.then(async () => { await this.receiveCommit(signed, from) }).catch(() => {})
      return
    }
    st.committed = opened
    for (const t of st.timers) clearTimeout(t)
    this.commits.set(c.round, signed)
    void from
    this.applying = this.applying.then(async () => { await this.apply(st, opened) }).catch((err: Error) => {
      this.log('applying round %d failed: %s', c.round, err.message)
      void this.catchUp(opened.leader, `could not apply round ${c.round}: ${err.message}`)
    })
    await this.applying
  }

  /**
   * §6 step 4 (1.4.0): without a replica set, the group g = max(members, announces) of the commit just applied is a
   * floor under the group this node sees in the next round (until that round stalls); with one, no floor
   */
  private carryFloor (commit: OpenedCommit): void {
    this.floor = this.replicas === undefined ? Math.max(commit.commit.members, commit.announces.length) : 0
  }

  /** Gathers the committed payloads, aggregates, applies the outer step, records the round */
  private async apply (st: RoundState, commit: OpenedCommit): Promise<void> {
    if (this.state !== st) return
    const contributors = commit.announces.map(a => a.sender)
    const inputs: Float32Array[] = []
    for (const a of commit.announces) {
      let c = st.contributions.get(a.sender)
      if (c === undefined || c.opened.payloadHashHex !== a.payloadHashHex) {
        c = { opened: a, received: 0, waiters: [] }
        const stored = this.payloads.get(a.payloadHashHex)
        if (stored !== undefined) c.payload = stored.bytes
        st.contributions.set(a.sender, c)
      }
      if (c.payload === undefined) {
        // chunks may still be on the way: give them a moment, then fetch
        const cc = c
        await new Promise<void>(resolve => { const t = setTimeout(resolve, 1000); cc.waiters.push(() => { clearTimeout(t); resolve() }) })
        if (c.payload === undefined) await this.ensurePayload(c, [a.sender, commit.leader, ...contributors])
      }
      inputs.push(decodePayload(c.payload as Bytes, this.layout.size, a.codec))
    }
    if (this.state !== st) return
    const agg = aggregateRound(inputs, this.opts.aggregator, this.opts.rejectFactor, commit.commit.members)
    const base = (this.base as Float32Array).slice()
    const momentum = (this.momentum as Float32Array).slice()
    const baseHashHex = toHex(this.currentHash)
    outerStep(base, momentum, agg.value, { lr: this.opts.outerLr, momentum: this.opts.outerMomentum })
    const me = this.components.peerId.toString()
    const included = contributors.includes(me)
    const pending = this.ownPending
    if (pending !== undefined && pending.round === st.round && !included) {
      // a straggler: its pseudo-gradient is folded into the next round through the error-feedback buffer
      this.ef.carry(pending.decoded)
    }
    if (pending?.round === st.round) this.ownPending = undefined
    // arrival spread for the adaptive deadline
    if (st.firstSeen !== undefined && st.lastSeen !== undefined) {
      const spread = st.lastSeen - st.firstSeen
      this.spreadEwma = this.spreadEwma === 0 ? spread : 0.7 * this.spreadEwma + 0.3 * spread
    }
    this.setState(st.round + 1, base, momentum)
    this.carryFloor(commit)
    const record: RoundRecord = {
      group: this.group,
      span: this.layout.span.id,
      round: st.round,
      baseHash: baseHashHex,
      leader: commit.leader,
      commit: Signed.encode(commit.signed),
      aggregator: agg.aggregator,
      contributions: commit.announces.map((a, i) => ({
        sender: a.sender,
        payloadHash: a.payloadHashHex,
        dataShards: a.announce.dataShards,
        innerSteps: a.announce.innerSteps,
        tokens: a.announce.tokens,
        accepted: agg.accepted[i],
        distance: agg.distances[i]
      })),
      resultHash: toHex(this.currentHash)
    }
    this.history.set(st.round, record)
    if (this.history.size > this.opts.recordHistory) this.history.delete(this.history.keys().next().value as number)
    this.safeDispatch('diloco:round', record)
    this.resolveWaiters(st.round, included, record, false)
  }

  private resolveWaiters (appliedRound: number, included: boolean, record: RoundRecord | undefined, resynced: boolean): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]
      if (w.round > appliedRound) continue
      this.waiters.splice(i, 1)
      w.resolve({
        round: appliedRound,
        contributedRound: w.round,
        included: included && w.round === appliedRound,
        parameters: this.parameters(),
        baseHash: this.currentHash,
        ...(record !== undefined ? { record } : {}),
        resynced
      })
    }
  }

  // ---- catching up and resyncing -----------------------------------------------------------------

  /** Announces of the round from other bases: if most senders agree on one other base, resync from them */
  private checkDivergence (opened: OpenedAnnounce): void {
    const st = this.state
    if (st === undefined) return
    const key = `div:${toHex(opened.announce.baseHash)}`
    const votes = (this.divergence.get(key) ?? new Set<string>()).add(opened.sender)
    this.divergence.set(key, votes)
    const agreeing = [...st.contributions.values()].filter(c => c.opened.sender !== this.components.peerId.toString()).length
    if (votes.size >= 2 && votes.size > agreeing) {
      this.divergence.clear()
      void this.catchUp([...votes][0], `majority of round ${opened.announce.round} on another base`)
      return
    }
    // no majority (e.g. two halves of a healed partition): the better commit of the previous round wins
    if (votes.size === 1 && st.round > 0 && !this.forkChecks.has(opened.sender)) {
      this.forkChecks.add(opened.sender)
      void this.forkChoice(opened.sender, st.round - 1)
    }
  }

  private readonly forkChecks = new Set<string>()

  /**
   * Fork choice between two commits of one round (specs/diloco §6 step 9): more pseudo-gradients wins, then the
   * lower leader key, then the lower sha256 of the commit body. Returns true when `theirs` is better.
   */
  static betterCommit (theirs: OpenedCommit, ours: OpenedCommit): boolean {
    if (theirs.announces.length !== ours.announces.length) return theirs.announces.length > ours.announces.length
    const kt = leaderKey(theirs.commit.round, theirs.commit.leader)
    const ko = leaderKey(ours.commit.round, ours.commit.leader)
    if (kt !== ko) return kt < ko
    return toHex(sha256(theirs.signed.body)) < toHex(sha256(ours.signed.body))
  }

  /** Asks `peer` for its commit of `round`; if it beats this node's, downloads `peer`'s state */
  private async forkChoice (peer: string, round: number): Promise<void> {
    const mine = this.commits.get(round)
    if (mine === undefined) return
    try {
      const res = await this.request(peer, { kind: FetchKind.COMMIT, group: this.group, round, payloadHash: new Uint8Array(0), offset: 0, length: 0 })
      if (res.status !== FetchStatus.OK || res.commit == null) return
      const theirs = await openCommit(res.commit)
      if (theirs.commit.round !== round || theirs.commit.group !== this.group) return
      if (DefaultDiLoCo.betterCommit(theirs, await openCommit(mine))) {
        await this.catchUp(peer, `fork choice: ${peer}'s commit of round ${round} beats this node's`)
      }
    } catch (err: any) {
      this.log('fork choice with %s failed: %s', peer, err.message)
    }
  }

  private readonly divergence = new Map<string, Set<string>>()

  /** A node that is behind (or diverged) first tries the missed commit, then downloads the state */
  private async catchUp (peer: string, reason: string): Promise<void> {
    if (this.syncing !== undefined || !this.started) return
    this.syncing = (async () => {
      try {
        this.log('catching up from %s: %s', peer, reason)
        try {
          await this.sync({ peer: peerIdFromString(peer), reason })
        } catch (err: any) {
          // a member this node reaches only through the mesh may not be dialable from here: ask the neighbours
          this.log('catch-up from %s failed (%s); asking the topic\'s peers', peer, err.message)
          await this.sync({ reason })
        }
      } catch (err: any) {
        this.log('catch-up from %s failed: %s', peer, err.message)
      } finally {
        this.syncing = undefined
      }
    })()
    await this.syncing
  }

  async sync (options: AbortOptions & { peer?: PeerId, reason?: string } = {}): Promise<void> {
    if (!this.started) throw new NotStartedError('diloco is not started')
    const candidates = options.peer !== undefined ? [options.peer] : this.pubsub.getSubscribers(this.topic)
    if (candidates.length === 0) throw new StateSyncError('no group member to download the state from')
    let lastErr: Error | undefined
    for (const peer of candidates) {
      try {
        const got = await this.downloadState(peer.toString())
        if (this.base !== undefined && got.round < this.currentRound) throw new StateSyncError(`${peer.toString()} is at round ${got.round}, behind this node's ${this.currentRound}`)
        if (this.base !== undefined && got.round === this.currentRound && uint8ArrayEquals(got.baseHash, this.currentHash)) return
        const pending = this.ownPending
        if (pending !== undefined) { this.ef.carry(pending.decoded); this.ownPending = undefined }
        this.setState(got.round, got.base, got.momentum)
        this.safeDispatch('diloco:resync', { round: got.round, from: peer.toString(), reason: options.reason ?? 'sync' })
        this.resolveWaiters(got.round - 1, false, undefined, true)
        return
      } catch (err: any) {
        lastErr = err
      }
    }
    throw lastErr instanceof StateSyncError ? lastErr : new StateSyncError(`state download failed: ${lastErr?.message ?? 'unknown'}`)
  }

  private async downloadState (peer: string): Promise<{ round: number, base: Float32Array, momentum: Float32Array, baseHash: Bytes }> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const download = new StateDownload(this.layout.size, this.opts.fetchRangeBytes, base => weightsHash(this.layout, base))
      const ask = async (offset: number, length: number): Promise<FetchResponse> =>
        await this.request(peer, { kind: FetchKind.STATE, group: this.group, round: 0, payloadHash: new Uint8Array(0), offset, length })
      try {
        download.header(await ask(0, 0))
        let changed = false
        for (let want = download.next(); want != null; want = download.next()) {
          // another state hash: a round was applied meanwhile, start again
          if (!download.range(await ask(want.offset, want.length))) { changed = true; break }
        }
        if (changed) continue
        return download.finish()
      } catch (err: any) {
        throw err instanceof StateSyncError ? new StateSyncError(`${peer}: ${err.message}`) : err
      }
    }
    throw new StateSyncError(`${peer}'s state kept changing during the download`)
  }
}
