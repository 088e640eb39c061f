/**
 * The data behind the node's HTTP API and dashboard. The API server knows nothing of libp2p, the
 * pipeline or the ledger: it asks a {@link NodeBackend}. `createLocalBackend()` implements it over what
 * runs in this process (a layer pool, the local generator, a training recorder, a ledger); the devnet
 * plugs in the distributed pipeline client and DiLoCo by implementing the same interface (or by passing
 * `generator` / `training` sources to `createLocalBackend`).
 *
 * Every amount of NEURO is a bigint in base units (1 NEURO = 10^18) and travels as a decimal string in
 * JSON, never as a float.
 */

/** One span this node holds: slots [start, end) */
export interface SpanStatus {
  start: number
  end: number
  /** loading | serving | training | leaving */
  state: string
  /** Human-readable: `embed + blocks 0-1`, `head`, … */
  description: string
}

/** `GET /api/status` */
export interface NodeStatus {
  peerId: string
  /** Roles from the spans held: driver (embed), worker (blocks), validator (head); empty when none */
  roles: Array<'driver' | 'worker' | 'validator'>
  spans: SpanStatus[]
  /** Seconds since the node (the backend) started */
  uptimeSeconds: number
  /** Version of @neuroshard/node */
  version: string
  /** Listen addresses of the libp2p host */
  addresses: string[]
  /** The model the network serves, when known */
  model?: { id: string, version: number, slots: number }
  /** Wallet address of this node, when it has one */
  wallet?: string
}

/** One open connection to a peer */
export interface PeerConnection {
  /** tcp | quic | webrtc-direct | relay | other */
  transport: string
  direction: 'inbound' | 'outbound'
  remoteAddr: string
}

/** `GET /api/peers` */
export interface PeersInfo {
  self: string
  peers: Array<{ peerId: string, connections: PeerConnection[] }>
}

/** One holder of a slot */
export interface SlotHolder {
  peerId: string
  /** loading | serving | training | leaving */
  state: string
}

/** One slot of the model: 0 = embed, 1..L = blocks, L + 1 = head */
export interface SlotStatus {
  slot: number
  role: 'embed' | 'block' | 'head'
  /** `embed`, `block 0`, …, `head` */
  name: string
  /** Holders serving or training it */
  live: number
  /** Holders still loading it */
  pending: number
  holders: SlotHolder[]
}

/** `GET /api/layers`: who holds which slots */
export interface LayerMap {
  modelId: string
  version: number
  /** Minimum live replicas the pool keeps per slot */
  minReplicas: number
  slots: SlotStatus[]
  /** Every peer holding something, this node first */
  peers: string[]
}

/** A point of a loss curve */
export interface LossPoint {
  /** Inner step (training) or the step the evaluation ran at */
  step: number
  loss: number
  /** DiLoCo round the point belongs to */
  round: number
  /** ms since the epoch */
  time: number
  /**
   * Validation of the network's model: the DiLoCo round of each slot's weights it ran on (index: slot). They differ
   * when the round measured was gone and the model was measured as the network serves it (each slot's newest)
   */
  slotRounds?: number[]
}

/** `GET /api/training`: DiLoCo progress */
export interface TrainingProgress {
  /** Training is on for this node */
  active: boolean
  /** Current DiLoCo round (outer step), 0 before the first */
  round: number
  /** Inner steps done in the current round */
  innerStep: number
  /** Inner steps per round (H), when known */
  innerSteps?: number
  /** Inner steps done in total */
  totalSteps: number
  /** Training loss per inner step (downsampled to a bounded number of points) */
  loss: LossPoint[]
  /** Validation losses (typically one per round) */
  validation: LossPoint[]
  /** Finished rounds: when and with what outcome */
  rounds: Array<{ round: number, time: number, accepted?: number, rejected?: number }>
}

/** A line of the ledger history as the API shows it */
export interface LedgerHistoryEntry {
  id: string
  kind: string
  status: string
  sequence: string
  /** Signed change of the account's balance, base units */
  delta: string
  /** Newly minted NEURO by this message (a reward), base units */
  minted: string
  reason?: string
}

/** `GET /api/ledger` */
export interface LedgerInfo {
  /** false when this node runs no ledger */
  enabled: boolean
  address?: string
  /** Liquid balance, base units */
  balance: string
  stake: { bonded: string, slashed: string, unbonding: Array<{ amount: string, releaseEpoch: string }> }
  /** Sum of the minted amounts in `history` (rewards earned in those entries), base units */
  rewards: string
  /** The newest entries (at most the backend's limit, 50 by default), newest first */
  history: LedgerHistoryEntry[]
  /** Base units per NEURO */
  unit: string
}

/** `GET /v1/models` */
export interface ModelInfo {
  id: string
  /** Who serves it: `local` (this process) or `network` (the pipeline) */
  ownedBy: string
  /** Seconds since the epoch */
  created: number
  /** Longest context in tokens */
  contextLength?: number
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

/** What to generate from: a text prompt or a conversation */
export type GenerationPrompt = string | ChatMessage[]

/** Sampling settings the API passes to the backend (already validated) */
export interface GenerationOptions {
  model: string
  /** Tokens to generate at most */
  maxTokens: number
  /** 0 = greedy */
  temperature: number
  /** 1 = off */
  topP: number
  /** 0 = off */
  topK: number
  /** Sampling seed (random when absent) */
  seed?: number
}

/** What a paid session delivered */
export interface ServedSession {
  payment: string
  tokens: number
  text: string
  startedMs: number
  endedMs: number
}

/** Mutating wallet actions of this node's wallet (the API requires the token for them) */
export interface WalletActions {
  transfer(to: string, amount: bigint, signal?: AbortSignal): Promise<{ id: string, sequence: string }>
  stake(amount: bigint, signal?: AbortSignal): Promise<{ id: string, sequence: string }>
  unstake(amount: bigint, signal?: AbortSignal): Promise<{ id: string, sequence: string }>
}

/** Inference sessions as the backend sees them (the pipeline's own sessions, for instance) */
export interface BackendInferenceStats {
  /** Sessions open in the backend (KV caches held) */
  sessions: number
}

/**
 * What the API and dashboard show and do. Any method may be sync or async; any may throw
 * `BackendUnavailableError` (→ 503) when the part behind it is not running.
 */
export interface NodeBackend {
  status(): NodeStatus | Promise<NodeStatus>
  peers(): PeersInfo | Promise<PeersInfo>
  layers(): LayerMap | Promise<LayerMap>
  training(): TrainingProgress | Promise<TrainingProgress>
  /** This node's account, or `address`'s when given */
  ledger(address?: string): LedgerInfo | Promise<LedgerInfo>
  models(): ModelInfo[] | Promise<ModelInfo[]>
  /**
   * Generate from `prompt`: yields the text of each new token as soon as it is sampled (a piece may be
   * `''` while the bytes of a character are incomplete), at most `options.maxTokens` items. Ends early
   * at the end of a document; stops when `signal` aborts (the client went away or a stop sequence
   * matched). Throws `UnknownModelError` for a model it does not serve.
   */
  generate(prompt: GenerationPrompt, options: GenerationOptions, signal: AbortSignal): AsyncIterable<string>
  /** Tokens of a prompt, for the `usage` field (omitted when absent) */
  countTokens?(prompt: GenerationPrompt, model: string): number | undefined | Promise<number | undefined>
  /**
   * A paid session: the tokens the final ledger payment `paymentId` (hex) buys from this node; throws an
   * `ApiError` (402) when it is unknown, not final, for another provider or already used
   */
  paidSession?(paymentId: string, signal: AbortSignal): Promise<{ tokens: number }>
  /** A paid session was served (the node signs its inference proof) */
  served?(session: ServedSession): void
  /** Inference sessions held by the backend */
  inference?(): BackendInferenceStats | Promise<BackendInferenceStats>
  /** This node's wallet actions; absent → the wallet endpoints answer 503 */
  wallet?: WalletActions
}
