import { readFileSync } from 'node:fs'
import { MIN_REPLICAS, describeSpan } from '@neuroshard/layer-pool'
import { NEURO } from '@neuroshard/ponw-ledger'
import { transportName } from '../devnet.js'
import { BackendUnavailableError, UnknownModelError } from './errors.js'
import type { LayerMap, LedgerInfo, NodeBackend, NodeStatus, PeersInfo, SlotStatus, TrainingProgress, WalletActions, GenerationOptions, GenerationPrompt } from './backend.js'
import type { CompletionSource } from './local-generator.js'
import type { Connection, PeerId } from '@libp2p/interface'
import type { LayerPool } from '@neuroshard/layer-pool'
import type { Ledger, LedgerTx, TxBody } from '@neuroshard/ponw-ledger'

/** What the backend reads from a libp2p host */
export interface HostLike {
  readonly peerId: PeerId
  getMultiaddrs(): Array<{ toString(): string }>
  getConnections(): Connection[]
}

/** A ledger: `ponwLedger`'s service (with `send`) or a local `Ledger` (read-only) */
export interface LedgerSource {
  readonly ledger: Pick<Ledger, 'account' | 'history' | 'wallet'>
  send?(body: TxBody, options?: { signal?: AbortSignal }): Promise<LedgerTx>
}

/** Anything that reports training progress (a `TrainingRecorder`, or a DiLoCo adapter) */
export interface TrainingSource {
  progress(): TrainingProgress
}

export interface LocalBackendInit {
  /** The libp2p host of this node (status, peers) */
  host?: HostLike
  /** This node's layer pool (roles, spans, the layer map) */
  layerPool?: LayerPool
  /** What serves completions: the local fallback `LocalGenerator`, or the pipeline client later */
  generator?: CompletionSource
  /** Training progress (e.g. a `TrainingRecorder`) */
  training?: TrainingSource
  /** The ledger (balance, history, stake; wallet actions when it can `send`) */
  ledger?: LedgerSource
  /** History entries returned by `/api/ledger` @default 50 */
  historyLimit?: number
  /** Paid sessions (ledger payments to this node's wallet) and their inference proofs */
  payments?: Pick<NodeBackend, 'paidSession' | 'served'>
  now?(): number
}

const PROOF_KINDS = new Set(['training', 'inference', 'uptime', 'data'])

/** Version of this package, read once */
export const NODE_VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version
  } catch {
    try { return JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version } catch { return '0.0.0' }
  }
})()

/**
 * A {@link NodeBackend} over the parts running in this process: the libp2p host, its layer pool, a
 * completion source (the local fallback generator until the pipeline client is wired in), a training
 * recorder and the ledger. Parts left out answer empty data (status, peers, layers, training) or
 * `BackendUnavailableError` (completions, wallet).
 */
export function createLocalBackend (init: LocalBackendInit = {}): NodeBackend {
  const now = init.now ?? Date.now
  const startedAt = now()
  const pool = init.layerPool
  const historyLimit = init.historyLimit ?? 50

  function spansAndRoles (): Pick<NodeStatus, 'roles' | 'spans'> {
    if (pool === undefined) return { roles: [], spans: [] }
    const last = pool.config.nLayers + 1
    const roles = new Set<'driver' | 'worker' | 'validator'>()
    const spans = pool.ownSpans().map(s => {
      if (s.state === 'serving' || s.state === 'training' || s.state === 'loading') {
        if (s.start === 0) roles.add('driver')
        if (s.start <= last - 1 && s.end > 1) roles.add('worker')
        if (s.end > last) roles.add('validator')
      }
      return { start: s.start, end: s.end, state: s.state, description: describeSpan(pool.config, s.start, s.end) }
    })
    return { roles: (['driver', 'worker', 'validator'] as const).filter(r => roles.has(r)), spans }
  }

  const wallet: WalletActions | undefined = init.ledger?.send === undefined
    ? undefined
    : {
        transfer: async (to, amount, signal) => submitted(await init.ledger!.send!({ kind: 'transfer', to, amount }, signal !== undefined ? { signal } : {})),
        stake: async (amount, signal) => submitted(await init.ledger!.send!({ kind: 'stake', amount }, signal !== undefined ? { signal } : {})),
        unstake: async (amount, signal) => submitted(await init.ledger!.send!({ kind: 'unbond', amount }, signal !== undefined ? { signal } : {}))
      }

  const backend: NodeBackend = {
    status (): NodeStatus {
      const walletAddress = init.ledger?.ledger.wallet?.address
      return {
        peerId: init.host?.peerId.toString() ?? '',
        ...spansAndRoles(),
        uptimeSeconds: Math.max(0, (now() - startedAt) / 1000),
        version: NODE_VERSION,
        addresses: init.host?.getMultiaddrs().map(String) ?? [],
        ...(pool !== undefined ? { model: { id: pool.modelId, version: pool.version, slots: pool.config.nLayers + 2 } } : {}),
        ...(walletAddress !== undefined ? { wallet: walletAddress } : {})
      }
    },

    peers (): PeersInfo {
      const byPeer = new Map<string, PeersInfo['peers'][number]>()
      for (const conn of init.host?.getConnections() ?? []) {
        const id = conn.remotePeer.toString()
        let entry = byPeer.get(id)
        if (entry === undefined) byPeer.set(id, entry = { peerId: id, connections: [] })
        const remoteAddr = conn.remoteAddr.toString()
        entry.connections.push({ transport: transportName(remoteAddr), direction: conn.direction, remoteAddr })
      }
      return { self: init.host?.peerId.toString() ?? '', peers: [...byPeer.values()].sort((a, b) => a.peerId.localeCompare(b.peerId)) }
    },

    layers (): LayerMap {
      if (pool === undefined) return { modelId: '', version: 0, minReplicas: MIN_REPLICAS, slots: [], peers: [] }
      const config = pool.config
      const n = config.nLayers + 2
      const view = pool.view()
      const slots: SlotStatus[] = Array.from({ length: n }, (_, slot) => ({
        slot,
        role: slot === 0 ? 'embed' : slot === n - 1 ? 'head' : 'block',
        name: slot === 0 ? 'embed' : slot === n - 1 ? 'head' : `block ${slot - 1}`,
        live: view[slot]?.live ?? 0,
        pending: view[slot]?.pending ?? 0,
        holders: []
      }))
      const self = init.host?.peerId.toString()
      const peers = new Set<string>()
      const add = (peerId: string, span: { start: number, end: number, state: string }): void => {
        for (let s = Math.max(0, span.start); s < Math.min(n, span.end); s++) slots[s].holders.push({ peerId, state: span.state })
        peers.add(peerId)
      }
      // this node's spans as it holds them now (its own published record may lag)
      if (self !== undefined) for (const span of pool.ownSpans()) add(self, span)
      for (const [peerId, entry] of pool.records()) {
        if (peerId === self) continue
        for (const span of entry.record.spans) add(peerId, span)
      }
      const ordered = [...peers].sort((a, b) => a === self ? -1 : b === self ? 1 : a.localeCompare(b))
      return { modelId: pool.modelId, version: pool.version, minReplicas: MIN_REPLICAS, slots, peers: ordered }
    },

    training (): TrainingProgress {
      return init.training?.progress() ?? { active: false, round: 0, innerStep: 0, totalSteps: 0, loss: [], validation: [], rounds: [] }
    },

    async ledger (address?: string): Promise<LedgerInfo> {
      const unit = NEURO.toString()
      const source = init.ledger
      const addr = address ?? source?.ledger.wallet?.address
      if (source === undefined || addr === undefined) {
        return { enabled: source !== undefined, balance: '0', stake: { bonded: '0', slashed: '0', unbonding: [] }, rewards: '0', history: [], unit }
      }
      const account = source.ledger.account(addr)
      // the ledger gives the newest `limit` entries oldest first; the API lists them newest first
      const outcomes = (await source.ledger.history(addr, { limit: historyLimit })).reverse()
      let rewards = 0n
      const history = outcomes.map(o => {
        if (o.status === 'applied' && o.sender === addr && PROOF_KINDS.has(o.kind)) rewards += o.minted
        return {
          id: o.id,
          kind: o.kind,
          status: o.status,
          sequence: o.sequence.toString(),
          delta: (o.deltas[addr] ?? 0n).toString(),
          minted: (o.sender === addr ? o.minted : 0n).toString(),
          ...(o.reason !== undefined ? { reason: o.reason } : {})
        }
      })
      return {
        enabled: true,
        address: addr,
        balance: account.balance.toString(),
        stake: {
          bonded: account.bonded.toString(),
          slashed: account.slashed.toString(),
          unbonding: account.unbonding.map(u => ({ amount: u.amount.toString(), releaseEpoch: u.releaseEpoch.toString() }))
        },
        rewards: rewards.toString(),
        history,
        unit
      }
    },

    models () {
      const g = init.generator
      return g === undefined ? [] : [{ id: g.modelId, ownedBy: g.ownedBy, created: Math.floor(startedAt / 1000), contextLength: g.contextLength }]
    },

    generate (prompt: GenerationPrompt, options: GenerationOptions, signal: AbortSignal): AsyncIterable<string> {
      const g = init.generator
      if (g === undefined) throw new BackendUnavailableError('this node serves no model yet')
      if (options.model !== g.modelId) throw new UnknownModelError(options.model)
      return g.generate(prompt, options, signal)
    },

    countTokens (prompt: GenerationPrompt): number | undefined {
      return init.generator?.countTokens?.(prompt)
    },

    inference () {
      return { sessions: init.generator?.sessions ?? 0 }
    },

    ...(wallet !== undefined ? { wallet } : {}),
    ...(init.payments?.paidSession != null ? { paidSession: init.payments.paidSession } : {}),
    ...(init.payments?.served != null ? { served: init.payments.served } : {})
  } as NodeBackend
  return backend
}

function submitted (tx: LedgerTx): { id: string, sequence: string } {
  return { id: tx.idHex, sequence: tx.sequence.toString() }
}
