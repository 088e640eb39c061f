import { NoRouteError } from '@neuroshard/pipeline'
import {
  DEFAULT_BAN_BASE_MS, DEFAULT_BAN_FORGET_MS, DEFAULT_BAN_MAX_MS, DEFAULT_KV_PENALTY_MS, DEFAULT_LOAD_PENALTY_MS, DEFAULT_MAX_CANDIDATES,
  DEFAULT_MAX_PROBES_PER_ROUND, DEFAULT_PING_TIMEOUT_MS, DEFAULT_PROBE_INTERVAL_MS, DEFAULT_RTT_ALPHA,
  DEFAULT_TOKENS_PER_REQUEST, DEFAULT_UNKNOWN_RTT_MS, DEFAULT_UNMEASURED_THROUGHPUT
} from './constants.js'
import { BanList, shortestChain, standbys, weightedChain } from './core.js'
import type { Candidate, Chain, CostOptions } from './core.js'
import type { AbortOptions, ComponentLogger, Logger, PeerId, Startable } from '@libp2p/interface'
import type { ChainOptions, PipelineRouter, RouteHop } from '@neuroshard/pipeline'

/** What the router reads from layer-pool (`LayerPool` satisfies it) */
export interface RecordSource {
  records(): Map<string, { record: { peerId: PeerId, spans: Array<{ start: number, end: number, state: string, throughput: number, quantization?: 'fp32' | 'int8' | 'int4', quantBlockSize?: number, kvTokensLeft?: number }>, issuedAt?: number, expiresAt?: number } }>
}

/** What the router pings with (`@libp2p/ping`'s service satisfies it) */
export interface Pinger {
  ping(peer: PeerId, options?: AbortOptions): Promise<number>
}

export interface SwarmRouterComponents {
  peerId: PeerId
  logger: ComponentLogger
  [service: string]: unknown
}

export interface SwarmRouterInit {
  /** Where candidates come from: a record source, or the name of the layer-pool service @default 'layerPool' */
  records?: RecordSource | string
  /** Name of the ping service, or a pinger @default 'ping' */
  ping?: Pinger | string
  /** @default DEFAULT_UNKNOWN_RTT_MS (50) */
  unknownRttMs?: number
  /** @default DEFAULT_UNMEASURED_THROUGHPUT (100) */
  unmeasuredThroughput?: number
  /** @default DEFAULT_TOKENS_PER_REQUEST (1) */
  tokensPerRequest?: number
  /** @default DEFAULT_LOAD_PENALTY_MS (5) */
  loadPenaltyMs?: number
  /** ms added to a hop whose KV headroom a session would fill (scaled by need / headroom) @default DEFAULT_KV_PENALTY_MS (20) */
  kvPenaltyMs?: number
  /** @default DEFAULT_BAN_BASE_MS (1 s) */
  banBaseMs?: number
  /** @default DEFAULT_BAN_MAX_MS (5 min) */
  banMaxMs?: number
  /** @default DEFAULT_BAN_FORGET_MS (10 min) */
  banForgetMs?: number
  /** Ping the chain's hops and standbys this often, ms (0: never) @default DEFAULT_PROBE_INTERVAL_MS (5 s) */
  probeIntervalMs?: number
  /** @default DEFAULT_MAX_PROBES_PER_ROUND (16) */
  maxProbesPerRound?: number
  /** @default DEFAULT_PING_TIMEOUT_MS (2 s) */
  pingTimeoutMs?: number
  /** @default DEFAULT_RTT_ALPHA (0.3) */
  rttAlpha?: number
  /** @default DEFAULT_MAX_CANDIDATES (4096) */
  maxCandidates?: number
  /**
   * Weight formats inference chains may use (a span's format is its record's `quantization`, float32 when absent),
   * e.g. `['fp32']` for full precision only. Training chains take any (they train the float32 weights). A chain's
   * hops carry `quantization` when it is not float32, and `quantBlockSize` when the record declares a group size
   * other than 32.
   * @default ['fp32', 'int8', 'int4']
   */
  quantization?: Array<'fp32' | 'int8' | 'int4'>
  /** Uniform draws in [0, 1) for weighted dispatch @default Math.random */
  random?(): number
  /** Clock, ms @default Date.now */
  now?(): number
}

export interface SwarmRouter extends PipelineRouter, Startable {
  /** Live, unbanned candidates as the router sees them now */
  candidates(): Candidate[]
  /**
   * The least-cost chain and a standby per hop (undefined where a span has no other replica); `kvTokens`: the
   * tokens a session will keep in each hop's cache (default 0: headroom not considered)
   */
  plan(from: number, to: number, kvTokens?: number): { chain: Chain, standbys: Array<Candidate | undefined> } | undefined
  /** For each hop of a chain, the cheapest other live candidate covering its slots (what a Driver warms), or undefined */
  standbys(chain: RouteHop[], options?: { tokens?: number }): Array<RouteHop | undefined>
  /** Whether a peer is banned now */
  isBanned(peer: PeerId): boolean
  /** Record an RTT sample, ms */
  observeRtt(peer: PeerId, ms: number): void
  /** Ping the current plan's hops and standbys now */
  probe(options?: AbortOptions): Promise<void>
  /** Count a session on `peer` (the load penalty and weighted dispatch read it); returns the release */
  acquire(peer: PeerId): () => void
}

const LIVE = new Set(['serving', 'training'])

export class DefaultSwarmRouter implements SwarmRouter {
  private readonly components: SwarmRouterComponents
  private readonly init: SwarmRouterInit
  private readonly log: Logger
  private readonly bans: BanList
  private readonly rtt = new Map<string, number>()
  private readonly load = new Map<string, number>()
  private readonly peers = new Map<string, PeerId>()
  private readonly now: () => number
  private readonly random: () => number
  private timer?: ReturnType<typeof setInterval>
  private started = false
  private lastPlan?: { from: number, to: number }
  /**
   * For each peer with a failure count: the `expiresAt` of its layer record when it last failed (the peer's own
   * clock). A record of it issued at or after that time was published after a whole TTL of silence: the peer
   * restarted (or was cut off for longer than a record lives), and its count and ban are dropped (spec §6, 1.3.0)
   */
  private readonly failedRecordExpiry = new Map<string, number>()

  constructor (components: SwarmRouterComponents, init: SwarmRouterInit = {}) {
    this.components = components
    this.init = init
    this.log = components.logger.forComponent('neuroshard:swarm-router')
    this.now = init.now ?? Date.now
    this.random = init.random ?? Math.random
    this.bans = new BanList({ baseMs: init.banBaseMs ?? DEFAULT_BAN_BASE_MS, maxMs: init.banMaxMs ?? DEFAULT_BAN_MAX_MS, forgetMs: init.banForgetMs ?? DEFAULT_BAN_FORGET_MS })
  }

  readonly [Symbol.toStringTag] = '@neuroshard/swarm-router'

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const every = this.init.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS
    if (every > 0) {
      this.timer = setInterval(() => { this.probe().catch(err => { this.log('probe failed: %e', err) }) }, every)
      this.timer.unref?.()
    }
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
  }

  private service<T> (value: T | string | undefined, fallback: string): T | undefined {
    if (value != null && typeof value !== 'string') return value
    try {
      return this.components[(value ?? fallback) as string] as T | undefined
    } catch {
      return undefined // libp2p's components throw for a service that is not configured
    }
  }

  /** `kvTokens`: what a session will keep in each hop's cache (0: none, headroom not considered) */
  private costOptions (kvTokens = 0): CostOptions {
    return {
      unknownRttMs: this.init.unknownRttMs ?? DEFAULT_UNKNOWN_RTT_MS,
      unmeasuredThroughput: this.init.unmeasuredThroughput ?? DEFAULT_UNMEASURED_THROUGHPUT,
      tokens: this.init.tokensPerRequest ?? DEFAULT_TOKENS_PER_REQUEST,
      kvTokens: Number.isFinite(kvTokens) && kvTokens > 0 ? kvTokens : 0,
      kvPenaltyMs: this.init.kvPenaltyMs ?? DEFAULT_KV_PENALTY_MS,
      loadPenaltyMs: this.init.loadPenaltyMs ?? DEFAULT_LOAD_PENALTY_MS
    }
  }

  candidates (): Candidate[] {
    const source = this.service<RecordSource>(this.init.records, 'layerPool')
    if (source == null) return []
    const self = this.components.peerId.toString()
    this.peers.clear()
    this.forgiveRestarted(source)
    const banned = this.bans.bannedSet(this.now())
    const out: Candidate[] = []
    const max = this.init.maxCandidates ?? DEFAULT_MAX_CANDIDATES
    for (const [id, entry] of source.records()) {
      if (id === self || banned.has(id)) continue
      this.peers.set(id, entry.record.peerId)
      for (const s of entry.record.spans) {
        if (!LIVE.has(s.state) || out.length >= max) continue
        out.push({
          peer: id, start: s.start, end: s.end, throughput: s.throughput, rttMs: this.rtt.get(id), load: this.load.get(id) ?? 0,
          ...(s.quantization != null && s.quantization !== 'fp32' ? { quantization: s.quantization } : {}),
          ...(s.quantization != null && s.quantization !== 'fp32' && s.quantBlockSize != null ? { quantBlockSize: s.quantBlockSize } : {}),
          ...(s.kvTokensLeft != null ? { kvHeadroom: s.kvTokensLeft } : {})
        })
      }
    }
    return out
  }

  plan (from: number, to: number, kvTokens = 0): { chain: Chain, standbys: Array<Candidate | undefined> } | undefined {
    this.lastPlan = { from, to }
    const all = this.candidates()
    const o = this.costOptions(kvTokens)
    const chain = shortestChain(all, from, to, o)
    if (chain == null) return undefined
    return { chain, standbys: standbys(chain, all, o) }
  }

  chain (options: ChainOptions): RouteHop[] {
    const { from, to } = options
    this.lastPlan = { from, to }
    const formats = this.init.quantization
    const all = options.purpose === 'training' || formats == null ? this.candidates() : this.candidates().filter(c => formats.includes(c.quantization ?? 'fp32'))
    // sessions keep `tokens` in every hop's KV cache; training keeps none
    const o = { ...this.costOptions(options.purpose === 'training' ? 0 : options.tokens), wholeSpans: options.purpose === 'training' }
    // peers the caller's session found full (KvCacheFullError) are left out, not banned
    const excluded = new Set((options.exclude ?? []).map(p => p.toString()))
    const chain = options.purpose === 'training'
      ? weightedChain(all, from, to, o, this.random, excluded)
      : shortestChain(all, from, to, o, excluded)
    if (chain == null) throw new NoRouteError(`no chain of live, unbanned spans covers slots [${from}, ${to}) (${all.length} candidates)`)
    return chain.hops.map(c => ({ peer: this.peers.get(c.peer) as PeerId, start: c.start, end: c.end, ...(c.quantization != null ? { quantization: c.quantization } : {}), ...(c.quantBlockSize != null ? { quantBlockSize: c.quantBlockSize } : {}) }))
  }

  /** The standby of each hop of a chain (the cheapest other live candidate covering its slots), as the Driver warms them */
  standbys (chain: RouteHop[], options: { tokens?: number } = {}): Array<RouteHop | undefined> {
    const all = this.candidates()
    const c: Chain = { hops: chain.map(h => ({ peer: h.peer.toString(), start: h.start, end: h.end, throughput: 0, spanStart: h.start, spanEnd: h.end })), cost: 0 }
    return standbys(c, all, this.costOptions(options.tokens)).map(s => s == null ? undefined : { peer: this.peers.get(s.peer) as PeerId, start: s.start, end: s.end })
  }

  reportFailure (peer: PeerId, error?: Error): void {
    const id = peer.toString()
    const until = this.bans.fail(id, this.now())
    this.rtt.delete(id)
    // the record the peer failed under (kept from an earlier failure when its record has lapsed since)
    let expiresAt: number | undefined
    try {
      expiresAt = this.service<RecordSource>(this.init.records, 'layerPool')?.records().get(id)?.record.expiresAt
    } catch {}
    if (expiresAt != null && Number.isFinite(expiresAt)) this.failedRecordExpiry.set(id, Math.max(expiresAt, this.failedRecordExpiry.get(id) ?? -Infinity))
    this.log('banned %p until %d after %s (failures %d)', peer, until, error?.name ?? 'a failure', this.bans.failures(id))
  }

  /**
   * Spec §6 (1.3.0): a peer whose record now was issued at or after the expiry of the record it last failed under
   * (both times on its own clock: no skew) published nothing for a whole record lifetime since: it restarted. Its
   * ban and failure count are dropped, so a restarted Worker is routable as soon as its new record arrives and a
   * later failure of it starts again from the base ban (testbed node-failover: a Worker killed and restarted kept
   * the count of its outage, and a later failure banned it for 2^count s while another replica was down)
   */
  private forgiveRestarted (source: RecordSource): void {
    if (this.failedRecordExpiry.size === 0) return
    const records = source.records()
    for (const [id, expiry] of this.failedRecordExpiry) {
      if (this.bans.failures(id) === 0) {
        this.failedRecordExpiry.delete(id) // forgotten after the forget time
        continue
      }
      const issuedAt = records.get(id)?.record.issuedAt
      if (issuedAt == null || !(issuedAt >= expiry)) continue
      this.bans.forgive(id)
      this.failedRecordExpiry.delete(id)
      this.log('%s restarted (record issued %d, the failed one expired %d): ban and failures dropped', id, issuedAt, expiry)
    }
  }

  reportSuccess (_peer: PeerId, _latencyMs?: number): void {
    // the latency of a forwarded request includes the whole downstream chain: not an RTT sample
  }

  isBanned (peer: PeerId): boolean {
    const source = this.service<RecordSource>(this.init.records, 'layerPool')
    if (source != null) this.forgiveRestarted(source)
    return this.bans.banned(peer.toString(), this.now())
  }

  /** Account a session / micro-batch routed to a peer (weighted dispatch and the load penalty read it) */
  acquire (peer: PeerId): () => void {
    const id = peer.toString()
    this.load.set(id, (this.load.get(id) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.load.get(id) ?? 1) - 1
      if (n <= 0) this.load.delete(id)
      else this.load.set(id, n)
    }
  }

  observeRtt (peer: PeerId, ms: number): void {
    if (!(Number.isFinite(ms) && ms >= 0)) return
    const id = peer.toString()
    const a = this.init.rttAlpha ?? DEFAULT_RTT_ALPHA
    const old = this.rtt.get(id)
    this.rtt.set(id, old == null ? ms : (1 - a) * old + a * ms)
  }

  async probe (options: AbortOptions = {}): Promise<void> {
    const pinger = this.service<Pinger>(this.init.ping, 'ping')
    if (pinger == null || this.lastPlan == null) return
    const plan = this.plan(this.lastPlan.from, this.lastPlan.to)
    if (plan == null) return
    const peers = new Set<string>()
    for (const c of [...plan.chain.hops, ...plan.standbys]) if (c != null) peers.add(c.peer)
    const max = this.init.maxProbesPerRound ?? DEFAULT_MAX_PROBES_PER_ROUND
    await Promise.all([...peers].slice(0, max).map(async id => {
      const peer = this.peers.get(id) as PeerId
      try {
        const signal = AbortSignal.any([AbortSignal.timeout(this.init.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS), ...(options.signal != null ? [options.signal] : [])])
        this.observeRtt(peer, await pinger.ping(peer, { signal }))
      } catch (err: any) {
        if (options.signal?.aborted === true) return
        this.reportFailure(peer, err)
      }
    }))
  }
}
