import { createHash, randomBytes } from 'node:crypto'
import { AbortError, InvalidParametersError, TimeoutError } from '@neuroshard/interface'
import { buildShardGraph } from '@neuroshard/model'
import { createShardExecutor, DEFAULT_BETA1, DEFAULT_BETA2, DEFAULT_EPS, DEFAULT_WEIGHT_DECAY, float32, int64, sumOfSquares, TokenIdOutOfRangeError } from '@neuroshard/runtime'
import { decodeTensorFrame, encodeTensorFrame } from '@neuroshard/tensor'
import { handleRequests, messageStream, sendRequest } from '@neuroshard/utils'
import { TypedEventEmitter } from 'main-event'
import { decodeActivation, decodeIds, decodeNamed, deflateFrame, encodeActivation, encodeIds, encodeNamed } from './codec.js'
import {
  DEFAULT_HOP_TIMEOUT_MS, DEFAULT_MAX_BATCH, DEFAULT_MAX_INBOUND_STREAMS, DEFAULT_MAX_KV_BYTES, DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_MAX_MICRO_BATCHES_PER_STEP, DEFAULT_MAX_NEW_TOKENS, DEFAULT_MAX_OUTBOUND_STREAMS, DEFAULT_MAX_RETRIES,
  DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SUB_STAGES, DEFAULT_MESSAGE_TIMEOUT_MS, DEFAULT_SESSION_TTL_MS, DEFAULT_SWEEP_INTERVAL_MS, MAX_ROUTE_HOPS,
  PIPELINE_PROTOCOL, SESSION_ID_BYTES, PIPELINE_GENERATE_PROTOCOL, PIPELINE_SESSION_PROTOCOL, MAX_GENERATE_REQUEST_SIZE, MAX_STOP_ENTRIES,
  DEFAULT_MAX_REMOTE_GENERATIONS, DEFLATE_MIN_BYTES, DEFAULT_MAX_SPARE_LINKS, PIPELINE_TOKENS_PROTOCOL
} from './constants.js'
import {
  HopFailedError, InvalidActivationError, InvalidRouteError, KvCacheFullError, NoRouteError, PipelineRequestError,
  RemotePipelineError, SessionPositionError, UnknownSessionError, InvalidDraftError, TiedOwnerLostError
} from './errors.js'
import { peerBytes, peerFromBytes } from './peer.js'
import { GenerateEvent, GenerateRequest, Kind, Request, Response } from './pb/pipeline.js'
import type { TiedAdamW } from './pb/pipeline.js'
import { checkSampling, sampleToken } from './sampling.js'
import { GammaController, MAX_DRAFT_SUPPORT, MAX_DRAFT_TOKENS, checkDraftToken, verifyDraft } from './speculative.js'
import type { DraftToken, Drafter, GammaInit } from './speculative.js'
import { SessionLink } from './link.js'
import { SessionTable, kvBytesPerToken } from './sessions.js'
import { createPipelineStage } from './stage.js'
import { byteTokenizer } from './tokenizer.js'
import { TokenWatch } from './watch.js'
import type { PipelineRouter, RouteHop } from './router.js'
import type { SamplingOptions } from './sampling.js'
import type { PipelineStage } from './stage.js'
import type { PipelineTokenizer } from './tokenizer.js'
import type { AbortOptions, ComponentLogger, Connection, Logger, PeerId, Startable, Stream } from '@libp2p/interface'
import type { ShardExecutor, TensorData } from '@neuroshard/runtime'
import type { FramedStream, HandlerRegistrar, StreamOpener } from '@neuroshard/utils'

export interface PipelineComponents {
  peerId: PeerId
  logger: ComponentLogger
  registrar: HandlerRegistrar
  connectionManager: StreamOpener
  [service: string]: unknown
}

export interface PipelineInit {
  /** The stages this node serves (one per slot span it holds) @default [] (add them with `addStage`) */
  stages?: PipelineStage[]
  /**
   * How the Driver picks chains: a router object, or the name of a libp2p service implementing
   * `PipelineRouter` (e.g. `swarmRouter(...)` from `@neuroshard/swarm-router`) @default 'swarmRouter'
   */
  router?: PipelineRouter | string
  /** Text ↔ token ids on the Driver @default byteTokenizer() */
  tokenizer?: PipelineTokenizer
  /** Protocol id (specs/pipeline/README.md) @default '/neuroshard/pipeline/1.0.0' */
  protocol?: string
  /** Largest message, bytes @default 64 MiB (DEFAULT_MAX_MESSAGE_SIZE) */
  maxMessageSize?: number
  /** Per-message read/write timeout, ms @default 30_000 */
  timeout?: number
  /** How long a node waits for the rest of the route, ms @default 60_000 */
  hopTimeout?: number
  /** Largest batch per request @default 64 */
  maxBatch?: number
  /** Inference sessions held at once @default 256 */
  maxSessions?: number
  /** KV-cache bytes over all sessions @default 512 MiB */
  maxKvBytes?: number
  /** Idle session lifetime, ms @default 300_000 */
  sessionTtlMs?: number
  /** Sweep interval for expired sessions, ms @default 10_000 */
  sweepIntervalMs?: number
  /** Micro-batches remembered (and accepted) per step and stage @default 256 */
  maxMicroBatchesPerStep?: number
  /** Concurrent inbound streams @default 64 */
  maxInboundStreams?: number
  /** Concurrent outbound streams @default 64 */
  maxOutboundStreams?: number
  /** Blockwise int8 activations and gradients on the wire, for this Driver's requests @default false */
  compress?: boolean
  /**
   * With `compress`, also zlib the frames of requests whose activation is at least 1 KiB (prefill chunks and
   * training micro-batches, not single decode tokens) and their gradients and targets (spec §3) @default true
   */
  deflate?: boolean
  /** Stages for parts of served spans (inference hops that use part of a span) kept at once @default 4 */
  maxSubStages?: number
  /** onnxruntime intra-op threads of sub-span stages @default onnxruntime's default */
  subStageThreads?: number
  /** Serve remote generation (`/neuroshard/pipeline/generate/1.0.0`) when this node is a Driver @default true */
  serveGenerate?: boolean
  /** Concurrent remote generations @default 16 */
  maxRemoteGenerations?: number
  /** Which peers may send training requests (TRAIN_FORWARD, TARGETS, GRAD_NORM, STEP, TAKE_TIED, SET_TIED) @default every peer */
  allowTraining?(peer: PeerId): boolean
  /**
   * Tied embeddings: the Validator keeps a replica of the tied matrix and its AdamW moments and steps it with
   * the same summed gradient as the Driver (the Driver sends only its embedding's gradient rows of the step's
   * tokens), instead of receiving the whole stepped matrix every step (spec §5.3). The replica costs the
   * Validator three vocab × dModel float32 arrays of memory. As a Driver: offer it; as a Validator: accept it.
   * @default true
   */
  tiedReplica?: boolean
  /**
   * Tied embeddings with a replica (spec §4.4, 1.6.0): as a Driver, ask the Validator at TAKE_TIED for the inputs its head
   * ran on this step (`batch × seq × d` floats per micro-batch) instead of the head's `vocab × d` gradient, and recompute
   * that gradient here with the head's own backward graph (the same bits: the replica stays in step). Costs the Driver a
   * head executor (another `vocab × d` matrix and its gradient) and the head's backward per micro-batch; saves moving the
   * gradient (49 MB per step for `small`). As a Validator: keep the head's inputs of the step to answer it. @default true
   */
  tiedRecompute?: boolean
  /**
   * Tied embeddings (spec §4.4 rule 7, 1.8.0): the Validator **owns** the tied matrix. As a Driver, offer it at STEP to a
   * Validator whose replica is in step; once accepted, the Driver no longer computes the head's tied gradient nor steps
   * the matrix: it sends its embedding's gradient rows at TAKE_TIED (the Validator adds them to the head's and answers the
   * summed gradient's squared norm), the AdamW numbers at STEP, and fetches the rows its embedding looks up with each
   * TARGETS. Its own copy of the matrix is then current only at those rows: `syncTied()` fetches the whole matrix and
   * moments (e.g. before inference or a checkpoint on this node). Losing the owner (another Validator on the route, one
   * that no longer owns) fails the step with `TiedOwnerLostError`: the matrix's steps since the last sync are lost. As a
   * Validator: accept it. Results are bit-identical to the 1.7.0 path. @default false
   */
  tiedOwner?: boolean
  /**
   * Tokens straight from the Validator (spec §2, tokens streams): as a Driver, open a tokens stream to each
   * session's Validator and mark INFER requests `direct`; as a Validator, serve tokens streams. A token then takes
   * Driver → Worker(s) → Validator → Driver instead of coming back through every Worker. @default true
   */
  directTokens?: boolean
  /**
   * As a Driver, mark the `direct` INFERs `quiet` (spec §2, revision 1.5.0): the route answers them only when they fail,
   * so a decode token is 3 messages instead of 5. `false`: every direct INFER is acknowledged along the route, as before
   * 1.5.0 (for comparison, or a chain that must see the acknowledgements). @default true
   */
  quietInfer?: boolean
  /**
   * Warm standbys (spec §4.2): run each stage once when the node starts (onnxruntime and the code paths are cold
   * otherwise, and a standby switched in would pay for it), answer WARM, and as a Driver send WARM to the router's
   * standbys and keep a session stream open to the first hop's standby. @default true
   */
  warmStandbys?: boolean
  /** Idle session streams kept open to standbys and next hops of standbys @default 16 */
  maxSpareLinks?: number
  /**
   * Mirrored standbys (spec §4.2, revision 1.4.0): as a Driver, name each hop's standby in the session's INFER requests
   * (`standbys`) and send hop 1's standby a mirror of every INFER; as a server hop, send the next hop's standby a
   * mirror of what it forwards. A standby's KV cache then keeps in step with the hop it stands by for, and a failed
   * hop is replaced by its standby without replaying the sequence. Costs each standby the hop's compute and KV cache
   * for the session. @default true
   */
  mirrorStandbys?: boolean
}

export interface GenerateOptions extends AbortOptions, SamplingOptions {
  /** Tokens to generate at most @default 32 */
  maxNewTokens?: number
  /** Stop when the generated text ends with one of these (the stop text is still yielded) */
  stop?: string[]
  /** Stop at these token ids */
  stopTokens?: number[]
  /** The Validator also returns each step's last-position logits @default false */
  returnLogits?: boolean
  /** Overrides the init's `compress` for this generation */
  compress?: boolean
  /** Overrides the init's `deflate` for this generation */
  deflate?: boolean
  /** Re-routes allowed after hop failures @default 8 */
  maxRetries?: number
  /** Overrides the init's `mirrorStandbys` for this generation (plain decoding; speculative rounds do not mirror) */
  mirror?: boolean
  /**
   * Speculative decoding (spec §4.5): this drafter proposes tokens, the chain verifies them in one pass per round.
   * Greedy output is the same as without it; sampled output has the same distribution (point-mass drafts: the
   * same tokens for the same seed).
   */
  draft?: Drafter
  /** γ: draft tokens per round, adapted to the measured acceptance rate and round time unless `adaptive: false` @default { max: 8, initial: 4 } */
  gamma?: GammaInit & { adaptive?: boolean }
  /** How rejected draft tokens leave the Workers' caches: with the next INFER (`rollback`), or TRUNCATE messages first @default 'inline' */
  rollback?: 'inline' | 'message'
  /** Called after each speculative round */
  onRound?(round: SpeculativeRound): void
}

/** One speculative round as the Driver saw it */
export interface SpeculativeRound {
  /** Draft tokens proposed and accepted */
  proposed: number
  accepted: number
  /** Tokens the round produced (accepted + 1) */
  tokens: number
  /** ms spent drafting, ms of the whole round */
  draftMs: number
  roundMs: number
  /** γ asked of the drafter */
  gamma: number
}

export interface GeneratedToken {
  /** The token id */
  id: number
  /** Its text (bytes of an incomplete UTF-8 character wait for the next token) */
  text: string
  /** Position of the token in the sequence (prompt length + index) */
  position: number
  /** The logits it was sampled from, with `returnLogits` */
  logits?: Float32Array
}

export interface TrainBatch {
  /** Token ids, [batch, seq] row-major */
  inputIds: BigInt64Array
  /** Next-token targets, same shape */
  targets: BigInt64Array
  batch: number
  seq: number
}

export interface TrainStepOptions extends AbortOptions {
  /** Overrides the init's `compress` for this step */
  compress?: boolean
  /** Overrides the init's `deflate` for this step */
  deflate?: boolean
  /** Re-routes allowed per micro-batch after hop failures @default 8 */
  maxRetries?: number
}

export interface TrainStepResult {
  /** Index of the optimizer step taken */
  step: number
  /** Mean of the micro-batches' losses */
  loss: number
  /** Each micro-batch's loss */
  losses: number[]
  /** Pipeline-global gradient norm (before clipping) */
  gradNorm: number
  lr: number
  clipScale: number
  /** Micro-batches re-sent after a hop failure */
  retries: number
  /** The hops that accumulated gradients and stepped */
  participants: RouteHop[]
  /**
   * Where the step's time went on the Driver, ms: `microBatches` (forward and backward of every micro-batch through the
   * chain), `tied` (the tied gradient taken or recomputed and added; 0 untied), `norm` (the global norm), `step` (every
   * hop's AdamW step and, tied, the replica's hash check), `sync` (matrix and moments re-sent to a Validator not in step)
   */
  ms: { microBatches: number, tied: number, norm: number, step: number, sync: number }
}

export interface PipelineEvents {
  /** A hop failed and the Driver switched to another chain */
  'pipeline:failover': CustomEvent<{ peer: PeerId, hop: number, error: Error }>
  /** A generation replaced hop `hop` (`peer`, failed or out of KV room) with its mirrored standby at `position`: nothing replayed */
  'pipeline:switched': CustomEvent<{ peer: PeerId, standby: PeerId, hop: number, position: number }>
  /** A generation produced its first token after a failover (or a move off a full hop): where the time went */
  'pipeline:recovered': CustomEvent<RecoveryTiming>
  /** This node, a hop, took more than SLOW_HOP_MS of its own time on an INFER (a slow recovery's hop, issue 15) */
  'pipeline:slow-hop': CustomEvent<SlowHop>
  /** An INFER to hop `hop` opened its session stream on the way (no spare stream, no open link): `ms` it took */
  'pipeline:link-opened': CustomEvent<{ hop: number, ms: number, position: number }>
}

/** A hop's own time on one INFER (`pipeline:slow-hop`), ms (`performance.now()` differences on the hop) */
export interface SlowHop {
  /** Finding the stage: route checks, and a sub-span stage built for the request (`sub`) */
  stageMs: number
  /** The stage's run on the chunk (its KV session opened or extended, and the head's sampling on a Validator) */
  computeMs: number
  /** The route names part of a span this node serves (a sub-span stage) */
  sub: boolean
  /** The chunk's first position (0: a new session or a replay) and length */
  position: number
  tokens: number
}

/** A hop's own time on an INFER above which it dispatches `pipeline:slow-hop`, ms */
export const SLOW_HOP_MS = 30

/**
 * Phases of one recovery, ms (`performance.now()` differences on the Driver). A recovery is every failed attempt from
 * the first failure to the next token; the phases are summed over them (`attempts`).
 */
export interface RecoveryTiming {
  /** The hop that failed first */
  hop: number
  /** A mirrored standby was switched in (no replay) */
  switched: boolean
  /** Tokens the Driver sent down the chain in the attempt that produced the token (1 for a switch, the whole sequence for a replay) */
  tokens: number
  /** Attempts that failed before the token came (≥ 1) */
  attempts: number
  /** `detect` and `reroute` are summed over the failed attempts; `embed`, `link` and `chain` are the attempt that produced the token */
  ms: {
    /** From writing the failed request to its failure (the dead peer's stream reset or connection close seen) */
    detect: number
    /** Reporting the failure (ban), choosing the next route or standby, and the new route's standbys */
    reroute: number
    /** The Driver's own stage on the chunk sent next (embedding) */
    embed: number
    /** Of `chain`: opening the session stream to the new first hop (0 when a spare stream or an open one was used) */
    link: number
    /** The INFER sent on the new chain until its answer (the hops' compute, their messages, any replay) */
    chain: number
    /** From writing the first failed request to the token's answer (`detect` + `reroute` + `embed` + `chain` + the rest) */
    total: number
    /** Speculative generation: drafting the round that produced the token */
    draft?: number
  }
  /** The token of the attempt that produced it came on the tokens stream (`direct`), not back along the route */
  direct?: boolean
}

export interface Pipeline extends Startable {
  readonly protocol: string
  /** Stages served by this node */
  stages(): readonly PipelineStage[]
  addStage(stage: PipelineStage): void
  removeStage(stage: PipelineStage): void
  setRouter(router: PipelineRouter): void
  /**
   * Inference sessions held, their KV bytes, the free KV bytes under the cap, open outbound session streams, spare
   * session streams kept open to standbys, tokens streams served as a Validator
   */
  sessionStats(): { sessions: number, bytes: number, headroom: number, links: number, spares: number, watchers: number }
  /**
   * Tokens of one more inference session this node can keep in its KV caches for slots [start, end) now (what its
   * layer record announces as `kvTokensLeft`, for routers); undefined when it serves no blocks there
   */
  kvTokensLeft(start: number, end: number): number | undefined
  /** Tensor payload bytes (activations, gradients, targets, logits, tied tensors) this node sent and received as a requester */
  trafficStats(): { sent: number, received: number, requests: number, mirrored: number }
  /** Generate from a prompt (text, or token ids); this node must hold slot 0 (the Driver) */
  generate(prompt: string | number[], options?: GenerateOptions): AsyncIterable<GeneratedToken>
  /** One optimizer step over the pipeline from micro-batches; this node must hold slot 0 */
  trainStep(batches: TrainBatch | TrainBatch[], options?: TrainStepOptions): Promise<TrainStepResult>
  /**
   * Tied embeddings owned by the Validator (`tiedOwner`, spec §4.4 rule 7): fetch the whole tied matrix and its AdamW
   * moments from the owner into this Driver's embedding (checked against the hash of the owner's last step), so this
   * node's copy is current everywhere again. Nothing to do without an owner.
   */
  syncTied(options?: AbortOptions): Promise<void>
  /**
   * Tied embeddings owned by the Validator (`tiedOwner`): stop counting on the owner. This Driver's copy of the matrix goes
   * back to the matrix of the last `syncTied()` (or the offer): the rows fetched since are put back, so the matrix's steps
   * since then are lost unless `syncTied()` ran just before. The next step trains the 1.7.0 way, re-seeding the Validator
   * (which may take the offer again). For a node about to set the matrix from outside (an outer-optimizer round) or
   * to use it while the owner may move on (its own round). Nothing to do without an owner.
   */
  releaseTied(): Promise<void>
  addEventListener: TypedEventEmitter<PipelineEvents>['addEventListener']
  removeEventListener: TypedEventEmitter<PipelineEvents>['removeEventListener']
}

const KNOWN_ERRORS: Record<string, new (message: string) => Error> = {
  InvalidRouteError,
  InvalidActivationError,
  UnknownSessionError,
  SessionPositionError,
  KvCacheFullError,
  NoRouteError,
  PipelineRequestError,
  InvalidDraftError
}

/** Turn an error response into the typed error it names (RemotePipelineError for names this node does not know) */
export function errorFromResponse (res: Response): Error {
  if (res.error === HopFailedError.name) return new HopFailedError(res.message, res.failedHop)
  const Known = KNOWN_ERRORS[res.error]
  const err = Known != null ? new Known(res.message) : new RemotePipelineError(res.message, res.error)
  if (Known == null) {
    // keep the remote name visible for callers that branch on .name (runtime errors such as NonFiniteTensorError)
    Object.defineProperty(err, 'name', { value: res.error })
  }
  return Object.assign(err, { hop: res.failedHop })
}

/**
 * An inference answer that means "re-route and replay": a hop failed, or a server hop no longer serves the span
 * the route gave it, or closed the stage mid-request (its node moved or rebuilt the stage)
 */
function hopLost (res: Response): boolean {
  return res.error === HopFailedError.name || (res.failedHop >= 1 && (res.error === InvalidRouteError.name || res.error === 'RuntimeClosedError'))
}

function errorResponse (err: unknown, hop: number): Response {
  const e = err instanceof Error ? err : new Error(String(err))
  return emptyResponse({ error: e.name === '' ? 'Error' : e.name, message: e.message, failedHop: err instanceof HopFailedError ? err.hop : hop })
}

function emptyResponse (fields: Partial<Response>): Response {
  return { error: '', message: '', failedHop: 0, token: 0, logits: new Uint8Array(0), grad: new Uint8Array(0), loss: 0, normSq: 0, tied: new Uint8Array(0), position: 0, replica: false, tiedHash: new Uint8Array(0), tokens: [], direct: false, headInputs: [], headMicroBatches: [], headNorm: new Uint8Array(0), quiet: false, tiedNormSq: 0, tiedOwner: false, ...fields }
}

function emptyRequest (fields: Partial<Request>): Request {
  return {
    kind: Kind.KIND_UNSPECIFIED, session: new Uint8Array(0), position: 0, hop: 0, route: [], hidden: new Uint8Array(0),
    microBatch: 0, targets: new Uint8Array(0), step: 0, gradNorm: 0, compress: false, tied: new Uint8Array(0), lossScale: 0,
    tiedReplica: false, tiedIds: new Uint8Array(0), tiedM: new Uint8Array(0), tiedV: new Uint8Array(0), deflate: false,
    lastMicroBatch: false, rollback: false, draftCount: 0, draft: [], direct: false, mirror: false, standbys: [], quiet: false, tiedRecompute: false,
    recomputed: [], tiedOwner: false, tiedPart: 0, ...fields
  }
}

const TRAINING_KINDS = new Set([Kind.TRAIN_FORWARD, Kind.TARGETS, Kind.GRAD_NORM, Kind.STEP, Kind.TAKE_TIED, Kind.SET_TIED, Kind.HEAD_INPUT, Kind.GET_TIED])

/** Distinct ids of these batches' inputs, increasing, leaving out `except` */
function distinctIds (batches: TrainBatch[], except?: ReadonlySet<number>): number[] {
  const seen = new Set<number>()
  for (const b of batches) for (const id of b.inputIds) if (except?.has(Number(id)) !== true) seen.add(Number(id))
  return [...seen].sort((a, b) => a - b)
}

function idsFrame (ids: readonly number[]): Uint8Array<ArrayBuffer> {
  return encodeTensorFrame({ dtype: 'int64', shape: [ids.length], data: BigInt64Array.from(ids, BigInt) }) as Uint8Array<ArrayBuffer>
}

/**
 * The rows of the Driver's tied embedding gradient that the step's tokens touched (every other row is zero
 * there), as frames: int64 ids [k] (increasing) and float32 rows [k, d] named after the parameter.
 */
async function embeddingRows (embed: ShardExecutor, batches: TrainBatch[], d: number): Promise<{ ids: Uint8Array<ArrayBuffer>, data: Uint8Array<ArrayBuffer> }> {
  const ids = distinctIds(batches)
  const data = await embed.getGradientRows('embed.weight', ids)
  return { ids: idsFrame(ids), data: encodeNamed('embed.weight', data, [ids.length, d]) }
}

/** How long a Driver whose tokens stream failed still waits for a quiet route's answer before it replays, ms */
const QUIET_GRACE_MS = 2_000

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

/** The error answer to a `quiet` INFER (spec §2, 1.5.0): marked `quiet`, with the request's position */
function quietError (err: unknown, req: Request): Response {
  return { ...errorResponse(err, req.hop), quiet: true, position: req.position }
}

function hex (b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

function spanKey (start: number, end: number): string {
  return `${start}-${end}`
}

/** A Validator's copy of the tied matrix with its AdamW moments, stepped like the Driver's (spec §5.3) */
interface TiedReplica {
  /** Optimizer steps applied: valid while it equals the head's step count */
  step: number
  // the matrix is the head's resident `embed.weight` and the moments sit next to it in the head's worker
  // (`seedTiedReplica`, `stepTiedReplica`): the replica steps there, the matrix never crosses threads
  /** The head's gradient of the step it was taken for (TAKE_TIED), waiting for the Driver's rows at STEP (`summed`: added at TAKE_TIED, 1.8.0) */
  grad?: { step: number, g: Float32Array, summed?: boolean }
  /** (1.8.0) This Validator owns the matrix: the Driver no longer steps its copy (§4.4 rule 7) */
  owner?: boolean
}

/** A Driver's tied matrix owned by its Validator (§4.4 rule 7, 1.8.0) */
interface TiedOwner {
  /** The Validator (peer/span) */
  peer: string
  /** Where to reach it (the route and hop of its last step) */
  at: { route: Request['route'], hop: number }
  /** SHA-256 of the matrix its last STEP answered, and the step count it is at */
  hash: Uint8Array
  step: number
  /**
   * This Driver's rows of the matrix as they were at the offer (or the last syncTied), before fetched rows overwrote them:
   * on losing the owner they are put back, so its copy is again one whole matrix (the one of that step) with its moments
   */
  saved: Map<number, Float32Array>
  /** The step count of that matrix */
  synced: number
}

/**
 * A Driver's recompute of the head's tied gradient from HEAD_INPUT answers during the step's micro-batches (§4.4 rule 6,
 * 1.7.0), on its copy of the head, while the Workers run their backward
 */
interface EarlyTied {
  /** The Validator asked (peer/span) */
  peer: string
  /** The micro-batches recomputed, in the order accumulated */
  ids: number[]
  /** The head's final norm of the step (frame), from the first answer */
  norm?: Uint8Array
  head?: Promise<ShardExecutor>
  /** false once anything went another way: the result is not used (TAKE_TIED then asks as 1.6.0 does) */
  ok: boolean
  /** Each micro-batch's answer then its recompute, in order */
  chain: Promise<void>
  /** The recompute running on the copy of the head (what a step that drops this waits for); never rejects */
  work: Promise<void>
}

interface TrainState {
  /** Cached successful responses per micro-batch key (exactly-once accumulation) */
  done: Map<string, Promise<Response>>
  /** Targets waiting for their micro-batch (Validator) */
  targets: Map<string, TensorData>
  /**
   * A tied Validator: the inputs of the head's backward of this step, in the order it ran them (for `tied_recompute`);
   * `done` once that backward accumulated (what HEAD_INPUT answers, 1.7.0), `key` the micro-batch's
   */
  headInputs: Array<{ microBatch: number, key: string, hidden: TensorData, done: boolean }>
  /** HEAD_INPUT requests waiting for their micro-batch's head backward, by micro-batch key */
  headWaiters: Map<string, Array<() => void>>
}

export class DefaultPipeline extends TypedEventEmitter<PipelineEvents> implements Pipeline, Startable {
  readonly protocol: string
  private readonly components: PipelineComponents
  private readonly log: Logger
  private readonly own: PipelineStage[]
  private router?: PipelineRouter
  private readonly routerName?: string
  private readonly tokenizer: PipelineTokenizer
  private readonly maxMessageSize: number
  private readonly timeout: number
  private readonly hopTimeout: number
  private readonly maxBatch: number
  private readonly maxMicroBatches: number
  private readonly maxInboundStreams: number
  private readonly maxOutboundStreams: number
  private readonly sweepIntervalMs: number
  private readonly compress: boolean
  private readonly deflate: boolean
  private readonly allowTraining: (peer: PeerId) => boolean
  private readonly sessions: SessionTable
  private readonly train = new Map<PipelineStage, TrainState>()
  private readonly runId = new Uint8Array(randomBytes(SESSION_ID_BYTES))
  private unhandle?: () => Promise<void>
  private sweeper?: ReturnType<typeof setInterval>
  private started = false
  private readonly traffic = { sent: 0, received: 0, requests: 0, mirrored: 0 }
  private readonly derived = new Map<string, { parent: PipelineStage, step: number, stage: Promise<PipelineStage> }>()
  private readonly maxSubStages: number
  private readonly serveGenerate: boolean
  private readonly maxRemoteGenerations: number
  private generateHandled = false
  private sessionHandled = false
  private readonly sessionTtlMs: number
  private readonly maxSessionLinks: number
  /** Outbound session streams: `${session}/${hop}/${peer}` → link */
  private readonly links = new Map<string, SessionLink>()
  private readonly subStageThreads?: number
  private readonly tiedReplica: boolean
  private readonly tiedRecompute: boolean
  private readonly tiedOwner: boolean
  /** (1.8.0) Driver stages whose tied matrix their Validator owns */
  private readonly owners = new Map<PipelineStage, TiedOwner>()
  /**
   * (1.8.0) The head's tied gradient `H` a Validator gave up at a TAKE_TIED that found the owner lost (answered as rules
   * 1-6 do, `tied` without `tied_owner`): the head no longer holds it, so the retry of that step (the 1.7.0 way, the
   * micro-batches answered from the hops' records) adds it to the Driver's embedding; dropped by any other step
   */
  private readonly lostTied = new Map<PipelineStage, { step: number, peer: string, g: Float32Array }>()
  /** The Driver's copy of the head (its backward graph only) that recomputes the tied gradient (`tiedRecompute`) */
  private shadowHeads = new Map<PipelineStage, Promise<ShardExecutor>>()
  /**
   * The Driver's copy of the head getting the matrix a step ended with (the replica's, in step or re-seeded), in the
   * background after that step; `set` is whether it took it
   */
  private readonly shadowMatrix = new Map<PipelineStage, { step: number, set: Promise<boolean> }>()
  /** The current step's early recompute (1.7.0) per Driver stage, so a step that failed leaves no work running into the next */
  private readonly earlyTied = new Map<PipelineStage, EarlyTied>()
  /** Tied Validators (peer/span) that refused HEAD_INPUT (older than 1.7.0): not asked again */
  private readonly headInputDeclined = new Set<string>()
  private readonly replicas = new Map<PipelineStage, TiedReplica>()
  /** Tied Validators (peer/span) that took the moments and still kept no replica: they decline, send them no more */
  private readonly tiedDeclined = new Set<string>()
  /** A tied head's gradient taken and encoded after the step's last micro-batch, waiting for TAKE_TIED */
  private readonly preparedTied = new Map<PipelineStage, { step: number, ready: Promise<{ g?: Float32Array, tied: Uint8Array<ArrayBuffer> }> }>()
  /** Drafts a Validator holds for the INFER that verifies them (spec §4.5), by session hex */
  private readonly drafts = new Map<string, { position: number, draft: DraftToken[], at: number }>()
  /** INFERs waiting for their DRAFT, by session hex */
  private readonly draftWaiters = new Map<string, () => void>()
  /** Parts of a replica being seeded by SET_TIED messages of one step */
  private readonly seeds = new Map<PipelineStage, { step: number, p?: Float32Array, m?: Float32Array, v?: Float32Array }>()
  private readonly directTokens: boolean
  private readonly quietInfer: boolean
  /** This node's peer id as route entries carry it */
  private readonly selfBytes: Uint8Array
  private readonly warmStandbys: boolean
  private readonly maxSpareLinks: number
  private tokensHandled = false
  /** Validator: tokens streams by `${session}/${driver}` (hex) */
  private readonly watchers = new Map<string, { messages: FramedStream, stream: Stream, chain: Promise<unknown>, writing: number }>()
  /** Idle session streams to peers (hex), opened ahead for a standby switch; adopted by the first link to that peer */
  private readonly spares = new Map<string, { stream: Stream, messages: FramedStream, opened: number }>()
  /**
   * Peers (hex) a spare was asked for (a session's hop or standby) and when: while asked for within the session TTL,
   * a spare that reached its age limit or died with its connection is opened again (sweeper), between sessions
   */
  private readonly wantedSpares = new Map<string, { peer: PeerId, at: number }>()
  private readonly warmed = new WeakMap<PipelineStage, Promise<void>>()
  /** Links (by link key) that failed under a direct request's acknowledgement: the next request on them fails at once */
  private readonly brokenLinks = new Map<string, Error>()
  /** Peer ids of route entries, by their bytes in hex (bounded) */
  private readonly peerIds = new Map<string, PeerId>()
  /** Session links whose stream is being opened, by link key */
  private readonly openingLinks = new Map<string, Promise<SessionLink>>()
  private readonly mirrorStandbys: boolean
  /** Mirror links (by link key) whose standby fell out of step (a refused or failed mirror): no more mirrors there, by when */
  private readonly deadMirrors = new Map<string, number>()

  constructor (components: PipelineComponents, init: PipelineInit = {}) {
    super()
    this.components = components
    this.log = components.logger.forComponent('neuroshard:pipeline')
    this.own = [...(init.stages ?? [])]
    if (typeof init.router === 'object') this.router = init.router
    else this.routerName = init.router ?? 'swarmRouter'
    this.tokenizer = init.tokenizer ?? byteTokenizer()
    this.protocol = init.protocol ?? PIPELINE_PROTOCOL
    this.maxMessageSize = init.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    this.timeout = init.timeout ?? DEFAULT_MESSAGE_TIMEOUT_MS
    this.hopTimeout = init.hopTimeout ?? DEFAULT_HOP_TIMEOUT_MS
    this.maxBatch = init.maxBatch ?? DEFAULT_MAX_BATCH
    this.maxMicroBatches = init.maxMicroBatchesPerStep ?? DEFAULT_MAX_MICRO_BATCHES_PER_STEP
    this.maxInboundStreams = init.maxInboundStreams ?? DEFAULT_MAX_INBOUND_STREAMS
    this.maxOutboundStreams = init.maxOutboundStreams ?? DEFAULT_MAX_OUTBOUND_STREAMS
    this.sweepIntervalMs = init.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS
    this.compress = init.compress ?? false
    this.deflate = init.deflate ?? true
    this.allowTraining = init.allowTraining ?? (() => true)
    this.maxSubStages = init.maxSubStages ?? DEFAULT_MAX_SUB_STAGES
    this.serveGenerate = init.serveGenerate ?? true
    this.sessionTtlMs = init.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS
    this.maxSessionLinks = init.maxSessions ?? DEFAULT_MAX_SESSIONS
    this.maxRemoteGenerations = init.maxRemoteGenerations ?? DEFAULT_MAX_REMOTE_GENERATIONS
    this.subStageThreads = init.subStageThreads
    this.tiedReplica = init.tiedReplica ?? true
    this.tiedRecompute = init.tiedRecompute ?? true
    this.tiedOwner = init.tiedOwner ?? false
    this.directTokens = init.directTokens ?? true
    this.quietInfer = init.quietInfer ?? true
    this.selfBytes = peerBytes(components.peerId)
    this.warmStandbys = init.warmStandbys ?? true
    this.maxSpareLinks = init.maxSpareLinks ?? DEFAULT_MAX_SPARE_LINKS
    this.mirrorStandbys = init.mirrorStandbys ?? true
    this.sessions = new SessionTable({
      maxSessions: init.maxSessions ?? DEFAULT_MAX_SESSIONS,
      maxKvBytes: init.maxKvBytes ?? DEFAULT_MAX_KV_BYTES,
      ttlMs: init.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS
    })
  }

  readonly [Symbol.toStringTag] = '@neuroshard/pipeline'

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const maxRoute = MAX_ROUTE_HOPS
    this.unhandle = await handleRequests(this.components.registrar, this.protocol, async (req, ctx) => await this.serve(req, ctx.connection, ctx.signal), {
      requestCodec: { decode: (bytes: Uint8Array) => Request.decode(bytes, { limits: { route: maxRoute, standbys: maxRoute, draft: MAX_DRAFT_TOKENS, draft$: { ids: MAX_DRAFT_SUPPORT, probs: MAX_DRAFT_SUPPORT } } }) },
      responseCodec: Response,
      maxMessageSize: this.maxMessageSize,
      timeout: this.timeout,
      maxInboundStreams: this.maxInboundStreams,
      maxOutboundStreams: this.maxOutboundStreams,
      log: this.log.newScope('server')
    })
    await this.components.registrar.handle(PIPELINE_SESSION_PROTOCOL, (stream, connection) => { void this.serveSessionStream(stream, connection) }, {
      maxInboundStreams: this.maxSessionLinks,
      maxOutboundStreams: this.maxSessionLinks
    })
    this.sessionHandled = true
    if (this.directTokens) {
      await this.components.registrar.handle(PIPELINE_TOKENS_PROTOCOL, (stream, connection) => { void this.serveTokens(stream, connection) }, {
        maxInboundStreams: this.maxSessionLinks,
        maxOutboundStreams: this.maxSessionLinks
      })
      this.tokensHandled = true
    }
    // warm() logs its own failure (e.g. a stage closed under it): never an unhandled rejection
    if (this.warmStandbys) for (const stage of this.own) void this.warm(stage).catch(() => {})
    if (this.serveGenerate) {
      await this.components.registrar.handle(PIPELINE_GENERATE_PROTOCOL, (stream, connection) => { void this.serveRemoteGenerate(stream, connection) }, {
        maxInboundStreams: this.maxRemoteGenerations,
        maxOutboundStreams: this.maxRemoteGenerations
      })
      this.generateHandled = true
    }
    this.sweeper = setInterval(() => {
      this.sessions.sweep().catch(() => {})
      const now = Date.now()
      for (const [key, link] of [...this.links]) if (now - link.lastUsed >= this.sessionTtlMs) this.dropLink(key, true)
      // the server ends an idle session stream after its TTL: retire spares well before
      for (const [key, spare] of [...this.spares]) if (now - spare.opened >= this.sessionTtlMs / 2) this.dropSpare(key)
      // and keep one open to each peer a session asked a spare for within the TTL (a standby between sessions; a
      // peer back on a new connection): a failover to it then negotiates no stream. Never dials (openSpare)
      for (const [key, w] of [...this.wantedSpares]) {
        if (now - w.at >= this.sessionTtlMs) this.wantedSpares.delete(key)
        else if (!this.spares.has(key)) void this.openSpare(w.peer, false).catch(err => { this.log('spare link to %p failed: %e', w.peer, err) })
      }
      for (const [key, at] of [...this.deadMirrors]) if (now - at >= this.sessionTtlMs) this.deadMirrors.delete(key)
    }, this.sweepIntervalMs)
    this.sweeper.unref?.()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.sweeper)
    await this.unhandle?.()
    this.unhandle = undefined
    if (this.sessionHandled) {
      await this.components.registrar.unhandle(PIPELINE_SESSION_PROTOCOL)
      this.sessionHandled = false
    }
    for (const key of [...this.links.keys()]) this.dropLink(key)
    for (const key of [...this.spares.keys()]) this.dropSpare(key)
    this.wantedSpares.clear()
    if (this.tokensHandled) {
      await this.components.registrar.unhandle(PIPELINE_TOKENS_PROTOCOL)
      this.tokensHandled = false
    }
    for (const w of this.watchers.values()) if (w.stream.status === 'open') w.stream.abort(new AbortError('the node stopped'))
    this.watchers.clear()
    if (this.generateHandled) {
      await this.components.registrar.unhandle(PIPELINE_GENERATE_PROTOCOL)
      this.generateHandled = false
    }
    await this.sessions.closeAll()
    this.train.clear()
    this.replicas.clear()
    const shadows = [...this.shadowHeads.values()]
    this.shadowHeads.clear()
    this.shadowMatrix.clear()
    await Promise.all(shadows.map(async s => { await (await s.catch(() => undefined))?.close() }))
    this.seeds.clear()
    this.preparedTied.clear()
    this.drafts.clear()
    const derived = [...this.derived.values()]
    this.derived.clear()
    await Promise.all(derived.map(async d => { await (await d.stage.catch(() => undefined))?.close() }))
  }

  stages (): readonly PipelineStage[] {
    return this.own
  }

  addStage (stage: PipelineStage): void {
    if (this.own.some(s => s.start === stage.start && s.end === stage.end)) {
      throw new InvalidParametersError(`a stage for span [${stage.start}, ${stage.end}) is already served`)
    }
    this.own.push(stage)
    if (this.started && this.warmStandbys) void this.warm(stage).catch(() => {})
  }

  removeStage (stage: PipelineStage): void {
    const i = this.own.indexOf(stage)
    if (i >= 0) this.own.splice(i, 1)
    this.dropTrainState(stage)
    this.replicas.delete(stage)
    this.seeds.delete(stage)
    this.preparedTied.delete(stage)
    this.owners.delete(stage)
    this.lostTied.delete(stage)
  }

  setRouter (router: PipelineRouter): void {
    this.router = router
  }

  trafficStats (): { sent: number, received: number, requests: number, mirrored: number } {
    return { ...this.traffic }
  }

  kvTokensLeft (start: number, end: number): number | undefined {
    // a hop over [start, end) may use several of this node's stages: count the cache of every one it overlaps
    let perToken = 0
    for (const s of this.own) if (s.start < end && start < s.end) perToken += kvBytesPerToken(s)
    if (perToken === 0) return undefined
    return this.sessions.tokensLeft(perToken)
  }

  sessionStats (): { sessions: number, bytes: number, headroom: number, links: number, spares: number, watchers: number } {
    return { sessions: this.sessions.size, bytes: this.sessions.bytes, headroom: this.sessions.headroom, links: this.links.size, spares: this.spares.size, watchers: this.watchers.size }
  }

  // ---------------------------------------------------------------- server

  /**
   * `relay`: the request came on a session stream, which takes late answers (spec §2, `quiet`): a quiet INFER that this
   * node forwards answers nothing when the chunk goes through (`undefined`), and the next hop's error later, through `relay`
   */
  private async serve (req: Request, connection: Connection, signal: AbortSignal, relay?: (res: Response) => void): Promise<Response | undefined> {
    try {
      if (TRAINING_KINDS.has(req.kind) && !this.allowTraining(connection.remotePeer)) {
        throw new PipelineRequestError(`peer ${connection.remotePeer.toString()} may not send training requests here`)
      }
      const t0 = performance.now()
      const stage = await this.checkRoute(req)
      switch (req.kind) {
        case Kind.INFER: return await this.serveInfer(req, stage, signal, relay, performance.now() - t0)
        case Kind.TRAIN_FORWARD: return await this.serveTrainForward(req, stage, signal)
        case Kind.TARGETS: return await this.serveTargets(req, stage)
        case Kind.GET_TIED: return await this.serveGetTied(req, stage)
        case Kind.GRAD_NORM: return await this.serveGradNorm(req, stage)
        case Kind.STEP: return await this.serveStep(req, stage)
        case Kind.TAKE_TIED: return await this.serveTakeTied(req, stage)
        case Kind.SET_TIED: return await this.serveSetTied(req, stage)
        case Kind.HEAD_INPUT: return await this.serveHeadInput(req, stage, signal)
        case Kind.CLOSE:
          await this.sessions.close(this.sessionKey(req.session, stage))
          this.dropSessionLinks(req.session)
          this.drafts.delete(hex(req.session))
          this.dropWatchers(req.session, req.route[0].peer)
          return emptyResponse({})
        case Kind.TRUNCATE: return await this.serveTruncate(req, stage)
        case Kind.DRAFT: return this.serveDraft(req, stage)
        case Kind.WARM: return this.serveWarm(req, stage, connection)
        case Kind.TOKENS: throw new PipelineRequestError(`TOKENS requests open a tokens stream (${PIPELINE_TOKENS_PROTOCOL})`)
        default:
          throw new PipelineRequestError(`unknown request kind ${String(req.kind)}`)
      }
    } catch (err) {
      this.log('refused %s from %p: %e', req.kind, connection.remotePeer, err)
      return errorResponse(err, req.hop)
    }
  }

  /** The route must tile [0, L + 2), name this node at `hop` (≥ 1) with a span it serves */
  private async checkRoute (req: Request): Promise<PipelineStage> {
    if (req.session.length !== SESSION_ID_BYTES) throw new PipelineRequestError(`session id of ${req.session.length} bytes, expected ${SESSION_ID_BYTES}`)
    const route = req.route
    if (route.length < 2) throw new InvalidRouteError(`a route has at least a Driver and a Validator, got ${route.length} hops`)
    if (req.hop < 1 || req.hop >= route.length) throw new InvalidRouteError(`hop ${req.hop} is not a server hop of a ${route.length}-hop route`)
    const me = route[req.hop]
    const parent = this.own.find(s => s.start === me.start && s.end === me.end) ?? this.own.find(s => s.start <= me.start && me.end <= s.end)
    if (parent == null) throw new InvalidRouteError(`this node serves no span containing [${me.start}, ${me.end})`)
    const total = parent.config.nLayers + 2
    let at = 0
    for (const h of route) {
      if (h.start !== at || h.end <= h.start) throw new InvalidRouteError(`the route does not tile the model: hop [${h.start}, ${h.end}) after slot ${at}`)
      at = h.end
    }
    if (at !== total) throw new InvalidRouteError(`the route ends at slot ${at}, the model at ${total}`)
    if (!equalBytes(me.peer, this.selfBytes)) throw new InvalidRouteError(`hop ${req.hop} names another peer`)
    const standbys = req.standbys?.length ?? 0 // (absent in requests built by hand, e.g. the spec's vector generators)
    if (standbys !== 0 && standbys !== route.length) throw new InvalidRouteError(`${standbys} standbys for a ${route.length}-hop route (0 or one per hop)`)
    if (parent.start === me.start && parent.end === me.end) return parent
    if (req.kind !== Kind.INFER && req.kind !== Kind.CLOSE && req.kind !== Kind.TRUNCATE && req.kind !== Kind.DRAFT && req.kind !== Kind.WARM && req.kind !== Kind.TOKENS) {
      throw new PipelineRequestError(`training runs whole spans; this node serves [${parent.start}, ${parent.end}), not [${me.start}, ${me.end})`)
    }
    return await this.subStage(parent, me.start, me.end)
  }

  /**
   * A stage for part of a span this node serves (inference only): executors over the sub-range, built once
   * from the parent's current weights and rebuilt when they changed since (`inferenceWeights`' version, else the
   * parent's step count). At most `maxSubStages` are kept.
   */
  private async subStage (parent: PipelineStage, start: number, end: number): Promise<PipelineStage> {
    const key = spanKey(start, end)
    const weights = parent.inferenceWeights?.()
    const step = weights?.version ?? parent.executors[0].stepCount
    const cached = this.derived.get(key)
    if (cached != null && cached.parent === parent && cached.step === step) return await cached.stage
    if (cached == null && this.derived.size >= this.maxSubStages) {
      throw new KvCacheFullError(`already running ${this.derived.size} sub-span stages (the cap); route whole spans here`)
    }
    const stage = (async () => {
      const parameters = new Map<string, Float32Array>()
      if (weights != null) for (const [k, v] of await weights.parameters()) parameters.set(k, v)
      else for (const e of parent.executors) for (const [k, v] of await e.getParameters()) parameters.set(k, v)
      return await createPipelineStage({ config: parent.config, start, end, parameters, training: false, intraOpNumThreads: this.subStageThreads, quantization: parent.quantization, ...(parent.quantization !== 'fp32' ? { quantBlockSize: parent.quantBlockSize } : {}) })
    })()
    this.derived.set(key, { parent, step, stage })
    stage.catch(() => { if (this.derived.get(key)?.stage === stage) this.derived.delete(key) })
    if (cached != null) void cached.stage.then(async s => { await s.close() }, () => {})
    return await stage
  }

  private limits (stage: PipelineStage, compress: boolean, what: string, deflate = false): Parameters<typeof decodeActivation>[1] {
    return { dModel: stage.config.dModel, maxBatch: this.maxBatch, maxSeq: stage.config.maxSeqLen, maxBytes: this.maxMessageSize, compress, what, deflate }
  }

  private sessionKey (session: Uint8Array, stage: PipelineStage): string {
    return `${hex(session)}/${spanKey(stage.start, stage.end)}`
  }

  private async serveInfer (req: Request, stage: PipelineStage, signal: AbortSignal, relay?: (res: Response) => void, stageMs = 0): Promise<Response | undefined> {
    const hidden = decodeActivation(req.hidden, this.limits(stage, req.compress, 'hidden', req.deflate))
    const [batch, seq] = hidden.dims
    if (batch !== 1) throw new InvalidActivationError(`inference sessions run batch 1, got ${batch}`)
    if (req.mirror) {
      // a standby's copy (spec §4.2): keep the cache in step, nothing else
      if (req.direct || req.draftCount > 0 || req.standbys.length > 0) throw new PipelineRequestError('a mirror INFER has no direct, draft_count or standbys')
      await this.runStageInference(stage, req.session, req.position, hidden, req.rollback)
      return emptyResponse({ position: req.position + seq })
    }
    if (req.draftCount > 0 && !(req.draftCount < seq && req.draftCount <= MAX_DRAFT_TOKENS)) {
      throw new InvalidDraftError(`draft_count ${req.draftCount} with a chunk of ${seq} tokens (at most ${MAX_DRAFT_TOKENS}, and at least one token before the draft)`)
    }
    // the Validator takes its draft first: an INFER whose draft never came changes nothing here
    const draft = stage.head != null && req.draftCount > 0 ? await this.takeDraft(req.session, req.position + seq - req.draftCount, req.draftCount, signal) : undefined
    const t0 = performance.now()
    const { hidden: out, logits } = await this.runStageOutputs(stage, req.session, req.position, hidden, req.rollback)
    const slow = (): void => {
      const computeMs = performance.now() - t0
      if (stageMs + computeMs > SLOW_HOP_MS) this.safeDispatchEvent('pipeline:slow-hop', { detail: { stageMs, computeMs, sub: !this.own.includes(stage), position: req.position, tokens: seq } })
    }
    if (stage.head != null) {
      const res = await (draft != null ? this.verify(req, stage, out, seq, draft) : this.sample(req, stage, out, seq, logits))
      slow()
      return this.deliver(req, res)
    }
    slow()
    return await this.forwardHop(req, out, signal, relay)
  }

  /** Run the blocks of a stage for an inference chunk (through the session's KV cache; `rollback`: spec §4.5) */
  private async runStageInference (stage: PipelineStage, session: Uint8Array, position: number, hidden: TensorData, rollback = false): Promise<TensorData> {
    return (await this.runStageOutputs(stage, session, position, hidden, rollback)).hidden
  }

  /**
   * `runStageInference`, and the last position's logits when the stage's blocks session runs the head too
   * (`stage.fused.head`). `input`: hidden states, or a Driver's token ids [1, n] (int64) for a stage whose blocks
   * session looks the embedding up itself (`stage.fused.embed`; otherwise ids go through the embed executor first).
   */
  private async runStageOutputs (stage: PipelineStage, session: Uint8Array, position: number, input: TensorData, rollback = false): Promise<{ hidden: TensorData, logits?: Float32Array }> {
    const ids = input.type === 'int64'
    // the lookup of a quantized stage reads the quantized table (the stage's inference model), a float32 one its forward graph
    if (ids && stage.fused?.embed !== true) input = (await stage.embed!.infer({ input_ids: input })).hidden
    if (stage.blocks == null) return { hidden: input }
    if (!ids && stage.fused?.embed === true) throw new InvalidActivationError('this stage\'s blocks take token ids (it holds the embedding)')
    const [batch, seq] = input.dims
    const feed: Record<string, TensorData> = ids && stage.fused?.embed === true ? { input_ids: input } : { hidden_in: input }
    const out = await this.sessions.run(this.sessionKey(session, stage), stage, position, batch, seq, async kv => await kv.run(feed), { rollback })
    return { hidden: out.hidden_out, ...(out.logits != null ? { logits: out.logits.data as Float32Array } : {}) }
  }

  /** TRUNCATE: roll this hop's cache of the session back to `position` tokens (a hop without blocks holds none) */
  private async serveTruncate (req: Request, stage: PipelineStage): Promise<Response> {
    if (stage.blocks == null) return emptyResponse({ position: req.position })
    const position = await this.sessions.truncate(this.sessionKey(req.session, stage), req.position)
    return emptyResponse({ position })
  }

  /** DRAFT (Validator): keep the draft for the INFER that verifies it; one per session, the newest wins */
  private serveDraft (req: Request, stage: PipelineStage): Response {
    if (stage.head == null) throw new InvalidRouteError('drafts go to the Validator (the hop holding the head)')
    const c = stage.config
    if (req.draft.length < 1 || req.draft.length > MAX_DRAFT_TOKENS) throw new InvalidDraftError(`a draft of ${req.draft.length} tokens (1 to ${MAX_DRAFT_TOKENS})`)
    if (req.position < 1 || req.position + req.draft.length > c.maxSeqLen) throw new InvalidDraftError(`a draft at position ${req.position} of ${req.draft.length} tokens does not fit in [1, ${c.maxSeqLen}]`)
    let support = 0
    for (const d of req.draft) {
      support += d.ids.length
      try {
        checkDraftToken(d, c.vocabSize)
      } catch (err: any) {
        throw new InvalidDraftError(String(err.message))
      }
    }
    if (support > MAX_DRAFT_SUPPORT * 4) throw new InvalidDraftError(`draft q supports of ${support} ids in all (at most ${MAX_DRAFT_SUPPORT * 4})`)
    const key = hex(req.session)
    if (!this.drafts.has(key) && this.drafts.size >= this.maxSessionLinks) {
      // bounded: the oldest draft goes first
      let oldest: string | undefined
      let at = Infinity
      for (const [k, v] of this.drafts) if (v.at < at) { at = v.at; oldest = k }
      if (oldest != null) this.drafts.delete(oldest)
    }
    this.drafts.set(key, { position: req.position, draft: req.draft, at: Date.now() })
    this.draftWaiters.get(key)?.()
    return emptyResponse({ position: req.position })
  }

  /** The draft for (session, position), waiting up to the message timeout for its DRAFT (it travels beside the INFER) */
  private async takeDraft (session: Uint8Array, position: number, count: number, signal: AbortSignal): Promise<DraftToken[]> {
    const key = hex(session)
    const deadline = Date.now() + this.timeout
    for (;;) {
      const d = this.drafts.get(key)
      if (d != null && d.position === position && d.draft.length === count) {
        this.drafts.delete(key)
        return d.draft
      }
      const left = deadline - Date.now()
      if (left <= 0 || signal.aborted || this.draftWaiters.has(key)) {
        throw new InvalidDraftError(`no draft of ${count} tokens at position ${position} for this session${d != null ? ` (held: ${d.draft.length} at ${d.position})` : ''}`)
      }
      await new Promise<void>(resolve => {
        const done = (): void => { clearTimeout(timer); signal.removeEventListener('abort', done); this.draftWaiters.delete(key); resolve() }
        const timer = setTimeout(done, left)
        signal.addEventListener('abort', done)
        this.draftWaiters.set(key, done)
      })
    }
  }

  /** The Validator's half of a speculative round: logits of the last draft_count + 1 positions, the acceptance rule */
  private async verify (req: Request, stage: PipelineStage, hidden: TensorData, seq: number, draft: DraftToken[]): Promise<Response> {
    const n = req.draftCount
    const first = req.position + seq - n // sequence position of the first draft token
    const d = stage.config.dModel
    const V = stage.config.vocabSize
    const rowsIn = float32((hidden.data as Float32Array).slice((seq - n - 1) * d, seq * d), [1, n + 1, d])
    stage.headRunner ??= await stage.head!.openInference()
    const { logits } = await stage.headRunner.run({ hidden: rowsIn })
    const all = logits.data as Float32Array
    const rows = Array.from({ length: n + 1 }, (_, i) => all.subarray(i * V, (i + 1) * V))
    const s = req.sampling ?? { temperature: 0, topK: 0, topP: 0, seed: 0, returnLogits: false }
    const sampling = { temperature: s.temperature, topK: s.topK, topP: s.topP === 0 ? 1 : s.topP, seed: s.seed }
    try {
      checkSampling(sampling)
    } catch (err: any) {
      throw new PipelineRequestError(`sampling: ${String(err.message)}`)
    }
    const { tokens } = verifyDraft(rows, draft, sampling, first)
    const last = rows[tokens.length - 1]
    return emptyResponse({ token: tokens[tokens.length - 1], tokens, position: req.position + seq, logits: s.returnLogits ? encodeNamed('logits', last, [V]) : new Uint8Array(0) })
  }

  /**
   * A token of a generation whose route is this node's stage alone (it holds every slot: embedding, blocks, head):
   * the chunk through the stage's KV session, then the head and the sampler a Validator would run
   */
  private async localToken (stage: PipelineStage, session: Uint8Array, position: number, chunk: number[], sampling: NonNullable<Request['sampling']>): Promise<Response> {
    if (stage.head == null) throw new InvalidRouteError(`a one-stage route needs the head; this stage ends at slot ${stage.end}`)
    const { hidden, logits } = await this.runStageOutputs(stage, session, position, int64(BigInt64Array.from(chunk, BigInt), [1, chunk.length]), true)
    return await this.sample(emptyRequest({ position, sampling }), stage, hidden, chunk.length, logits)
  }

  private async sample (req: Request, stage: PipelineStage, hidden: TensorData, seq: number, fusedLogits?: Float32Array): Promise<Response> {
    const d = stage.config.dModel
    let row = fusedLogits
    if (row == null) {
      const last = float32((hidden.data as Float32Array).slice((seq - 1) * d, seq * d), [1, 1, d])
      stage.headRunner ??= await stage.head!.openInference()
      row = (await stage.headRunner.run({ hidden: last })).logits.data as Float32Array
    }
    const s = req.sampling ?? { temperature: 0, topK: 0, topP: 0, seed: 0, returnLogits: false }
    const sampling = { temperature: s.temperature, topK: s.topK, topP: s.topP === 0 ? 1 : s.topP, seed: s.seed }
    try {
      checkSampling(sampling)
    } catch (err: any) {
      throw new PipelineRequestError(`sampling: ${String(err.message)}`)
    }
    const position = req.position + seq
    const token = sampleToken(row, sampling, position)
    return emptyResponse({ token, position, logits: s.returnLogits ? encodeNamed('logits', row, [row.length]) : new Uint8Array(0) })
  }

  /**
   * Send `req` on to hop + 1 with `hidden`; a failure to reach it (or its silence) is HopFailedError for that hop.
   * A `quiet` INFER with a `relay` (it came on a session stream) does not wait: it resolves with `undefined` once
   * written, and an answer that comes later (an error) goes to `relay`.
   */
  private async forwardHop (req: Request, hidden: TensorData, signal?: AbortSignal, relay?: (res: Response) => void): Promise<Response | undefined> {
    const next = req.hop + 1
    const out: Request = { ...req, hop: next, hidden: encodeActivation(hidden, req.compress, req.deflate) }
    if (this.mirrorStandbys && req.standbys.length > next && req.standbys[next].length > 0) this.mirrorTo(out, req.standbys[next], true)
    if (!req.quiet || relay == null) return await this.send(req.route, next, { ...out, quiet: false }, signal)
    void this.sendQuiet(req.route, next, out).then(res => { if (res != null) relay(res) }, (err: any) => {
      relay(quietError(new HopFailedError(`hop ${next} failed: ${String(err?.name)}: ${String(err?.message)}`, next), req))
    })
    return undefined
  }

  /**
   * Send a mirror of `req` (an INFER for hop `req.hop`) to that hop's standby `standby` (spec §4.2), in the background,
   * on the session stream a switch to the standby will use. Not for a hop without blocks (no cache to keep), a standby
   * that fell out of step, or (`connected`) a peer this node has no connection to (a request must not make it dial).
   */
  private mirrorTo (req: Request, standby: Uint8Array<ArrayBuffer>, connected: boolean): void {
    const route = req.route
    const hop = req.hop
    const heads = route[route.length - 1].end - 1 // the head slot, L + 1
    if (Math.max(route[hop].start, 1) >= Math.min(route[hop].end, heads)) return
    let peer: PeerId
    try {
      peer = peerFromBytes(standby)
    } catch {
      return
    }
    if (peer.equals(this.components.peerId) || peer.equals(peerFromBytes(route[hop].peer))) return
    const key = this.linkKey(req.session, hop, standby)
    if (this.deadMirrors.has(key)) return
    if (!this.links.has(key)) {
      if (this.links.size >= this.maxSessionLinks) return
      const cm = this.components.connectionManager as StreamOpener & { getConnections?(peer: PeerId): unknown[] }
      if (connected && cm.getConnections != null && cm.getConnections(peer).length === 0) return
    }
    const r = route.map((h, j) => j === hop ? { peer: standby, start: h.start, end: h.end } : h)
    const m: Request = { ...req, route: r, mirror: true, direct: false, quiet: false, standbys: [], draftCount: 0, draft: [] }
    this.traffic.mirrored += m.hidden.length
    const dead = (why: string): void => {
      this.log('mirror to the standby %p of hop %d out of step: %s', peer, hop, why)
      if (this.deadMirrors.size >= this.maxSessionLinks * 4) this.deadMirrors.delete(this.deadMirrors.keys().next().value as string)
      this.deadMirrors.set(key, Date.now())
    }
    this.sendOnLink(r, hop, peer, m).then(res => { if (res != null && res.error !== '') dead(`${res.error}: ${res.message}`) }, (err: any) => { dead(String(err?.name)) })
  }

  /** Whether the standby `standby` of hop `hop` has been sent every mirror of this session so far (none refused or failed) */
  private mirrorInStep (session: Uint8Array, hop: number, standby: Uint8Array): boolean {
    return !this.deadMirrors.has(this.linkKey(session, hop, standby))
  }

  private async send (route: Request['route'], hop: number, req: Request, signal?: AbortSignal): Promise<Response> {
    return (await this.sendMaybeQuiet(route, hop, req, false, signal))!
  }

  /**
   * A `quiet` INFER (spec §2, 1.5.0) on the session link to hop `hop`: resolves with `undefined` once the link has moved on
   * to the next request without an answer (the chunk went through), or with the answer that came (an error, marked `quiet`
   * with the request's position, or from an older node an unmarked answer). Without a session link (over the cap) the
   * request goes unquiet on a stream of its own.
   */
  private async sendQuiet (route: Request['route'], hop: number, req: Request, signal?: AbortSignal): Promise<Response | undefined> {
    return await this.sendMaybeQuiet(route, hop, req, true, signal)
  }

  /** A peer id from the bytes of a route entry (parsed once per distinct id: every INFER names the same route) */
  private peerOf (bytes: Uint8Array): PeerId {
    const key = hex(bytes)
    let peer = this.peerIds.get(key)
    if (peer == null) {
      peer = peerFromBytes(bytes)
      if (this.peerIds.size >= 1024) this.peerIds.delete(this.peerIds.keys().next().value as string)
      this.peerIds.set(key, peer)
    }
    return peer
  }

  private async sendMaybeQuiet (route: Request['route'], hop: number, req: Request, quiet: boolean, signal?: AbortSignal): Promise<Response | undefined> {
    const peer = this.peerOf(route[hop].peer)
    const t0 = performance.now()
    this.traffic.requests++
    this.traffic.sent += req.hidden.length + req.targets.length + req.tied.length + req.tiedIds.length + req.tiedM.length + req.tiedV.length
    try {
      // DRAFT gets a link of its own: it must not wait behind an INFER to the same hop (a 2-hop route)
      const lane = req.kind === Kind.DRAFT ? '/draft' : ''
      const onLink = (req.kind === Kind.INFER || req.kind === Kind.TRUNCATE || req.kind === Kind.DRAFT) && (this.links.size < this.maxSessionLinks || this.links.has(this.linkKey(req.session, hop, route[hop].peer, lane)))
      const res = onLink
        ? await this.sendOnLink(route, hop, peer, quiet ? { ...req, quiet: true } : { ...req, quiet: false }, signal, lane)
        : await sendRequest(this.components.connectionManager, peer, this.protocol, { ...req, quiet: false }, {
          requestCodec: Request,
          responseCodec: Response,
          maxMessageSize: this.maxMessageSize,
          timeout: this.hopTimeout,
          signal
        })
      if (res == null) return undefined
      this.traffic.received += res.grad.length + res.logits.length + res.tied.length + res.headNorm.length + res.headInputs.reduce((a, b) => a + b.length, 0)
      try {
        this.routerOrUndefined()?.reportSuccess?.(peer, performance.now() - t0)
      } catch {}
      return res
    } catch (err: any) {
      if (signal?.aborted === true) throw err
      this.log('hop %d (%p) failed: %e', hop, peer, err)
      const res = errorResponse(new HopFailedError(`hop ${hop} (${peer.toString()}) failed: ${String(err?.name)}: ${String(err?.message)}`, hop), hop)
      return quiet ? { ...res, quiet: true, position: req.position } : res
    }
  }

  private linkKey (session: Uint8Array, hop: number, peer: Uint8Array, lane = ''): string {
    return `${hex(session)}/${hop}/${hex(peer)}${lane}`
  }

  /**
   * INFER on the session's long-lived stream to that hop (opened on first use, or a spare stream to that peer
   * adopted). Requests are written in order and responses read in order, each independently: a request may be
   * written before the previous response arrived (the Driver does so when the token came on its tokens stream).
   */
  private async sendOnLink (route: Request['route'], hop: number, peer: PeerId, req: Request, signal?: AbortSignal, lane = ''): Promise<Response | undefined> {
    const key = this.linkKey(req.session, hop, route[hop].peer, lane)
    const broken = this.brokenLinks.get(key)
    if (broken != null) {
      // this link failed under a request nobody awaited (a quiet INFER, or the acknowledgement of a direct token): the
      // peer is most likely gone, so fail this request now instead of dialing it again
      this.brokenLinks.delete(key)
      throw broken
    }
    let link = this.links.get(key)
    if (link == null) {
      // one stream per link: a request sent while the link's stream is still being opened (a mirror one token after
      // the first, the switch right after a mirror) waits for that stream instead of opening a second one, which the
      // server would run concurrently with the first, out of order
      let opening = this.openingLinks.get(key)
      if (opening == null) {
        opening = (async () => {
          const spare = this.takeSpare(hex(route[hop].peer))
          let stream = spare?.stream
          let messages = spare?.messages
          const t0 = performance.now()
          if (stream == null || messages == null) {
            const open = AbortSignal.any([AbortSignal.timeout(this.timeout), ...(signal != null ? [signal] : [])])
            stream = await this.components.connectionManager.openStream(peer, PIPELINE_SESSION_PROTOCOL, { signal: open })
            messages = messageStream(stream, { maxMessageSize: this.maxMessageSize, timeout: this.hopTimeout })
            // a session stream negotiated on a request's way (no spare): a hop's own link to its next hop included
            if (req.kind === Kind.INFER) this.safeDispatchEvent('pipeline:link-opened', { detail: { hop, ms: performance.now() - t0, position: req.position } })
          }
          // how long opening it took (0: a spare adopted), for the recovery timing
          const l: SessionLink = new SessionLink(stream, messages, {
            openMs: spare != null ? 0 : performance.now() - t0,
            timeout: this.hopTimeout,
            log: this.log,
            onFailure: (err, unanswered) => {
              // the framing of a failed link cannot be trusted again; a failure nobody awaited fails the next request at once
              if (this.links.get(key) !== l) return
              this.links.delete(key)
              if (unanswered) this.brokenLinks.set(key, err)
            }
          })
          this.links.set(key, l)
          // keep a spare stream to this peer for its next session (a replay after a failover, the next generation):
          // that session then writes its first request at once instead of negotiating a stream first (one round trip)
          if (this.warmStandbys) void this.openSpare(peer).catch(err => { this.log('spare link to %p failed: %e', peer, err) })
          return l
        })()
        const o = opening
        this.openingLinks.set(key, o)
        void o.finally(() => { if (this.openingLinks.get(key) === o) this.openingLinks.delete(key) }).catch(() => {})
      }
      link = await opening
    }
    return await link.request(req, Request, { quiet: req.quiet, signal })
  }

  private dropLink (key: string, graceful = false): void {
    const link = this.links.get(key)
    if (link == null) return
    this.links.delete(key)
    link.close()
    if (graceful) void link.messages.close().catch(() => { link.stream.abort(new Error('session link closed')) })
    else if (link.stream.status === 'open') link.stream.abort(new Error('session link dropped'))
  }

  /** Close the session's link to hop `hop` (`peer`'s bytes), if any */
  private dropSessionLink (session: Uint8Array, hop: number, peer: Uint8Array): void {
    this.dropLink(this.linkKey(session, hop, peer), true)
  }

  private dropSessionLinks (session: Uint8Array): void {
    const prefix = `${hex(session)}/`
    for (const key of [...this.links.keys()]) if (key.startsWith(prefix)) this.dropLink(key, true)
    for (const key of [...this.brokenLinks.keys()]) if (key.startsWith(prefix)) this.brokenLinks.delete(key)
    for (const key of [...this.deadMirrors.keys()]) if (key.startsWith(prefix)) this.deadMirrors.delete(key)
  }

  /** A spare session stream to `peer` (hex) that is still open both ways, removed from the spares */
  private takeSpare (peer: string): { stream: Stream, messages: FramedStream } | undefined {
    const spare = this.spares.get(peer)
    if (spare == null) return undefined
    this.spares.delete(peer)
    if (this.spareUsable(spare)) return spare
    if (spare.stream.status === 'open') spare.stream.abort(new AbortError('stale spare link'))
    return undefined
  }

  /** Open both ways and younger than its age limit */
  private spareUsable (spare: { stream: Stream, opened: number }): boolean {
    const s = spare.stream
    return s.status === 'open' && s.remoteWriteStatus === 'writable' && s.remoteReadStatus === 'readable' && Date.now() - spare.opened < this.sessionTtlMs / 2
  }

  private dropSpare (key: string): void {
    const spare = this.spares.get(key)
    if (spare == null) return
    this.spares.delete(key)
    void spare.messages.close().catch(() => { spare.stream.abort(new Error('spare link closed')) })
  }

  /**
   * Open an idle session stream to `peer` ahead of need (a standby, or a standby's next hop), so a switch to it
   * does not wait for a stream to be negotiated. One per peer, at most `maxSpareLinks`, only over a connection
   * that is already open (a WARM must not make this node dial peers). A spare that died (its connection closed: the
   * peer restarted) leaves the spares at once, so it does not stand in for a live one. `want`: a session asks for it
   * (the sweeper keeps it open for the session TTL after)
   */
  private async openSpare (peer: PeerId, want = true): Promise<void> {
    const key = hex(peerBytes(peer))
    if (!this.started || peer.equals(this.components.peerId)) return
    if (want) {
      this.wantedSpares.delete(key) // most recent last: the oldest goes first over the bound
      this.wantedSpares.set(key, { peer, at: Date.now() })
      while (this.wantedSpares.size > this.maxSpareLinks) this.wantedSpares.delete(this.wantedSpares.keys().next().value as string)
    }
    const have = this.spares.get(key)
    if (have != null) {
      if (this.spareUsable(have)) return
      this.dropSpare(key)
    }
    if (this.spares.size >= this.maxSpareLinks) return
    const cm = this.components.connectionManager as StreamOpener & { getConnections?(peer: PeerId): unknown[] }
    if (cm.getConnections != null && cm.getConnections(peer).length === 0) return
    const stream = await cm.openStream(peer, PIPELINE_SESSION_PROTOCOL, { signal: AbortSignal.timeout(this.timeout) })
    if (!this.started || this.spares.has(key)) {
      stream.abort(new AbortError('spare link not needed'))
      return
    }
    const spare = { stream, messages: messageStream(stream, { maxMessageSize: this.maxMessageSize, timeout: this.hopTimeout }), opened: Date.now() }
    this.spares.set(key, spare)
    stream.addEventListener('close', () => { if (this.spares.get(key) === spare) this.spares.delete(key) }, { once: true })
  }

  /**
   * Run a stage once so that onnxruntime (allocations, thread pools) and this code are warm before a session
   * needs it: a standby switched in otherwise spends hundreds of ms on its first run (measured, README). Once per stage.
   */
  private async warm (stage: PipelineStage): Promise<void> {
    let done = this.warmed.get(stage)
    if (done == null) {
      done = (async () => {
        const d = stage.config.dModel
        const n = Math.min(32, stage.config.maxSeqLen - 1)
        if (stage.embed != null) await stage.embed.infer({ input_ids: int64(new BigInt64Array(n), [1, n]) })
        for (const e of [stage.blocks, stage.head]) {
          if (e == null) continue
          const kv = await e.openInference()
          try {
            // a prefill and a decode step: the two shapes a replayed session runs
            // (blocks that look the embedding up themselves take token ids)
            const feed = (m: number): Record<string, TensorData> => stage.fused?.embed === true ? { input_ids: int64(new BigInt64Array(m), [1, m]) } : { hidden_in: float32(new Float32Array(m * d), [1, m, d]) }
            await kv.run(e === stage.head ? { hidden: float32(new Float32Array(d), [1, 1, d]) } : feed(n))
            if (e === stage.blocks) await kv.run(feed(1))
          } finally {
            await kv.close()
          }
        }
      })()
      done.catch(err => { this.log('warming span [%d, %d) failed: %e', stage.start, stage.end, err) })
      this.warmed.set(stage, done)
    }
    await done
  }

  /** WARM: this node is the standby for hop `hop`: warm the stage, open a spare session stream to the next hop */
  private serveWarm (req: Request, stage: PipelineStage, connection: Connection): Response {
    if (!peerFromBytes(req.route[0].peer).equals(connection.remotePeer)) throw new PipelineRequestError('WARM comes from the Driver of the route')
    if (this.warmStandbys) {
      void this.warm(stage).catch(() => {})
      const next = req.hop + 1
      if (next < req.route.length) void this.openSpare(peerFromBytes(req.route[next].peer)).catch(err => { this.log('spare link to hop %d failed: %e', next, err) })
    }
    return emptyResponse({})
  }

  /** Validator: answer a `direct` INFER on the Driver's tokens stream when it has one; the route gets `direct` and the position */
  private deliver (req: Request, res: Response): Response {
    if (!req.direct || res.error !== '') return res
    const w = this.watchers.get(`${hex(req.session)}/${hex(req.route[0].peer)}`)
    if (w == null || w.stream.status !== 'open') return res
    // written at once when the stream is idle (it is, between tokens): before the route's acknowledgement
    const write = w.writing === 0 ? w.messages.write(res, Response) : w.chain.then(async () => { await w.messages.write(res, Response) })
    w.writing++
    void write.finally(() => { w.writing-- }).catch(() => {})
    w.chain = write.catch(err => {
      this.log('tokens stream write failed: %e', err)
      if (w.stream.status === 'open') w.stream.abort(err)
    })
    return emptyResponse({ position: res.position, direct: true })
  }

  private dropWatchers (session: Uint8Array, driver: Uint8Array): void {
    const key = `${hex(session)}/${hex(driver)}`
    const w = this.watchers.get(key)
    if (w == null) return
    this.watchers.delete(key)
    void w.chain.then(async () => { await w.messages.close() }).catch(() => { if (w.stream.status === 'open') w.stream.abort(new AbortError('session closed')) })
  }

  /**
   * A Driver's tokens stream: one TOKENS request naming the session and its route (this node the last hop, the
   * remote peer its Driver), acknowledged with an empty response; then this node writes its answer to each
   * `direct` INFER of that session from that Driver here, until the Driver closes the stream or the session TTL.
   */
  private async serveTokens (stream: Stream, connection: Connection): Promise<void> {
    const messages = messageStream(stream, { maxMessageSize: this.maxMessageSize, timeout: this.timeout })
    let key: string | undefined
    let entry: { messages: FramedStream, stream: Stream, chain: Promise<unknown>, writing: number } | undefined
    try {
      const req = await messages.read({ decode: (bytes: Uint8Array) => Request.decode(bytes, { limits: { route: MAX_ROUTE_HOPS, standbys: MAX_ROUTE_HOPS } }) })
      try {
        if (req.kind !== Kind.TOKENS) throw new PipelineRequestError(`a tokens stream starts with TOKENS, not ${req.kind}`)
        const stage = await this.checkRoute(req)
        if (stage.head == null || req.hop !== req.route.length - 1) throw new InvalidRouteError('tokens streams go to the Validator (the last hop)')
        if (!peerFromBytes(req.route[0].peer).equals(connection.remotePeer)) throw new PipelineRequestError('only the Driver of the route may open its tokens stream')
        key = `${hex(req.session)}/${hex(req.route[0].peer)}`
        if (!this.watchers.has(key) && this.watchers.size >= this.maxSessionLinks) throw new KvCacheFullError(`${this.watchers.size} tokens streams open (the cap)`)
      } catch (err) {
        key = undefined
        await messages.write(errorResponse(err, req.hop), Response)
        await messages.close()
        return
      }
      const old = this.watchers.get(key)
      if (old != null && old.stream.status === 'open') old.stream.abort(new AbortError('replaced by a new tokens stream'))
      entry = { messages, stream, chain: Promise.resolve(), writing: 0 }
      this.watchers.set(key, entry)
      await messages.write(emptyResponse({}), Response)
      // nothing more comes from the Driver: this read ends at its EOF (or the TTL, or a reset)
      await messages.readBytes({ timeout: this.sessionTtlMs })
      throw new PipelineRequestError('unexpected message on a tokens stream')
    } catch (err: any) {
      this.log('tokens stream from %p ended: %s', connection.remotePeer, err?.name)
      if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      if (key != null && entry != null && this.watchers.get(key) === entry) this.watchers.delete(key)
    }
  }

  /** An upstream node's session stream: INFER / CLOSE requests in order until it closes (or idles past the TTL) */
  private async serveSessionStream (stream: Stream, connection: Connection): Promise<void> {
    // one deadline for the stream instead of a timer per read and write: it ends after the session TTL without a
    // request (a request refreshes it); a read or a write stuck that long ends with it
    const messages = messageStream(stream, { maxMessageSize: this.maxMessageSize, timeout: Infinity })
    const idle = setTimeout(() => { stream.abort(new TimeoutError(`no request on the session stream for ${this.sessionTtlMs} ms`)) }, this.sessionTtlMs)
    const controller = new AbortController()
    const onClose = (): void => { controller.abort(new AbortError('the session stream closed')) }
    stream.addEventListener('close', onClose)
    // answers in order: this loop's, and late ones of quiet INFERs forwarded (the next hop's errors)
    let writes: Promise<void> = Promise.resolve()
    const write = async (res: Response): Promise<void> => {
      const w = writes.then(async () => { await messages.write(res, Response) })
      writes = w.catch(() => {})
      await w
    }
    const relay = (res: Response): void => {
      write(res).catch(err => { if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err))) })
    }
    try {
      for (;;) {
        let req: Request
        try {
          req = await messages.read({ decode: (bytes: Uint8Array) => Request.decode(bytes, { limits: { route: MAX_ROUTE_HOPS, standbys: MAX_ROUTE_HOPS, draft: MAX_DRAFT_TOKENS, draft$: { ids: MAX_DRAFT_SUPPORT, probs: MAX_DRAFT_SUPPORT } } }) })
        } catch (err: any) {
          // the end of the upstream's requests (EOF), an idle timeout, or bytes that do not decode: the stream ends
          this.log('session stream from %p ended: %s', connection.remotePeer, err?.name)
          return
        }
        idle.refresh()
        const quiet = req.kind === Kind.INFER && req.quiet && req.direct && !req.mirror
        let res = req.kind === Kind.INFER || req.kind === Kind.CLOSE || req.kind === Kind.TRUNCATE || req.kind === Kind.DRAFT
          ? await this.serve(req, connection, controller.signal, quiet ? relay : undefined)
          : errorResponse(new PipelineRequestError(`${req.kind} requests go on ${this.protocol}, not on session streams`), req.hop)
        if (quiet && res != null) {
          // a quiet INFER (spec §2, 1.5.0): nothing when the chunk went through (forwarded, or its token on the tokens
          // stream); an error is marked, with the request's position
          if (res.direct && res.error === '') res = undefined
          else if (res.error !== '') res = { ...res, quiet: true, position: req.position }
        }
        if (res != null) await write(res)
      }
    } catch (err: any) {
      if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      clearTimeout(idle)
      stream.removeEventListener('close', onClose)
      if (stream.status === 'open') await stream.close().catch(() => {})
    }
  }

  private trainState (stage: PipelineStage): TrainState {
    let s = this.train.get(stage)
    if (s == null) {
      s = { done: new Map(), targets: new Map(), headInputs: [], headWaiters: new Map() }
      this.train.set(stage, s)
    }
    return s
  }

  /** The step's training state is over (stepped, stage removed): HEAD_INPUT requests still waiting answer without an input */
  private dropTrainState (stage: PipelineStage): void {
    const s = this.train.get(stage)
    this.train.delete(stage)
    if (s != null) for (const fns of s.headWaiters.values()) for (const fn of fns) fn()
  }

  private checkStep (req: Request, stage: PipelineStage): void {
    const step = stage.executors[0].stepCount
    if (req.step !== step) throw new PipelineRequestError(`step ${req.step} requested; this span is at step ${step}`)
  }

  private microKey (req: Request): string {
    return `${hex(req.session)}/${req.step}/${req.microBatch}`
  }

  private async serveTrainForward (req: Request, stage: PipelineStage, signal: AbortSignal): Promise<Response> {
    this.checkStep(req, stage)
    const state = this.trainState(stage)
    const key = this.microKey(req)
    const cached = state.done.get(key)
    if (cached != null) return await cached
    if (state.done.size >= this.maxMicroBatches) throw new PipelineRequestError(`more than ${this.maxMicroBatches} micro-batches in one step`)
    const hidden = decodeActivation(req.hidden, this.limits(stage, req.compress, 'hidden', req.deflate))
    const work = this.trainForward(req, stage, hidden, state, key, signal)
    state.done.set(key, work)
    try {
      const res = await work
      // only a completed micro-batch is remembered: a failed one is re-sent and runs again
      if (res.error !== '') state.done.delete(key)
      return res
    } catch (err) {
      state.done.delete(key)
      throw err
    }
  }

  private async trainForward (req: Request, stage: PipelineStage, hidden: TensorData, state: TrainState, key: string, signal: AbortSignal): Promise<Response> {
    const out = stage.blocks != null ? (await stage.blocks.forward({ hidden_in: hidden })).hidden_out : hidden
    let gradOut: TensorData
    let loss: number
    if (stage.head != null) {
      const targets = state.targets.get(key)
      if (targets == null) throw new PipelineRequestError(`no targets for micro-batch ${req.microBatch} of step ${req.step}`)
      if (targets.dims[0] !== out.dims[0] || targets.dims[1] !== out.dims[1]) {
        throw new InvalidActivationError(`targets [${targets.dims.join(', ')}] do not match hidden [${out.dims.join(', ')}]`)
      }
      if (!(Number.isFinite(req.lossScale) && req.lossScale > 0 && req.lossScale <= 1)) throw new PipelineRequestError(`loss_scale ${req.lossScale} outside (0, 1]`)
      // a tied head keeps what its backward ran on, in the order it ran (for a TAKE_TIED with tied_recompute)
      const input = stage.head.tiedParameters.length > 0 && this.tiedReplica ? { microBatch: req.microBatch, key, hidden: out, done: false } : undefined
      if (input != null) state.headInputs.push(input)
      let r: Record<string, TensorData>
      try {
        r = await stage.head.backward({ hidden: out, targets, grad_loss: float32([req.lossScale], []) })
      } catch (err) {
        if (input != null) state.headInputs.splice(state.headInputs.indexOf(input), 1)
        throw err
      }
      state.targets.delete(key)
      if (input != null) {
        // accumulated: a HEAD_INPUT waiting for it answers now (1.7.0), while this answer goes back up the chain
        input.done = true
        const waiting = state.headWaiters.get(key)
        state.headWaiters.delete(key)
        for (const fn of waiting ?? []) fn()
      }
      if (req.lastMicroBatch && stage.head.tiedParameters.length > 0) this.prepareTied(stage, req.step)
      gradOut = r.grad_hidden
      loss = (r.loss.data as Float32Array)[0]
    } else {
      const res = (await this.forwardHop(req, out, signal))! // (no relay: always an answer)
      if (res.error !== '') return res
      gradOut = decodeActivation(res.grad, this.limits(stage, req.compress, 'grad', req.deflate))
      if (gradOut.dims[0] !== out.dims[0] || gradOut.dims[1] !== out.dims[1]) throw new InvalidActivationError('gradient shape does not match the activation')
      loss = res.loss
    }
    const grad = stage.blocks != null
      ? (await stage.blocks.backward({ hidden_in: hidden, grad_hidden_out: gradOut })).grad_hidden_in
      : gradOut
    return emptyResponse({ grad: encodeActivation(grad, req.compress, req.deflate), loss })
  }

  private async serveTargets (req: Request, stage: PipelineStage): Promise<Response> {
    if (stage.head == null) throw new InvalidRouteError('targets go to the Validator (the hop holding the head)')
    this.checkStep(req, stage)
    const state = this.trainState(stage)
    if (state.targets.size >= this.maxMicroBatches) throw new PipelineRequestError(`more than ${this.maxMicroBatches} micro-batches waiting`)
    const t = decodeIds(req.targets, { maxBatch: this.maxBatch, maxSeq: stage.config.maxSeqLen, maxBytes: this.maxMessageSize, what: 'targets', deflate: req.deflate })
    let answer: Partial<Response> = {}
    if (req.tiedOwner === true) {
      // (1.8.0) the owner answers the rows of its matrix the Driver's embedding will look up (none asked: the flag alone)
      if (stage.head.tiedParameters.length === 0) throw new InvalidRouteError('this hop holds no tied parameter')
      const ids = req.tiedIds.length > 0 ? this.tiedIdsOf(req, stage) : new Int32Array(0)
      if (this.owns(stage)) {
        const rows = ids.length > 0 ? await stage.head.getParameterRows('embed.weight', [...ids]) : undefined
        answer = { tiedOwner: true, tied: rows != null ? encodeNamed('embed.weight', rows, [ids.length, stage.config.dModel]) : new Uint8Array(0) }
      }
    }
    state.targets.set(this.microKey(req), t)
    return emptyResponse(answer)
  }

  /** (1.8.0) This Validator owns its tied matrix, in step (§4.4 rule 7) */
  private owns (stage: PipelineStage): boolean {
    const replica = this.replicas.get(stage)
    return this.tiedOwner === true && this.tiedReplica && stage.head != null && stage.head.tiedParameters.length > 0 && replica?.owner === true && replica.step === stage.head.stepCount
  }

  /**
   * GET_TIED (§4.4 rule 7, 1.8.0): one part of the owned matrix's state at the head's step count — the matrix (`tied_part`
   * 0) or its first (1) or second (2) AdamW moment, each a float32 frame named `embed.weight`
   */
  private async serveGetTied (req: Request, stage: PipelineStage): Promise<Response> {
    if (stage.head == null || stage.head.tiedParameters.length === 0) throw new InvalidRouteError('this hop holds no tied parameter')
    this.checkStep(req, stage)
    if (req.tiedPart > 2) throw new PipelineRequestError(`tied_part ${req.tiedPart}: 0, 1 or 2`)
    if (!this.owns(stage)) throw new PipelineRequestError(`no owned tied matrix at step ${req.step}`)
    const c = stage.config
    let x: Float32Array | undefined
    if (req.tiedPart === 0) x = (await stage.head.runtime.getResident(['embed.weight']))['embed.weight'].data as Float32Array
    else {
      const state = await stage.head.getTiedReplicaState('embed.weight')
      x = req.tiedPart === 1 ? state?.m : state?.v
    }
    if (x == null) throw new PipelineRequestError(`no owned tied matrix at step ${req.step}`)
    return emptyResponse({ tiedOwner: true, tied: encodeNamed('embed.weight', x, [c.vocabSize, c.dModel]) })
  }

  private async serveGradNorm (req: Request, stage: PipelineStage): Promise<Response> {
    this.checkStep(req, stage)
    let sq = 0
    for (const e of stage.executors) sq += await e.gradNormSquared()
    return emptyResponse({ normSq: sq })
  }

  private async serveStep (req: Request, stage: PipelineStage): Promise<Response> {
    const at = stage.executors[0].stepCount
    // already taken (a re-sent STEP): idempotent
    if (req.step < at) {
      const r = this.replicas.get(stage)
      return emptyResponse({ replica: r?.step === at && (req.tiedIds.length > 0 || req.tiedOwner === true), tiedOwner: r?.step === at && req.tiedOwner === true && r.owner === true })
    }
    this.checkStep(req, stage)
    if (!(Number.isFinite(req.gradNorm) && req.gradNorm >= 0)) throw new PipelineRequestError(`grad_norm ${req.gradNorm} is not a finite number >= 0`)
    // the Driver's rows of the tied gradient are checked before anything steps; (1.8.0) an owner's STEP carries only the
    // AdamW numbers (the rows came at TAKE_TIED)
    const owned = req.tiedOwner === true && req.tiedIds.length === 0
    if (owned && (stage.head == null || stage.head.tiedParameters.length === 0)) throw new InvalidRouteError('this hop holds no tied parameter')
    const rows = req.tiedIds.length > 0 ? this.tiedRows(req, stage) : owned ? { ids: new Int32Array(0), data: new Float32Array(0), adamw: this.tiedAdamwOf(req) } : undefined
    const wasOwner = this.owns(stage)
    for (const e of stage.executors) await e.step({ gradNorm: req.gradNorm })
    this.dropTrainState(stage)
    const replica = this.replicas.get(stage)
    if (stage.head?.tiedParameters.length === 0 || stage.head == null || replica == null) return emptyResponse({})
    // an owner's step needs the gradient summed at TAKE_TIED; a Driver that sends rows no longer counts on an owner
    if (rows == null || replica.step !== req.step || replica.grad?.step !== req.step || owned !== (replica.grad.summed === true) || owned !== wasOwner) {
      // the replica missed this step: the head's tied weight waits for SET_TIED (with moments to seed a new replica)
      this.replicas.delete(stage)
      return emptyResponse({})
    }
    // in the head's worker, on its resident matrix: the summed gradient, the head's (taken at TAKE_TIED, moved back)
    // plus the Driver's rows as the Driver summed them, then AdamW with the Driver's numbers and the hash
    const g = replica.grad.g
    replica.grad = undefined
    const o = rows.adamw
    const { finite, hash } = await stage.head.stepTiedReplica(stage.head.tiedParameters[0], g, rows, { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, t: o.t, gradScale: o.clipScale })
    if (!finite) {
      // cannot happen when the Driver's own step was finite; SET_TIED repairs it (the matrix and the moments)
      this.replicas.delete(stage)
      return emptyResponse({})
    }
    replica.step = req.step + 1
    // (1.8.0) owned from now on when the Driver offered it (`tied_owner` with its rows) or keeps it so
    replica.owner = req.tiedOwner === true && this.tiedOwner === true
    return emptyResponse({ replica: true, tiedHash: new Uint8Array(hash), tiedOwner: replica.owner })
  }

  /** Decode and check a STEP's tied rows: strictly increasing ids in [0, V), [k, d] finite rows, sane AdamW numbers */
  private tiedRows (req: Request, stage: PipelineStage): { ids: Int32Array, data: Float32Array, adamw: TiedAdamW } {
    const { ids, data } = this.tiedRowsOf(req, stage)
    return { ids, data, adamw: this.tiedAdamwOf(req) }
  }

  /** A request's `tied_ids` and `tied` rows (§5 rule 12's checks) */
  private tiedRowsOf (req: Request, stage: PipelineStage): { ids: Int32Array, data: Float32Array } {
    const ids = this.tiedIdsOf(req, stage)
    return { ids, data: decodeNamed(req.tied, stage.head!.tiedParameters[0], ids.length * stage.config.dModel, this.maxMessageSize) }
  }

  private tiedAdamwOf (req: Request): TiedAdamW {
    const o = req.tiedAdamw
    const ok = o != null && [o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.clipScale].every(Number.isFinite) &&
      o.lr >= 0 && o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.eps > 0 && o.weightDecay >= 0 &&
      o.clipScale > 0 && o.clipScale <= 1 && o.t === req.step + 1
    if (!ok) throw new PipelineRequestError(`tied_adamw missing or out of range for step ${req.step}`)
    return o
  }

  /** A request's `tied_ids`: an int64 frame of 1 to vocab ids, strictly increasing in [0, vocab) */
  private tiedIdsOf (req: Request, stage: PipelineStage): Int32Array {
    const c = stage.config
    if (stage.head == null || stage.head.tiedParameters.length === 0) throw new InvalidRouteError('this hop holds no tied parameter')
    let ids: BigInt64Array
    try {
      const t = decodeTensorFrame(req.tiedIds, { maxBytes: this.maxMessageSize, copy: true })
      if (t.dtype !== 'int64' || t.shape.length !== 1) throw new Error(`${t.dtype} [${t.shape.join(', ')}], expected int64 [k]`)
      ids = t.data as BigInt64Array
    } catch (err: any) {
      throw new InvalidActivationError(`tied_ids: ${String(err?.message ?? err)}`)
    }
    const k = ids.length
    if (k < 1 || k > c.vocabSize) throw new InvalidActivationError(`tied_ids: ${k} rows, expected 1 to ${c.vocabSize}`)
    const out = new Int32Array(k)
    for (let i = 0; i < k; i++) {
      const id = ids[i]
      if (id < 0n || id >= BigInt(c.vocabSize) || (i > 0 && id <= ids[i - 1])) throw new InvalidActivationError(`tied_ids: row ${id} at ${i} is out of [0, ${c.vocabSize}) or not increasing`)
      out[i] = Number(id)
    }
    return out
  }

  /**
   * After the step's last micro-batch: take the head's tied gradient and encode it while the Workers run their
   * backward, so TAKE_TIED answers at once. Starts after the current response is on its way.
   */
  private prepareTied (stage: PipelineStage, step: number): void {
    const head = stage.head!
    const c = stage.config
    const ready = new Promise<void>(resolve => setImmediate(resolve)).then(async () => {
      const g = (await head.takeTiedGradients()).get('embed.weight')
      return { g, tied: g != null ? encodeNamed('embed.weight', g, [c.vocabSize, c.dModel]) : new Uint8Array(0) }
    })
    ready.catch(() => {})
    this.preparedTied.set(stage, { step, ready })
  }

  /**
   * HEAD_INPUT (§4.4 rule 6, 1.7.0): the input the head's backward of (session, step, micro_batch) ran on, answered once
   * that backward has accumulated (waiting up to the message timeout), with the head's final norm; without an input
   * (`replica` false) when this node keeps no replica in step or the micro-batch did not accumulate in time.
   */
  private async serveHeadInput (req: Request, stage: PipelineStage, signal: AbortSignal): Promise<Response> {
    if (stage.head == null || stage.head.tiedParameters.length === 0) throw new InvalidRouteError('head inputs come from a tied Validator (the hop holding the head)')
    this.checkStep(req, stage)
    const inStep = (): boolean => {
      const replica = this.replicas.get(stage)
      return this.tiedReplica && replica != null && replica.step === stage.head!.stepCount && replica.step === req.step
    }
    if (!inStep()) return emptyResponse({})
    const state = this.trainState(stage)
    const key = this.microKey(req)
    const find = (): TrainState['headInputs'][number] | undefined => this.train.get(stage)?.headInputs.find(i => i.key === key && i.done)
    let input = find()
    if (input == null) {
      let waiting = 0
      for (const fns of state.headWaiters.values()) waiting += fns.length
      if (waiting >= this.maxMicroBatches) throw new PipelineRequestError(`more than ${this.maxMicroBatches} HEAD_INPUT requests waiting`)
      await new Promise<void>(resolve => {
        const done = (): void => {
          clearTimeout(timer)
          signal.removeEventListener('abort', done)
          const fns = state.headWaiters.get(key)
          if (fns != null) {
            const i = fns.indexOf(done)
            if (i >= 0) fns.splice(i, 1)
            if (fns.length === 0) state.headWaiters.delete(key)
          }
          resolve()
        }
        const timer = setTimeout(done, this.timeout)
        signal.addEventListener('abort', done)
        state.headWaiters.set(key, [...(state.headWaiters.get(key) ?? []), done])
      })
      input = find()
    }
    if (input == null || !inStep()) return emptyResponse({})
    const c = stage.config
    const norm = (await stage.head.runtime.getResident(['final_norm.weight']))['final_norm.weight'].data as Float32Array
    return emptyResponse({ replica: true, headInputs: [encodeActivation(input.hidden, false)], headMicroBatches: [input.microBatch], headNorm: encodeNamed('final_norm.weight', norm, [c.dModel]) })
  }

  private async serveTakeTied (req: Request, stage: PipelineStage): Promise<Response> {
    if (stage.head == null) throw new InvalidRouteError('tied gradients are taken from the Validator')
    this.checkStep(req, stage)
    const t0 = performance.now()
    const c = stage.config
    // (1.8.0) the owner: the Driver's rows (checked before anything is taken) are added to the head's gradient here
    const ownerRows = req.tiedOwner === true && this.owns(stage) ? this.tiedRowsOf(req, stage) : undefined
    const prepared = this.preparedTied.get(stage)
    this.preparedTied.delete(stage)
    let got: Float32Array | undefined
    let tied: Uint8Array<ArrayBuffer> | undefined
    if (prepared?.step === req.step) {
      // (a failed preparation took nothing: the head still holds its gradient)
      const p = await prepared.ready.catch(() => undefined)
      got = p?.g
      tied = p?.tied
    }
    // anything the head accumulated since (or everything, without a preparation)
    const more = (await stage.head.takeTiedGradients()).get('embed.weight')
    if (more != null) {
      if (got == null) got = more
      else for (let i = 0; i < got.length; i++) got[i] += more[i]
      tied = undefined
    }
    this.log('step %d: tied gradient taken in %d ms', req.step, Math.round(performance.now() - t0))
    if (ownerRows != null) {
      // H[id] + E[id], float32, as the Driver's accumulator summed them before 1.8.0; then Σ g² as its gradNormSquared
      const g = got ?? new Float32Array(c.vocabSize * c.dModel)
      const d = c.dModel
      for (let k = 0; k < ownerRows.ids.length; k++) {
        const at = ownerRows.ids[k] * d
        for (let j = 0; j < d; j++) g[at + j] += ownerRows.data[k * d + j]
      }
      this.replicas.get(stage)!.grad = { step: req.step, g, summed: true }
      return emptyResponse({ replica: true, tiedOwner: true, tiedNormSq: sumOfSquares(g) })
    }
    // a replica in step keeps the head's gradient (zero when nothing accumulated) to add the Driver's rows to at STEP
    const replica = this.replicas.get(stage)
    if (replica != null && replica.step === stage.head.stepCount && req.tiedReplica && this.tiedReplica) {
      replica.grad = { step: req.step, g: got ?? new Float32Array(c.vocabSize * c.dModel) }
      const inputs = this.train.get(stage)?.headInputs ?? []
      // (1.7.0) the Driver recomputed the head's inputs it got by HEAD_INPUT: exactly the micro-batches the head
      // accumulated, in its order, so its H is complete: the order is the answer
      if (req.tiedRecompute && got != null && inputs.length > 0 && inputs.length === req.recomputed.length && inputs.every((x, i) => x.microBatch === req.recomputed[i])) {
        return emptyResponse({ replica: true, headMicroBatches: inputs.map(i => i.microBatch) })
      }
      if (req.tiedRecompute && got != null && inputs.length > 0) {
        // the Driver recomputes the gradient from what the head ran on (§4.4, 1.6.0): its inputs and its final norm
        const headInputs = inputs.map(i => encodeActivation(i.hidden, false))
        const size = headInputs.reduce((a, b) => a + b.length + 8, 0)
        if (size + c.dModel * 4 + 4096 < this.maxMessageSize) {
          // (the norm alone: the head's parameters include the vocab × d matrix)
          const norm = (await stage.head.runtime.getResident(['final_norm.weight']))['final_norm.weight'].data as Float32Array
          return emptyResponse({ replica: true, headInputs, headMicroBatches: inputs.map(i => i.microBatch), headNorm: encodeNamed('final_norm.weight', norm, [c.dModel]) })
        }
      }
      tied ??= got != null ? encodeNamed('embed.weight', got, [c.vocabSize, c.dModel]) : new Uint8Array(0)
      return emptyResponse({ tied, replica: true })
    }
    tied ??= got != null ? encodeNamed('embed.weight', got, [c.vocabSize, c.dModel]) : new Uint8Array(0)
    if (stage.head.tiedParameters.length > 0) this.replicas.delete(stage)
    return emptyResponse({ tied })
  }

  /**
   * The head's tied gradient of this step, recomputed on the Driver (§4.4, 1.6.0): the head's backward graph run on the
   * Validator's inputs (`head_inputs`, in its order), with the Driver's matrix (the replica's, bit for bit), the head's
   * final norm and the micro-batches' own targets and loss scale, accumulated as the head accumulated them.
   */
  private async recomputeTied (stage: PipelineStage, res: Response, list: TrainBatch[], lossScale: number, step: number): Promise<Float32Array> {
    const c = stage.config
    const ids = res.headMicroBatches
    if (ids.length !== res.headInputs.length || new Set(ids).size !== ids.length || ids.some(i => i >= list.length)) {
      throw new PipelineRequestError(`head_micro_batches [${ids.join(', ')}] do not name ${res.headInputs.length} distinct micro-batches of the step`)
    }
    const norm = decodeNamed(res.headNorm, 'final_norm.weight', c.dModel, this.maxMessageSize)
    const head = await this.shadowHead(stage, step, norm)
    try {
      for (let k = 0; k < ids.length; k++) await this.recomputeOne(stage, head, res.headInputs[k], k, ids[k], list[ids[k]], lossScale)
      const g = (await head.takeTiedGradients()).get('embed.weight')
      if (g == null) throw new PipelineRequestError('the recomputed head took no tied gradient')
      return g
    } finally {
      await head.zeroGradients()
    }
  }

  /**
   * The Driver's copy of the head for step `step`, gradients zeroed, with the head's final norm and the matrix the replica
   * holds: the one the last step ended with (set in the background since), else this node's
   */
  private async shadowHead (stage: PipelineStage, step: number, norm: Float32Array): Promise<ShardExecutor> {
    const c = stage.config
    let shadow = this.shadowHeads.get(stage)
    const pending = this.shadowMatrix.get(stage)
    this.shadowMatrix.delete(stage)
    if (shadow != null && pending?.step === step && await pending.set) {
      await (await shadow).setParameters(new Map([['final_norm.weight', norm]]), { partial: true })
    } else {
      const w = (await stage.embed!.getParameters()).get('embed.weight')!
      if (shadow == null) {
        const role = { kind: 'head' as const }
        // the head's backward with respect to the tied matrix only: the gradient of its input and of final_norm.weight,
        // which the Driver does not use, are left out of the graph (one of its three vocab × d matmuls); the same bits of H
        shadow = createShardExecutor({ config: c, role, parameters: new Map([['final_norm.weight', norm], ['embed.weight', w]]), graphs: { backward: buildShardGraph(c, role, 'backward', { gradientsOf: ['embed.weight'] }).bytes } })
        this.shadowHeads.set(stage, shadow)
        const s = shadow
        s.catch(() => { if (this.shadowHeads.get(stage) === s) this.shadowHeads.delete(stage) })
      }
      await (await shadow).setParameters(new Map([['final_norm.weight', norm], ['embed.weight', w]]), { transfer: true })
    }
    const head = await shadow
    await head.zeroGradients()
    return head
  }

  /** One micro-batch of the head's backward on the Driver's copy of the head: its input as the Validator sent it (index `k`) */
  private async recomputeOne (stage: PipelineStage, head: ShardExecutor, frame: Uint8Array, k: number, id: number, b: TrainBatch, lossScale: number): Promise<void> {
    const hidden = decodeActivation(frame, { ...this.limits(stage, false, 'head_inputs'), maxBatch: b.batch, maxSeq: b.seq })
    if (hidden.dims[0] !== b.batch || hidden.dims[1] !== b.seq) throw new InvalidActivationError(`head_inputs[${k}] is [${hidden.dims.join(', ')}], micro-batch ${id} is [${b.batch}, ${b.seq}]`)
    await head.backward({ hidden, targets: int64(b.targets, [b.batch, b.seq]), grad_loss: float32([lossScale], []) })
  }

  private async serveSetTied (req: Request, stage: PipelineStage): Promise<Response> {
    if (stage.head == null || stage.head.tiedParameters.length === 0) throw new InvalidRouteError('this hop holds no tied parameter')
    const c = stage.config
    if (stage.head.stepCount !== req.step + 1) throw new PipelineRequestError(`SET_TIED for step ${req.step}; this span is at step ${stage.head.stepCount}`)
    const n = c.vocabSize * c.dModel
    // the matrix and its two moments may come in separate SET_TIED messages (each is vocab × d floats)
    // (the matrix goes through setParameters, which refuses non-finite values itself)
    const w = req.tied.length > 0 ? decodeNamed(req.tied, 'embed.weight', n, this.maxMessageSize, { copy: false, checkFinite: false }) : undefined
    const m = req.tiedM.length > 0 ? decodeNamed(req.tiedM, 'embed.weight', n, this.maxMessageSize, { copy: false }) : undefined
    const v = req.tiedV.length > 0 ? decodeNamed(req.tiedV, 'embed.weight', n, this.maxMessageSize, { copy: false }) : undefined
    if (w == null && m == null && v == null) throw new PipelineRequestError('SET_TIED without a tensor')
    if (v != null) for (let i = 0; i < n; i++) if (v[i] < 0) throw new InvalidActivationError(`tied_v: negative second moment at ${i}`)
    if (w != null) {
      await stage.head.setParameters(new Map([['embed.weight', w]]), { partial: true })
      this.replicas.delete(stage)
    }
    if (!this.tiedReplica) return emptyResponse({})
    const step = stage.head.stepCount
    let seed = this.seeds.get(stage)
    if (seed == null || seed.step !== step) seed = { step }
    if (w != null) seed.p = w
    if (m != null) seed.m = m
    if (v != null) seed.v = v
    if (seed.p != null && seed.m != null && seed.v != null) {
      this.seeds.delete(stage)
      // the matrix is the head's (set above by the part that carried it); the moments go next to it
      await stage.head.seedTiedReplica('embed.weight', { m: seed.m, v: seed.v })
      this.replicas.set(stage, { step })
      return emptyResponse({ replica: true })
    }
    this.seeds.set(stage, seed)
    return emptyResponse({})
  }

  /** A client's generation: read its request, stream one event per token, end with a `done` event */
  private async serveRemoteGenerate (stream: Stream, connection: Connection): Promise<void> {
    const messages = messageStream(stream, { maxMessageSize: Math.max(MAX_GENERATE_REQUEST_SIZE, this.maxMessageSize), timeout: this.timeout })
    const controller = new AbortController()
    const onClose = (): void => { controller.abort(new AbortError('the client closed the stream')) }
    stream.addEventListener('close', onClose)
    try {
      const bytes = await messages.readBytes()
      if (bytes.byteLength > MAX_GENERATE_REQUEST_SIZE) throw new PipelineRequestError(`generate request of ${bytes.byteLength} bytes (cap ${MAX_GENERATE_REQUEST_SIZE})`)
      let req: GenerateRequest
      try {
        req = GenerateRequest.decode(bytes, { limits: { promptIds: 1 << 16, stop: MAX_STOP_ENTRIES, stopTokens: MAX_STOP_ENTRIES } })
      } catch (err: any) {
        throw new PipelineRequestError(`malformed generate request: ${String(err?.message ?? err)}`)
      }
      try {
        const s = req.sampling
        const options: GenerateOptions = {
          maxNewTokens: req.maxNewTokens > 0 ? req.maxNewTokens : undefined,
          temperature: s?.temperature ?? 0,
          topK: s?.topK ?? 0,
          topP: s == null || s.topP === 0 ? 1 : s.topP,
          seed: s?.seed ?? 0,
          returnLogits: s?.returnLogits === true,
          stop: req.stop,
          stopTokens: req.stopTokens,
          signal: controller.signal
        }
        for await (const t of this.generate(req.promptIds.length > 0 ? req.promptIds : req.prompt, options)) {
          const logits = t.logits != null ? encodeNamed('logits', t.logits, [t.logits.length]) : new Uint8Array(0)
          await messages.write({ id: t.id, text: t.text, position: t.position, logits, done: false, error: '', message: '' }, GenerateEvent)
        }
        await messages.write({ id: 0, text: '', position: 0, logits: new Uint8Array(0), done: true, error: '', message: '' }, GenerateEvent)
      } catch (err: any) {
        if (controller.signal.aborted) throw err
        const e = err instanceof Error ? err : new Error(String(err))
        await messages.write({ id: 0, text: '', position: 0, logits: new Uint8Array(0), done: true, error: e.name, message: e.message }, GenerateEvent)
      }
      await messages.close()
    } catch (err: any) {
      this.log('remote generation for %p ended: %e', connection.remotePeer, err)
      if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      stream.removeEventListener('close', onClose)
    }
  }

  // ---------------------------------------------------------------- driver

  private routerOrUndefined (): PipelineRouter | undefined {
    if (this.router == null && this.routerName != null) {
      let r: PipelineRouter | undefined
      try {
        // libp2p's components throw for a service that is not configured
        r = this.components[this.routerName] as PipelineRouter | undefined
      } catch {}
      if (r != null && typeof r.chain === 'function') this.router = r
    }
    return this.router
  }

  private need (): { stage: PipelineStage, router: PipelineRouter } {
    const stage = this.own.find(s => s.start === 0)
    if (stage == null || stage.embed == null) throw new InvalidParametersError('this node holds no slot-0 stage: only the Driver (embedding holder) generates and trains')
    const router = this.routerOrUndefined()
    if (router == null) throw new NoRouteError(`no router: pass \`router\` or add a '${this.routerName ?? 'swarmRouter'}' service`)
    return { stage, router }
  }

  /** `tokens`: what a session will keep in every hop's KV cache (the router weighs the hops' headroom) */
  private async route (stage: PipelineStage, router: PipelineRouter, purpose: 'inference' | 'training', signal?: AbortSignal, tokens?: number, exclude?: PeerId[]): Promise<Request['route']> {
    const hops = await router.chain({ from: stage.end, to: stage.config.nLayers + 2, purpose, signal, ...(tokens != null ? { tokens } : {}), ...(exclude != null && exclude.length > 0 ? { exclude } : {}) })
    return [{ peer: peerBytes(this.components.peerId), start: 0, end: stage.end }, ...hops.map(h => ({ peer: peerBytes(h.peer), start: h.start, end: h.end }))]
  }

  /** The session's tokens stream to the route's Validator: kept while it is healthy, (re)opened otherwise */
  private watchFor (watch: TokenWatch | undefined, route: Request['route'], session: Uint8Array<ArrayBuffer>): TokenWatch | undefined {
    if (!this.directTokens) return undefined
    const last = route.length - 1
    const peer = hex(route[last].peer)
    if (watch != null && !watch.closed && watch.peer === peer) return watch
    watch?.close()
    const req = emptyRequest({ kind: Kind.TOKENS, session, hop: last, route })
    return new TokenWatch(this.components.connectionManager, peerFromBytes(route[last].peer), peer, req, {
      protocol: PIPELINE_TOKENS_PROTOCOL,
      maxMessageSize: this.maxMessageSize,
      timeout: this.timeout,
      idleTimeout: this.sessionTtlMs,
      log: this.log,
      encode: r => Request.encode(r)
    })
  }

  /**
   * INFER to hop 1. With a ready tokens stream (the first prefill has none yet; a replay after a failover may) the request is `direct` and
   * `quiet` (spec §2, 1.5.0): the answer comes from the Validator on that stream and the route answers only an error,
   * which comes first and is returned as before. Returns what `send` would.
   */
  private async sendInfer (route: Request['route'], req: Request, watch: TokenWatch | undefined, signal?: AbortSignal, how?: { direct: boolean }, replay = false): Promise<Response> {
    // a replay from position 0 goes direct too when the session's tokens stream to this route's Validator is open
    // (after a failover of a Worker): its token then skips the way back through the new chain. `written`: the TOKENS
    // request is on its way (not acknowledged yet): it reaches the Validator before an INFER through a Worker does, and
    // if it does not, the Validator answers on the route (handled below). `opening` (1.7.2): a replay after a failure
    // while the stream is still being negotiated (a Worker lost at the generation's first request: its failure is seen
    // about when the negotiation ends) goes direct too; TOKENS is written within moments and still overtakes an INFER
    // through a Worker, and when it does not, the route's answer is taken and the stream kept (it was late, not refused)
    const opening = replay && watch != null && !watch.closed && !(watch.ready || watch.written)
    if (watch == null || !(watch.ready || watch.written || opening)) return await this.send(route, 1, req, signal)
    watch.clear()
    // `undefined`: the link moved on without an answer (only after the token came: this node writes nothing before)
    const ack = this.quietInfer ? this.sendQuiet(route, 1, { ...req, direct: true }, signal) : this.send(route, 1, { ...req, direct: true }, signal)
    const first = await Promise.race([
      ack.then(res => res != null ? { res, direct: false } : new Promise<never>(() => {})),
      watch.next(this.hopTimeout, signal).then(res => ({ res, direct: true }), (err: Error) => ({ err }))
    ])
    if ('res' in first && first.direct) {
      // the token came straight from the Validator: an answer on the route still coming (an acknowledgement from a
      // node before 1.5.0) is only logged (a failure there shows on the next request of this link)
      ack.then(res => { if (res != null && res.error !== '') this.log('answer on the route to a direct token: %s %s', res.error, res.message) }, () => {})
      if (how != null) how.direct = true
      return first.res
    }
    if ('err' in first) {
      if (signal?.aborted === true) throw first.err
      // the token did not come. A hop that failed answers on the route soon (its stream reset shows at once); a quiet
      // route that went through answers nothing, so wait only a little (the token may have been lost with the stream)
      let timer: ReturnType<typeof setTimeout> | undefined
      const res = await Promise.race([ack, new Promise<undefined>(resolve => { timer = setTimeout(() => { resolve(undefined) }, Math.min(this.hopTimeout, QUIET_GRACE_MS)) })])
      clearTimeout(timer)
      if (res == null) {
        watch.close()
        return errorResponse(new UnknownSessionError(`the token did not come on the tokens stream (${first.err.name}) and the route answered nothing; replaying`), route.length - 1)
      }
      if (!res.direct) return res
      // the Validator sent the answer on a stream that failed since: replay (the caller restarts the session)
      watch.close()
      return errorResponse(new UnknownSessionError(`the tokens stream failed (${first.err.name}) with the token on it; replaying`), route.length - 1)
    }
    const res = first.res
    if (!res.direct) {
      // an error, or a Validator (or a Worker on the way) that answered on the route: not a usable stream
      watch.cancel()
      if (res.error === '' && !opening) watch.close()
      return res
    }
    try {
      const token = await watch.next(this.hopTimeout, signal)
      if (how != null) how.direct = true
      return token
    } catch (err: any) {
      if (signal?.aborted === true) throw err
      watch.close()
      return errorResponse(new UnknownSessionError(`the token did not come on the tokens stream (${String(err?.name)}); replaying`), route.length - 1)
    }
  }

  /**
   * The router's standby for each hop of `route` (index 0, the Driver, and hops without one: undefined; an empty list
   * when the router names none). A standby must cover the hop's slots, differ from the hop's peer and not be in `exclude`.
   */
  private async standbysOf (router: PipelineRouter, route: Request['route'], tokens: number, exclude: PeerId[] = []): Promise<Array<RouteHop | undefined>> {
    if (router.standbys == null) return []
    try {
      const hops = route.slice(1).map(h => ({ peer: peerFromBytes(h.peer), start: h.start, end: h.end }))
      const standbys = await router.standbys(hops, { tokens })
      const out: Array<RouteHop | undefined> = [undefined, ...hops.map((h, i) => {
        const s = standbys[i]
        return s != null && s.start <= h.start && s.end >= h.end && !s.peer.equals(h.peer) && !exclude.some(p => p.equals(s.peer)) ? s : undefined
      })]
      return out.some(s => s != null) ? out : []
    } catch (err) {
      this.log('no standbys: %e', err)
      return []
    }
  }

  /**
   * Warm standbys: WARM to each hop's standby (it warms its stage and opens a session stream to its next hop), and a
   * spare session stream to the first hop's standby (unless mirrors opened one already). Best effort, in the background.
   */
  private async prepareStandbys (route: Request['route'], session: Uint8Array<ArrayBuffer>, standbys: Array<RouteHop | undefined>): Promise<void> {
    if (!this.warmStandbys) return
    try {
      await Promise.all(standbys.map(async (s, hop) => {
        if (s == null || hop < 1) return
        const r = route.map((h, j) => j === hop ? { peer: peerBytes(s.peer), start: h.start, end: h.end } : h)
        const res = await this.send(r, hop, emptyRequest({ kind: Kind.WARM, session, hop, route: r }), AbortSignal.timeout(this.timeout))
        // best effort: a standby that does not answer WARM is not banned for it (the switch would find out)
        if (res.error !== '') this.log('standby %p did not take WARM: %s %s', s.peer, res.error, res.message)
        else if (hop === 1 && !this.links.has(this.linkKey(session, 1, peerBytes(s.peer)))) await this.openSpare(s.peer)
      }))
    } catch (err) {
      this.log('preparing standbys failed: %e', err)
    }
  }

  private failover (router: PipelineRouter, route: Request['route'], res: Response): HopFailedError {
    const err = errorFromResponse(res) as HopFailedError // or the lost hop's own error (hopLost), with its hop
    const peer = peerFromBytes(route[err.hop].peer)
    router.reportFailure(peer, err)
    this.safeDispatchEvent('pipeline:failover', { detail: { peer, hop: err.hop, error: err } })
    return err
  }

  async * generate (prompt: string | number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedToken> {
    if (options.draft != null) {
      yield * this.generateSpeculative(prompt, options, options.draft)
      return
    }
    const { stage, router } = this.need()
    const config = stage.config
    checkSampling(options)
    const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt]
    if (ids.length === 0) throw new InvalidParametersError('the prompt is empty')
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0 || id >= config.vocabSize) throw new InvalidParametersError(`token id ${id} outside [0, ${config.vocabSize})`)
    }
    const maxNew = Math.min(options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS, config.maxSeqLen - ids.length)
    if (maxNew < 0) throw new InvalidParametersError(`the prompt (${ids.length} tokens) is longer than maxSeqLen ${config.maxSeqLen}`)
    const compress = options.compress ?? this.compress
    const deflateOn = options.deflate ?? this.deflate
    const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES
    const signal = options.signal
    const session = new Uint8Array(randomBytes(SESSION_ID_BYTES))
    const sampling = { temperature: options.temperature ?? 0, topK: options.topK ?? 0, topP: options.topP ?? 1, seed: options.seed ?? 0, returnLogits: options.returnLogits === true }
    const decoder = this.tokenizer.decoder()
    const all = [...ids]
    const need = ids.length + maxNew
    const mirror = options.mirror ?? this.mirrorStandbys
    /** Peers that refused the session for a full KV cache: left out of its routes (spec §4.2) */
    const full: PeerId[] = []
    let route = await this.route(stage, router, 'inference', signal, need)
    const used = new Map<string, Request['route']>()
    let releases: Array<() => void> = []
    const remember = (r: Request['route']): void => {
      used.set(r.map(h => hex(h.peer)).join(','), r)
      for (const release of releases) release()
      releases = router.acquire != null ? r.slice(1).map(h => router.acquire!(peerFromBytes(h.peer))) : []
    }
    /** Each hop's standby for the current route; mirrored standbys hold the session too (CLOSE them at the end) */
    let standbys: Array<RouteHop | undefined> = []
    const newStandbys = async (): Promise<void> => {
      standbys = this.warmStandbys || mirror ? await this.standbysOf(router, route, need, full) : []
      if (mirror) for (const [i, s] of standbys.entries()) if (s != null) { const r = route.map((h, j) => j === i ? { peer: peerBytes(s.peer), start: h.start, end: h.end } : h); used.set(r.map(h => hex(h.peer)).join(','), r) }
      void this.prepareStandbys(route, session, standbys)
    }
    remember(route)
    await newStandbys()
    /**
     * A hop is lost (`failed`) or its cache is full: switch its mirrored standby in (its cache holds the session:
     * nothing is replayed; the next INFER carries `rollback` for the hops that ran the lost chunk), or re-route and
     * replay from position 0
     */
    const replace = async (k: number): Promise<void> => {
      const s = standbys[k]
      if (mirror && position > 0 && s != null && this.mirrorInStep(session, k, peerBytes(s.peer)) && !full.some(p => p.equals(s.peer))) {
        this.log('hop %d: switching to its mirrored standby %p at position %d', k, s.peer, position)
        this.safeDispatchEvent('pipeline:switched', { detail: { peer: peerFromBytes(route[k].peer), standby: s.peer, hop: k, position } })
        route = route.map((h, j) => j === k ? { peer: peerBytes(s.peer), start: h.start, end: h.end } : h)
        standbys = standbys.map((x, j) => j === k ? undefined : x)
        remember(route)
        switched = true
        return
      }
      try {
        route = await this.route(stage, router, 'inference', signal, need, full)
      } catch (err: any) {
        if (err?.name === NoRouteError.name && full.length > 0) throw new KvCacheFullError(`no replica with room for the session (${full.length} full left out): ${String(err.message)}`)
        throw err
      }
      remember(route)
      await newStandbys()
      position = 0 // replay the whole sequence on the new chain (every hop restarts its cache)
    }
    let watch: TokenWatch | undefined
    let position = 0 // tokens every hop's cache holds
    let switched = false // a standby was switched in: hops may hold the chunk that was lost (`rollback`)
    let text = ''
    let retries = 0
    /** Phase times of a recovery in progress (from the first failed attempt to the next token: `pipeline:recovered`) */
    let recovery: { hop: number, since: number, attempts: number, detect: number, reroute: number } | undefined
    const failedAttempt = (hop: number, sent: number, failed: number): void => {
      recovery ??= { hop, since: sent, attempts: 0, detect: 0, reroute: 0 }
      recovery.attempts++
      recovery.detect += failed - sent
    }
    try {
      for (let produced = 0; produced < maxNew;) {
        if (signal?.aborted === true) throw new AbortError('generation aborted')
        const chunk = all.slice(position)
        const tEmbed = performance.now()
        let res: Response
        if (route.length === 1) {
          // this node's stage holds every slot, embedding to head (a one-stage route): it samples the token itself
          res = await this.localToken(stage, session, position, chunk, sampling)
          recovery = undefined
        } else {
          // `rollback`: after a switch this node's own cache may hold the lost chunk too
          const h = await this.runStageInference(stage, session, position, int64(BigInt64Array.from(chunk, BigInt), [1, chunk.length]), true)
          let hidden = encodeActivation(h, compress)
          const deflate = compress && deflateOn && hidden.length >= DEFLATE_MIN_BYTES
          if (deflate) hidden = deflateFrame(hidden)
          const mirrors = mirror && standbys.some(s => s != null) ? route.map((_, i) => standbys[i] != null ? peerBytes(standbys[i]!.peer) : new Uint8Array(0)) : []
          const req = emptyRequest({ kind: Kind.INFER, session, position, hop: 1, route, hidden, sampling, compress, deflate, rollback: switched, standbys: mirrors })
          if (mirrors.length > 1 && mirrors[1].length > 0) this.mirrorTo(req, mirrors[1], false)
          watch = this.watchFor(watch, route, session)
          const firstLink = this.linkKey(session, 1, route[1].peer)
          const hadLink = this.links.has(firstLink)
          const how = { direct: false }
          const tSend = performance.now()
          res = await this.sendInfer(route, req, watch, signal, how, recovery != null)
          const tAnswer = performance.now()
          if (hopLost(res)) {
            failedAttempt(res.failedHop, tSend, tAnswer)
            const err = this.failover(router, route, res)
            if (++retries > maxRetries) throw err
            await replace(err.hop)
            recovery!.reroute += performance.now() - tAnswer
            continue
          }
          if (res.error === KvCacheFullError.name && res.failedHop >= 1 && res.failedHop < route.length) {
            // that hop has no room for the session (its record overstated its headroom, or it filled up since):
            // another replica with room takes it; the full hop changed nothing for the refused chunk
            if (++retries > maxRetries) throw errorFromResponse(res)
            const k = res.failedHop
            const peer = peerFromBytes(route[k].peer)
            this.log('hop %d (%p) has no KV room for the session: %s', k, peer, res.message)
            full.push(peer)
            failedAttempt(k, tSend, tAnswer)
            const r = route
            void this.send(r, k, emptyRequest({ kind: Kind.CLOSE, session, hop: k, route: r }), AbortSignal.timeout(this.timeout)).catch(() => {})
            this.dropSessionLink(session, k, r[k].peer)
            await replace(k)
            recovery!.reroute += performance.now() - tAnswer
            continue
          }
          if ((res.error === UnknownSessionError.name || res.error === SessionPositionError.name) && position > 0) {
            // a hop lost the session (expired, evicted, restarted), or a switched-in standby was not in step: replay the
            // sequence on the same chain
            if (++retries > maxRetries) throw errorFromResponse(res)
            failedAttempt(res.failedHop, tSend, tAnswer)
            position = 0
            switched = false
            continue
          }
          if (res.error !== '') throw errorFromResponse(res)
          if (recovery != null) {
            const l = this.links.get(firstLink)
            const ms = { detect: recovery.detect, reroute: recovery.reroute, embed: tSend - tEmbed, link: !hadLink && l != null ? l.openMs : 0, chain: tAnswer - tSend, total: tAnswer - recovery.since }
            this.safeDispatchEvent('pipeline:recovered', { detail: { hop: recovery.hop, switched, tokens: chunk.length, attempts: recovery.attempts, ms, direct: how.direct } })
            recovery = undefined
          }
        }
        switched = false
        const id = res.token
        if (!(id >= 0 && id < config.vocabSize)) throw new RemotePipelineError(`the Validator sampled token ${id}`, 'InvalidTokenError')
        position = all.length
        all.push(id)
        produced++
        const piece = decoder.decode([id])
        text += piece
        const out: GeneratedToken = { id, text: piece, position: all.length - 1 }
        if (res.logits.length > 0) out.logits = decodeNamed(res.logits, 'logits', config.vocabSize, this.maxMessageSize)
        yield out
        if (options.stopTokens?.includes(id) === true) break
        if (options.stop?.some(s => s.length > 0 && text.endsWith(s)) === true) break
      }
    } finally {
      watch?.close()
      this.dropSessionLinks(session)
      for (const release of releases) release()
      await this.sessions.close(this.sessionKey(session, stage))
      // free the caches on every hop that may hold this session (best effort, not awaited by the caller's loop)
      void Promise.all([...used.values()].map(async r => await Promise.all(r.slice(1).map(async (_, i) => {
        const req = emptyRequest({ kind: Kind.CLOSE, session, hop: i + 1, route: r })
        await this.send(r, i + 1, req, AbortSignal.timeout(this.timeout)).catch(() => {})
      })))).catch(() => {})
    }
  }

  /**
   * Speculative generation (spec §4.5). Each round the drafter proposes up to γ tokens; the Driver sends them to
   * the Validator (DRAFT) and, beside it, the uncommitted tokens plus the draft down the chain in one INFER
   * (`draft_count`); the Validator answers the accepted draft tokens and one token of its own. The draft tokens it
   * rejected stay in every hop's cache until the next INFER rolls them back (`rollback`), or TRUNCATE messages do
   * (`rollback: 'message'`). With `returnLogits`, only each round's last token carries logits.
   */
  private async * generateSpeculative (prompt: string | number[], options: GenerateOptions, drafter: Drafter): AsyncGenerator<GeneratedToken> {
    const { stage, router } = this.need()
    const config = stage.config
    checkSampling(options)
    const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt]
    if (ids.length === 0) throw new InvalidParametersError('the prompt is empty')
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0 || id >= config.vocabSize) throw new InvalidParametersError(`token id ${id} outside [0, ${config.vocabSize})`)
    }
    const maxNew = Math.min(options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS, config.maxSeqLen - ids.length)
    if (maxNew < 0) throw new InvalidParametersError(`the prompt (${ids.length} tokens) is longer than maxSeqLen ${config.maxSeqLen}`)
    const rollbackMode = options.rollback ?? 'inline'
    if (rollbackMode !== 'inline' && rollbackMode !== 'message') throw new InvalidParametersError(`rollback must be 'inline' or 'message', got ${String(rollbackMode)}`)
    const compress = options.compress ?? this.compress
    const deflateOn = options.deflate ?? this.deflate
    const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES
    const signal = options.signal
    const session = new Uint8Array(randomBytes(SESSION_ID_BYTES))
    const sampling = { temperature: options.temperature ?? 0, topK: options.topK ?? 0, topP: options.topP ?? 1, seed: options.seed ?? 0, returnLogits: options.returnLogits === true }
    const gamma = new GammaController(options.gamma)
    const adaptive = options.gamma?.adaptive !== false
    const decoder = this.tokenizer.decoder()
    const all = [...ids]
    let route = await this.route(stage, router, 'inference', signal, ids.length + maxNew)
    if (route.length === 1) {
      // this node holds every slot: no hop to draft against (the drafts would save no round trip); plain decoding
      yield * this.generate(prompt, { ...options, draft: undefined })
      return
    }
    const used = new Map<string, Request['route']>()
    let releases: Array<() => void> = []
    const remember = (r: Request['route']): void => {
      used.set(r.map(h => hex(h.peer)).join(','), r)
      for (const release of releases) release()
      releases = router.acquire != null ? r.slice(1).map(h => router.acquire!(peerFromBytes(h.peer))) : []
    }
    remember(route)
    void this.standbysOf(router, route, ids.length + maxNew).then(async s => { await this.prepareStandbys(route, session, s) })
    let watch: TokenWatch | undefined
    let position = 0 // tokens of `all` every hop's cache holds
    let extra = 0 // rejected draft tokens the caches still hold past `position`
    let text = ''
    let retries = 0
    /** Phase times of a recovery in progress (as in `generate`: `pipeline:recovered`) */
    let recovery: { hop: number, since: number, attempts: number, detect: number, reroute: number } | undefined
    /** A hop failed or lost the session: re-route (or not) and replay from position 0 (`sent`, `failed`: when the failed request was written and its failure seen) */
    const restart = async (res: Response, reroute: boolean, sent = performance.now(), failed = sent): Promise<void> => {
      recovery ??= { hop: res.failedHop, since: sent, attempts: 0, detect: 0, reroute: 0 }
      recovery.attempts++
      recovery.detect += failed - sent
      const r0 = performance.now()
      try {
        await newRoute(res, reroute)
      } finally {
        recovery.reroute += performance.now() - r0
      }
    }
    const newRoute = async (res: Response, reroute: boolean): Promise<void> => {
      if (reroute) {
        const err = this.failover(router, route, res)
        if (++retries > maxRetries) throw err
        route = await this.route(stage, router, 'inference', signal, ids.length + maxNew)
        remember(route)
        const r = route
        void this.standbysOf(router, r, ids.length + maxNew).then(async s => { await this.prepareStandbys(r, session, s) })
      } else if (++retries > maxRetries) {
        throw errorFromResponse(res)
      }
      position = 0
      extra = 0
    }
    try {
      for (let produced = 0; produced < maxNew;) {
        if (signal?.aborted === true) throw new AbortError('generation aborted')
        const t0 = performance.now()
        // the caches end at all.length + γ ≤ maxSeqLen, and a round yields at most γ + 1 tokens
        const room = Math.min(maxNew - produced - 1, config.maxSeqLen - all.length)
        const want = Math.min(room, gamma.next())
        const draft = want > 0 ? (await drafter.propose(all, want, { ...sampling, position: all.length, signal })).slice(0, want) : []
        for (const d of draft) checkDraftToken(d, config.vocabSize)
        const draftMs = performance.now() - t0
        if (extra > 0 && rollbackMode === 'message') {
          // TRUNCATE on every server hop (its session stream orders it before the next INFER), and our own cache
          const answers = await Promise.all(route.slice(1).map(async (_, i) => await this.send(route, i + 1, emptyRequest({ kind: Kind.TRUNCATE, session, position, hop: i + 1, route }), signal)))
          const bad = answers.find(r => r.error !== '')
          if (bad != null) {
            if (hopLost(bad)) { await restart(bad, true); continue }
            if (bad.error === UnknownSessionError.name || bad.error === SessionPositionError.name) { await restart(bad, false); continue }
            throw errorFromResponse(bad)
          }
          if (stage.blocks != null) await this.sessions.truncate(this.sessionKey(session, stage), position)
          extra = 0
        }
        const chunk = [...all.slice(position), ...draft.map(d => d.token)]
        const tEmbed = performance.now()
        const h = await this.runStageInference(stage, session, position, int64(BigInt64Array.from(chunk, BigInt), [1, chunk.length]), extra > 0)
        let hidden = encodeActivation(h, compress)
        const deflate = compress && deflateOn && hidden.length >= DEFLATE_MIN_BYTES
        if (deflate) hidden = deflateFrame(hidden)
        const last = route.length - 1
        const toValidator = draft.length > 0
          ? this.send(route, last, emptyRequest({
            kind: Kind.DRAFT, session, position: all.length, hop: last, route, sampling,
            draft: draft.map(d => ({ token: d.token, ids: d.ids ?? [], probs: d.probs ?? [] }))
          }), signal)
          : undefined
        const req = emptyRequest({ kind: Kind.INFER, session, position, hop: 1, route, hidden, sampling, compress, deflate, rollback: extra > 0, draftCount: draft.length })
        // the answer comes straight from the Validator on the tokens stream when there is one (spec 1.3.0)
        watch = this.watchFor(watch, route, session)
        const firstLink = this.linkKey(session, 1, route[1].peer)
        const hadLink = this.links.has(firstLink)
        const how = { direct: false }
        const tSend = performance.now()
        const [res, dres] = await Promise.all([this.sendInfer(route, req, watch, signal, how, recovery != null), toValidator])
        const tAnswer = performance.now()
        const failed = [res, dres].find(r => r != null && hopLost(r))
        if (failed != null) { await restart(failed, true, tSend, tAnswer); continue }
        if (dres != null && dres.error !== '') throw errorFromResponse(dres)
        if ((res.error === UnknownSessionError.name || res.error === SessionPositionError.name) && position > 0) { await restart(res, false, tSend, tAnswer); continue }
        if (res.error !== '') throw errorFromResponse(res)
        if (recovery != null) {
          const l = this.links.get(firstLink)
          const ms = { detect: recovery.detect, reroute: recovery.reroute, embed: tSend - tEmbed, link: !hadLink && l != null ? l.openMs : 0, chain: tAnswer - tSend, total: tAnswer - recovery.since, draft: draftMs }
          this.safeDispatchEvent('pipeline:recovered', { detail: { hop: recovery.hop, switched: false, tokens: chunk.length, attempts: recovery.attempts, ms, direct: how.direct } })
          recovery = undefined
        }
        const tokens = draft.length > 0 ? res.tokens : [res.token]
        const accepted = tokens.length - 1
        const ok = tokens.length >= 1 && accepted <= draft.length && tokens.every(id => id >= 0 && id < config.vocabSize) &&
          tokens.slice(0, accepted).every((id, i) => id === draft[i].token)
        if (!ok) throw new RemotePipelineError(`the Validator answered tokens [${tokens.join(', ')}] to a draft of ${draft.length}`, 'InvalidTokenError')
        // every cache now holds all.length + draft.length tokens; the last answered token is not in any yet
        const held = all.length + draft.length
        all.push(...tokens)
        position = all.length - 1
        extra = held - position
        if (adaptive && draft.length > 0) gamma.update(draft.length, accepted, draftMs, performance.now() - t0)
        options.onRound?.({ proposed: draft.length, accepted, tokens: tokens.length, draftMs, roundMs: performance.now() - t0, gamma: want })
        const logits = res.logits.length > 0 ? decodeNamed(res.logits, 'logits', config.vocabSize, this.maxMessageSize) : undefined
        let stop = false
        for (let i = 0; i < tokens.length && produced < maxNew; i++) {
          const id = tokens[i]
          produced++
          const piece = decoder.decode([id])
          text += piece
          const out: GeneratedToken = { id, text: piece, position: all.length - tokens.length + i }
          if (logits != null && i === tokens.length - 1) out.logits = logits
          yield out
          if (options.stopTokens?.includes(id) === true || options.stop?.some(s => s.length > 0 && text.endsWith(s)) === true) { stop = true; break }
        }
        if (stop) break
      }
    } finally {
      watch?.close()
      this.dropSessionLinks(session)
      for (const release of releases) release()
      await this.sessions.close(this.sessionKey(session, stage))
      void Promise.all([...used.values()].map(async r => await Promise.all(r.slice(1).map(async (_, i) => {
        const req = emptyRequest({ kind: Kind.CLOSE, session, hop: i + 1, route: r })
        await this.send(r, i + 1, req, AbortSignal.timeout(this.timeout)).catch(() => {})
      })))).catch(() => {})
    }
  }


  private newEarlyTied (stage: PipelineStage, route: Request['route']): EarlyTied {
    const v = route[route.length - 1]
    const e: EarlyTied = { peer: `${hex(v.peer)}/${v.start}-${v.end}`, ids: [], ok: true, chain: Promise.resolve(), work: Promise.resolve() }
    this.earlyTied.set(stage, e)
    return e
  }

  /**
   * (1.7.0, §4.4 rule 6) Ask the micro-batch's Validator for the input its head's backward runs on, beside the
   * TRAIN_FORWARD, and recompute the head's tied gradient of it on this node's copy of the head when it comes (in the
   * micro-batches' order), while the Workers run their backward. Whatever does not fit (another Validator, an answer
   * without an input, an error) drops the early work: TAKE_TIED then asks as 1.6.0 does.
   */
  private askHeadInput (stage: PipelineStage, route: Request['route'], base: Partial<Request>, list: TrainBatch[], lossScale: number, e: EarlyTied, signal?: AbortSignal): void {
    const last = route.length - 1
    const v = route[last]
    const peer = `${hex(v.peer)}/${v.start}-${v.end}`
    if (peer !== e.peer) e.ok = false
    if (!e.ok) return
    if (this.headInputDeclined.has(peer)) {
      e.ok = false
      return
    }
    const mb = base.microBatch!
    const step = base.step!
    const answer = this.send(route, last, emptyRequest({ ...base, kind: Kind.HEAD_INPUT, hop: last, hidden: new Uint8Array(0) }), signal).catch(() => undefined)
    e.chain = e.chain.then(async () => {
      const r = await answer
      if (!e.ok) return
      if (r?.error === PipelineRequestError.name) this.headInputDeclined.add(peer)
      if (r == null || r.error !== '' || !r.replica || r.headInputs.length !== 1 || r.headMicroBatches.length !== 1 || r.headMicroBatches[0] !== mb || e.ids.includes(mb)) {
        e.ok = false
        return
      }
      if (e.norm == null) {
        e.norm = r.headNorm
        const norm = decodeNamed(r.headNorm, 'final_norm.weight', stage.config.dModel, this.maxMessageSize)
        e.head = this.shadowHead(stage, step, norm)
      } else if (!equalBytes(e.norm, r.headNorm)) {
        e.ok = false
        return
      }
      e.work = (async () => {
        const t0 = performance.now()
        await this.recomputeOne(stage, await e.head!, r.headInputs[0], 0, mb, list[mb], lossScale)
        e.ids.push(mb)
        this.log('step %d micro-batch %d: head input recomputed in %d ms', step, mb, Math.round(performance.now() - t0))
      })().catch(err => {
        this.log('step %d: early recompute of micro-batch %d dropped: %e', step, mb, err)
        e.ok = false
      })
      await e.work
    }).catch(() => { e.ok = false })
  }

  async syncTied (options: AbortOptions = {}): Promise<void> {
    for (const stage of this.own) {
      const owner = this.owners.get(stage)
      if (owner == null || stage.embed == null) continue
      const c = stage.config
      const n = c.vocabSize * c.dModel
      const parts: Float32Array[] = []
      for (const tiedPart of [0, 1, 2]) {
        const res = await this.send(owner.at.route, owner.at.hop, emptyRequest({ kind: Kind.GET_TIED, session: this.runId, step: owner.step, route: owner.at.route, hop: owner.at.hop, tiedPart }), options.signal)
        if (res.error !== '') throw errorFromResponse(res)
        if (!res.tiedOwner) throw new TiedOwnerLostError('GET_TIED answered without tied_owner')
        parts.push(decodeNamed(res.tied, 'embed.weight', n, this.maxMessageSize, { copy: true }))
      }
      const [w, m, v] = parts
      const hash = createHash('sha256').update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength)).digest()
      if (!Buffer.from(owner.hash).equals(hash)) throw new PipelineRequestError('GET_TIED: the matrix is not the one the owner\'s last STEP hashed')
      for (let i = 0; i < n; i++) if (v[i] < 0) throw new InvalidActivationError(`GET_TIED: negative second moment at ${i}`)
      await stage.embed.setParameters(new Map([['embed.weight', w]]), { partial: true })
      await stage.embed.setOptimizerState({ m: new Map([['embed.weight', m]]), v: new Map([['embed.weight', v]]) })
      owner.saved.clear()
      owner.synced = owner.step
    }
  }

  async releaseTied (): Promise<void> {
    for (const stage of this.own) {
      const owner = this.owners.get(stage)
      if (owner == null) continue
      this.owners.delete(stage)
      await this.putBack(stage, owner)
    }
  }

  /** (1.8.0) The rows a Driver's copy took from the owner since the offer or the last sync, put back: the matrix of then */
  private async putBack (stage: PipelineStage, owner: TiedOwner): Promise<void> {
    const d = stage.config.dModel
    const saved = [...owner.saved.entries()].sort((a, b) => a[0] - b[0])
    owner.saved.clear()
    if (saved.length === 0) return
    const data = new Float32Array(saved.length * d)
    saved.forEach(([, row], k) => data.set(row, k * d))
    await stage.embed!.setParameterRows('embed.weight', saved.map(([id]) => id), data)
  }

  async trainStep (batches: TrainBatch | TrainBatch[], options: TrainStepOptions = {}): Promise<TrainStepResult> {
    const { stage, router } = this.need()
    const list = Array.isArray(batches) ? batches : [batches]
    if (list.length === 0 || list.length > this.maxMicroBatches) throw new InvalidParametersError(`1 to ${this.maxMicroBatches} micro-batches per step, got ${list.length}`)
    const config = stage.config
    for (const b of list) {
      if (!(Number.isSafeInteger(b.batch) && Number.isSafeInteger(b.seq) && b.batch >= 1 && b.seq >= 1 && b.seq <= config.maxSeqLen && b.batch <= this.maxBatch)) {
        throw new InvalidParametersError(`batch ${b.batch} × seq ${b.seq} outside [1, ${this.maxBatch}] × [1, ${config.maxSeqLen}]`)
      }
      if (!(b.inputIds instanceof BigInt64Array) || !(b.targets instanceof BigInt64Array)) throw new InvalidParametersError('inputIds and targets must be BigInt64Arrays')
      if (b.inputIds.length !== b.batch * b.seq || b.targets.length !== b.batch * b.seq) throw new InvalidParametersError('inputIds and targets must hold batch × seq ids')
    }
    // ids the Validator or the Driver's own embedding would refuse, refused here before anything is sent (the targets
    // go out first, to the Validator)
    const vocab = BigInt(config.vocabSize)
    for (const [mb, b] of list.entries()) {
      for (const [name, ids] of [['inputIds', b.inputIds], ['targets', b.targets]] as const) {
        for (let i = 0; i < ids.length; i++) {
          if (ids[i] < 0n || ids[i] >= vocab) throw new TokenIdOutOfRangeError(name, `micro-batch ${mb}: ${name}[${i}] = ${ids[i]} outside [0, ${config.vocabSize})`)
        }
      }
    }
    const compress = options.compress ?? this.compress
    const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES
    const signal = options.signal
    const step = stage.embed!.stepCount
    const t0 = performance.now()
    // a micro-batch's activation is batch × seq × d: deflate when it is not tiny (the same rule as inference)
    const deflateOn = options.deflate ?? this.deflate
    const deflateFor = (b: TrainBatch): boolean => compress && deflateOn && b.batch * b.seq * config.dModel >= DEFLATE_MIN_BYTES
    const session = this.runId
    const lossScale = 1 / list.length
    // (1.7.0) the head's tied gradient recomputed from HEAD_INPUT answers while the Workers run their backward; a
    // previous step's that did not finish is dropped first
    const previous = this.earlyTied.get(stage)
    this.earlyTied.delete(stage)
    if (previous != null) {
      previous.ok = false
      await previous.work
    }
    // (1.8.0) the Validator owns the tied matrix: no recompute, rows fetched with TARGETS, ours sent at TAKE_TIED
    const owner = config.tieEmbeddings && stage.head == null ? this.owners.get(stage) : undefined
    const lost = async (why: string): Promise<never> => {
      this.owners.delete(stage)
      // back to the matrix of the offer (or the last sync) with its moments: one consistent copy, which the next step
      // (the 1.7.0 way) re-seeds a Validator with (SET_TIED)
      const synced = owner!.synced
      await this.putBack(stage, owner!).catch(() => {})
      throw new TiedOwnerLostError(`step ${step}: ${why}; the tied matrix's steps since the last syncTied() are lost (this node's copy is back at the matrix of step count ${synced})`)
    }
    /** Rows of the owner's matrix this step's embedding already took */
    const fetched = new Set<number>()
    // (1.8.0) the retry of a step whose TAKE_TIED lost the owner: the H it answered (not recomputed again, not taken twice)
    let carried: { step: number, peer: string, g: Float32Array } | undefined = this.lostTied.get(stage)
    this.lostTied.delete(stage)
    if (carried?.step !== step || owner != null) carried = undefined
    const earlyOn = config.tieEmbeddings && stage.head == null && this.tiedReplica && this.tiedRecompute && owner == null && carried == null
    let early: EarlyTied | undefined
    const participants = new Map<string, { route: Request['route'], hop: number }>()
    const losses: number[] = []
    let retries = 0
    for (let mb = 0; mb < list.length; mb++) {
      const b = list[mb]
      const ids = int64(b.inputIds, [b.batch, b.seq])
      for (let attempt = 0; ; attempt++) {
        if (signal?.aborted === true) throw new AbortError('training step aborted')
        const route = await this.route(stage, router, 'training', signal)
        const last = route.length - 1
        const deflate = deflateFor(b)
        const base = { session, step, microBatch: mb, route, compress, deflate }
        let need: number[] = []
        if (owner != null) {
          const v = route[last]
          if (`${hex(v.peer)}/${v.start}-${v.end}` !== owner.peer) return await lost(`the route's Validator is not the one that owns the tied matrix`)
          need = distinctIds([b], fetched)
        }
        const fetch = owner != null ? { tiedOwner: true, tiedIds: need.length > 0 ? idsFrame(need) : new Uint8Array(0) } : {}
        let res = await this.send(route, last, emptyRequest({ ...base, kind: Kind.TARGETS, hop: last, targets: encodeIds(b.targets, [b.batch, b.seq], deflate), ...fetch }), signal)
        let h0: TensorData | undefined
        let h: TensorData | undefined
        if (res.error === '' && owner != null) {
          if (!res.tiedOwner) return await lost('the Validator no longer owns the tied matrix (TARGETS answered without tied_owner)')
          if (need.length > 0) {
            // the owner's current rows of this micro-batch's ids, into this node's embedding before its lookup
            const rows = decodeNamed(res.tied, 'embed.weight', need.length * config.dModel, this.maxMessageSize)
            // the rows of the synced matrix these overwrite, first time only (put back if the owner is lost)
            const first = need.filter(id => !owner.saved.has(id))
            if (first.length > 0) {
              const old = await stage.embed!.getParameterRows('embed.weight', first)
              first.forEach((id, k) => owner.saved.set(id, old.slice(k * config.dModel, (k + 1) * config.dModel)))
            }
            await stage.embed!.setParameterRows('embed.weight', need, rows)
            for (const id of need) fetched.add(id)
          }
        }
        if (res.error === '') {
          h0 = (await stage.embed!.forward({ input_ids: ids })).hidden
          h = stage.blocks != null ? (await stage.blocks.forward({ hidden_in: h0 })).hidden_out : h0
          // (not when the Driver will recompute the tied gradient: the Validator need not encode it)
          const lastMicroBatch = mb === list.length - 1 && config.tieEmbeddings && stage.head == null && !(this.tiedReplica && this.tiedRecompute) && owner == null
          const forward = this.send(route, 1, emptyRequest({ ...base, kind: Kind.TRAIN_FORWARD, hop: 1, hidden: encodeActivation(h, compress, deflate), lossScale, lastMicroBatch }), signal)
          if (earlyOn && attempt === 0) this.askHeadInput(stage, route, base, list, lossScale, early ??= this.newEarlyTied(stage, route), signal)
          res = await forward
        }
        if (res.error === HopFailedError.name) {
          const err = this.failover(router, route, res)
          if (attempt >= maxRetries) throw err
          retries++
          continue // re-send the same micro-batch id: hops that already accumulated it answer from their record
        }
        if (res.error !== '') throw errorFromResponse(res)
        this.log('step %d micro-batch %d: gradient back after %d ms of the step', step, mb, Math.round(performance.now() - t0))
        let g = decodeActivation(res.grad, this.limits(stage, compress, 'grad', deflateFor(b)))
        if (stage.blocks != null) g = (await stage.blocks.backward({ hidden_in: h0!, grad_hidden_out: g })).grad_hidden_in
        await stage.embed!.backward({ input_ids: ids, grad_hidden: g })
        losses.push(res.loss)
        this.log('step %d micro-batch %d: forward/backward done, loss %f', step, mb, res.loss)
        for (let i = 1; i < route.length; i++) participants.set(`${hex(route[i].peer)}/${route[i].start}-${route[i].end}`, { route, hop: i })
        break
      }
    }
    const tMicro = performance.now()
    // the step: tied gradients to their owner, global norm over every participant (each parameter once), AdamW everywhere
    let hops = [...participants.values()]
    const control = async (kind: Kind, p: { route: Request['route'], hop: number }, extra: Partial<Request> = {}): Promise<Response> => {
      const res = await this.send(p.route, p.hop, emptyRequest({ kind, session, step, route: p.route, hop: p.hop, ...extra }), signal)
      if (res.error !== '') throw errorFromResponse(res)
      return res
    }
    const validators = hops.filter(p => p.hop === p.route.length - 1)
    const tied = config.tieEmbeddings && stage.head == null
    // a Validator replica of the tied matrix needs the whole summed gradient: one Validator took part
    const declinedKey = (p: typeof hops[number]): string => `${hex(p.route[p.hop].peer)}/${p.route[p.hop].start}-${p.route[p.hop].end}`
    const offer = tied && this.tiedReplica && validators.length === 1 && !this.tiedDeclined.has(declinedKey(validators[0]))
    const replicas = new Set<typeof hops[number]>()
    let rows: Awaited<ReturnType<typeof embeddingRows>> | undefined
    // a participant that cannot be reached now took its gradients with it: report it and leave it out of the step
    let sq = 0
    const alive = new Set<typeof hops[number]>()
    const gradNormOf = async (p: typeof hops[number]): Promise<void> => {
      const res = await this.send(p.route, p.hop, emptyRequest({ kind: Kind.GRAD_NORM, session, step, route: p.route, hop: p.hop }), signal)
      if (res.error === HopFailedError.name) {
        this.failover(router, p.route, { ...res, failedHop: p.hop })
        return
      }
      if (res.error !== '') throw errorFromResponse(res)
      sq += res.normSq
      alive.add(p)
    }
    // the other hops' norms while the tied gradient travels (a Validator's norm only after its tied gradient is taken)
    const others = Promise.all(hops.filter(p => !tied || !validators.includes(p)).map(gradNormOf))
    // awaited below, after local work that can throw first (executors closed by a stop): never left unhandled
    others.catch(() => {})
    /** (1.8.0) Σ g² of the tied matrix's summed gradient, from its owner */
    let tiedNormSq: number | undefined
    if (tied && owner != null) {
      const v = validators[0]
      if (validators.length !== 1 || declinedKey(v) !== owner.peer) return await lost('another Validator took part in the step')
      // our rows of E go to the owner, which adds them to the head's H (as this node's accumulator did before 1.8.0)
      rows = await embeddingRows(stage.embed!, list, config.dModel)
      const res = await control(Kind.TAKE_TIED, v, { tiedReplica: true, tiedOwner: true, tied: rows.data, tiedIds: rows.ids })
      if (!(res.tiedOwner && res.replica && res.tied.length === 0 && res.headInputs.length === 0)) {
        // answered as rules 1-6 (`tied`: the head's H, taken from it): kept for the retry of this step, which the hops
        // answer from their records (the head accumulates nothing again)
        if (!res.tiedOwner && res.tied.length > 0) {
          this.lostTied.set(stage, { step, peer: owner.peer, g: decodeNamed(res.tied, 'embed.weight', config.vocabSize * config.dModel, this.maxMessageSize, { copy: true }) })
        }
        return await lost('the Validator no longer owns the tied matrix (TAKE_TIED)')
      }
      if (!(Number.isFinite(res.tiedNormSq) && res.tiedNormSq >= 0)) throw new PipelineRequestError(`tied_norm_sq ${res.tiedNormSq} is not a finite number >= 0`)
      tiedNormSq = res.tiedNormSq
      replicas.add(v)
      this.log('step %d: tied rows to the owner, norm² %f', step, tiedNormSq)
    } else if (tied) {
      for (const v of validators) {
        const t0 = performance.now()
        // (1.7.0) the micro-batches already recomputed from HEAD_INPUT answers; anything else drops that work
        let recomputed: number[] = []
        if (early != null) {
          if (early.ok && offer && early.peer === declinedKey(v)) await early.chain
          if (early.ok && offer && early.peer === declinedKey(v)) recomputed = early.ids
          else {
            early.ok = false
            await early.work
          }
        }
        const res = await control(Kind.TAKE_TIED, v, { tiedReplica: offer, tiedRecompute: offer && this.tiedRecompute && carried == null, recomputed })
        this.log('step %d: TAKE_TIED answered in %d ms (%d bytes, replica %s)', step, Math.round(performance.now() - t0), res.tied.length + res.headInputs.reduce((a, b) => a + b.length, 0), res.replica)
        if (offer && res.replica) {
          replicas.add(v)
          // the rows of the Driver's own embedding gradient, before the head's is added (the replica adds them to the
          // head's); one Validator when offered. Only those rows leave the worker
          rows = await embeddingRows(stage.embed!, list, config.dModel)
        }
        const complete = res.headInputs.length === 0 && res.headMicroBatches.length > 0
        if (complete) {
          // (1.7.0) H is what this node recomputed: the Validator's head accumulated exactly those micro-batches, in order
          if (!(recomputed.length > 0 && res.replica && res.tied.length === 0 && res.headMicroBatches.length === recomputed.length && res.headMicroBatches.every((x, i) => x === recomputed[i]))) {
            throw new PipelineRequestError(`head_micro_batches [${res.headMicroBatches.join(', ')}] answered without head_inputs, not the ${recomputed.length} recomputed micro-batches with a replica in step`)
          }
          const head = await early!.head!
          try {
            const g = (await head.takeTiedGradients()).get('embed.weight')
            if (g == null) throw new PipelineRequestError('the recomputed head took no tied gradient')
            this.log('step %d: tied gradient recomputed during the micro-batches (%d)', step, recomputed.length)
            await stage.embed!.addGradients(new Map([['embed.weight', g]]), { transfer: true })
          } finally {
            await head.zeroGradients()
          }
        } else if (early != null && recomputed.length > 0) {
          // the Validator answered another way: the early work is not used
          early.ok = false
          await early.work
        }
        if (complete) {
          // done above
        } else if (res.headInputs.length > 0) {
          if (!(offer && this.tiedRecompute && res.replica && res.tied.length === 0)) throw new PipelineRequestError('head_inputs answered without tied_recompute and a replica in step')
          const t1 = performance.now()
          const g = await this.recomputeTied(stage, res, list, lossScale, step)
          this.log('step %d: tied gradient recomputed from %d micro-batches in %d ms', step, res.headInputs.length, Math.round(performance.now() - t1))
          // moved to the embedding's worker, not copied (the recomputed head's accumulator, used for nothing else)
          await stage.embed!.addGradients(new Map([['embed.weight', g]]), { transfer: true })
        } else if (res.tied.length > 0) {
          // a view (no copy), checked for NaN/Inf by addGradients
          const g = decodeNamed(res.tied, 'embed.weight', config.vocabSize * config.dModel, this.maxMessageSize, { copy: false, checkFinite: false })
          await stage.embed!.addGradients(new Map([['embed.weight', g]]))
        }
      }
    }
    if (carried != null && validators.length === 1 && declinedKey(validators[0]) === carried.peer) {
      // (1.8.0) the retry of a step whose TAKE_TIED lost the owner: the H that TAKE_TIED answered, with anything the head
      // accumulated since (answered above): the head's whole H once (after the rows of E were read)
      this.log('step %d: the tied gradient taken before the owner was lost added', step)
      await stage.embed!.addGradients(new Map([['embed.weight', carried.g]]), { transfer: true })
    }
    if (early != null) this.earlyTied.delete(stage)
    this.log('step %d: tied gradients taken', step)
    const tTied = performance.now()
    for (const e of stage.executors) {
      // (not `sq += await …`: that reads sq before the concurrent norms land); (1.8.0) the embedding's one parameter is
      // the tied matrix, whose summed gradient the owner holds
      const own = tiedNormSq != null && e === stage.embed ? tiedNormSq : await e.gradNormSquared()
      sq += own
    }
    await others
    if (tied) await Promise.all(validators.map(gradNormOf))
    hops = hops.filter(p => alive.has(p))
    const gradNorm = Math.sqrt(sq)
    this.log('step %d: global gradient norm %f', step, gradNorm)
    const tNorm = performance.now()
    // the lr and clip scale the embedding's step will use, known before it runs: every hop's STEP (a replica's with
    // them) goes out now and the hops step while this node steps its own
    const planned = stage.embed!.nextStep(gradNorm)
    const o = stage.optimizer ?? {}
    const adamw: TiedAdamW = {
      lr: planned.lr,
      beta1: o.beta1 ?? DEFAULT_BETA1,
      beta2: o.beta2 ?? DEFAULT_BETA2,
      eps: o.eps ?? DEFAULT_EPS,
      weightDecay: o.weightDecay ?? DEFAULT_WEIGHT_DECAY,
      clipScale: planned.clipScale,
      t: step + 1
    }
    const stepped = new Map<typeof hops[number], Uint8Array>()
    // (1.8.0) offer the matrix to a replica in step (an embedding holding the tied matrix alone), or keep it owned
    const offerOwner = this.tiedOwner && offer && stage.embed!.parameterSpecs.length === 1
    const owning = new Set<typeof hops[number]>()
    const remote = Promise.all(hops.map(async p => {
      const extra = !replicas.has(p) ? {} : owner != null ? { tiedOwner: true, tiedAdamw: adamw } : rows != null ? { tied: rows.data, tiedIds: rows.ids, tiedAdamw: adamw, tiedOwner: offerOwner } : {}
      const res = await control(Kind.STEP, p, { gradNorm, ...extra })
      if (res.replica) stepped.set(p, res.tiedHash)
      if (res.replica && res.tiedOwner) owning.add(p)
    }))
    // awaited below, after the local steps (which can throw first): never left unhandled
    remote.catch(() => {})
    let result = { lr: 0, clipScale: 1 }
    for (const e of stage.executors) {
      // (1.8.0) the owner steps the tied matrix; this node's copy stays as it is (its rows are fetched when looked up)
      result = await e.step({ gradNorm, ...(owner != null && e === stage.embed ? { skip: ['embed.weight'] } : {}) })
      // (the same numbers by construction; were they not, the replica's hash would differ and it would be re-seeded)
      if (e === stage.embed && (result.lr !== planned.lr || result.clipScale !== planned.clipScale)) this.log.error('step %d: the embedding stepped with lr %f, clip %f; the replicas were sent %f, %f', step, result.lr, result.clipScale, planned.lr, planned.clipScale)
    }
    // the Driver's stepped matrix: its hash (computed in the embedding's worker) checks a replica's, and the matrix is
    // what SET_TIED sends and the Driver's copy of the head takes
    const mineHash = tied && owner == null ? stage.embed!.parameterHash('embed.weight') : undefined
    const mine = tied && owner == null ? stage.embed!.getParameters().then(p => p.get('embed.weight')!) : undefined
    mineHash?.catch(() => {})
    mine?.catch(() => {})
    await remote
    /** The step's result, its step phase ending at `tStep` and `sync` ms after it */
    const outcome = (tStep: number, sync: number): TrainStepResult => ({
      step,
      loss: losses.reduce((a, b) => a + b, 0) / losses.length,
      losses,
      gradNorm,
      lr: result.lr,
      clipScale: result.clipScale,
      retries,
      participants: hops.map(p => ({ peer: peerFromBytes(p.route[p.hop].peer), start: p.route[p.hop].start, end: p.route[p.hop].end })),
      ms: { microBatches: tMicro - t0, tied: tTied - tMicro, norm: tNorm - tTied, step: tStep - tNorm, sync }
    })
    if (owner != null) {
      const v = [...replicas][0]
      const hash = stepped.get(v)
      if (hash == null || !owning.has(v)) return await lost('the Validator did not step the tied matrix it owned (STEP)')
      owner.hash = hash
      owner.step = step + 1
      owner.at = v
      this.log('step %d: stepped (the tied matrix by its owner)', step)
      return outcome(performance.now(), 0)
    }
    let w: Float32Array | undefined
    if (stepped.size > 0) {
      // a replica whose matrix is not the Driver's (weights set on either side between steps, e.g. by an outer
      // optimizer) is re-seeded below
      const want = Buffer.from(await mineHash!)
      for (const [p, hash] of stepped) if (!want.equals(hash)) stepped.delete(p)
      w = await mine!
      // (1.8.0) a replica in step that took the matrix owns it from the next step
      for (const p of stepped.keys()) {
        if (offerOwner && owning.has(p)) this.owners.set(stage, { peer: declinedKey(p), at: p, hash: stepped.get(p)!, step: step + 1, saved: new Map(), synced: step + 1 })
      }
    }
    this.log('step %d: stepped (%d tied replicas in step)', step, stepped.size)
    const tStep = performance.now()
    const behind = validators.filter(v => alive.has(v) && !stepped.has(v))
    await mine?.catch(() => {})
    if (tied && behind.length > 0) {
      // the stepped matrix itself, and (one Validator) its moments to seed the replica for the next steps
      w ??= await mine!
      const shape = [config.vocabSize, config.dModel]
      const parts: Array<Partial<Request>> = [{ tied: encodeNamed('embed.weight', w, shape) }]
      if (offer) {
        // one message each: a vocab × d matrix is near the message cap on its own
        const state = await stage.embed!.getOptimizerState()
        parts.push({ tiedM: encodeNamed('embed.weight', state.m.get('embed.weight')!, shape) })
        parts.push({ tiedV: encodeNamed('embed.weight', state.v.get('embed.weight')!, shape) })
      }
      await Promise.all(behind.map(async v => {
        let res: Response | undefined
        for (const part of parts) res = await control(Kind.SET_TIED, v, part)
        if (offer && res?.replica !== true) this.tiedDeclined.add(declinedKey(v))
      }))
    }
    // the Driver's copy of the head takes the matrix the replica now holds, off the next step's critical path
    const shadow = this.shadowHeads.get(stage)
    if (shadow != null && w != null) {
      const matrix = w
      // (moved, not copied: `w` is this step's own copy of the matrix, not used after this)
      const set = shadow.then(async h => { await h.setParameters(new Map([['embed.weight', matrix]]), { partial: true, transfer: true }) }).then(() => true, () => false)
      this.shadowMatrix.set(stage, { step: step + 1, set })
    }
    return outcome(tStep, performance.now() - tStep)
  }
}
