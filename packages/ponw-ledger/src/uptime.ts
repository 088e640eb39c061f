/**
 * Uptime attestation: a validator votes for an uptime proof only for heartbeats it saw itself from the
 * libp2p peer the wallet is bound to (an {@link IdentityBinding} signed by both keys).
 */
import { UptimeNotAttestedError } from './errors.js'
import { verifyBinding } from './keys.js'
import type { Chain } from './genesis.js'
import type { Address, IdentityBinding } from './keys.js'
import type { UptimeClaim, UptimeVerifier } from './verify.js'

/** Where a validator records the heartbeats it sees (pluggable: gossip, pings, a monitoring service…) */
export interface HeartbeatTracker {
  /**
   * a heartbeat from `peerId` seen at `atMs` (this node's clock), while the peer was bound to `wallet`. A slot
   * counts for the first wallet it was recorded for: one machine's slot earns uptime for one wallet only.
   */
  record(peerId: string, atMs: number, wallet: Address): void
  /** distinct heartbeat slots (of `heartbeatSeconds`) seen from `peerId` during `epoch` and counted for `wallet` */
  heartbeatsSeen(peerId: string, epoch: bigint, wallet: Address): number
}

export interface MemoryHeartbeatTrackerInit {
  chain: Chain
  /**
   * peers remembered; the least recently seen is forgotten first
   *
   * @default 100_000
   */
  maxPeers?: number
}

/** In-memory {@link HeartbeatTracker}: per peer, the heartbeat slots seen in the last epochWindow + 1 epochs */
export class MemoryHeartbeatTracker implements HeartbeatTracker {
  readonly #chain: Chain
  readonly #maxPeers: number
  /** peer → epoch → slot → the wallet it counts for; Map order = least recently seen first */
  readonly #peers = new Map<string, Map<bigint, Map<number, Address>>>()

  constructor (init: MemoryHeartbeatTrackerInit) {
    this.#chain = init.chain
    this.#maxPeers = init.maxPeers ?? 100_000
  }

  record (peerId: string, atMs: number, wallet: Address): void {
    const g = this.#chain.genesis
    const since = atMs - g.genesisTimeMs
    if (!Number.isFinite(since) || since < 0) {
      return
    }
    const epoch = BigInt(Math.floor(since / g.params.epochMs))
    const slot = Math.floor(since / (g.params.heartbeatSeconds * 1000))
    let epochs = this.#peers.get(peerId)
    if (epochs == null) {
      while (this.#peers.size >= this.#maxPeers) {
        this.#peers.delete(this.#peers.keys().next().value!)
      }
      epochs = new Map()
    } else {
      this.#peers.delete(peerId)
    }
    this.#peers.set(peerId, epochs)
    let slots = epochs.get(epoch)
    if (slots == null) {
      slots = new Map()
      epochs.set(epoch, slots)
      // keep only the epochs a proof may still name (bounded memory per peer)
      for (const e of epochs.keys()) {
        if (e + BigInt(g.params.epochWindow) < epoch) {
          epochs.delete(e)
        }
      }
    }
    if (!slots.has(slot)) {
      slots.set(slot, wallet)
    }
  }

  heartbeatsSeen (peerId: string, epoch: bigint, wallet: Address): number {
    let n = 0
    for (const w of this.#peers.get(peerId)?.get(epoch)?.values() ?? []) {
      if (w === wallet) n++
    }
    return n
  }
}

export interface PeerBindingsInit {
  /**
   * wallets remembered; the least recently bound is forgotten first
   *
   * @default 100_000
   */
  maxBindings?: number
}

/**
 * Wallet ↔ libp2p peer, from bindings whose two signatures verify. One machine, one wallet: a peer is bound to
 * one wallet and a wallet to one peer at a time — the newest binding (by `issuedAtMs`) of either side wins and
 * ends the older pairing of the other side.
 */
export class PeerBindings {
  readonly #byAddress = new Map<Address, { peerId: string, issuedAtMs: number }>()
  readonly #byPeer = new Map<string, { address: Address, issuedAtMs: number }>()
  /** the exact binding last verified per peer: a repeated heartbeat is not verified again */
  readonly #verified = new Map<string, { key: string, address: Address }>()
  readonly #max: number

  constructor (init: PeerBindingsInit = {}) {
    this.#max = init.maxBindings ?? 100_000
  }

  /** Verifies the binding (InvalidSignatureError if not) and records it; returns the bound wallet address */
  async add (binding: IdentityBinding): Promise<Address> {
    const key = `${binding.walletPublicKey}/${binding.issuedAtMs}/${binding.walletSignature}/${binding.peerSignature}`
    const cached = this.#verified.get(binding.peerId)
    const address = cached?.key === key ? cached.address : await verifyBinding(binding)
    const prev = this.#byAddress.get(address)
    const prevOfPeer = this.#byPeer.get(binding.peerId)
    if ((prev == null || binding.issuedAtMs >= prev.issuedAtMs) && (prevOfPeer == null || binding.issuedAtMs >= prevOfPeer.issuedAtMs)) {
      this.#byAddress.delete(address)
      while (this.#byAddress.size >= this.#max) {
        this.#byAddress.delete(this.#byAddress.keys().next().value!)
      }
      this.#byAddress.set(address, { peerId: binding.peerId, issuedAtMs: binding.issuedAtMs })
      this.#byPeer.delete(binding.peerId)
      while (this.#byPeer.size >= this.#max) {
        this.#byPeer.delete(this.#byPeer.keys().next().value!)
      }
      this.#byPeer.set(binding.peerId, { address, issuedAtMs: binding.issuedAtMs })
    }
    this.#verified.delete(binding.peerId)
    while (this.#verified.size >= this.#max) {
      this.#verified.delete(this.#verified.keys().next().value!)
    }
    this.#verified.set(binding.peerId, { key, address })
    return address
  }

  /** the peer `address` is bound to, if that peer is still bound to `address` (and not to a newer wallet) */
  peerOf (address: Address): string | undefined {
    const peer = this.#byAddress.get(address)?.peerId
    return peer != null && this.#byPeer.get(peer)?.address === address ? peer : undefined
  }

  /** the wallet `peerId` is bound to now (its newest binding) */
  walletOf (peerId: string): Address | undefined {
    return this.#byPeer.get(peerId)?.address
  }
}

export interface HeartbeatUptimeVerifierInit {
  tracker: HeartbeatTracker
  /** the libp2p peer a wallet is bound to (e.g. `PeerBindings.peerOf`) */
  peerOf(address: Address): string | undefined
  /**
   * heartbeats a claim may exceed what this validator saw by (missed gossip)
   *
   * @default 0
   */
  tolerance?: number
}

/**
 * The `uptime` check: the claim's heartbeats must not exceed the heartbeats this validator saw from the
 * wallet's bound peer during the claimed epoch (plus `tolerance`); no bound peer or nothing seen: refused.
 */
export class HeartbeatUptimeVerifier implements UptimeVerifier {
  readonly #init: HeartbeatUptimeVerifierInit

  constructor (init: HeartbeatUptimeVerifierInit) {
    this.#init = init
  }

  async verifyUptime (claim: UptimeClaim): Promise<void> {
    const peer = this.#init.peerOf(claim.sender)
    if (peer == null) {
      throw new UptimeNotAttestedError(`wallet ${claim.sender} is bound to no libp2p peer`)
    }
    const seen = this.#init.tracker.heartbeatsSeen(peer, claim.epoch, claim.sender)
    if (seen === 0 || claim.heartbeats > seen + (this.#init.tolerance ?? 0)) {
      throw new UptimeNotAttestedError(`${claim.heartbeats} heartbeats claimed for epoch ${claim.epoch}, ${seen} seen from ${peer}`)
    }
  }
}
