import { freemem } from 'node:os'
import { QUANT_BLOCK_SIZE, TINY, validateConfig } from '@neuroshard/model'
import { InvalidParametersError, NotStartedError } from '@neuroshard/interface'
import { TypedEventEmitter } from 'main-event'
import { sha256 } from 'multiformats/hashes/sha2'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { buildView, chooseSpan, rebalanceTarget, spanDeficit, underReplicated } from './assignment.js'
import {
  DEFAULT_BALANCE_QUALITY, DEFAULT_CLAIM_JITTER_MS, DEFAULT_DHT_REFRESH_INTERVAL_MS, DEFAULT_HEARTBEAT_INTERVAL_MS, MAX_CLOCK_SKEW_MS,
  DEFAULT_LIVENESS_PROBE_TIMEOUT_MS, DEFAULT_LOADING_GRACE_MS, DEFAULT_MAX_RECORDS, DEFAULT_REBALANCE_INTERVAL_MS,
  DEFAULT_RECORD_TTL_MS, DEFAULT_RESERVE_FRACTION, DEFAULT_SETTLE_MS, LAYER_POOL_TOPIC_PREFIX, LOAD_DHT_SYNC_TIMEOUT_MS, ANNOUNCED_DIAL_TIMEOUT_MS, MAX_SPANS_PER_RECORD, MIN_REPLICAS,
  SERVING_BYTES_PER_PARAMETER, TRAINING_BYTES_PER_PARAMETER
} from './constants.js'
import { InsufficientMemoryError, SpanLoadError } from './errors.js'
import { SPAN_QUANT_BLOCK_SIZES, layerRecordDhtKey, openLayerRecord, signLayerRecord } from './records.js'
import { bestVote, catchUpDue, genesisSlotsToFetch, isBehind, slotSource, slotVotes } from './target.js'
import type { SlotVote } from './target.js'
import { describeSpan, genesisSlotParameters, slotCount, slotMemory, slotParameters, slotWeightsHash } from './slots.js'
import { digestChunks } from './transfer/chunks.js'
import { toHex } from './transfer/hex.js'
import { fetchSpanWeights } from './transfer/client.js'
import { weightsServer } from './transfer/server.js'
import { MemoryWeightStore } from './weight-store.js'
import type { Holding, SlotView } from './assignment.js'
import type { LayerPoolRecord, LayerSpan, SignedLayerRecord, SlotInfo, SpanQuantization, SpanStateName } from './records.js'
import type { PartialSpanWeights, SpanContent, SpanRequest } from './transfer/types.js'
import type { WeightsServer } from './transfer/server.js'
import type { WeightStore } from './weight-store.js'
import type { AbortOptions, ComponentLogger, Connection, ContentRouting, Logger, PeerId, PrivateKey, Startable, TypedEventTarget, Libp2pEvents } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ModelConfig } from '@neuroshard/model'
import type { HandlerRegistrar, StreamOpener } from '@neuroshard/utils'

/** The slice of gossipsub the pool uses */
export interface LayerPoolPubSub {
  subscribe(topic: string): void
  unsubscribe(topic: string): void
  publish(topic: string, data: Uint8Array): Promise<unknown>
  addEventListener(type: 'message', listener: (evt: CustomEvent<{ topic: string, data: Uint8Array, type?: string, from?: PeerId }>) => void): void
  removeEventListener(type: 'message', listener: (evt: CustomEvent<{ topic: string, data: Uint8Array, type?: string, from?: PeerId }>) => void): void
}

/** libp2p components the pool uses (the host profile's `pubsub` service is looked up by name) */
export interface LayerPoolComponents {
  peerId: PeerId
  privateKey: PrivateKey
  logger: ComponentLogger
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: StreamOpener & {
    getConnections(peer?: PeerId): Connection[]
    openConnection(peer: PeerId | Multiaddr[], options?: AbortOptions): Promise<Connection>
  }
  registrar: HandlerRegistrar
  contentRouting: ContentRouting
  addressManager: { getAddresses(): Multiaddr[] }
  [service: string]: unknown
}

export interface LayerPoolInit {
  /** Name of the network's model (topic and DHT keys) @default 'devnet' */
  modelId?: string
  /** Architecture of the model (must be the one its `version` names) @default TINY */
  config?: ModelConfig
  /** Architecture version of `config` @default 1 */
  version?: number
  /** Init seed of the genesis weights (specs/model, "Init") @default 0 */
  initSeed?: number | bigint
  /** Memory this node declares for spans, bytes @default half of the free memory at start */
  memoryBytes?: number
  /** Hold spans for training (4x the memory per parameter: weights, gradient, AdamW m and v) @default false */
  training?: boolean
  /** Where the node keeps its slots' weights @default a MemoryWeightStore */
  weightStore?: WeightStore
  /** Measured tokens/s of this node for a span (0: not measured) @default 0 */
  throughput?: number | (() => number)
  /**
   * The weights this node serves its spans' inference with, declared in its record so routers and clients know
   * (the slots' float32 weights stay what the record's hashes name) @default 'fp32'
   */
  quantization?: SpanQuantization
  /**
   * Values per quantization group of a quantized node's spans when not 32 (64 or 128, declared as
   * `quant_block_size`; the executor's `quantBlockSize`) @default 32
   */
  quantBlockSize?: number
  /**
   * Tokens of one more inference session this node can still keep in its KV cache on a span it announces (the
   * pipeline's `kvTokensLeft(start, end)`), published with every record; undefined: not announced @default none
   */
  kvTokensLeft?(span: { start: number, end: number }): number | undefined
  /** Take a span when the pool starts, and take over under-replicated slots later @default true */
  autoAssign?: boolean
  /** @default MIN_REPLICAS (2) */
  minReplicas?: number
  /** @default DEFAULT_HEARTBEAT_INTERVAL_MS (2 s) */
  heartbeatIntervalMs?: number
  /** @default DEFAULT_RECORD_TTL_MS (10 s) */
  recordTtlMs?: number
  /** @default DEFAULT_DHT_REFRESH_INTERVAL_MS (30 s) */
  dhtRefreshIntervalMs?: number
  /** @default DEFAULT_SETTLE_MS (1.5 s) */
  settleMs?: number
  /** @default DEFAULT_CLAIM_JITTER_MS (0.5 s) */
  claimJitterMs?: number
  /** @default DEFAULT_LOADING_GRACE_MS (60 s) */
  loadingGraceMs?: number
  /** @default DEFAULT_REBALANCE_INTERVAL_MS (60 s) */
  rebalanceIntervalMs?: number
  /**
   * How long a slot this node serves must stay behind the slot's target before the node fetches the target
   * (spec §6.1; replicas that train update one after another) @default the record TTL
   */
  catchUpGraceMs?: number
  /** @default DEFAULT_BALANCE_QUALITY (0.75) */
  balanceQuality?: number
  /** @default DEFAULT_MAX_RECORDS (4096) */
  maxRecords?: number
  /** Most spans this node holds at once @default 4 */
  maxSpans?: number
  /** @default DEFAULT_LIVENESS_PROBE_TIMEOUT_MS (3 s) */
  livenessProbeTimeoutMs?: number
  /**
   * On stop, announce the spans as `leaving` so peers take them over at once rather than when the record
   * expires @default true
   */
  announceLeave?: boolean
  /**
   * Share of the memory a joining node leaves free for taking over slots whose holders leave (hot swap);
   * 0 takes the longest span the memory holds @default DEFAULT_RESERVE_FRACTION (0.25)
   */
  reserveFraction?: number
  /** Name of the gossipsub service in the node's services @default 'pubsub' */
  pubsubService?: string
  /** Random numbers in [0, 1) for tie-breaks and jitter @default Math.random */
  random?(): number
  /** Clock, ms since the epoch @default Date.now */
  now?(): number
}

/** A peer's record as this node holds it */
export interface PoolEntry {
  record: LayerPoolRecord
  bytes: Uint8Array
  /** Local time the record arrived */
  receivedAt: number
  /** Local time until which the record counts (its lifetime measured from arrival, capped by its expiry plus the clock-skew allowance) */
  liveUntil: number
}

/** One span this node holds, with the state of its loading */
export interface OwnSpan {
  start: number
  end: number
  state: SpanStateName
  claimedAt: number
  /** What the span replaces once it serves (a move) */
  replaces?: { start: number, end: number }
}

export interface LayerPoolEvents {
  /** The table of records changed (a record arrived, expired or a peer was found dead) */
  'layer-pool:records': CustomEvent<void>
  /** This node claimed a span */
  'layer-pool:assigned': CustomEvent<{ start: number, end: number }>
  /** A span of this node finished loading and serves */
  'layer-pool:loaded': CustomEvent<{ start: number, end: number }>
  /** A span of this node could not be loaded (it stays `loading`) */
  'layer-pool:load-failed': CustomEvent<{ start: number, end: number, error: Error }>
  /** This node dropped a span */
  'layer-pool:released': CustomEvent<{ start: number, end: number }>
  /** A slot this node serves got newer weights (catch-up, spec §6.1): whoever runs the slot reloads it */
  'layer-pool:updated': CustomEvent<{ slot: number, weightsHash: string, step: number }>
}

/** Fetches one slot's weights from replicas (the weight transfer client, or a test double) */
export interface SlotFetcher {
  (request: SlotFetchRequest, options?: AbortOptions): Promise<Map<string, Float32Array>>
}

/** What the pool asks a {@link SlotFetcher} for */
export interface SlotFetchRequest {
  slot: number
  replicas: PeerId[]
  weightsHash: string
  chunksRoot: string
}

/** The layer pool of one node */
export interface LayerPool extends TypedEventTarget<LayerPoolEvents>, Startable {
  readonly modelId: string
  readonly version: number
  readonly config: ModelConfig
  /** Memory this node declares, bytes */
  readonly memoryBytes: number
  /** The spans this node holds */
  ownSpans(): OwnSpan[]
  /** Records of live peers (this node's own included), by peer id string */
  records(): Map<string, PoolEntry>
  /** Per-slot live replicas, pending claims and throughput, as this node sees the swarm */
  view(): SlotView[]
  /** Peers serving (or training) `slot`, this node included when it does */
  holders(slot: number): PeerId[]
  /** What this node holds in a slot (hashes) */
  slotInfo(slot: number): SlotInfo | undefined
  /** The weights of a slot this node serves (for the pipeline stage that runs it); `undefined` otherwise */
  slotWeights(slot: number): Map<string, Float32Array> | undefined
  /** The topic records travel on */
  readonly topic: string
  /**
   * Replace a held slot's weights (after training) and re-announce its hashes.
   *
   * @throws SpanLoadError when the node does not hold the slot
   */
  updateSlotWeights(slot: number, parameters: Map<string, Float32Array>, step: number): Promise<void>
  /** Set the state of the spans that serve ('serving' or 'training') */
  setTraining(training: boolean): Promise<void>
  /** Read every record of the model from the DHT (what a late joiner does before it decides) */
  syncFromDht(options?: AbortOptions): Promise<number>
  /** Run the assignment rule now (it also runs on record changes and timers) */
  evaluate(): Promise<void>
  /** Resolves once this node's spans all serve (or rejects on `signal`) */
  whenServing(options?: AbortOptions): Promise<void>
  /** Use this function to fetch slot weights (set by the transfer client) */
  setSlotFetcher(fetcher: SlotFetcher): void
}

/** The membership CID every holder of (model, version) provides in the DHT */
export async function membershipCid (modelId: string, version: number): Promise<CID> {
  const digest = await sha256.digest(new TextEncoder().encode(`neuroshard/layer-pool/members/v1/${modelId}/${version}`))
  return CID.createV1(raw.code, digest)
}

const LIVE_STATES = new Set<SpanStateName>(['serving', 'training'])

export class DefaultLayerPool extends TypedEventEmitter<LayerPoolEvents> implements LayerPool, Startable {
  readonly modelId: string
  readonly version: number
  readonly config: ModelConfig
  readonly memoryBytes: number
  readonly topic: string
  private readonly components: LayerPoolComponents
  private readonly log: Logger
  private readonly init: Required<Pick<LayerPoolInit, 'minReplicas' | 'heartbeatIntervalMs' | 'recordTtlMs' | 'dhtRefreshIntervalMs' | 'settleMs' | 'claimJitterMs' | 'loadingGraceMs' | 'catchUpGraceMs' | 'rebalanceIntervalMs' | 'balanceQuality' | 'maxRecords' | 'maxSpans' | 'livenessProbeTimeoutMs' | 'pubsubService' | 'autoAssign' | 'announceLeave' | 'reserveFraction'>>
  private readonly initSeed: number | bigint
  private readonly store: WeightStore
  private readonly costs: number[]
  private readonly random: () => number
  private readonly now: () => number
  private readonly throughputOf: () => number
  private readonly quantization: SpanQuantization
  private readonly quantBlockSize: number | undefined
  private readonly kvTokensLeftInit?: (span: { start: number, end: number }) => number | undefined
  private training: boolean
  private readonly table = new Map<string, PoolEntry>()
  private readonly suspects = new Set<string>()
  /**
   * Records that lapsed (expired or left the table) less than `loadingGraceMs` ago, by peer: they still say
   * which weights a slot has (spec §6), so a record missed for a moment (a busy event loop, a late heartbeat)
   * cannot make a trained slot look like a genesis one
   */
  private readonly lapsed = new Map<string, { record: LayerPoolRecord, until: number }>()
  private readonly spans: OwnSpan[] = []
  private readonly info = new Map<number, SlotInfo & { step: number }>()
  private readonly genesisHashes = new Map<number, string>()
  /** The genesis weights `genesisHash` computed last, kept for the load that asked (one slot: they are large) */
  private lastGenesis?: { slot: number, parameters: Map<string, Float32Array> }
  private own?: SignedLayerRecord
  private sequence = 0n
  private started = false
  private heartbeat?: ReturnType<typeof setInterval>
  private dhtTimer?: ReturnType<typeof setInterval>
  private rebalanceTimer?: ReturnType<typeof setInterval>
  private evaluateTimer?: ReturnType<typeof setTimeout>
  /** Since when each slot this node serves has been behind its target (spec §6.1) */
  private readonly behindSince = new Map<number, number>()
  private catchingUp?: Promise<void>
  private working?: Promise<void>
  private dhtPut?: Promise<void>
  /** A newer record came while a DHT put was in flight: put it when that one ends (else the DHT keeps the old one until the refresh) */
  private dhtPutAgain = false
  private controller = new AbortController()
  private server?: WeightsServer
  private fetcher?: SlotFetcher
  private readonly partials = new Map<string, PartialSpanWeights>()
  private readonly misbehaved = new Set<string>()
  private lastDhtPut = 0
  private readonly onMessage: (evt: CustomEvent<{ topic: string, data: Uint8Array }>) => void
  private readonly onDisconnect: (evt: CustomEvent<PeerId>) => void

  constructor (components: LayerPoolComponents, init: LayerPoolInit = {}) {
    super()
    this.components = components
    this.log = components.logger.forComponent('neuroshard:layer-pool')
    this.modelId = init.modelId ?? 'devnet'
    this.version = init.version ?? 1
    this.config = validateConfig({ ...(init.config ?? TINY) })
    this.initSeed = init.initSeed ?? 0
    this.training = init.training ?? false
    this.memoryBytes = Math.floor(init.memoryBytes ?? freemem() / 2)
    this.store = init.weightStore ?? new MemoryWeightStore()
    this.random = init.random ?? Math.random
    this.now = init.now ?? Date.now
    const throughput = init.throughput ?? 0
    this.throughputOf = typeof throughput === 'function' ? throughput : () => throughput
    this.quantization = init.quantization ?? 'fp32'
    this.kvTokensLeftInit = init.kvTokensLeft
    if (!['fp32', 'int8', 'int4'].includes(this.quantization)) throw new InvalidParametersError(`quantization must be 'fp32', 'int8' or 'int4', got ${String(this.quantization)}`)
    if (init.quantBlockSize != null && init.quantBlockSize !== QUANT_BLOCK_SIZE) {
      if (!SPAN_QUANT_BLOCK_SIZES.includes(init.quantBlockSize)) throw new InvalidParametersError(`quantBlockSize must be ${QUANT_BLOCK_SIZE}, ${SPAN_QUANT_BLOCK_SIZES.join(' or ')}, got ${String(init.quantBlockSize)}`)
      if (this.quantization === 'fp32') throw new InvalidParametersError('quantBlockSize needs quantization int8 or int4')
    }
    this.quantBlockSize = init.quantBlockSize != null && init.quantBlockSize !== QUANT_BLOCK_SIZE ? init.quantBlockSize : undefined
    this.init = {
      minReplicas: init.minReplicas ?? MIN_REPLICAS,
      heartbeatIntervalMs: init.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
      recordTtlMs: init.recordTtlMs ?? DEFAULT_RECORD_TTL_MS,
      dhtRefreshIntervalMs: init.dhtRefreshIntervalMs ?? DEFAULT_DHT_REFRESH_INTERVAL_MS,
      settleMs: init.settleMs ?? DEFAULT_SETTLE_MS,
      claimJitterMs: init.claimJitterMs ?? DEFAULT_CLAIM_JITTER_MS,
      loadingGraceMs: init.loadingGraceMs ?? DEFAULT_LOADING_GRACE_MS,
      rebalanceIntervalMs: init.rebalanceIntervalMs ?? DEFAULT_REBALANCE_INTERVAL_MS,
      catchUpGraceMs: init.catchUpGraceMs ?? init.recordTtlMs ?? DEFAULT_RECORD_TTL_MS,
      balanceQuality: init.balanceQuality ?? DEFAULT_BALANCE_QUALITY,
      maxRecords: init.maxRecords ?? DEFAULT_MAX_RECORDS,
      maxSpans: Math.min(init.maxSpans ?? 4, MAX_SPANS_PER_RECORD),
      livenessProbeTimeoutMs: init.livenessProbeTimeoutMs ?? DEFAULT_LIVENESS_PROBE_TIMEOUT_MS,
      pubsubService: init.pubsubService ?? 'pubsub',
      autoAssign: init.autoAssign ?? true,
      announceLeave: init.announceLeave ?? true,
      reserveFraction: init.reserveFraction ?? DEFAULT_RESERVE_FRACTION
    }
    this.topic = `${LAYER_POOL_TOPIC_PREFIX}/${this.modelId}`
    const perParameter = this.training ? TRAINING_BYTES_PER_PARAMETER : SERVING_BYTES_PER_PARAMETER
    this.costs = Array.from({ length: slotCount(this.config) }, (_, s) => slotMemory(this.config, s, perParameter))
    this.onMessage = (evt) => {
      if (evt.detail.topic !== this.topic) return
      void this.receive(evt.detail.data, 'gossip').catch(err => { this.log('refused a record from gossip: %s', err.message) })
    }
    this.onDisconnect = (evt) => { void this.probe(evt.detail) }
  }

  readonly [Symbol.toStringTag] = '@neuroshard/layer-pool'

  private get pubsub (): LayerPoolPubSub {
    return this.components[this.init.pubsubService] as LayerPoolPubSub
  }

  isStarted (): boolean {
    return this.started
  }

  async start (): Promise<void> {
    if (this.started) return
    // a pool can be started again after a stop (libp2p nodes can): sleeps and probes need a live signal
    if (this.controller.signal.aborted) this.controller = new AbortController()
    this.server = weightsServer({ registrar: this.components.registrar }, { provider: (req) => this.provide(req) })
    await this.server.start()
    this.started = true
  }

  async afterStart (): Promise<void> {
    if (!this.started || this.heartbeat != null) return
    this.pubsub.addEventListener('message', this.onMessage)
    this.pubsub.subscribe(this.topic)
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
    this.heartbeat = setInterval(() => { this.tick() }, this.init.heartbeatIntervalMs)
    this.dhtTimer = setInterval(() => { this.putInDht() }, this.init.dhtRefreshIntervalMs)
    // jittered, so nodes that started together do not all check (and move) at the same moment
    this.rebalanceTimer = setInterval(() => {
      void this.sleep(this.random() * this.init.rebalanceIntervalMs / 2).then(async () => { await this.rebalance() })
    }, this.init.rebalanceIntervalMs)
    await this.publish()
    if (this.init.autoAssign) this.scheduleEvaluate(this.init.settleMs)
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.controller.abort(new NotStartedError('the layer pool stopped'))
    clearInterval(this.heartbeat)
    clearInterval(this.dhtTimer)
    clearInterval(this.rebalanceTimer)
    clearTimeout(this.evaluateTimer)
    this.heartbeat = undefined
    // hand the spans over: peers see them leaving now instead of when the record expires
    if (this.spans.length > 0 && this.init.announceLeave) {
      for (const span of this.spans) span.state = 'leaving'
      await this.publish(1).catch(() => {})
    }
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
    try {
      this.pubsub.removeEventListener('message', this.onMessage)
      this.pubsub.unsubscribe(this.topic)
    } catch {}
    await this.server?.stop()
    await this.working?.catch(() => {})
    // a stopped node holds nothing: a restart joins again from what the swarm then needs
    for (const slot of this.blockedSlots()) this.store.delete(slot)
    this.spans.length = 0
    this.info.clear()
    this.table.clear()
    this.suspects.clear()
    this.lapsed.clear()
    this.own = undefined
  }

  setSlotFetcher (fetcher: SlotFetcher): void {
    this.fetcher = fetcher
  }

  ownSpans (): OwnSpan[] {
    return this.spans.map(s => ({ ...s }))
  }

  records (): Map<string, PoolEntry> {
    this.prune()
    const out = new Map(this.table)
    if (this.own != null) {
      const { record, bytes } = this.own
      out.set(record.peerId.toString(), { record, bytes, receivedAt: record.issuedAt, liveUntil: record.expiresAt })
    }
    return out
  }

  slotWeights (slot: number): Map<string, Float32Array> | undefined {
    return this.spans.some(s => LIVE_STATES.has(s.state) && s.start <= slot && slot < s.end) ? this.store.get(slot) : undefined
  }

  slotInfo (slot: number): SlotInfo | undefined {
    const info = this.info.get(slot)
    return info == null ? undefined : { weightsHash: info.weightsHash, chunksRoot: info.chunksRoot }
  }

  view (): SlotView[] {
    return buildView(this.holdings(), slotCount(this.config), { now: this.now(), loadingGraceMs: this.init.loadingGraceMs })
  }

  holders (slot: number): PeerId[] {
    const out: PeerId[] = []
    this.prune()
    for (const entry of this.table.values()) {
      if (this.suspects.has(entry.record.peerId.toString())) continue
      if (entry.record.spans.some(s => LIVE_STATES.has(s.state) && s.start <= slot && slot < s.end)) out.push(entry.record.peerId)
    }
    if (this.spans.some(s => LIVE_STATES.has(s.state) && s.start <= slot && slot < s.end)) out.push(this.components.peerId)
    return out
  }

  async whenServing (options: AbortOptions = {}): Promise<void> {
    const done = (): boolean => this.spans.length > 0 && this.spans.every(s => LIVE_STATES.has(s.state))
    if (done()) return
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!done()) return
        cleanup()
        resolve()
      }
      const onAbort = (): void => { cleanup(); reject(options.signal?.reason) }
      const cleanup = (): void => {
        this.removeEventListener('layer-pool:loaded', check)
        this.removeEventListener('layer-pool:released', check)
        options.signal?.removeEventListener('abort', onAbort)
      }
      this.addEventListener('layer-pool:loaded', check)
      this.addEventListener('layer-pool:released', check)
      options.signal?.addEventListener('abort', onAbort)
    })
  }

  async setTraining (training: boolean): Promise<void> {
    this.training = training
    for (const span of this.spans) {
      if (LIVE_STATES.has(span.state)) span.state = training ? 'training' : 'serving'
    }
    await this.publish()
  }

  async updateSlotWeights (slot: number, parameters: Map<string, Float32Array>, step: number): Promise<void> {
    if (!this.spans.some(s => LIVE_STATES.has(s.state) && s.start <= slot && slot < s.end)) {
      throw new SpanLoadError(`this node does not serve slot ${slot}`)
    }
    await this.store.put(slot, parameters)
    this.info.set(slot, { ...this.hashSlot(slot, parameters), step })
    await this.publish()
  }

  // ---- records in -------------------------------------------------------------------------------

  /** Checks and stores a record from gossip or the DHT; throws a typed error for a bad one */
  async receive (bytes: Uint8Array, source: 'gossip' | 'dht'): Promise<void> {
    const { record } = await openLayerRecord(bytes, { now: this.now(), slotCount: slotCount(this.config), allowExpired: true })
    if (record.modelId !== this.modelId || record.version !== this.version) {
      // another model, or an architecture version this node does not run: not part of its view
      return
    }
    const key = record.peerId.toString()
    if (record.peerId.equals(this.components.peerId)) return
    const existing = this.table.get(key)
    if (existing != null && existing.record.sequence >= record.sequence) return
    if (existing == null && this.table.size >= this.init.maxRecords) {
      this.log('record table full (%d); ignoring %s', this.table.size, key)
      return
    }
    const now = this.now()
    // clocks may differ by up to MAX_CLOCK_SKEW_MS (spec §2.2): a record whose expiry is already past on this
    // clock may be a fresh one from a peer whose clock runs behind, so its lifetime counts from arrival; the
    // allowance past `expiresAt` bounds how long a replayed record can count
    const lifetime = record.expiresAt - record.issuedAt
    this.table.set(key, { record, bytes, receivedAt: now, liveUntil: Math.min(record.expiresAt + MAX_CLOCK_SKEW_MS, now + lifetime) })
    this.suspects.delete(key)
    this.lapsed.delete(key)
    this.log.trace('record of %s from %s: %s', key, source, record.spans.map(s => `[${s.start},${s.end}) ${s.state}`).join(' '))
    this.changed()
  }

  /** A peer's connection closed: if it cannot be dialled again it is gone, do not wait for its record to expire */
  private async probe (peer: PeerId): Promise<void> {
    const key = peer.toString()
    if (!this.started || !this.table.has(key)) return
    if (this.components.connectionManager.getConnections(peer).length > 0) return
    try {
      await this.components.connectionManager.openConnection(peer, { signal: AbortSignal.any([AbortSignal.timeout(this.init.livenessProbeTimeoutMs), this.controller.signal]) })
    } catch {
      if (!this.started) return
      this.log('peer %s is unreachable; its spans no longer count', key)
      this.suspects.add(key)
      this.changed()
    }
  }

  private prune (): void {
    const now = this.now()
    let changed = false
    for (const [key, entry] of this.table) {
      if (entry.liveUntil <= now) {
        this.table.delete(key)
        this.suspects.delete(key)
        this.lapsed.delete(key)
        this.lapsed.set(key, { record: entry.record, until: now + this.init.loadingGraceMs })
        if (this.lapsed.size > this.init.maxRecords) this.lapsed.delete(this.lapsed.keys().next().value!)
        changed = true
      }
    }
    for (const [key, entry] of this.lapsed) if (entry.until <= now) this.lapsed.delete(key)
    if (changed) this.changed(false)
  }

  private changed (prune = true): void {
    if (prune) this.prune()
    this.safeDispatchEvent('layer-pool:records')
    if (this.init.autoAssign && this.started) this.scheduleEvaluate(0)
  }

  /** Every live holding the assignment rule counts: peers' (not suspected dead) and this node's own */
  private holdings (includeOwn = true): Holding[] {
    this.prune()
    const out: Holding[] = []
    for (const [key, entry] of this.table) {
      if (this.suspects.has(key)) continue
      for (const s of entry.record.spans) {
        out.push({ peer: key, start: s.start, end: s.end, state: s.state, throughput: s.throughput, claimedAt: s.claimedAt })
      }
    }
    if (includeOwn) {
      const me = this.components.peerId.toString()
      for (const s of this.spans) out.push({ peer: me, start: s.start, end: s.end, state: s.state, throughput: this.throughputOf(), claimedAt: s.claimedAt })
    }
    return out
  }

  // ---- records out ------------------------------------------------------------------------------

  /** What `init.kvTokensLeft` says for a span, as a record may carry it (a bad answer is not announced) */
  private kvTokensLeftOf (span: { start: number, end: number }): number | undefined {
    let left: number | undefined
    try {
      left = this.kvTokensLeftInit?.({ start: span.start, end: span.end })
    } catch (err: any) {
      this.log('kvTokensLeft failed: %s', err?.message)
      return undefined
    }
    return left != null && Number.isFinite(left) && left >= 0 ? Math.min(Math.floor(left), Number.MAX_SAFE_INTEGER) : undefined
  }

  private tick (): void {
    this.prune()
    void this.publish().catch(err => { this.log('heartbeat publish failed: %s', err.message) })
    this.checkBehind()
  }

  /**
   * Spec §6.1: a slot this node serves (not trains: DiLoCo keeps training replicas in step) whose weights the
   * slot's target outvotes — more replicas, this node counted, list newer weights at a larger step — for
   * `catchUpGraceMs` is fetched again and swapped in while the span goes on serving. Without it a replica that
   * took the genesis of a slot trained while it loaded (records that came after its last check) served those
   * weights for good
   */
  private checkBehind (): void {
    if (!this.started || this.catchingUp != null) return
    const checked: Array<{ slot: number, behind: boolean }> = []
    for (const span of this.spans) {
      if (span.state !== 'serving' || this.quantization !== 'fp32') continue
      for (let slot = span.start; slot < span.end; slot++) checked.push({ slot, behind: this.isBehind(slot) })
    }
    const due = catchUpDue(checked, this.behindSince, this.now(), this.init.catchUpGraceMs)
    if (due == null) return
    const slot = due
    this.catchingUp = this.catchUp(slot).catch(err => {
      this.log('slot %d stays behind its target for now: %s', slot, err.message)
    }).finally(() => { this.catchingUp = undefined })
  }

  /** Whether the target of a slot this node holds outvotes its weights (spec §6.1) */
  private isBehind (slot: number): boolean {
    const own = this.info.get(slot)
    if (own == null) return false
    return isBehind(this.slotVotes(slot), own)
  }

  private async catchUp (slot: number): Promise<void> {
    const before = this.info.get(slot)
    this.log('slot %d: weights %s… (step %d) are behind the target, fetching it', slot, before?.weightsHash.slice(0, 12), before?.step)
    const step = this.targetStep(slot)
    const { parameters, genesis } = await this.resolveSlot(slot)
    this.lastGenesis = undefined
    // the slot may have been dropped, or updated by its owner, while the transfer ran
    if (!this.started || this.info.get(slot) !== before || !this.spans.some(s => s.state === 'serving' && s.start <= slot && slot < s.end)) return
    await this.store.put(slot, parameters)
    const info = { ...this.hashSlot(slot, parameters, genesis ? this.genesisHashes.get(slot) : undefined), step }
    this.info.set(slot, info)
    this.behindSince.delete(slot)
    await this.publish()
    this.safeDispatchEvent('layer-pool:updated', { detail: { slot, weightsHash: info.weightsHash, step } })
  }

  private async publish (ttlMs = this.init.recordTtlMs): Promise<void> {
    const now = this.now()
    this.sequence = this.sequence >= BigInt(now) ? this.sequence + 1n : BigInt(now)
    const record: LayerPoolRecord = {
      modelId: this.modelId,
      version: this.version,
      peerId: this.components.peerId,
      sequence: this.sequence,
      issuedAt: now,
      expiresAt: now + ttlMs,
      memoryBytes: this.memoryBytes,
      addresses: this.components.addressManager.getAddresses().slice(0, 16),
      spans: this.recordSpans()
    }
    const previous = this.own
    this.own = await signLayerRecord(record, this.components.privateKey)
    try {
      await this.pubsub.publish(this.topic, this.own.bytes)
    } catch (err: any) {
      // nobody subscribed yet (a lone first node): the DHT copy and the next heartbeat cover it
      this.log.trace('publish on %s: %s', this.topic, err.message)
    }
    const spansChanged = previous == null || JSON.stringify(previous.record.spans.map(s => [s.start, s.end, s.state, s.slots])) !==
      JSON.stringify(record.spans.map(s => [s.start, s.end, s.state, s.slots]))
    if (spansChanged || now - this.lastDhtPut >= this.init.dhtRefreshIntervalMs) this.putInDht()
  }

  /**
   * The record's spans: own spans may overlap while a move loads (the new span shares slots with the one it
   * replaces), records may not, so slots are merged into disjoint runs; a slot that some span serves is
   * served, otherwise it has the state of the span that claims it.
   */
  private recordSpans (): LayerSpan[] {
    const rank: Record<SpanStateName, number> = { training: 3, serving: 3, loading: 2, leaving: 1 }
    const slots: Array<{ state: SpanStateName, claimedAt: number } | undefined> = []
    for (const span of this.spans) {
      for (let i = span.start; i < span.end; i++) {
        const cur = slots[i]
        if (cur == null || rank[span.state] > rank[cur.state] || (rank[span.state] === rank[cur.state] && span.claimedAt < cur.claimedAt)) {
          slots[i] = { state: span.state, claimedAt: span.claimedAt }
        }
      }
    }
    const out: LayerSpan[] = []
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]
      if (slot == null) continue
      const last = out[out.length - 1]
      if (last != null && last.end === i && last.state === slot.state) {
        last.end = i + 1
        last.claimedAt = Math.min(last.claimedAt, slot.claimedAt)
      } else {
        out.push({ start: i, end: i + 1, state: slot.state, throughput: this.throughputOf(), claimedAt: slot.claimedAt, weightsStep: 0, slots: [], ...(this.quantization !== 'fp32' ? { quantization: this.quantization } : {}), ...(this.quantBlockSize != null ? { quantBlockSize: this.quantBlockSize } : {}) })
      }
    }
    for (const span of out) {
      const left = this.kvTokensLeftOf(span)
      if (left != null) span.kvTokensLeft = left
      span.weightsStep = Math.max(0, ...range(span.start, span.end).map(i => this.info.get(i)?.step ?? 0))
      // a slot behind the span's most trained one lists its own step (spec 1.6.0)
      span.slots = range(span.start, span.end).map(i => {
        const { weightsHash, chunksRoot } = this.info.get(i) ?? PLACEHOLDER_SLOT
        const step = this.info.get(i)?.step ?? 0
        return { weightsHash, chunksRoot, ...(step < span.weightsStep ? { weightsStep: step } : {}) }
      })
    }
    return out.slice(0, MAX_SPANS_PER_RECORD)
  }

  /** Puts the current record in the DHT and provides the membership CID; one put at a time, never awaited by callers */
  private putInDht (): void {
    if (this.own == null || !this.started) return
    if (this.dhtPut != null) {
      this.dhtPutAgain = true
      return
    }
    const own = this.own
    this.lastDhtPut = this.now()
    this.dhtPut = (async () => {
      const signal = AbortSignal.any([AbortSignal.timeout(30_000), this.controller.signal])
      const key = layerRecordDhtKey(this.modelId, this.version, this.components.peerId)
      await this.components.contentRouting.put(key, dhtValue(own), { signal })
      if (this.spans.length > 0) await this.components.contentRouting.provide(await membershipCid(this.modelId, this.version), { signal })
    })().catch(err => { this.log.trace('DHT put failed: %s', err.message) }).finally(() => {
      this.dhtPut = undefined
      const again = this.dhtPutAgain && this.own !== own
      this.dhtPutAgain = false
      if (again) this.putInDht()
    })
  }

  async syncFromDht (options: AbortOptions = {}): Promise<number> {
    let n = 0
    const cid = await membershipCid(this.modelId, this.version)
    const seen = new Set<string>()
    for await (const provider of this.components.contentRouting.findProviders(cid, options)) {
      const key = provider.id.toString()
      if (seen.has(key) || provider.id.equals(this.components.peerId)) continue
      seen.add(key)
      if (seen.size > this.init.maxRecords) break
      try {
        const value = await this.components.contentRouting.get(layerRecordDhtKey(this.modelId, this.version, provider.id), options)
        await this.receive(value.subarray(8), 'dht')
        n++
      } catch (err: any) {
        this.log('no usable DHT record for %s: %s', key, err.message)
      }
    }
    return n
  }

  // ---- weights served to peers ------------------------------------------------------------------

  private provide (request: SpanRequest): SpanContent | undefined {
    if (request.modelId !== this.modelId || request.version !== this.version || request.part !== 'weights') return undefined
    const tensors = new Map<string, { name: string, shape: readonly number[], data: Float32Array }>()
    for (let slot = request.start; slot < request.end; slot++) {
      const held = this.spans.some(s => LIVE_STATES.has(s.state) && s.start <= slot && slot < s.end)
      const params = held ? this.store.get(slot) : undefined
      if (params == null) return undefined
      for (const spec of slotParameters(this.config, slot)) {
        const data = params.get(spec.name)
        if (data == null) return undefined
        tensors.set(spec.name, { name: spec.name, shape: spec.shape, data })
      }
    }
    return { tensors: [...tensors.values()] }
  }

  // ---- assignment -------------------------------------------------------------------------------

  private scheduleEvaluate (delayMs: number): void {
    if (this.evaluateTimer != null || !this.started) return
    this.evaluateTimer = setTimeout(() => {
      this.evaluateTimer = undefined
      void this.evaluate()
    }, delayMs)
  }

  async evaluate (): Promise<void> {
    if (!this.started) return
    if (this.working != null) return
    this.working = this.evaluateOnce().catch(err => {
      this.log.error('assignment failed: %e', err)
    }).finally(() => {
      this.working = undefined
    })
    await this.working
  }

  private usedBytes (): number {
    let n = 0
    for (const s of this.spans) for (let i = s.start; i < s.end; i++) n += this.costs[i]
    return n
  }

  private blockedSlots (): Set<number> {
    const out = new Set<number>()
    for (const s of this.spans) for (let i = s.start; i < s.end; i++) out.add(i)
    return out
  }

  private async evaluateOnce (): Promise<void> {
    const view = this.view()
    const me = this.components.peerId.toString()
    if (this.spans.length === 0) {
      if (Math.min(...this.costs) > this.memoryBytes) {
        this.log('memory budget %d holds no slot (smallest needs %d)', this.memoryBytes, Math.min(...this.costs))
        return
      }
      // keep a share of the memory free at join: that is what takes over slots when holders leave (hot swap)
      // unless only the whole budget reaches missing replicas (a large embed or head slot, say)
      let budget = Math.min(this.memoryBytes, Math.max(Math.min(...this.costs), Math.floor(this.memoryBytes * (1 - this.init.reserveFraction))))
      const others = this.viewExcluding(this.components.peerId.toString())
      const options = { minReplicas: this.init.minReplicas, random: () => 0 }
      if ((chooseSpan(others, this.costs, this.memoryBytes, options)?.deficit ?? 0) > (chooseSpan(others, this.costs, budget, options)?.deficit ?? 0)) {
        budget = this.memoryBytes
      }
      await this.claim({ budget, requireDeficit: false })
      return
    }
    const needy = underReplicated(view, this.init.minReplicas)
    if (needy.length === 0) return
    const spare = this.memoryBytes - this.usedBytes()
    if (this.spans.length < this.init.maxSpans && needy.some(s => this.costs[s] <= spare && !this.blockedSlots().has(s))) {
      await this.claim({ budget: spare, requireDeficit: true })
      return
    }
    // no spare memory: free some by dropping surplus slots (ones that keep MIN_REPLICAS live replicas without
    // this node, so dropping them opens no gap), and take missing ones with it. One at a time in the swarm:
    // while any claim is loading the view is about to change, and two nodes dropping the same surplus slot
    // together would open a gap
    const withoutMe = buildView(this.holdings(), slotCount(this.config), { now: this.now(), loadingGraceMs: this.init.loadingGraceMs, exclude: me })
    if (withoutMe.some(v => v.pending > 0) || this.spans.some(s => s.state !== 'serving' && s.state !== 'training')) return
    let essential = 0
    for (const slot of this.blockedSlots()) if (withoutMe[slot].live < this.init.minReplicas) essential += this.costs[slot]
    const budget = this.memoryBytes - essential
    if (needy.some(s => this.costs[s] <= budget && !this.blockedSlots().has(s)) && this.spans.length < this.init.maxSpans) {
      await this.claim({ budget, requireDeficit: true, trim: true })
    }
  }

  private async rebalance (): Promise<void> {
    if (!this.started || this.working != null || this.spans.length !== 1 || !LIVE_STATES.has(this.spans[0].state)) return
    const me = this.components.peerId.toString()
    // one move at a time in the swarm: while any claim is loading, the view is about to change
    if (this.view().some(v => v.pending > 0)) return
    const withoutMe = buildView(this.holdings(), slotCount(this.config), { now: this.now(), loadingGraceMs: this.init.loadingGraceMs, exclude: me })
    const current = this.spans[0]
    const target = rebalanceTarget(withoutMe, current, this.costs, this.memoryBytes, {
      minReplicas: this.init.minReplicas, random: this.random, balanceQuality: this.init.balanceQuality, throughput: this.throughputOf()
    })
    this.log.trace('rebalance check by %s on %s: others %o, target %o', me.slice(-6), describeSpan(this.config, current.start, current.end), withoutMe.map(v => [v.live, v.throughput]), target)
    if (target == null) return
    this.log('rebalancing from %s to %s', describeSpan(this.config, current.start, current.end), describeSpan(this.config, target.start, target.end))
    this.working = this.claim({ budget: this.memoryBytes, requireDeficit: false, replaces: current, target }).finally(() => { this.working = undefined })
    await this.working
  }

  /**
   * Claim a span: jitter, choose, announce `loading`, wait for concurrent claims, re-check against the
   * claims that outrank this one (earlier `claimedAt`, then lower peer id), move if a better span is left,
   * then load and serve.
   */
  private async claim (options: { budget: number, requireDeficit: boolean, replaces?: OwnSpan, target?: { start: number, end: number }, trim?: boolean }): Promise<void> {
    const me = this.components.peerId.toString()
    const blocked = this.blockedSlots()
    if (options.replaces != null) for (let i = options.replaces.start; i < options.replaces.end; i++) blocked.delete(i)
    await this.sleep(this.random() * this.init.claimJitterMs)
    if (!this.started) return
    const choice = options.target ?? chooseSpan(this.viewExcluding(me), this.costs, options.budget, {
      minReplicas: this.init.minReplicas, random: this.random, blocked, requireDeficit: options.requireDeficit
    })
    if (choice == null) return
    const span: OwnSpan = { start: choice.start, end: choice.end, state: 'loading', claimedAt: this.now(), ...(options.replaces != null ? { replaces: { start: options.replaces.start, end: options.replaces.end } } : {}) }
    this.addSpan(span)
    await this.publish()
    this.safeDispatchEvent('layer-pool:assigned', { detail: { start: span.start, end: span.end } })
    this.log('claimed %s', describeSpan(this.config, span.start, span.end))

    if (options.target != null || options.replaces != null) {
      // a move (rebalancing or hot swap): give way to any concurrent claim that outranks it
      await this.sleep(this.init.settleMs)
      if (!this.started) return
      const outranked = this.holdings(false).some(h => h.state === 'loading' && this.now() - h.claimedAt <= this.init.loadingGraceMs &&
        (h.claimedAt < span.claimedAt || (h.claimedAt === span.claimedAt && h.peer < me)))
      if (outranked) {
        this.removeSpan(span)
        await this.publish()
        this.safeDispatchEvent('layer-pool:released', { detail: { start: span.start, end: span.end } })
        return
      }
    }

    // concurrent joiners: re-check against the claims that outrank ours
    for (let round = 0; round < 6 && options.target == null && options.replaces == null; round++) {
      await this.sleep(this.init.settleMs)
      if (!this.started) return
      const outranks = (h: Holding): boolean => h.claimedAt < span.claimedAt || (h.claimedAt === span.claimedAt && h.peer < me)
      const ranked = buildView(this.holdings(false), slotCount(this.config), { now: this.now(), loadingGraceMs: this.init.loadingGraceMs, countPending: outranks })
      const better = chooseSpan(ranked, this.costs, options.budget, {
        minReplicas: this.init.minReplicas, random: this.random, blocked, requireDeficit: options.requireDeficit
      })
      if (better == null) {
        if (options.requireDeficit && spanDeficit(ranked, span, this.init.minReplicas) === 0) {
          // the missing replicas were taken by claims that outrank ours
          this.removeSpan(span)
          await this.publish()
          this.safeDispatchEvent('layer-pool:released', { detail: { start: span.start, end: span.end } })
          return
        }
        break
      }
      if ((better.start === span.start && better.end === span.end) || better.deficit <= spanDeficit(ranked, span, this.init.minReplicas)) break
      this.log('claim %s outranked; moving to %s', describeSpan(this.config, span.start, span.end), describeSpan(this.config, better.start, better.end))
      this.removeSpan(span)
      span.start = better.start
      span.end = better.end
      span.claimedAt = this.now()
      this.addSpan(span)
      await this.publish()
      this.safeDispatchEvent('layer-pool:assigned', { detail: { start: span.start, end: span.end } })
    }
    if (options.trim === true && !this.trimFor(span)) {
      this.removeSpan(span)
      await this.publish()
      this.safeDispatchEvent('layer-pool:released', { detail: { start: span.start, end: span.end } })
      return
    }
    await this.load(span)
  }

  /**
   * Drop surplus slots (live replicas >= MIN_REPLICAS without this node, on today's view), most redundant
   * first, until the claimed span fits the memory. Returns false (dropping nothing) when it cannot fit, or
   * when the remaining pieces would be more spans than a record may list.
   */
  private trimFor (claimed: OwnSpan): boolean {
    const withoutMe = this.viewExcluding(this.components.peerId.toString())
    const held = [...this.blockedSlots()].filter(i => i < claimed.start || i >= claimed.end)
    let over = this.usedBytes() - this.memoryBytes
    const surplus = held.filter(i => withoutMe[i].live >= this.init.minReplicas).sort((a, b) => withoutMe[b].live - withoutMe[a].live)
    const drop = new Set<number>()
    for (const slot of surplus) {
      if (over <= 0) break
      drop.add(slot)
      over -= this.costs[slot]
    }
    if (over > 0) return false
    const pieces: OwnSpan[] = []
    for (const span of this.spans) {
      if (span === claimed) continue
      let start = -1
      for (let i = span.start; i <= span.end; i++) {
        const keep = i < span.end && !drop.has(i)
        if (keep && start < 0) start = i
        if (!keep && start >= 0) {
          pieces.push({ ...span, start, end: i })
          start = -1
        }
      }
    }
    if (pieces.length + 1 > this.init.maxSpans) return false
    this.spans.splice(0, this.spans.length, ...pieces, claimed)
    this.spans.sort((a, b) => a.start - b.start)
    for (const slot of drop) {
      this.store.delete(slot)
      this.info.delete(slot)
    }
    this.log('dropped surplus slots %o to take %s', [...drop], describeSpan(this.config, claimed.start, claimed.end))
    return true
  }

  private viewExcluding (peer: string): SlotView[] {
    return buildView(this.holdings(), slotCount(this.config), { now: this.now(), loadingGraceMs: this.init.loadingGraceMs, exclude: peer })
  }

  private addSpan (span: OwnSpan): void {
    this.spans.push(span)
    this.spans.sort((a, b) => a.start - b.start)
  }

  private removeSpan (span: OwnSpan): void {
    const i = this.spans.indexOf(span)
    if (i >= 0) this.spans.splice(i, 1)
  }

  /** Load every slot of a claimed span (genesis init or transfer), then serve it; on failure it stays `loading` */
  private async load (span: OwnSpan, attempt = 0): Promise<void> {
    // slots initialised from the genesis in this load: checked again against the records that came meanwhile
    const fromGenesis: number[] = []
    let synced = false
    try {
      for (let slot = span.start; slot < span.end; slot++) {
        if (!this.started) return
        if (this.store.get(slot) != null && this.info.has(slot)) continue
        if (!synced && this.target(slot) == null && this.components.connectionManager.getConnections().length > 0 && this.pastFormation()) {
          // no holder of this slot is known: before taking the genesis, ask the DHT (the source of truth for a
          // node that just joined) for the records gossip has not brought yet, once per load (a node with no
          // peer has nobody to ask: the first node of a network)
          synced = true
          await this.syncFromDht({ signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(LOAD_DHT_SYNC_TIMEOUT_MS)]) }).catch(() => 0)
          if (!this.started) return
        }
        const { parameters, genesis } = await this.resolveSlot(slot)
        await this.store.put(slot, parameters)
        this.info.set(slot, { ...this.hashSlot(slot, parameters, genesis ? this.genesisHashes.get(slot) : undefined), step: this.targetStep(slot) })
        if (genesis) fromGenesis.push(slot)
      }
      const trained = genesisSlotsToFetch(fromGenesis, slot => this.target(slot), slot => this.genesisHash(slot))
      if (trained.length > 0) {
        for (const slot of trained) { this.store.delete(slot); this.info.delete(slot) }
        throw new SpanLoadError(`records that arrived while the span loaded list trained weights for slot(s) ${trained.join(', ')}, taken from the genesis: fetching them`)
      }
    } catch (err: any) {
      this.log('span %s stays loading: %s', describeSpan(this.config, span.start, span.end), err.message)
      this.safeDispatchEvent('layer-pool:load-failed', { detail: { start: span.start, end: span.end, error: err } })
      this.retryLoad(span, attempt)
      return
    } finally {
      this.lastGenesis = undefined
    }
    if (!this.started || !this.spans.includes(span)) return
    span.state = this.training ? 'training' : 'serving'
    const replaced = span.replaces
    delete span.replaces
    if (replaced != null) {
      const old = this.spans.find(s => s !== span && s.start === replaced.start && s.end === replaced.end)
      const withoutMe = this.viewExcluding(this.components.peerId.toString())
      const below = (i: number): boolean => withoutMe[i].live < this.init.minReplicas
      // the same test as when the move was decided, on today's view: slots only the old span covers that
      // would go below MIN_REPLICAS against slots only the new one covers that are below it
      const leaving = old == null ? [] : range(old.start, old.end).filter(i => i < span.start || i >= span.end)
      const arriving = range(span.start, span.end).filter(i => old == null || i < old.start || i >= old.end)
      const opens = leaving.filter(below).length
      const fills = arriving.filter(below).length
      // (spec 1.7.2) first the slots nobody else serves: a move that serves more of them than it leaves stands
      // (a gap-closing move leaves thin slots by design), one that leaves more is given back
      const unserved = (i: number): boolean => withoutMe[i].live === 0
      const gaps = arriving.filter(unserved).length - leaving.filter(unserved).length
      if (old != null && (gaps < 0 || (gaps === 0 && opens > 0 && opens >= fills))) {
        // holders left meanwhile and the old span is needed as much: give the new one back
        this.log('keeping %s: it lost a replica while %s loaded', describeSpan(this.config, old.start, old.end), describeSpan(this.config, span.start, span.end))
        this.removeSpan(span)
        for (let i = span.start; i < span.end; i++) {
          if (!this.spans.some(s => s.start <= i && i < s.end)) { this.store.delete(i); this.info.delete(i) }
        }
        await this.publish()
        this.safeDispatchEvent('layer-pool:released', { detail: { start: span.start, end: span.end } })
        return
      }
      if (old != null) {
        this.removeSpan(old)
        for (let i = old.start; i < old.end; i++) {
          if (!this.spans.some(s => s.start <= i && i < s.end)) { this.store.delete(i); this.info.delete(i) }
        }
        this.safeDispatchEvent('layer-pool:released', { detail: { start: old.start, end: old.end } })
      }
    }
    await this.publish()
    this.log('serving %s', describeSpan(this.config, span.start, span.end))
    this.safeDispatchEvent('layer-pool:loaded', { detail: { start: span.start, end: span.end } })
  }

  /**
   * Whether the swarm may hold weights this node has not heard of: it knows no holder at all (gossip has not
   * reached it), or some holder already serves. While every known holder is still loading (a network
   * forming), a slot nobody lists is at its genesis and the DHT has nothing more to tell
   */
  private pastFormation (): boolean {
    const holders = [...this.table.values(), ...this.lapsed.values()].map(e => e.record).filter(r => r.spans.length > 0)
    return holders.length === 0 || holders.some(r => r.spans.some(s => LIVE_STATES.has(s.state)))
  }

  /** Retry a failed load with exponential backoff while the span is still claimed */
  private retryLoad (span: OwnSpan, attempt: number): void {
    const delay = Math.min(30_000, 500 * 2 ** attempt) * (0.5 + this.random())
    void this.sleep(delay).then(async () => {
      if (!this.started || !this.spans.includes(span) || span.state !== 'loading') return
      await this.load(span, attempt + 1)
    })
  }

  /**
   * The weights hash most holders of a slot report (ties: the most trained), with the live holders that can
   * serve it. Holders whose record lapsed less than `loadingGraceMs` ago, or that stopped answering, vote too
   * (spec §6) but serve nothing: when they named the winner, `holders` is empty and the caller waits for
   * their records instead of taking the genesis
   */
  private target (slot: number): SlotVote<PeerId> | undefined {
    return bestVote(this.slotVotes(slot))
  }

  /** The votes on a slot's weights by `weights hash/chunks root` (see {@link target}) */
  private slotVotes (slot: number): Map<string, SlotVote<PeerId>> {
    this.prune()
    const counted = [...this.table].map(([key, entry]) => ({ record: entry.record, serves: !this.suspects.has(key) }))
    return slotVotes(counted, [...this.lapsed.values()].map(e => e.record), slot)
  }

  private targetStep (slot: number): number {
    return this.target(slot)?.step ?? 0
  }

  /** A slot's weights: the genesis when no holder lists other weights, else a transfer of the target */
  private async resolveSlot (slot: number): Promise<{ parameters: Map<string, Float32Array>, genesis: boolean }> {
    const target = this.target(slot)
    const genesis = (): { parameters: Map<string, Float32Array>, genesis: boolean } => {
      const kept = this.lastGenesis?.slot === slot ? this.lastGenesis.parameters : undefined
      this.lastGenesis = undefined
      return { parameters: kept ?? genesisSlotParameters(this.config, slot, this.initSeed), genesis: true }
    }
    // the genesis hash whatever the step: a span's weights_step is that of its most trained slot, and the same
    // hash means the same bytes, which the genesis init gives without a transfer
    const source = slotSource(target, target == null ? '' : this.genesisHash(slot), p => this.misbehaved.has(p.toString()))
    if (source.source === 'genesis') return genesis()
    if (source.source === 'wait') {
      const t = source.target
      // the slot's weights are not the genesis, but no holder is live right now: wait (load retries) for their records
      if (source.reason === 'no-live-holder') throw new SpanLoadError(`no live holder of slot ${slot}'s weights ${t.weightsHash.slice(0, 12)}… (step ${t.step}) right now; ${t.votes} holder(s) listed them less than ${this.init.loadingGraceMs} ms ago`)
      throw new SpanLoadError(`every holder of slot ${slot}'s weights served bad data before`)
    }
    const replicas = source.replicas
    // a joiner may know a replica only from its record: dial the addresses it announces (by peer id alone libp2p
    // would first look the peer up in the DHT, which on a loaded machine timed the transfer's streams out); the
    // fetch starts once one replica is connected (or every dial ended), the other dials go on meanwhile
    await new Promise<void>(resolve => {
      let left = replicas.length
      for (const peer of replicas) {
        void this.dialAnnounced(peer).then(connected => { if (connected || --left === 0) resolve() })
      }
    })
    const request: SlotFetchRequest = { slot, replicas, weightsHash: source.target.weightsHash, chunksRoot: source.target.chunksRoot }
    return { parameters: await (this.fetcher ?? this.fetchSlot)(request, { signal: this.controller.signal }), genesis: false }
  }

  /** The weight transfer client: several replicas at once, resumed after a failure, bad replicas avoided */
  private readonly fetchSlot: SlotFetcher = async (request, options) => {
    const resume = this.partials.get(request.chunksRoot)
    try {
      const result = await fetchSpanWeights(this.components.connectionManager, request.replicas, {
        modelId: this.modelId, version: this.version, start: request.slot, end: request.slot + 1, part: 'weights',
        config: this.config, chunksRoot: request.chunksRoot, weightsHash: request.weightsHash
      }, { ...options, ...(resume != null ? { resume } : {}) })
      this.partials.delete(request.chunksRoot)
      this.noteFaults(result.faults)
      return result.tensors
    } catch (err: any) {
      this.noteFaults(err.faults)
      if (err.partial != null) {
        // keep what was verified for the retry; one partial transfer per root, a few roots at most
        this.partials.set(request.chunksRoot, err.partial)
        while (this.partials.size > 4) this.partials.delete(this.partials.keys().next().value!)
      }
      throw err
    }
  }

  /** Connect to a peer at the addresses of its record unless connected; whether it is connected (a failure is left to the transfer to report) */
  private async dialAnnounced (peer: PeerId): Promise<boolean> {
    if (this.components.connectionManager.getConnections(peer).length > 0) return true
    const addresses = this.table.get(peer.toString())?.record.addresses ?? []
    if (addresses.length === 0) return false
    const withPeer = addresses.map(a => a.getComponents().some(c => c.name === 'p2p') ? a : a.encapsulate(`/p2p/${peer.toString()}`))
    try {
      await this.components.connectionManager.openConnection(withPeer, { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(ANNOUNCED_DIAL_TIMEOUT_MS)]) })
      return true
    } catch (err: any) {
      this.log('could not dial %p at its announced addresses: %s', peer, err.message)
      return false
    }
  }

  private noteFaults (faults?: Array<{ peer: PeerId, misbehaved: boolean }>): void {
    for (const fault of faults ?? []) {
      if (fault.misbehaved) {
        this.log('avoiding %p: it served bad weight data', fault.peer)
        this.misbehaved.add(fault.peer.toString())
        if (this.misbehaved.size > this.init.maxRecords) this.misbehaved.delete(this.misbehaved.values().next().value!)
      }
    }
  }

  private genesisHash (slot: number): string {
    let hash = this.genesisHashes.get(slot)
    if (hash == null) {
      const parameters = genesisSlotParameters(this.config, slot, this.initSeed)
      hash = slotWeightsHash(this.config, slot, parameters)
      this.genesisHashes.set(slot, hash)
      this.lastGenesis = { slot, parameters }
    }
    return hash
  }

  /** A slot's weights hash (`weightsHash` when the caller knows it: a genesis slot) and chunks root */
  private hashSlot (slot: number, parameters: Map<string, Float32Array>, weightsHash?: string): SlotInfo {
    const tensors = slotParameters(this.config, slot).map(spec => ({ name: spec.name, shape: spec.shape, data: parameters.get(spec.name)! }))
    return { weightsHash: weightsHash ?? slotWeightsHash(this.config, slot, parameters), chunksRoot: toHex(digestChunks(tensors).chunksRoot) }
  }

  private async sleep (ms: number): Promise<void> {
    if (ms <= 0) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(done, ms)
      function done (): void { clearTimeout(timer); resolve() }
      this.controller.signal.addEventListener('abort', done, { once: true })
    })
  }
}

const PLACEHOLDER_SLOT: SlotInfo = { weightsHash: '0'.repeat(64), chunksRoot: '0'.repeat(64) }

function range (start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i)
}


function dhtValue (own: SignedLayerRecord): Uint8Array {
  const out = new Uint8Array(8 + own.bytes.byteLength)
  new DataView(out.buffer).setBigUint64(0, own.record.sequence, true)
  out.set(own.bytes, 8)
  return out
}

export { InsufficientMemoryError }
