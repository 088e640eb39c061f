/**
 * The joiner: keeps a host connected to enough peers. `@libp2p/bootstrap` dials each bootstrap peer once,
 * one second after start, and never again: a refused dial (a bootstrap host's inbound rate limit during a
 * crowd start) or the loss of every peer leaves the host alone for good. The joiner retries with
 * exponential backoff and jitter until the host has `minPeers` peers, and starts again whenever it drops
 * below that (specs/host/README.md, "Joining").
 */

import { InvalidParametersError } from '@neuroshard/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { TypedEventEmitter } from 'main-event'
import {
  JOIN_BOOTSTRAP_DIAL_TIMEOUT_MS,
  JOIN_BOOTSTRAP_TAG,
  JOIN_BOOTSTRAP_TAG_VALUE,
  JOIN_DIAL_TIMEOUT_MS,
  JOIN_LOOKUP_TIMEOUT_MS,
  JOIN_MIN_PEERS,
  JOIN_RETRY_BACKOFF_FACTOR,
  JOIN_RETRY_INITIAL_DELAY_MS,
  JOIN_RETRY_MAX_DELAY_MS
} from './constants.js'
import type { AbortOptions, ComponentLogger, Connection, Libp2pEvents, Logger, PeerId, PeerInfo, PeerRouting, PeerStore, Startable } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { TypedEventTarget } from 'main-event'

/** Options of the joiner (`join` in `createNeuroShardHost` options); all are optional */
export interface JoinOptions {
  /**
   * The number of connected peers the host works towards. Below it the joiner dials bootstrap peers,
   * then other peers the host knows of, then asks the DHT for more, and retries with backoff.
   *
   * @default JOIN_MIN_PEERS (4, gossipsub's Dlo: the fewest peers a full-strength mesh needs)
   */
  minPeers?: number
  /** Delay before the first retry, ms @default JOIN_RETRY_INITIAL_DELAY_MS (500) */
  retryInitialDelayMs?: number
  /** Longest delay between retries, ms @default JOIN_RETRY_MAX_DELAY_MS (30 000) */
  retryMaxDelayMs?: number
  /** Each retry waits this many times longer than the one before (before jitter) @default JOIN_RETRY_BACKOFF_FACTOR (2) */
  retryBackoffFactor?: number
  /** Time limit of one dial of a peer learned of (not a bootstrap peer), ms @default JOIN_DIAL_TIMEOUT_MS (10 000) */
  dialTimeoutMs?: number
  /**
   * Time limit of one address of a bootstrap peer (TCP connect and upgrade), ms; libp2p's own per-address limit is 6 s
   *
   * @default JOIN_BOOTSTRAP_DIAL_TIMEOUT_MS (20 000)
   */
  bootstrapDialTimeoutMs?: number
}

/** Init of the joiner service */
export interface JoinInit extends JoinOptions {
  /** Multiaddrs with `/p2p/<peer id>`; several addresses of one peer are all dialed */
  bootstrap?: string[]
}

/** The part of libp2p's connection manager the joiner uses */
interface JoinConnectionManager {
  openConnection(peer: PeerId | Multiaddr | Multiaddr[], options?: AbortOptions): Promise<Connection>
  getConnections(peerId?: PeerId): Connection[]
}

/** The part of libp2p's transport manager the joiner uses: a dial of one address on its transport, upgrade included */
interface JoinTransportManager {
  dial(ma: Multiaddr, options?: AbortOptions): Promise<Connection>
}

/** The part of libp2p's connection gater the joiner asks before dialing a bootstrap address on the transport */
interface JoinConnectionGater {
  denyDialMultiaddr?(multiaddr: Multiaddr): Promise<boolean> | boolean
}

/** Components the joiner takes from libp2p */
export interface JoinComponents {
  peerId: PeerId
  peerStore: PeerStore
  peerRouting: PeerRouting
  connectionManager: JoinConnectionManager
  /** Bootstrap addresses are dialed on it (with `bootstrapDialTimeoutMs`); without it, through the connection manager */
  transportManager?: JoinTransportManager
  connectionGater?: JoinConnectionGater
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

/** Events of the joiner */
export interface JoinEvents {
  /** The host reached `minPeers`; detail: its peer count */
  'join:joined': CustomEvent<number>
  /** A join round ended short of `minPeers`; the next starts after `delayMs` */
  'join:retry': CustomEvent<{ attempt: number, delayMs: number, peers: number }>
}

/** The joiner service (`host.services.join`, present when the host has bootstrap peers) */
export interface Joiner extends TypedEventTarget<JoinEvents> {
  /** The target peer count */
  readonly minPeers: number
  /** Distinct peers the host is connected to now */
  readonly peerCount: number
  /** Number of consecutive join rounds that ended short of `minPeers` (0 once joined) */
  readonly attempt: number
}

interface BootstrapPeer {
  id: string
  addrs: Multiaddr[]
}

/** Validates join options; throws InvalidParametersError */
export function validateJoinOptions (init: JoinInit): void {
  const positive = (name: string, value: number | undefined, integer = false): void => {
    if (value !== undefined && (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value)))) {
      throw new InvalidParametersError(`join.${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`)
    }
  }
  positive('minPeers', init.minPeers, true)
  positive('retryInitialDelayMs', init.retryInitialDelayMs)
  positive('retryMaxDelayMs', init.retryMaxDelayMs)
  positive('dialTimeoutMs', init.dialTimeoutMs)
  positive('bootstrapDialTimeoutMs', init.bootstrapDialTimeoutMs)
  if (init.retryBackoffFactor !== undefined && !(Number.isFinite(init.retryBackoffFactor) && init.retryBackoffFactor >= 1)) {
    throw new InvalidParametersError(`join.retryBackoffFactor must be at least 1, got ${String(init.retryBackoffFactor)}`)
  }
  const initial = init.retryInitialDelayMs ?? JOIN_RETRY_INITIAL_DELAY_MS
  const max = init.retryMaxDelayMs ?? JOIN_RETRY_MAX_DELAY_MS
  if (max < initial) {
    throw new InvalidParametersError(`join.retryMaxDelayMs (${max}) is smaller than join.retryInitialDelayMs (${initial})`)
  }
  parseBootstrapList(init.bootstrap ?? [])
}

/** Groups bootstrap multiaddrs by peer id; throws InvalidParametersError for a bad or id-less address */
export function parseBootstrapList (list: string[]): BootstrapPeer[] {
  const peers = new Map<string, BootstrapPeer>()
  for (const str of list) {
    let ma: Multiaddr
    try {
      ma = multiaddr(str)
    } catch (err: any) {
      throw new InvalidParametersError(`Invalid bootstrap address ${str}: ${String(err.message)}`)
    }
    const id = ma.getComponents().findLast(c => c.name === 'p2p')?.value
    if (id == null) {
      throw new InvalidParametersError(`Bootstrap address ${str} has no /p2p/<peer id>`)
    }
    const peer = peers.get(id) ?? { id, addrs: [] }
    peer.addrs.push(ma)
    peers.set(id, peer)
  }
  return [...peers.values()]
}

/**
 * Delay before retry number `attempt` (1-based): `initial · factor^(attempt-1)` capped at `max`, with
 * "equal jitter" (a uniformly random value between half of that and all of it), so hosts that failed
 * together do not retry together.
 */
export function joinRetryDelay (attempt: number, initial: number, max: number, factor: number, random: () => number = Math.random): number {
  const base = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt - 1)))
  return Math.round(base / 2 + random() * base / 2)
}

class DefaultJoiner extends TypedEventEmitter<JoinEvents> implements Joiner, Startable {
  readonly minPeers: number
  private readonly components: JoinComponents
  private readonly log: Logger
  private readonly bootstrapList: BootstrapPeer[]
  private bootstrap: BootstrapPeer[] = []
  private readonly initialDelay: number
  private readonly maxDelay: number
  private readonly factor: number
  private readonly dialTimeout: number
  private readonly bootstrapDialTimeout: number
  private started = false
  private timer?: ReturnType<typeof setTimeout>
  /** When the pending retry (`timer`) fires, ms since the epoch */
  private timerDue = 0
  private running?: Promise<void>
  private controller?: AbortController
  private roundController?: AbortController
  private _attempt = 0

  constructor (components: JoinComponents, init: JoinInit = {}) {
    super()
    validateJoinOptions(init)
    this.components = components
    this.log = components.logger.forComponent('neuroshard:host:join')
    this.bootstrapList = parseBootstrapList(init.bootstrap ?? [])
    this.minPeers = init.minPeers ?? JOIN_MIN_PEERS
    this.initialDelay = init.retryInitialDelayMs ?? JOIN_RETRY_INITIAL_DELAY_MS
    this.maxDelay = init.retryMaxDelayMs ?? JOIN_RETRY_MAX_DELAY_MS
    this.factor = init.retryBackoffFactor ?? JOIN_RETRY_BACKOFF_FACTOR
    this.dialTimeout = init.dialTimeoutMs ?? JOIN_DIAL_TIMEOUT_MS
    this.bootstrapDialTimeout = init.bootstrapDialTimeoutMs ?? JOIN_BOOTSTRAP_DIAL_TIMEOUT_MS
    this.onDisconnect = this.onDisconnect.bind(this)
    this.onConnect = this.onConnect.bind(this)
  }

  readonly [Symbol.toStringTag] = '@neuroshard/host/join'

  get peerCount (): number {
    return new Set(this.components.connectionManager.getConnections().map(c => c.remotePeer.toString())).size
  }

  get attempt (): number {
    return this._attempt
  }

  start (): void {
    if (this.started) {
      return
    }
    this.started = true
    this._attempt = 0
    // a swarm whose nodes share one bootstrap list lists each node too: never dial ourselves
    this.bootstrap = this.bootstrapList.filter(p => p.id !== this.components.peerId.toString())
    this.controller = new AbortController()
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.addEventListener('peer:connect', this.onConnect)
  }

  afterStart (): void {
    // the first round right away: transports listen and every service runs by now
    this.schedule(0)
  }

  async stop (): Promise<void> {
    if (!this.started) {
      return
    }
    this.started = false
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.removeEventListener('peer:connect', this.onConnect)
    clearTimeout(this.timer)
    this.timer = undefined
    this.controller?.abort()
    // let a round in progress see the abort and finish, so nothing runs after stop() resolves
    await this.running?.catch(() => {})
    this.running = undefined
  }

  private onConnect (): void {
    // peers that dial us (they found us in the DHT) count too: a pending retry is no longer needed
    if (this.started && this.timer != null && this.peerCount >= this.minPeers) {
      clearTimeout(this.timer)
      this.timer = undefined
      this.joined()
    }
  }

  private joined (): void {
    const peers = this.peerCount
    this.log('joined with %d peers after %d retries', peers, this._attempt)
    this._attempt = 0
    this.safeDispatchEvent('join:joined', { detail: peers })
  }

  private onDisconnect (): void {
    if (!this.started) {
      return
    }
    if (this.running != null && this.peerCount === 0) {
      // a round that counted on the peers now gone (its DHT lookup) cannot succeed: end it, the next
      // round starts with the bootstrap peers again. Bootstrap dials in flight go on (round())
      this.roundController?.abort()
      return
    }
    if (this.timer == null && this.running == null && this.peerCount < this.minPeers) {
      this.log('down to %d of %d peers, joining again', this.peerCount, this.minPeers)
      this._attempt = 0
      // a short jittered pause: peers that leave together (a restart) are not re-dialed by everyone at once
      this.schedule(joinRetryDelay(1, this.initialDelay, this.maxDelay, this.factor))
      return
    }
    if (this.timer != null && this.peerCount === 0) {
      // alone while a retry waits out a backoff chosen when the host still had peers (rounds that found some,
      // but fewer than minPeers, back off up to retryMaxDelayMs): without a peer the host hears no gossip and
      // serves no one, so the next round comes after the first retry's pause instead (spec R21 rule 6). The
      // attempt count stays, so rounds that keep failing still back off
      const delayMs = joinRetryDelay(1, this.initialDelay, this.maxDelay, this.factor)
      if (this.timerDue - Date.now() > delayMs) {
        this.log('lost every peer while waiting to retry: joining again in %d ms', delayMs)
        this.schedule(delayMs)
      }
    }
  }

  private schedule (delayMs: number): void {
    clearTimeout(this.timer)
    this.timerDue = Date.now() + delayMs
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.running = this.round()
        .catch(err => { this.log.error('join round failed - %e', err) })
        .finally(() => { this.running = undefined })
    }, delayMs)
  }

  private async round (): Promise<void> {
    if (!this.started || this.controller == null || this.controller.signal.aborted) {
      return
    }
    try {
      if (this.peerCount < this.minPeers) {
        // not cut short when the host loses its other peers meanwhile (onDisconnect): a bootstrap dial does not
        // depend on them, and one given up half-way through a starved bootstrap host's handshake costs both ends
        // that handshake again (#15: in the 24-node join storm a joiner's only connection closing aborted its
        // other bootstrap dial after 20 s of waiting, and the next round started that handshake from scratch)
        await this.dialBootstrapPeers(this.controller.signal)
      }
      // what follows goes through the peers the host has now; losing them all ends it (onDisconnect)
      this.roundController = new AbortController()
      const signal = AbortSignal.any([this.controller.signal, this.roundController.signal])
      if (this.peerCount < this.minPeers) {
        await this.dialKnownPeers(signal)
      }
      if (this.peerCount < this.minPeers && this.peerCount > 0) {
        await this.lookupPeers(signal)
      }
    } catch (err) {
      // whatever went wrong, the round ends as usual: a retry is scheduled below
      this.log.error('join round failed - %e', err)
    }
    this.roundController = undefined
    if (!this.started || this.controller.signal.aborted) {
      return
    }
    const peers = this.peerCount
    if (peers >= this.minPeers) {
      this.joined()
      return
    }
    this._attempt++
    const delayMs = joinRetryDelay(this._attempt, this.initialDelay, this.maxDelay, this.factor)
    this.log('%d of %d peers after attempt %d, retrying in %d ms', peers, this.minPeers, this._attempt, delayMs)
    this.safeDispatchEvent('join:retry', { detail: { attempt: this._attempt, delayMs, peers } })
    this.schedule(delayMs)
  }

  /** Dials every bootstrap peer the host is not connected to, in parallel (each peer's addresses in turn) */
  private async dialBootstrapPeers (signal: AbortSignal): Promise<void> {
    const connected = this.connectedPeers()
    await Promise.all(this.bootstrap.filter(p => !connected.has(p.id)).map(async (peer) => {
      try {
        const conn = await this.dialBootstrapPeer(peer, signal)
        // like @libp2p/bootstrap: a tag keeps the connection from being the first pruned
        await this.components.peerStore.merge(conn.remotePeer, { tags: { [JOIN_BOOTSTRAP_TAG]: { value: JOIN_BOOTSTRAP_TAG_VALUE } } })
          .catch(err => { this.log.error('could not tag bootstrap peer %s - %e', peer.id, err) })
      } catch (err) {
        this.log('could not dial bootstrap peer %s - %e', peer.id, err)
      }
    }))
  }

  /**
   * A bootstrap peer's addresses one at a time on their transport, each with `bootstrapDialTimeoutMs` for the TCP
   * connect and the upgrade: libp2p's dial queue gives an address 6 s whatever the caller's signal, which the
   * handshakes of starved hosts exceeded (JOIN_BOOTSTRAP_DIAL_TIMEOUT_MS). Addresses no transport dials directly
   * (`/dnsaddr`), and hosts without a transport manager, go through the connection manager.
   */
  private async dialBootstrapPeer (peer: BootstrapPeer, signal: AbortSignal): Promise<Connection> {
    const transports = this.components.transportManager
    if (transports == null) {
      return await this.components.connectionManager.openConnection(peer.addrs, { signal: this.dialSignal(signal) })
    }
    const gater = this.components.connectionGater
    let last: unknown
    for (const addr of peer.addrs) {
      signal.throwIfAborted()
      // a connection opened meanwhile (the peer dialled us, or another part of the host dialled it)
      const open = this.components.connectionManager.getConnections().find(c => c.remotePeer.toString() === peer.id && c.status === 'open')
      if (open != null) return open
      try {
        if (await gater?.denyDialMultiaddr?.(addr) === true) throw new Error(`the connection gater denies dialing ${addr.toString()}`)
        return await transports.dial(addr, { signal: AbortSignal.any([signal, AbortSignal.timeout(this.bootstrapDialTimeout)]) })
      } catch (err: any) {
        if (err?.name === 'TransportUnavailableError') {
          try {
            return await this.components.connectionManager.openConnection(addr, { signal: this.dialSignal(signal) })
          } catch (e) {
            err = e
          }
        }
        this.log('could not dial bootstrap address %a - %e', addr, err)
        last = err
      }
    }
    throw last ?? new Error(`no address of bootstrap peer ${peer.id}`)
  }

  /** Dials peers from the peer store (learned through identify and the DHT) to make up the deficit */
  private async dialKnownPeers (signal: AbortSignal): Promise<void> {
    const connected = this.connectedPeers()
    // bootstrap peers not: every round has just dialled those it is not connected to, with the longer limit, and
    // another dial now (libp2p's 6 s per address) would only start one more handshake on the peer a join storm
    // loads most (#15: the testbed's starved joiners re-dialled a bootstrap peer right after its 20 s dial failed)
    const bootstrap = new Set(this.bootstrap.map(p => p.id))
    const candidates = await this.components.peerStore.all({
      filters: [peer => peer.addresses.length > 0 && !connected.has(peer.id.toString()) && !bootstrap.has(peer.id.toString()) && !peer.id.equals(this.components.peerId)],
      signal
    })
    shuffle(candidates)
    // twice the deficit: some of them are gone or overloaded, and one more peer costs little, while a
    // round that falls short costs a backoff delay
    await this.dialAll(candidates.slice(0, 2 * (this.minPeers - this.peerCount)).map(p => p.id), signal)
  }

  /** Asks the DHT for the peers closest to this host (the walk connects to them), then dials those found */
  private async lookupPeers (signal: AbortSignal): Promise<void> {
    const found: PeerInfo[] = []
    try {
      for await (const peer of this.components.peerRouting.getClosestPeers(this.components.peerId.toMultihash().bytes, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(JOIN_LOOKUP_TIMEOUT_MS)])
      })) {
        found.push(peer)
      }
    } catch (err) {
      this.log('peer lookup failed - %e', err)
    }
    const connected = this.connectedPeers()
    const missing = found.filter(p => !connected.has(p.id.toString()) && !p.id.equals(this.components.peerId))
    await this.dialAll(missing.slice(0, 2 * (this.minPeers - this.peerCount)).map(p => p.id), signal)
  }

  private async dialAll (peers: PeerId[], signal: AbortSignal): Promise<void> {
    await Promise.all(peers.map(async (id) => {
      try {
        await this.components.connectionManager.openConnection(id, { signal: this.dialSignal(signal) })
      } catch (err) {
        this.log('could not dial %p - %e', id, err)
      }
    }))
  }

  private connectedPeers (): Set<string> {
    return new Set(this.components.connectionManager.getConnections().map(c => c.remotePeer.toString()))
  }

  private dialSignal (signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, AbortSignal.timeout(this.dialTimeout)])
  }
}

function shuffle<T> (items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
}

/**
 * The joiner as a libp2p service factory: keeps the host connected to at least `minPeers` peers, retrying
 * with exponential backoff and jitter, through every bootstrap address it knows.
 */
export function joiner (init: JoinInit = {}): (components: JoinComponents) => Joiner {
  validateJoinOptions(init)
  return (components) => new DefaultJoiner(components, init)
}
