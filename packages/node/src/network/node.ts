/**
 * A NeuroShard node on the network: one libp2p host running the layer pool (which slots this node
 * holds), the swarm router and the pipeline (inference and training across nodes) and one DiLoCo
 * replica group per held slot (the outer step that keeps the replicas of a slot equal).
 *
 * How training runs:
 * - every node holding slot 0 is a Driver; the Drivers pair up with Workers and Validators into disjoint
 *   training chains (`trainingChains`, the same on every node from the same layer records);
 * - a Driver runs H pipeline steps per round on its own data shards (genesis-data's assignment for its
 *   peer id and round); every stage of its chain steps in lockstep (the pipeline checks step numbers);
 * - when a stage has taken H steps in the round it contributes each of its slots' pseudo-gradient to the
 *   slot's DiLoCo group and refuses training until the round is applied; the new base weights go into
 *   its executors and its layer record (so a newcomer loads the trained weights);
 * - a stage's optimizer step counter is `round × H` at the start of every round; a stage that missed a
 *   round (its chain broke, a Worker was killed) is rebuilt at that count from the group's base weights.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { logger } from '@libp2p/logger'
import { DefaultDiLoCo } from '@neuroshard/diloco'
import { batches, assignShards } from '@neuroshard/genesis-data'
import { createNeuroShardHost } from '@neuroshard/host'
import { InvalidParametersError } from '@neuroshard/interface'
import { describeSpan, fetchSpanWeights, layerPool, layerPoolRecordValidator, slotCount, slotParameters, slotWeightsStep } from '@neuroshard/layer-pool'
import { createPipelineStage, DEFAULT_MAX_NEW_TOKENS, generateRemote, HopFailedError, ngramDrafter, NoRouteError, pipeline } from '@neuroshard/pipeline'
import { swarmRouter } from '@neuroshard/swarm-router'
import { TypedEventEmitter } from 'main-event'
import { createLocalBackend } from '../api/local-backend.js'
import { networkCompletionSource } from '../api/network-source.js'
import { TrainingRecorder } from '../api/training-recorder.js'
import { contiguousRuns, relayDriver, slotTrainers, trainingChains, trainingPeers, trainingSpans } from './chains.js'
import { NodePonw } from '../ponw/node-ponw.js'
import { RoundServing, ServingSnapshot } from './round-snapshot.js'
import { StageRecorder } from '../ponw/stage-work.js'
import type { NodePonwInit, SlotContribution } from '../ponw/node-ponw.js'
import type { TrainingChain } from './chains.js'
import type { PeerId } from '@libp2p/interface'
import type { DiLoCo, DiLoCoInit, RoundOutcome } from '@neuroshard/diloco'
import type { GenesisManifest, TokenArray } from '@neuroshard/genesis-data'
import type { NeuroShardHost, NeuroShardHostOptions } from '@neuroshard/host'
import type { LayerPool, LayerPoolInit, PoolEntry } from '@neuroshard/layer-pool'
import type { ModelConfig } from '@neuroshard/model'
import type { LedgerSource } from '../api/local-backend.js'
import type { NodeBackend } from '../api/backend.js'
import type { GeneratedToken, GenerateOptions, Pipeline, PipelineInit, PipelineRouter, PipelineStage, PipelineTokenizer, RecoveryTiming, RouteHop, TrainBatch } from '@neuroshard/pipeline'
import type { AdamWOptions } from '@neuroshard/runtime'
import type { SwarmRouter } from '@neuroshard/swarm-router'

/** Inner steps per DiLoCo round @default 20 */
export const DEFAULT_INNER_STEPS = 20
/** Sequences per training micro-batch @default 8 */
export const DEFAULT_NODE_BATCH_SIZE = 8
/** Tokens per training sequence @default 64 */
export const DEFAULT_NODE_SEQ_LEN = 64
/** Data shards a Driver trains on per round @default 2 */
export const DEFAULT_SHARDS_PER_ROUND = 2
/**
 * How long a validation waits for every slot's weights at the round it measures (a slot's holders still behind it),
 * and then for the served model's weights, ms @default 60 s
 */
export const DEFAULT_VALIDATION_WAIT_MS = 60_000
/**
 * Widest model whose serving stages run on the node's thread by default: a decode step of dModel 256 is well under
 * a millisecond, less than the two thread hand-offs a worker costs per call on a loaded machine
 */
const IN_THREAD_MAX_D_MODEL = 256
/**
 * Nice value of a training node's training executors' worker threads (and of its re-executions of other nodes'
 * training proofs) by default (`NetworkNodeInit.trainingNiceness`): weight 110 against 1024 for a nice-0 thread, so
 * the node's serving and networking (and any other node's, in the same process or session) run first
 */
export const DEFAULT_TRAINING_NICENESS = 10
/**
 * (serveRoundWeights) Longest a round's serving snapshot waits to be built while this node serves inference, ms. The
 * build (inference graph + onnxruntime session; on the node's thread for an in-thread snapshot, 15-160 ms measured on
 * a loaded 2-core machine) blocks the event loop, so a generation this node serves would wait for it: a Driver's own
 * stage, or a hop answering a failover's replay. Held until the node serves nothing, so the served weights lag the
 * round by at most this much more
 */
export const SERVING_SWAP_DEFER_MAX_MS = 2_000
/** (yieldTraining) Longest a Driver holds its training for inference at a time, ms */
export const YIELD_TRAINING_MAX_MS = 2_000
/** (yieldTraining) How often a held Driver looks whether the inference ended, ms */
const YIELD_POLL_MS = 10
/** How often stages are checked for a finished inner loop, ms */
const CONTRIBUTE_POLL_MS = 100
/**
 * How long a Driver's completion waits for a chain when none covers the model (a killed Worker's span being re-taken,
 * its only replica briefly banned) before it fails with NoRouteError, ms @default 30 s
 */
export const DEFAULT_ROUTE_WAIT_MS = 30_000
/** How often a completion waiting for a chain asks the router again, ms */
const ROUTE_POLL_MS = 200
/** Errors after which a completion goes on through another chain or Driver (NetworkNode.generate) */
const RETRY_ELSEWHERE = new Set(['NoRouteError', 'RuntimeClosedError', 'InvalidRouteError', 'HopFailedError'])

/** Socket errors of a dial to a peer that is gone (its process killed, its address dead) */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE'])

/** Whether `err` (or one it wraps: libp2p's dial errors aggregate the addresses' errors) says the peer cannot be reached */
function unreachable (err: any, depth = 0): boolean {
  if (err == null || depth > 3) return false
  if (UNREACHABLE_CODES.has(err.code)) return true
  if (err.name === 'DialError' || err.name === 'NoValidAddressesError') return true
  if (Array.isArray(err.errors)) return err.errors.some((e: unknown) => unreachable(e, depth + 1))
  return unreachable(err.cause, depth + 1)
}
const MAX_GENERATE_ATTEMPTS = 3

const log = logger('neuroshard:node:network')
/** The generation whose code runs (timedFailovers tells its failovers from training's) */
const generationContext = new AsyncLocalStorage<object>()

/** The training data of a Driver: the genesis dataset */
export interface NodeData {
  manifest: Pick<GenesisManifest, 'shards'>
  /** Train shards' tokens, in manifest order of the train split */
  train: readonly TokenArray[]
  /** Validation shards' tokens (for the validation loss) */
  validation?: readonly TokenArray[]
}

export interface NetworkNodeInit {
  /** The network's model: every node must pass the same */
  config: ModelConfig
  /** Network / model name (layer-pool topic, DiLoCo groups) @default 'devnet' */
  modelId?: string
  /** Genesis init seed @default 0 */
  initSeed?: number
  /** Memory this node offers for spans, bytes */
  memoryBytes: number
  /** Train (true) or only serve inference (false) @default true */
  training?: boolean
  /**
   * Serve inference with quantized weights (`training: false` only): the layer record says so and inference
   * chains that accept the format route through it @default 'fp32'
   */
  quantization?: 'fp32' | 'int8' | 'int4'
  /**
   * A quantized node's values per quantization group, 32, 64 or 128: its stages are built with it and its layer
   * record declares it (`quant_block_size`, layer-pool 1.7.0) @default 32
   */
  quantBlockSize?: 32 | 64 | 128
  /** Text ↔ ids (the dataset's BPE tokenizer); must match `config.vocabSize` */
  tokenizer?: PipelineTokenizer & { readonly eosId?: number }
  /** The genesis data; a Driver without it serves inference but does not train */
  data?: NodeData
  /** Inner steps per round (H) @default 20 */
  innerSteps?: number
  /** @default 8 */
  batchSize?: number
  /** @default 64 (at most the model's maxSeqLen) */
  seqLen?: number
  /** AdamW of the inner steps (lr, schedule, …) */
  optimizer?: AdamWOptions
  /**
   * DiLoCo settings of every slot group (span, group and the replica set are set by the node: a slot's group is
   * the layer pool's training holders of the slot, `slotReplicas`)
   */
  diloco?: Omit<DiLoCoInit, 'span' | 'group' | 'modelId' | 'replicas'>
  /** Extra layer-pool settings (modelId, config, memory and training are set by the node) */
  layerPool?: Omit<LayerPoolInit, 'modelId' | 'config' | 'memoryBytes' | 'training' | 'initSeed'>
  /** Host settings (listen addresses, bootstrap, identity, swarm key, …) */
  host?: Omit<NeuroShardHostOptions, 'services' | 'recordValidators'>
  /** onnxruntime intra-op threads per executor @default 1 */
  threads?: number
  /** Execution provider of the stages (`cuda` falls back to CPU with a warning) @default 'cpu' */
  device?: 'cpu' | 'cuda'
  /**
   * Run the stages' onnxruntime sessions on the node's own thread instead of a worker thread per executor (see
   * runtime's `inThread`): a token then costs no thread hand-offs, but each run blocks the event loop while it
   * computes. @default true for a serving-only node (`training: false`) of a model with dModel ≤ 256, else false
   */
  inThread?: boolean
  /**
   * Build a serving span's embedding + blocks, or blocks + head, as one onnxruntime session (pipeline's
   * `fuseInference`): one run per token on this node instead of two; the blocks' runtime keeps a copy of the embedding
   * / head weights. Serving-only nodes (`training: false`), float32. @default true for a model with dModel ≤ 256
   */
  fuseInference?: boolean
  /**
   * Serving-only float32 nodes (`training: false`): the blocks' and head's inference sessions with the weights baked
   * in (pipeline's `bakeWeights`: prepacked by onnxruntime, which then uses a second intra-op thread well — give
   * `threads: 2`; `bootstrap` decoded at 0.94–1.01× a native llama.cpp F32 that way, packages/gguf README). The
   * float32 weights stay resident too, so every span costs twice its weights: the layer pool is offered half of
   * `memoryBytes`. Takes the place of `fuseInference` unless that is set to true (a fused session is not baked).
   * @default false
   */
  bakeWeights?: boolean
  /**
   * A training node serves inference from the base weights of its spans' last finished DiLoCo round, not from its
   * training executors (whose weights change every inner step and differ between the replicas of a span until the round
   * ends): inference-only executors with those weights baked in (prepacked by onnxruntime; a span's embedding + blocks,
   * or blocks + head, one session, as a serving node's fused stage), rebuilt in the background after each round the
   * span's slots all finished, swapped in atomically; a generation's KV session on this node stays on the weights it
   * began with (its old snapshot closed when the last such session ends). Costs one more copy of the span's weights
   * (onnxruntime's prepacked one) per node, two for a few seconds after a round while a generation is still running on
   * the old one; the layer pool is not offered less memory for it. (`round-snapshot.ts`.) No effect on a serving-only
   * node. @default true
   */
  serveRoundWeights?: boolean
  /**
   * A Driver holds its training while this node serves inference (a generation on its stages, or a pipeline KV session of
   * one as a hop), for at most `YIELD_TRAINING_MAX_MS` at a time (then one step runs, so steady traffic slows its chain's
   * training instead of stopping it and stalling the round for the other replicas). Only this node's own chain yields:
   * other chains, and the hops of this chain serving other Drivers' generations, train on. With PoNW, each re-executed
   * step of another node's training proof this node verifies waits the same way (`yieldToInference`). @default false
   */
  yieldTraining?: boolean
  /**
   * Linux: the nice value (0–19) of the worker threads of this node's training executors and of its re-executions of
   * other nodes' training proofs (PoNW), and of the onnxruntime threads they start (runtime's `niceness`; nice is per
   * thread there). The node's own thread (its event loop: routing, its serving snapshots in-thread, the ledger) and
   * its serving executors keep the process's priority, so serving preempts training instead of sharing the cores
   * with it, while a machine that serves nothing still trains at full speed. 0: the process's priority. Elsewhere
   * ignored. @default DEFAULT_TRAINING_NICENESS (10)
   */
  trainingNiceness?: number
  /**
   * Greedy completions (temperature 0) on this Driver use the pipeline's speculative decoding with an n-gram drafter
   * (prompt lookup): the same tokens, several per pipeline round trip when the text repeats itself @default true
   */
  draftGreedy?: boolean
  /**
   * How long a completion on this Driver waits for a chain when the router has none (NoRouteError), ms; 0 fails at
   * once @default DEFAULT_ROUTE_WAIT_MS (30 s)
   */
  routeWaitMs?: number
  /**
   * Mirror each session's tokens to its hops' standbys (pipeline spec §4.2), so a failed hop is replaced without a
   * replay; costs every standby the hop's compute @default false
   */
  mirrorStandbys?: boolean
  /**
   * Tied embeddings (a model with `tieEmbeddings`): the pipeline's owned tied matrix (pipeline `tiedOwner`, spec 1.8.0
   * §4.4 rule 7). As a Driver, offer the tied matrix to the Validator of its chain, which then steps it alone (the
   * Driver's tied part of a step 1.32× monolithic instead of 1.53×, pipeline README run Q; the same bits); as a
   * Validator, take the offer. The Driver's copy is then current only at the rows it fetched: the node fetches the
   * whole matrix (`syncTied`) before a generation on its stages and before its round's last inner step, which runs
   * the 1.7.0 way (the contribution, the validation and the announced weights are then the trained matrix), and it
   * releases the owner before a round's weights are set. A lost owner (another Validator in the chain, one that
   * dropped its replica) costs the matrix's steps since the last sync; the step is retried the 1.7.0 way.
   * No effect on an untied model. @default true
   */
  tiedOwner?: boolean
  /** Validation loss of the network's model after every `evalEvery` rounds (Drivers; 0: never) @default 1 */
  evalEvery?: number
  /**
   * Validation batches per evaluation (the first of the validation split, batch size × sequence length each; 0: every
   * batch of the split) @default 4
   */
  evalBatches?: number
  /** Where training progress is recorded (the API reads it) @default a new recorder */
  recorder?: TrainingRecorder
  /**
   * Proof of Neural Work: the ledger (genesis, this node's wallet, its database directory), uptime proofs
   * and training proofs for accepted rounds, re-execution of others' proofs when the wallet is a validator
   */
  ponw?: Pick<NodePonwInit, 'genesis' | 'wallet' | 'path' | 'uptime' | 'trainingProofs' | 'now' | 'data' | 'yieldTo'>
}

export interface RoundDetail {
  slot: number
  round: number
  /** Did this node's pseudo-gradient count */
  included: boolean
}

export interface NetworkNodeEvents {
  /** A span of this node serves through the pipeline */
  'node:stage': CustomEvent<{ start: number, end: number }>
  /** (serveRoundWeights) A training stage serves inference from a new round's weights */
  'node:serving': CustomEvent<{ start: number, end: number, round: number, buildMs: number }>
  /** A Driver's pipeline step finished */
  'node:step': CustomEvent<{ step: number, loss: number, round: number }>
  /** A slot's DiLoCo round was applied on this node */
  'node:round': CustomEvent<{ slot: number, round: number }>
  /** This node's contribution to a slot's round was settled */
  'node:contributed': CustomEvent<RoundDetail>
  /**
   * A slot's round stalled below half of its group (specs/diloco §6 step 5a, `RoundStalledError`): this node's
   * pseudo-gradient stays in the round, and the stage waits until the round commits (members come back, or the
   * layer pool drops the silent holders) instead of contributing again
   */
  'node:stalled': CustomEvent<{ slot: number, round: number, reason: string }>
  /** A validation loss of the network's model (`slotRounds`: the round of each slot's weights it ran on) */
  'node:validation': CustomEvent<NetworkValidation>
  /**
   * A generation on this Driver went on after a failover: ms from the failure's detection to its next token;
   * `recovery`: the pipeline's phase times of that recovery (`pipeline:recovered`), when it reported them
   */
  'node:failover': CustomEvent<{ ms: number, recovery?: RecoveryTiming }>
  /**
   * Work the node queued in the background failed (building a stage for spans it took, reloading a slot's new
   * weights): `what` names it. The node goes on; the span stays unserved until the next change retries it
   */
  'node:error': CustomEvent<{ what: string, message: string }>
}

/** The weights of the network's model a validation runs on */
export interface NetworkWeights {
  weights: Map<string, Float32Array>
  /** The DiLoCo round of each slot's weights (index: slot) */
  slotRounds: number[]
  /**
   * true: every slot at the round asked for. false: that round was gone (every holder of some slot past it) or not
   * reached in time, and these are the model as the network serves it: each slot's newest weights
   */
  exact: boolean
}

/** A validation loss of the network's model */
export interface NetworkValidation {
  /** The round measured after (this node's lowest slot's round) */
  round: number
  /** the mean of `batchLosses` */
  loss: number
  /** Each validation batch's mean next-token loss, in the order of `validationBatches()` */
  batchLosses: number[]
  /** Tokens the loss was measured on (predicted positions over every batch) */
  tokens: number
  /** The DiLoCo round of each slot's weights the loss was measured on (index: slot) */
  slotRounds: number[]
  /** Every slot at `round` (else the model as served, `slotRounds` says which) */
  exact: boolean
}

type LayerRecordOf = PoolEntry['record']
type Services = { layerPool: LayerPool, swarmRouter: SwarmRouter, pipeline: Pipeline, nodeComponents: { components: any } }
export type NetworkHost = NeuroShardHost & { services: NeuroShardHost['services'] & Services }

interface HeldStage {
  start: number
  end: number
  stage: PipelineStage
  /** records the inner loops for training proofs (with PoNW) */
  recorder?: StageRecorder
  /** (serveRoundWeights) serves inference from the last finished round's weights; `stage` is its stage */
  serving?: RoundServing
  /** (serveRoundWeights) a snapshot build waiting for this node's inference to end (SERVING_SWAP_DEFER_MAX_MS) */
  swapPending?: boolean
}

/**
 * The training router: for training micro-batches the Driver's own chain (from `trainingChains`), for
 * inference the swarm router.
 */
export class NodeRouter implements PipelineRouter {
  pinned?: RouteHop[]
  /** Ends an inference wait early (its NoRouteError thrown at once): another Driver can take the request over */
  giveUp?: () => boolean
  constructor (private readonly inner: () => PipelineRouter, private readonly waitMs: number = DEFAULT_ROUTE_WAIT_MS) {}

  chain (options: Parameters<PipelineRouter['chain']>[0]): RouteHop[] | Promise<RouteHop[]> {
    if (options.purpose === 'training') {
      if (this.pinned == null) throw new InvalidParametersError('no training chain')
      return this.pinned
    }
    try {
      return this.inner().chain(options)
    } catch (err: any) {
      if (err?.name !== NoRouteError.name || !(this.waitMs > 0)) throw err
      return this.waitForChain(options, err)
    }
  }

  /**
   * No chain now (a killed Worker's span not yet re-taken, its only replica banned for a moment after a failure):
   * ask again every ROUTE_POLL_MS until one forms, the request is aborted, or `waitMs` has passed (then the last
   * NoRouteError)
   */
  private async waitForChain (options: Parameters<PipelineRouter['chain']>[0], first: Error): Promise<RouteHop[]> {
    const deadline = Date.now() + this.waitMs
    let last = first
    while (Date.now() < deadline) {
      await sleep(Math.min(ROUTE_POLL_MS, Math.max(0, deadline - Date.now())), options.signal)
      if (options.signal?.aborted === true) break // the request ended: its caller does not wait for this error
      if (this.giveUp?.() === true) break
      try {
        return await this.inner().chain(options)
      } catch (err: any) {
        if (err?.name !== NoRouteError.name) throw err
        last = err
      }
    }
    throw last
  }

  /**
   * The swarm router's standby for each hop of an inference chain: the pipeline warms them (WARM: the standby builds
   * and runs its stage and opens a session stream to its next hop) and keeps a session stream open to hop 1's, so a
   * failover does not open streams or build a sub-span stage on its way. Without this method the pipeline has no
   * standbys (it asks the router for them only when the router has the method).
   */
  standbys (chain: RouteHop[], options?: { tokens?: number }): Array<RouteHop | undefined> | Promise<Array<RouteHop | undefined>> {
    return this.inner().standbys?.(chain, options) ?? []
  }

  reportFailure (peer: PeerId, error?: Error): void { this.inner().reportFailure(peer, error) }
  reportSuccess (peer: PeerId, latencyMs?: number): void { this.inner().reportSuccess?.(peer, latencyMs) }
  acquire (peer: PeerId): () => void { return this.inner().acquire?.(peer) ?? (() => {}) }
}

export class NetworkNode extends TypedEventEmitter<NetworkNodeEvents> {
  readonly config: ModelConfig
  readonly modelId: string
  readonly recorder: TrainingRecorder
  readonly innerSteps: number
  host!: NetworkHost
  private readonly init: NetworkNodeInit
  private readonly slots: number
  private readonly stages = new Map<string, HeldStage>()
  /** Generations through this node's own stages, each settling when it ends: a replaced stage outlives them */
  private readonly generations = new Set<Promise<void>>()
  /** Stages out of service (span released, or rebuilt) waiting for those generations before they are closed */
  private readonly retiring = new Set<PipelineStage>()
  private readonly groups = new Map<number, DiLoCo>()
  private queue: Promise<void> = Promise.resolve()
  private readonly controller = new AbortController()
  private readonly router: NodeRouter
  private contributing = false
  /** slot → the round of its group that stalled with this node's pseudo-gradient in it (not contributed again) */
  private readonly stalledRounds = new Map<number, number>()
  private running = false
  private poll?: ReturnType<typeof setInterval>
  private chainsCache?: { at: number, chains: TrainingChain[] }
  private evalStage?: Promise<PipelineStage>
  private lastEvalRound = -1
  private evaluating = false
  /** validations one at a time: they share the local evaluation stage */
  private evalLock: Promise<unknown> = Promise.resolve()
  private trainingLoop?: Promise<void>
  private readonly detach: Array<() => void> = []
  /** the ledger and proof duties (with `init.ponw`) */
  ponw?: NodePonw
  /** (tiedOwner) the pipeline's training steps, syncs and releases of the owned tied matrix, one at a time */
  private tiedWork: Promise<unknown> = Promise.resolve()
  /** (yieldTraining) Times the Driver loop held a step for inference (one per YIELD_POLL_MS) */
  trainingYields = 0
  /** (serveRoundWeights) Polls a round snapshot's build waited for this node's inference (SERVING_SWAP_DEFER_MAX_MS; one per 10 ms) */
  servingSwapDefers = 0
  /** Whether the Driver holds its training while this node serves inference (`NetworkNodeInit.yieldTraining`; may be changed) */
  yieldTraining: boolean
  /** (trainingNiceness) The nice value of this node's training workers (set when a stage is built) */
  readonly trainingNiceness: number
  /** Speculative rounds of this Driver's generations: draft tokens proposed and accepted (`draftGreedy`) */
  readonly speculation = { rounds: 0, proposed: 0, accepted: 0 }

  constructor (init: NetworkNodeInit) {
    super()
    this.init = init
    this.router = new NodeRouter(() => this.host.services.swarmRouter, init.routeWaitMs ?? DEFAULT_ROUTE_WAIT_MS)
    this.router.giveUp = () => this.relayPeer() != null
    this.config = init.config
    this.modelId = init.modelId ?? 'devnet'
    this.innerSteps = init.innerSteps ?? DEFAULT_INNER_STEPS
    if (!Number.isSafeInteger(this.innerSteps) || this.innerSteps < 1) throw new InvalidParametersError('innerSteps must be an integer >= 1')
    if ((init.quantization ?? 'fp32') !== 'fp32' && (init.training ?? true)) throw new InvalidParametersError('a quantized node serves inference only: pass training: false')
    if (init.bakeWeights === true && (init.training ?? true)) throw new InvalidParametersError('bakeWeights serves inference only: pass training: false')
    if (init.quantBlockSize != null) {
      if (![32, 64, 128].includes(init.quantBlockSize)) throw new InvalidParametersError(`quantBlockSize must be 32, 64 or 128, got ${String(init.quantBlockSize)}`)
      if ((init.quantization ?? 'fp32') === 'fp32' && init.quantBlockSize !== 32) throw new InvalidParametersError('quantBlockSize needs quantization int8 or int4')
    }
    this.slots = slotCount(this.config)
    this.yieldTraining = init.yieldTraining ?? false
    this.trainingNiceness = init.trainingNiceness ?? DEFAULT_TRAINING_NICENESS
    if (!(Number.isSafeInteger(this.trainingNiceness) && this.trainingNiceness >= 0 && this.trainingNiceness <= 19)) throw new InvalidParametersError(`trainingNiceness must be an integer in [0, 19], got ${String(init.trainingNiceness)}`)
    this.recorder = init.recorder ?? new TrainingRecorder({ innerSteps: this.innerSteps })
    this.recorder.setInnerSteps(this.innerSteps)
  }

  get training (): boolean {
    return this.init.training ?? true
  }

  /** Whether this node's pipeline offers / takes the tied matrix's ownership (`tiedOwner`: a training node, tied model) */
  get tiedOwner (): boolean {
    return this.training && this.config.tieEmbeddings && (this.init.tiedOwner ?? true)
  }

  /** (tiedOwner) runs `fn` after the tied-matrix work before it (training steps, syncs, releases) */
  private async tiedSerial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.tiedWork.then(fn)
    this.tiedWork = run.catch(() => {})
    return await run
  }

  /**
   * (tiedOwner) This Driver's copy of the tied matrix made current before it is used for anything but the owned training:
   * the owner's matrix and moments fetched (`syncTied`), and with `release` the owner released (the next step trains the
   * 1.7.0 way and re-seeds the Validator). A sync that fails releases the owner: the copy goes back to the last sync's
   * matrix, the steps since are lost. Nothing to do without an owner.
   */
  private async settleTied (what: string, release: boolean, signal?: AbortSignal): Promise<void> {
    if (!this.tiedOwner) return
    const pipeline = this.host.services.pipeline
    await this.tiedSerial(async () => {
      try {
        await pipeline.syncTied(signal != null ? { signal } : {})
      } catch (err: any) {
        log('tied matrix not synced before %s (%s: %s): the steps since the last sync are lost', what, err.name, err.message)
        await pipeline.releaseTied()
        return
      }
      if (release) await pipeline.releaseTied()
    })
  }

  /** Whether this node's float32 spans serve with their weights baked in (`bakeWeights`, not fused) */
  private get bakes (): boolean {
    return !this.training && (this.init.quantization ?? 'fp32') === 'fp32' && this.init.bakeWeights === true && this.init.fuseInference !== true
  }

  get peerId (): PeerId {
    return this.host.peerId
  }

  /** The pipeline stages this node serves */
  heldStages (): Array<{ start: number, end: number, stage: PipelineStage }> {
    return [...this.stages.values()]
  }

  /**
   * (serveRoundWeights) The round each training stage of this node serves inference from (undefined: not yet, its
   * training executors serve), and how many older snapshots still run generations that began before a swap
   */
  servingRounds (): Array<{ start: number, end: number, round: number | undefined, draining: number }> {
    return [...this.stages.values()].filter(h => h.serving != null).map(h => ({ start: h.start, end: h.end, round: h.serving!.round, draining: h.serving!.draining }))
  }

  /**
   * (yieldTraining) Waits while this node serves inference, at most YIELD_TRAINING_MAX_MS; at once when the option is off.
   * Awaited by each re-executed step of another node's training proof this node verifies (PoNW validators).
   */
  async yieldToInference (signal?: AbortSignal): Promise<void> {
    const since = Date.now()
    while (this.yieldTraining && this.running && this.servingInference() && Date.now() - since < YIELD_TRAINING_MAX_MS && signal?.aborted !== true) {
      this.trainingYields++
      await sleep(YIELD_POLL_MS, signal)
    }
  }

  /** Whether this node serves inference now: a generation on its own stages, or a pipeline KV session as a hop */
  servingInference (): boolean {
    return this.generations.size > 0 || this.host.services.pipeline.sessionStats().sessions > 0
  }

  /** Whether this node's training stages serve inference from round snapshots (`serveRoundWeights`) */
  get servesRoundWeights (): boolean {
    return this.training && (this.init.serveRoundWeights ?? true)
  }

  /** The DiLoCo group of a held slot */
  group (slot: number): DiLoCo | undefined {
    return this.groups.get(slot)
  }

  /** The training chains as this node sees the layer records now */
  chains (): TrainingChain[] {
    const now = Date.now()
    if (this.chainsCache != null && now - this.chainsCache.at < 250) return this.chainsCache.chains
    const chains = trainingChains(trainingSpans(this.host.services.layerPool.records()), this.slots)
    this.chainsCache = { at: now, chains }
    return chains
  }

  async start (): Promise<void> {
    const init = this.init
    const training = this.training
    this.host = await createNeuroShardHost<any>({
      listen: ['/ip4/127.0.0.1/tcp/0'],
      ...init.host,
      recordValidators: { 'layer-pool': layerPoolRecordValidator() },
      services: {
        nodeComponents: (components: any) => ({ components }),
        layerPool: layerPool({
          ...init.layerPool,
          modelId: this.modelId,
          config: this.config,
          initSeed: init.initSeed ?? 0,
          // a baked span holds its weights twice (resident float32 + the session's prepacked copy)
          memoryBytes: this.bakes ? Math.floor(init.memoryBytes / 2) : init.memoryBytes,
          training,
          ...(init.quantization != null ? { quantization: init.quantization } : {}),
          ...(init.quantization != null && init.quantization !== 'fp32' && init.quantBlockSize != null ? { quantBlockSize: init.quantBlockSize } : {}),
          // each span's record announces what this node's KV caches can still take: Drivers' routers weigh it
          kvTokensLeft: span => this.running ? this.host.services.pipeline.kvTokensLeft(span.start, span.end) : undefined
        }),
        swarmRouter: swarmRouter(),
        pipeline: pipeline({
          router: this.router,
          ...(init.tokenizer != null ? { tokenizer: init.tokenizer } : {}),
          allowTraining: (peer: PeerId) => this.allowTraining(peer),
          // mirrored standbys run every token twice; their failover gain is not shown yet (pipeline README, runs H/H2)
          mirrorStandbys: init.mirrorStandbys ?? false,
          tiedOwner: this.tiedOwner
        } satisfies PipelineInit)
      }
    }) as NetworkHost
    this.running = true
    if (init.ponw != null) {
      const components = this.host.services.nodeComponents.components
      this.ponw = new NodePonw({
        ...init.ponw,
        config: this.config,
        modelId: this.modelId,
        innerSteps: this.innerSteps,
        ...(init.optimizer != null ? { optimizer: init.optimizer } : {}),
        ...(init.diloco?.aggregator != null ? { aggregator: init.diloco.aggregator } : {}),
        ...(init.diloco?.rejectFactor != null ? { rejectFactor: init.diloco.rejectFactor } : {}),
        ...(this.trainingNiceness > 0 ? { niceness: this.trainingNiceness } : {}),
        // (yieldTraining) re-executions of others' training proofs wait for this node's inference too
        yieldTo: init.ponw.yieldTo ?? (async () => { await this.yieldToInference(this.controller.signal) })
      })
      await this.ponw.start(components, this.host.peerId, components.privateKey)
    }
    const pool = this.host.services.layerPool
    // one stage per contiguous run of this node's live spans, whatever span changed (a claim that trims
    // surplus slots changes other spans without an event of their own: a failed load is one too)
    const onChange = (evt: CustomEvent<{ start: number, end: number }>): void => {
      const { start, end } = evt.detail
      this.enqueue(`${evt.type} ${start}-${end}`, async () => { await this.syncStages() })
    }
    const changes = ['layer-pool:loaded', 'layer-pool:released', 'layer-pool:load-failed'] as const
    for (const type of changes) pool.addEventListener(type, onChange)
    // a served slot caught up with newer weights (layer-pool spec §6.1): the stage serves them from now on
    const onUpdated = (evt: CustomEvent<{ slot: number }>): void => {
      const { slot } = evt.detail
      this.enqueue(`slot ${slot} updated`, async () => { await this.reloadSlot(slot) })
    }
    pool.addEventListener('layer-pool:updated', onUpdated)
    this.detach.push(() => {
      for (const type of changes) pool.removeEventListener(type, onChange)
      pool.removeEventListener('layer-pool:updated', onUpdated)
    })
    // spans that finished loading before the listeners were attached
    this.enqueue('stages', async () => { await this.syncStages() })
    if (training) {
      this.poll = setInterval(() => { this.checkInnerLoops() }, CONTRIBUTE_POLL_MS)
      this.trainingLoop = this.driverLoop()
    }
  }

  /** Graceful stop: the layer pool announces its spans as leaving, DiLoCo groups and stages close */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.controller.abort()
    if (this.poll != null) clearInterval(this.poll)
    for (const fn of this.detach) fn()
    await this.trainingLoop?.catch(() => {})
    await this.queue.catch(() => {})
    await Promise.allSettled([...this.groups.values()].map(async g => { await (g as DefaultDiLoCo).stop() }))
    await this.ponw?.stop().catch(() => {})
    await Promise.resolve(this.host.stop()).catch(() => {})
    await Promise.allSettled([...this.stages.values(), ...[...this.retiring].map(stage => ({ stage }))].map(async h => { await h.stage.close() }))
    this.stages.clear()
    this.retiring.clear()
    this.groups.clear()
    const evalStage = await this.evalStage?.catch(() => undefined)
    await evalStage?.close()
  }

  /**
   * Stop as a crash would look to the peers: connections are cut first (no `leaving` record reaches
   * anyone, the peers find out from failed requests and expired records), then everything is closed.
   */
  async kill (): Promise<void> {
    if (!this.running) return
    for (const conn of this.host.getConnections()) conn.abort(new Error('killed'))
    await this.stop()
  }

  private enqueue (what: string, fn: () => Promise<void>): void {
    this.queue = this.queue.then(async () => {
      if (!this.running) return
      await fn()
    }).catch((err: Error) => {
      log.error('%s failed: %s', what, err.message)
      this.safeDispatchEvent('node:error', { detail: { what, message: err.message } })
    })
  }

  private allowTraining (peer: PeerId): boolean {
    if (!this.training || this.contributing) return false
    return trainingPeers(this.chains(), this.host.peerId.toString()).has(peer.toString())
  }

  // ---- inference ---------------------------------------------------------------------------------------

  /**
   * Generate through the pipeline: on this node when it is a Driver (holds slot 0), else on a Driver found
   * in the layer records (`/neuroshard/pipeline/generate/1.0.0`). Never a local copy of the model.
   */
  async * generate (prompt: number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedToken> {
    const produced: number[] = []
    const wait = this.init.routeWaitMs ?? DEFAULT_ROUTE_WAIT_MS
    let deadline = Date.now() + wait
    let preferRelay = false
    for (let attempt = 0; ; attempt++) {
      // a retry goes on from the tokens generated so far (same positions; greedy decoding gives the same text)
      const max = (options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS) - produced.length
      if (max <= 0) return
      try {
        for await (const t of this.generateOnce([...prompt, ...produced], { ...options, maxNewTokens: max }, deadline, preferRelay)) {
          produced.push(t.id)
          deadline = Date.now() + wait
          yield t
        }
        return
      } catch (err: any) {
        // a chain lost mid-generation that only another Driver can replace (this Driver's router stops waiting
        // for one as soon as such a Driver exists: NodeRouter.giveUp), a remote Driver's stage closed under it
        if (!RETRY_ELSEWHERE.has(err?.name) || attempt >= MAX_GENERATE_ATTEMPTS - 1 || Date.now() > deadline || options.signal?.aborted === true) throw err
        log('generation failed after %d tokens (%s): going on elsewhere', produced.length, err.message)
        // this Driver's own chain just failed to form: its quick check (relayFor) may see one its pipeline cannot use
        preferRelay = err.name === NoRouteError.name
      }
    }
  }

  private async * generateOnce (prompt: number[], options: GenerateOptions, deadline: number, preferRelay = false): AsyncGenerator<GeneratedToken> {
    const tokens = Math.min(prompt.length + (options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS), this.config.maxSeqLen) // the pipeline's session size
    const relay = [...this.stages.values()].some(h => h.start === 0) ? await this.relayFor(options.signal, deadline, tokens, preferRelay) : undefined
    if (relay != null) {
      const { compress, maxRetries, ...rest } = options
      void compress
      void maxRetries
      let answered = false
      try {
        for await (const t of generateRemote(this.host, relay, prompt, rest)) {
          answered = true
          yield t
        }
      } catch (err: any) {
        // the Driver it relays to could not be reached (one killed a moment ago still has its layer record): ban it in
        // the router, whose candidates the relay choice reads, and go on elsewhere (testbed node-failover run 17)
        if (answered || options.signal?.aborted === true || !unreachable(err)) throw err
        this.host.services.swarmRouter.reportFailure(relay, err)
        throw new HopFailedError(`the relay Driver ${relay.toString()} is unreachable: ${String(err?.message)}`, 0)
      }
      return
    }
    if ([...this.stages.values()].some(h => h.start === 0)) {
      // the pipeline runs the whole generation on the stage it starts with: a stage replaced meanwhile (a
      // round's rebuild, a released span) stays open until this ends (retire)
      let end = (): void => {}
      const running = new Promise<void>(resolve => { end = resolve })
      this.generations.add(running)
      try {
        yield * this.generateOnOwnStages(prompt, options)
      } finally {
        this.generations.delete(running)
        end()
      }
      return
    }
    const drivers = this.otherHolders(0).map(h => h.peerId)
    if (drivers.length === 0) throw new InvalidParametersError('no Driver (holder of the embedding) is known yet')
    const driver = drivers[Math.floor(Math.random() * drivers.length)]
    const { compress, maxRetries, ...rest } = options
    void compress
    void maxRetries
    yield * generateRemote(this.host, driver, prompt, rest)
  }

  /**
   * undefined: this Driver runs the completion (its router has a chain from the end of its first stage); else
   * the Driver it hands the completion to because it has none and that one can (`relayDriver`). Asks every
   * ROUTE_POLL_MS while neither can, up to `routeWaitMs`; then the router's NoRouteError.
   */
  private async relayFor (signal?: AbortSignal, deadline = Date.now() + (this.init.routeWaitMs ?? DEFAULT_ROUTE_WAIT_MS), tokens?: number, preferRelay = false): Promise<PeerId | undefined> {
    const router = this.host.services.swarmRouter
    if (preferRelay) {
      const driver = this.relayPeer()
      if (driver != null) return driver
    }
    for (;;) {
      const first = [...this.stages.values()].find(h => h.start === 0)
      if (first == null) return undefined
      try {
        // as the pipeline asks (KV headroom for `tokens`)
        router.chain({ from: first.end, to: this.slots, purpose: 'inference', ...(signal != null ? { signal } : {}), ...(tokens != null ? { tokens } : {}) })
        return undefined
      } catch (err: any) {
        if (err?.name !== NoRouteError.name) throw err
        const driver = this.relayPeer()
        if (driver != null) {
          log('no chain from [0, %d): the completion goes to Driver %s', first.end, driver)
          return driver
        }
        if (Date.now() >= deadline || signal?.aborted === true) throw err
      }
      await sleep(Math.min(ROUTE_POLL_MS, Math.max(0, deadline - Date.now())), signal)
    }
  }

  /** Another Driver that can run a completion this Driver has no chain for now (`relayDriver`) */
  private relayPeer (): PeerId | undefined {
    const driver = relayDriver(this.host.peerId.toString(), this.host.services.swarmRouter.candidates(), [...this.stages.values()], this.slots)
    return driver == null ? undefined : this.host.services.layerPool.records().get(driver)?.record.peerId
  }

  private async * generateOnOwnStages (prompt: number[], options: GenerateOptions): AsyncGenerator<GeneratedToken> {
    // (tiedOwner) the embedding this generation looks tokens up in: the owner's matrix, not the rows fetched so far (not
    // needed where the Driver's stage serves a round's snapshot: its matrix is the round's, whole)
    const first = [...this.stages.values()].find(h => h.start === 0)
    if (first?.serving?.round == null) await this.settleTied('a generation', false, options.signal)
    const draft = options.draft ?? ((this.init.draftGreedy ?? true) && (options.temperature ?? 0) === 0 ? ngramDrafter() : undefined)
    if (draft == null) {
      yield * this.timedFailovers(this.host.services.pipeline.generate(prompt, options))
      return
    }
    const onRound = options.onRound
    yield * this.timedFailovers(this.host.services.pipeline.generate(prompt, {
      ...options,
      draft,
      onRound: (r) => {
        this.speculation.rounds++
        this.speculation.proposed += r.proposed
        this.speculation.accepted += r.accepted
        onRound?.(r)
      }
    }))
  }

  /**
   * A generation's tokens, timing its failovers: from the first `pipeline:failover` it dispatched itself (one
   * of its hops failed; a training micro-batch's failover runs in another async context and does not count)
   * to its next token, as `node:failover`
   */
  private async * timedFailovers (tokens: AsyncIterable<GeneratedToken>): AsyncGenerator<GeneratedToken> {
    const gen = tokens[Symbol.asyncIterator]()
    const pipeline = this.host.services.pipeline
    const mine = {}
    let detectedAt: number | undefined
    let recovery: RecoveryTiming | undefined
    const onFailover = (): void => { if (generationContext.getStore() === mine) detectedAt ??= performance.now() }
    const onRecovered = (e: CustomEvent<RecoveryTiming>): void => { if (generationContext.getStore() === mine && detectedAt != null) recovery = e.detail }
    pipeline.addEventListener('pipeline:failover', onFailover)
    pipeline.addEventListener('pipeline:recovered', onRecovered)
    try {
      for (;;) {
        const r = await generationContext.run(mine, async () => await gen.next())
        if (r.done === true) return
        if (detectedAt != null) {
          this.safeDispatchEvent('node:failover', { detail: { ms: performance.now() - detectedAt, ...(recovery != null ? { recovery } : {}) } })
          detectedAt = undefined
          recovery = undefined
        }
        yield r.value
      }
    } finally {
      pipeline.removeEventListener('pipeline:failover', onFailover)
      pipeline.removeEventListener('pipeline:recovered', onRecovered)
      await gen.return?.(undefined)
    }
  }

  /** Takes a stage out of service: closed once the generations that may still run on it have ended */
  private retire (stage: PipelineStage): void {
    this.retiring.add(stage)
    void Promise.allSettled([...this.generations]).then(async () => {
      if (!this.retiring.delete(stage)) return // stop() closed it
      await stage.close()
    }).catch((err: Error) => { log('closing a replaced stage failed: %s', err.message) })
  }

  /** What the HTTP API and dashboard show: this node's host, layer pool, training and completions through the pipeline */
  backend (options: { ledger?: LedgerSource } = {}): NodeBackend {
    const tokenizer = this.init.tokenizer
    return createLocalBackend({
      host: this.host,
      layerPool: this.host.services.layerPool,
      training: this.recorder,
      ...(options.ledger != null ? { ledger: options.ledger } : this.ponw != null ? { ledger: this.ponw.service } : {}),
      ...(this.ponw != null ? { payments: this.ponw.payments() } : {}),
      ...(tokenizer != null
        ? {
            generator: networkCompletionSource({
              modelId: this.modelId,
              contextLength: this.config.maxSeqLen,
              tokenizer: { encode: (t) => tokenizer.encode(t), eosId: tokenizer.eosId },
              generate: (prompt, opts) => this.generate(prompt, opts)
            })
          }
        : {})
    })
  }

  // ---- stages and slot groups ------------------------------------------------------------------------

  private executorOf (stage: PipelineStage, slot: number): PipelineStage['executors'][number] {
    if (slot === 0) return stage.embed!
    if (slot === this.slots - 1) return stage.head!
    return stage.blocks!
  }

  private async slotGroup (slot: number): Promise<DiLoCo> {
    let group = this.groups.get(slot)
    if (group != null) return group
    const components = this.host.services.nodeComponents.components
    group = new DefaultDiLoCo(components, {
      minDeadlineMs: 5_000,
      ...this.init.diloco,
      modelId: this.modelId,
      group: `${this.modelId}/slot-${slot}`,
      span: { id: `slot-${slot}`, parameters: slotParameters(this.config, slot) },
      // the group is the slot's replica set as the layer pool has it (specs/diloco 1.2.0 §1), not the topic view:
      // its size, f and leader order are then the same on every replica once the records have spread, and a
      // member this node has not heard on the topic yet (connected through others only) still counts
      replicas: { members: () => this.slotReplicas(slot) }
    })
    await (group as DefaultDiLoCo).start()
    // created after the host started: subscribe now (a service would do it in afterStart)
    ;(group as DefaultDiLoCo).afterStart()
    this.groups.set(slot, group)
    const g = group
    const onRound = (): void => {
      this.enqueue(`round of slot ${slot}`, async () => { await this.applyRound(slot, g) })
    }
    g.addEventListener('diloco:round', onRound)
    g.addEventListener('diloco:resync', onRound)
    // a group that has trained already is joined by downloading its state; at genesis every member
    // starts from the genesis weights the layer pool loaded
    // (records can be stale for a moment, e.g. read from the DHT: at genesis a short try is enough, the
    // members then hold the genesis weights the layer pool loaded anyway)
    const trained = this.trainedStep(slot) > 0
    try {
      await this.syncGroup(g, slot, trained ? 60_000 : 2_000)
    } catch (err) {
      if (trained) throw err
    }
    const own = this.host.services.layerPool.slotWeights(slot)
    if (!g.initialized && own != null) g.initialize(own)
    return g
  }

  /**
   * The other peers holding `slot` now (layer-pool's live holders, suspects left out), each with its layer
   * record and the live span of it that covers the slot
   */
  private otherHolders (slot: number): Array<{ peerId: PeerId, record: LayerRecordOf, span: LayerRecordOf['spans'][number] }> {
    const pool = this.host.services.layerPool
    const records = pool.records()
    const out: Array<{ peerId: PeerId, record: LayerRecordOf, span: LayerRecordOf['spans'][number] }> = []
    for (const peerId of pool.holders(slot)) {
      if (peerId.equals(this.host.peerId)) continue
      const record = records.get(peerId.toString())?.record
      const span = record?.spans.find(s => s.start <= slot && slot < s.end && (s.state === 'serving' || s.state === 'training'))
      if (record != null && span != null) out.push({ peerId, record, span })
    }
    return out
  }

  /**
   * The replica set of a slot's DiLoCo group: the layer pool's live holders of the slot (same model and architecture
   * version: the pool keeps no other records; suspects left out) whose span covering it is in the `training` state,
   * this node included. Serving-only holders (`training: false`, quantized replicas) run no DiLoCo group and never
   * announce, so they are no members: counted, they would raise f and the 2f + 1 a round needs.
   */
  slotReplicas (slot: number): PeerId[] {
    const pool = this.host.services.layerPool
    const records = pool.records()
    const out: PeerId[] = []
    // only the holders that can train the slot announce its rounds: a training chain's Driver (its span) or hop
    // covering it. A holder left out of every chain, or in a chain through another of its spans (a node holding [0, 2)
    // and a separate [3, 4): testbed soak-home-links run 5), never trains the slot; counted, it raised a group of 2
    // trainers to 4 (2f + 1 = 3) and every round of the slot waited for the stall (3 minutes) while its Validators
    // refused training. With no chain through the slot (records still spreading), every training holder counts.
    const trainers = slotTrainers(this.chains(), slot)
    for (const peerId of pool.holders(slot)) {
      if (peerId.equals(this.host.peerId)) { out.push(peerId); continue }
      const record = records.get(peerId.toString())?.record
      if (record?.spans.some(s => s.start <= slot && slot < s.end && s.state === 'training') !== true) continue
      if (trainers.size > 0 && !trainers.has(peerId.toString())) continue
      out.push(peerId)
    }
    return out
  }

  /** The highest weights step the other holders of a slot report (0 at genesis) */
  private trainedStep (slot: number): number {
    return this.otherHolders(slot).reduce((step, h) => Math.max(step, slotWeightsStep(h.span, slot)), 0)
  }

  /**
   * Download a slot group's state from a member. The members are the slot's holders in the layer records
   * (a newcomer may not be connected to any of them yet, so they are dialled at their announced addresses);
   * the group's topic subscribers are tried too.
   */
  private async syncGroup (g: DiLoCo, slot: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      for (const { peerId, record } of this.otherHolders(slot)) {
        try {
          if (this.host.getConnections(peerId).length === 0) {
            await this.host.dial(record.addresses.map(a => a.toString().includes('/p2p/') ? a : a.encapsulate(`/p2p/${peerId.toString()}`)), { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(10_000)]) })
          }
          await g.sync({ peer: peerId, signal: this.controller.signal })
          return
        } catch (err: any) {
          log('state of slot %d not downloaded from %p: %s', slot, peerId, err.message)
        }
      }
      try {
        await g.sync({ signal: this.controller.signal })
        return
      } catch (err: any) {
        if (!this.running || Date.now() > deadline) throw err
        await sleep(500, this.controller.signal)
      }
    }
  }

  /**
   * Makes the stages match the contiguous runs of this node's live spans: a node that holds [2, 3) and then
   * claims [3, 4) (or whose [1, 3) was trimmed to [2, 3) next to it) serves one stage [2, 4), so that a
   * training chain or a route crosses its layers in one hop. New runs open before the stages they replace
   * close, so the slots' DiLoCo groups carry over.
   */
  private async syncStages (): Promise<void> {
    const live = this.host.services.layerPool.ownSpans().filter(s => s.state === 'serving' || s.state === 'training')
    const runs = contiguousRuns(live)
    const wanted = new Set(runs.map(r => `${r.start}-${r.end}`))
    for (const r of runs) await this.openStage(r.start, r.end)
    for (const [key, held] of [...this.stages]) if (!wanted.has(key)) await this.closeStage(held.start, held.end)
  }

  /** Build the pipeline stage of a run of spans this node now serves, with a DiLoCo group per slot when training */
  private async openStage (start: number, end: number): Promise<void> {
    const key = `${start}-${end}`
    if (this.stages.has(key)) return
    const pool = this.host.services.layerPool
    const parameters = new Map<string, Float32Array>()
    let round = 0
    for (let slot = start; slot < end; slot++) {
      let weights = pool.slotWeights(slot)
      if (weights == null) return // released meanwhile
      if (this.training) {
        const g = await this.slotGroup(slot)
        if (g.initialized) {
          weights = g.parameters()
          round = Math.max(round, g.round)
        }
      }
      for (const [name, value] of weights) parameters.set(name, value)
    }
    const held = this.hold(start, end, await this.buildStage(start, end, parameters, round * this.innerSteps))
    // (serveRoundWeights) served from the weights it was built with (the groups' base weights) from the start: the
    // snapshot's fusion then holds for every generation on the stage
    if (held.serving != null) await held.serving.update(round, async () => parameters)
    if (!this.running) { await held.stage.close(); return }
    this.stages.set(key, held)
    this.host.services.pipeline.addStage(held.stage)
    log('%p serves %s from round %d', this.host.peerId, describeSpan(this.config, start, end), round)
    if (this.training) this.recorder.setActive(true)
    this.safeDispatchEvent('node:stage', { detail: { start, end } })
  }

  /** A stage as the node serves it: wrapped by a recorder of its inner loops when proofs are signed */
  private hold (start: number, end: number, stage: PipelineStage): HeldStage {
    const held: HeldStage = { start, end, stage }
    if (this.ponw != null && this.training) {
      const ponw = this.ponw
      // a loop is recorded only while its round could still be proved (one training proof per ledger round)
      held.recorder = new StageRecorder(stage, this.innerSteps, () => ponw.trainingProofWanted())
      held.stage = held.recorder.stage
    }
    if (this.servesRoundWeights) {
      const runtime = {
        intraOpNumThreads: this.init.threads ?? 1,
        device: this.init.device ?? 'cpu',
        // as a serving node's stages: a small model's decode step costs less than a worker's thread hand-offs
        inThread: this.config.dModel <= IN_THREAD_MAX_D_MODEL
      } as const
      held.serving = new RoundServing(held.stage,
        async (round, parameters) => await ServingSnapshot.build(this.config, start, end, parameters, round, runtime),
        (round, buildMs) => {
          log('%p serves %s from round %d (snapshot built in %d ms)', this.host.peerId, describeSpan(this.config, start, end), round, Math.round(buildMs))
          this.safeDispatchEvent('node:serving', { detail: { start, end, round, buildMs } })
        })
      held.stage = held.serving.stage
      // a route naming part of this span (a sub-span stage, built by the pipeline) runs the round's weights too, rebuilt
      // once a round (was: from the training executors, rebuilt after every inner step on the request's path: 55-549 ms
      // of a failover's replay in the testbed, issue 15); between rounds (slots at different rounds) as before
      const live = async (): Promise<Map<string, Float32Array>> => {
        const out = new Map<string, Float32Array>()
        for (const e of stage.executors) for (const [k, v] of await e.getParameters()) out.set(k, v)
        return out
      }
      held.stage.inferenceWeights = () => {
        const round = this.commonRound(held)
        if (round == null) return { version: -1 - stage.executors[0].stepCount, parameters: live }
        return { version: round, parameters: async () => await this.roundParameters(held, round).catch(live) }
      }
    }
    return held
  }

  /**
   * (serveRoundWeights) A new snapshot of a training stage's weights once every slot of it has applied the same round
   * (built in the background; a stage whose slots are between rounds keeps serving the last one)
   */
  private refreshServing (held: HeldStage): void {
    const serving = held.serving
    if (serving == null || held.swapPending === true) return
    const wanted = this.commonRound(held)
    if (wanted == null || (serving.round != null && serving.round >= wanted)) return
    // the build blocks this node's thread for a while: not while it serves a generation (its own stage, or a hop's
    // KV session), at most SERVING_SWAP_DEFER_MAX_MS; then the round the stage is at by then (rounds that came
    // meanwhile are taken by this one build)
    held.swapPending = true
    void (async () => {
      const since = Date.now()
      while (this.running && this.servingInference() && Date.now() - since < SERVING_SWAP_DEFER_MAX_MS) {
        this.servingSwapDefers++
        await sleep(YIELD_POLL_MS, this.controller.signal)
      }
      held.swapPending = false
      const round = this.commonRound(held)
      if (!this.running || round == null || (serving.round != null && serving.round >= round)) return
      await serving.update(round, async () => await this.roundParameters(held, round)).catch((err: Error) => {
        log('serving snapshot of round %d not built: %s', round, err.message)
      })
    })().catch(() => { held.swapPending = false })
  }

  /** The round every slot group of a stage is at, or undefined (between rounds, or a group not initialized) */
  private commonRound (held: HeldStage): number | undefined {
    let round: number | undefined
    for (let s = held.start; s < held.end; s++) {
      const g = this.groups.get(s)
      if (g?.initialized !== true) return undefined
      if (round != null && g.round !== round) return undefined
      round = g.round
    }
    return round
  }

  /**
   * The base weights of `round` of a stage's slots (their groups'); a parameter no group of the stage holds (a
   * Validator's copy of a tied embedding) from the stage's executors. Throws when a group moved past the round
   * meanwhile (the next round's snapshot follows)
   */
  private async roundParameters (held: HeldStage, round: number): Promise<Map<string, Float32Array>> {
    const parameters = new Map<string, Float32Array>()
    for (let s = held.start; s < held.end; s++) {
      const g = this.groups.get(s)
      if (g?.initialized !== true || g.round !== round) throw new InvalidParametersError(`slot ${s} is no longer at round ${round}`)
      for (const [name, value] of g.parameters()) parameters.set(name, value)
    }
    for (const e of held.stage.executors) {
      if (e.parameterSpecs.every(p => parameters.has(p.name))) continue
      const own = await e.getParameters()
      for (const p of e.parameterSpecs) if (!parameters.has(p.name)) parameters.set(p.name, own.get(p.name)!)
    }
    return parameters
  }

  private async buildStage (start: number, end: number, parameters: Map<string, Float32Array>, step: number): Promise<PipelineStage> {
    return await createPipelineStage({
      config: this.config,
      start,
      end,
      parameters,
      step,
      training: this.training,
      ...(!this.training && this.init.quantization != null ? { quantization: this.init.quantization } : {}),
      ...(!this.training && this.init.quantization != null && this.init.quantization !== 'fp32' && this.init.quantBlockSize != null ? { quantBlockSize: this.init.quantBlockSize } : {}),
      intraOpNumThreads: this.init.threads ?? 1,
      device: this.init.device ?? 'cpu',
      inThread: this.init.inThread ?? (!this.training && this.config.dModel <= IN_THREAD_MAX_D_MODEL),
      // a serving span's embed + blocks (or blocks + head) as one onnxruntime run per token; its blocks' runtime keeps a
      // copy of the embedding / head weights, so by default only for the small models that run in-thread (and not
      // where the node bakes its weights instead)
      fuseInference: !this.training && (this.init.fuseInference ?? (!this.bakes && this.config.dModel <= IN_THREAD_MAX_D_MODEL)),
      ...(this.bakes ? { bakeWeights: true } : {}),
      // (trainingNiceness) a training stage's workers yield the cores to serving
      ...(this.training && this.trainingNiceness > 0 ? { niceness: this.trainingNiceness } : {}),
      ...(this.init.optimizer != null ? { optimizer: this.init.optimizer } : {})
    })
  }

  private async closeStage (start: number, end: number): Promise<void> {
    const key = `${start}-${end}`
    const held = this.stages.get(key)
    if (held == null) return
    this.stages.delete(key)
    this.host.services.pipeline.removeStage(held.stage)
    this.retire(held.stage)
    for (let slot = start; slot < end; slot++) {
      if ([...this.stages.values()].some(h => h.start <= slot && slot < h.end)) continue
      const g = this.groups.get(slot)
      this.groups.delete(slot)
      await (g as DefaultDiLoCo | undefined)?.stop()
    }
  }

  /**
   * Rebuild the serving stage that runs `slot` from the layer pool's weights (they changed under it: §6.1 of the
   * layer-pool spec). Training stages take their weights from the slot groups, which keep replicas in step
   */
  private async reloadSlot (slot: number): Promise<void> {
    if (this.training) return
    const held = this.heldFor(slot)
    if (held == null) return
    const parameters = new Map<string, Float32Array>()
    for (let s = held.start; s < held.end; s++) {
      const weights = this.host.services.layerPool.slotWeights(s)
      if (weights == null) return // released meanwhile: syncStages closes the stage
      for (const [name, value] of weights) parameters.set(name, value)
    }
    const old = held.stage
    const rebuilt = this.hold(held.start, held.end, await this.buildStage(held.start, held.end, parameters, 0))
    if (this.stages.get(`${held.start}-${held.end}`) !== held || held.stage !== old) {
      this.retire(rebuilt.stage) // closed or replaced while it was built
      return
    }
    this.swapStage(held, rebuilt)
    log('%p serves new weights of slot %d in %s', this.host.peerId, slot, describeSpan(this.config, held.start, held.end))
    this.safeDispatchEvent('node:stage', { detail: { start: held.start, end: held.end } })
  }

  /** Serve `rebuilt` in place of `held`'s stage; the old one closes once the generations on it end */
  private swapStage (held: HeldStage, rebuilt: Omit<HeldStage, 'start' | 'end'>): void {
    const old = held.stage
    this.host.services.pipeline.removeStage(old)
    this.host.services.pipeline.addStage(rebuilt.stage)
    held.stage = rebuilt.stage
    held.recorder = rebuilt.recorder
    this.retire(old)
  }

  private heldFor (slot: number): HeldStage | undefined {
    return [...this.stages.values()].find(h => h.start <= slot && slot < h.end)
  }

  /** A slot's round was applied (or its state downloaded): its new base weights go into the stage */
  private async applyRound (slot: number, g: DiLoCo): Promise<void> {
    if (this.groups.get(slot) !== g) return
    const held = this.heldFor(slot)
    if (held == null) return
    const params = g.parameters()
    const step = g.round * this.innerSteps
    const stage = held.stage
    const at = stage.executors[0].stepCount
    // (tiedOwner) the Driver's tied matrix is set below: the owner (whose matrix does not take this round) released first
    if (slot === 0) await this.settleTied('a round\'s weights', true)
    // A stage of several slots is in a round's inner loop from the time its first slot group applies the round (its
    // round is its highest group's, `stageRound`): the Driver trains on, so the other slots' groups can apply the
    // round with the stage at step round·H + k, 0 < k < H. That stage is where the round wants it (specs/node/ponw
    // §2: a round's loop runs from step round·H; the lr schedule follows the step): only the slot's base weights
    // change. Rebuilt, it would restart the loop at round·H (new executors, worker threads and onnxruntime sessions,
    // AdamW moments lost) under a Driver already past that step.
    const inLoop = at >= step && at < step + this.innerSteps
    if (!inLoop && this.stageRound(held) === g.round) {
      // the stage missed rounds (its chain broke, or it is outside the training chain): brought to the round in place,
      // what a stage built at the round's step count from its groups' weights has (every slot's base weights, the
      // step count round·H, no AdamW moments, no pending gradients), keeping its executors, worker threads and
      // onnxruntime sessions (a rebuild each round churned native memory: soak run 6, 149 rebuilds of a head stage)
      // (the weights as a stage built from them would get them: with tied embeddings the head's copy too)
      const parameters = new Map<string, Float32Array>()
      for (let s = held.start; s < held.end; s++) {
        const gs = this.groups.get(s)
        if (gs != null && gs.initialized) for (const [name, value] of gs.parameters()) parameters.set(name, value)
      }
      for (const e of stage.executors) {
        const own = new Map(e.parameterSpecs.filter(p => parameters.has(p.name)).map(p => [p.name, parameters.get(p.name)!]))
        if (own.size > 0) await e.setParameters(own, { partial: true })
        await e.resetOptimizer(step)
      }
      // the loop recorded so far (if any) is not the round's: the next one is recorded from round·H with this state
      held.recorder?.reset()
      log('%p brought %s to step %d in place', this.host.peerId, describeSpan(this.config, held.start, held.end), step)
    } else {
      await this.executorOf(stage, slot).setParameters(params, { partial: true })
    }
    await this.host.services.layerPool.updateSlotWeights(slot, params, step).catch((err: Error) => {
      log('slot %d weights not re-announced: %s', slot, err.message)
    })
    this.stalledRounds.delete(slot)
    this.refreshServing(held)
    this.safeDispatchEvent('node:round', { detail: { slot, round: g.round } })
    // the node's progress follows its lowest slot's group; every node measures the network model's
    // validation loss after its rounds, so the API of any node (Driver or not) shows the curve
    if (slot === this.lowestSlot()) {
      const record = g.record(g.round - 1)
      const accepted = record?.contributions.filter(c => c.accepted).length
      this.recorder.recordRound({ round: g.round, ...(record != null ? { accepted, rejected: record.contributions.length - accepted! } : {}) })
      void this.evaluate(g.round)
    }
  }

  private lowestSlot (): number | undefined {
    let lowest: number | undefined
    for (const h of this.stages.values()) lowest = Math.min(lowest ?? h.start, h.start)
    return lowest
  }

  /** The round a stage's slots are in (the highest of its groups) */
  private stageRound (held: HeldStage): number {
    let round = 0
    for (let s = held.start; s < held.end; s++) round = Math.max(round, this.groups.get(s)?.round ?? 0)
    return round
  }

  private async slotParams (stage: PipelineStage, slot: number): Promise<Map<string, Float32Array>> {
    const all = await this.executorOf(stage, slot).getParameters()
    const out = new Map<string, Float32Array>()
    for (const spec of slotParameters(this.config, slot)) out.set(spec.name, all.get(spec.name)!)
    return out
  }

  // ---- DiLoCo: contribute when the inner loop is done -------------------------------------------------

  private checkInnerLoops (): void {
    if (this.contributing || !this.running) return
    const due = [...this.stages.values()].filter(h => {
      const g = this.groups.get(h.start)
      // every executor at H steps: the stage's executors step one after the other (a hop's STEP, the Driver's trainStep),
      // and a Validator's head steps the tied replica after its own step; a stage taken when only its first executor had
      // stepped contributed the later executors' weights of the step before (the head's tied matrix too)
      return g?.initialized === true && Math.min(...h.stage.executors.map(e => e.stepCount)) >= (this.stageRound(h) + 1) * this.innerSteps && !this.stalledStage(h)
    })
    if (due.length === 0) return
    this.contributing = true
    // a stop closes the executors under a contribution in progress: its failure is logged, never unhandled
    void this.contribute(due)
      .catch((err: Error) => { if (this.running) log('contribution failed: %s', err.message) })
      .finally(() => { this.contributing = false })
  }

  /** A stage one of whose slots stalled at its group's current round (its pseudo-gradient is in that round already) */
  private stalledStage (held: HeldStage): boolean {
    for (let slot = held.start; slot < held.end; slot++) {
      const stalled = this.stalledRounds.get(slot)
      if (stalled != null && stalled === this.groups.get(slot)?.round) return true
    }
    return false
  }

  private async contribute (due: HeldStage[]): Promise<void> {
    const work: Array<Promise<void>> = []
    for (const held of due) {
      // the inner loop as recorded (for a training proof), with the state it ends in
      // (tiedOwner) the matrix the pseudo-gradient is taken of: synced before the round's last step, which ran the 1.7.0 way
      // (settled again here in case that failed and a later owned step followed)
      if (held.start === 0) await this.settleTied('a contribution', true)
      const recorded = await held.recorder?.finish()
      if (held.recorder != null && recorded == null) log('round of %s not provable (no complete recorded inner loop)', describeSpan(this.config, held.start, held.end))
      const settled: Array<Promise<SlotContribution>> = []
      for (let slot = held.start; slot < held.end; slot++) {
        const g = this.groups.get(slot)
        if (g == null) continue
        const local = await this.slotParams(held.stage, slot)
        const round = g.round
        const p = g.contribute(local, { innerSteps: this.innerSteps, ...(slot === 0 ? { dataShards: this.shardsFor(g.round) } : {}) }, { signal: this.controller.signal })
          .then((outcome: RoundOutcome) => {
            this.safeDispatchEvent('node:contributed', { detail: { slot, round: outcome.contributedRound, included: outcome.included } })
            return { slot, group: g, round: outcome.contributedRound, included: outcome.included }
          }, (err: Error) => {
            if (err?.name === 'RoundStalledError' && g.round === round) {
              // reported once; the stage waits for the round instead of announcing again (peers would refuse it)
              this.stalledRounds.set(slot, round)
              log('slot %d: %s', slot, err.message)
              this.safeDispatchEvent('node:stalled', { detail: { slot, round, reason: err.message } })
            }
            throw err
          })
        settled.push(p)
        // awaited (allSettled) only after every stage's slots were sent: a stop meanwhile rejects it unhandled
        const done = p.then(() => {})
        done.catch(() => {})
        work.push(done)
      }
      if (recorded != null && this.ponw != null) {
        const ponw = this.ponw
        void Promise.all(settled).then(async contributions => await ponw.roundDone(recorded, contributions))
          .catch((err: Error) => { if (this.running) log('training proof not signed: %s', err.message) })
      }
    }
    const results = await Promise.allSettled(work)
    for (const r of results) if (r.status === 'rejected' && this.running) log('contribution failed: %s', r.reason?.message)
    // the queue applies the rounds' weights; training resumes once they are in
    await this.queue
  }

  // ---- the Driver ------------------------------------------------------------------------------------

  private shardsFor (round: number): string[] {
    const data = this.init.data
    if (data == null) return []
    const k = Math.min(DEFAULT_SHARDS_PER_ROUND, data.manifest.shards.filter(s => s.split === 'train').length)
    return assignShards(data.manifest, this.host.peerId.toString(), round, k)
  }

  private batchesFor (round: number): Generator<{ input: BigInt64Array, target: BigInt64Array, batchSize: number, seqLen: number }> {
    const data = this.init.data!
    const train = data.manifest.shards.filter(s => s.split === 'train')
    const ids = new Set(this.shardsFor(round))
    const tokens = train.map((s, i) => ids.has(s.hash) ? data.train[i] : undefined).filter((t): t is TokenArray => t != null)
    const seqLen = Math.min(this.init.seqLen ?? DEFAULT_NODE_SEQ_LEN, this.config.maxSeqLen)
    return batches(tokens.length > 0 ? tokens : data.train, {
      seqLen,
      batchSize: this.init.batchSize ?? DEFAULT_NODE_BATCH_SIZE,
      seed: BigInt(round)
    }) as Generator<any>
  }

  private async driverLoop (): Promise<void> {
    const signal = this.controller.signal
    let stream: Generator<{ input: BigInt64Array, target: BigInt64Array, batchSize: number, seqLen: number }> | undefined
    let streamRound = -1
    let failures = 0
    /** (tiedOwner) a step that failed with TiedOwnerLostError before it stepped: retried with its batch */
    let retry: { step: number, batch: TrainBatch } | undefined
    /** (yieldTraining) when the current hold began */
    let yieldingSince: number | undefined
    while (this.running) {
      if (this.yieldTraining && this.servingInference()) {
        const now = Date.now()
        yieldingSince ??= now
        if (now - yieldingSince < YIELD_TRAINING_MAX_MS) {
          this.trainingYields++
          await sleep(YIELD_POLL_MS, signal)
          continue
        }
      }
      yieldingSince = undefined
      const held = this.stages.get([...this.stages.keys()].find(k => k.startsWith('0-')) ?? '')
      const g0 = this.groups.get(0)
      if (held == null || g0 == null || !g0.initialized || this.init.data == null || this.contributing) {
        await sleep(200, signal)
        continue
      }
      const round = this.stageRound(held)
      const step = held.stage.executors[0].stepCount
      if (step >= (round + 1) * this.innerSteps || step < round * this.innerSteps) {
        // the inner loop is done (the contribution is on its way) or the stage waits to be rebuilt
        await sleep(100, signal)
        continue
      }
      const me = this.host.peerId.toString()
      const chain = this.chains().find(c => c.driver === me)
      if (chain == null || chain.driverEnd !== held.end) {
        await sleep(500, signal)
        continue
      }
      this.router.pinned = chain.hops.map(h => ({ peer: peerOf(this.host, h.peer), start: h.start, end: h.end }))
      if (streamRound !== round || stream == null) {
        stream = this.batchesFor(round)
        streamRound = round
      }
      let batch: TrainBatch
      if (retry?.step === step) batch = retry.batch
      else {
        let next = stream.next()
        if (next.done === true) {
          stream = this.batchesFor(round + 1000 * (step + 1))
          next = stream.next()
        }
        const b = next.value
        batch = { inputIds: b.input, targets: b.target, batch: b.batchSize, seq: b.seqLen }
      }
      retry = undefined
      try {
        // (tiedOwner) the round's last step runs the 1.7.0 way on a synced matrix: the stage ends the loop with the trained
        // matrix (contribution, training proof), and the owner, whose matrix would not take the round, is released. (Not
        // synced after the last step: the Validator then contributes, refusing training requests, and takes its round.)
        // Released one step before it: the released owner drops its replica at the next STEP (it carries rows) and is
        // re-seeded by SET_TIED after that STEP. After the last STEP that re-seed raced the Validator's contribution (its
        // stage at H steps, it took the head's matrix before SET_TIED landed, then refused it): slot 0's round and the
        // head slot's round differed. So the re-seed happens at the step before, and at the last step the replica is in
        // step, its matrix stepped within STEP as the Driver's is.
        if (chain.hops.length > 0 && step >= (round + 1) * this.innerSteps - 2) await this.settleTied('the round\'s last inner steps', true, signal)
        // a Driver holding the whole model trains on its own executors (the pipeline needs a next hop)
        const res = chain.hops.length === 0 ? await localTrainStep(held.stage, batch) : await this.tiedSerial(async () => await this.host.services.pipeline.trainStep(batch, { signal }))
        failures = 0
        this.recorder.recordStep(res.loss, { innerStep: step - round * this.innerSteps + 1 })
        this.safeDispatchEvent('node:step', { detail: { step: res.step, loss: res.loss, round } })
      } catch (err: any) {
        if (!this.running) return
        if (err?.name === 'TiedOwnerLostError' && held.stage.executors[0].stepCount === step) {
          // the pipeline dropped the owner (the copy back at the last sync's matrix): the same step again, the 1.7.0 way,
          // its gradients so far on this stage dropped (the other hops answer its micro-batches from their records)
          log('training step %d: %s; retried the 1.7.0 way', step, err.message)
          for (const e of held.stage.executors) await e.zeroGradients().catch(() => {})
          retry = { step, batch }
          continue
        }
        failures++
        log('training step %d failed (%s: %s)', step, err.name, err.message)
        if (held.stage.executors[0].stepCount === step && !this.config.tieEmbeddings) {
          // the same step again with the same batch. The hops answer a micro-batch they completed from their record,
          // keyed by (session, step, micro-batch) only: a new batch under that key got the old batch's gradients, and
          // a skipped batch made the data a replica trains depend on when its steps failed. The Driver's own
          // gradients of the failed attempt go (its forward and backward run again). Not for a tied model: a failure
          // after TAKE_TIED took the head's tied gradient would lose it (the pipeline carries it only for
          // TiedOwnerLostError's retry, above), so a tied Driver still takes the next batch (tied-owner-lost.spec)
          for (const e of held.stage.executors) await e.zeroGradients().catch(() => {})
          retry = { step, batch }
        }
        // a refused or broken chain: wait for the records (or the round) to settle, then re-plan. A stage
        // still applying the last round refuses for a moment only: the wait stays short (≤ 1 s)
        await sleep(Math.min(1_000, 125 * 2 ** Math.min(failures, 3)), signal)
      }
    }
  }

  // ---- validation of the network's model (Drivers) ----------------------------------------------------

  /**
   * The validation loss of the model after `round` (see `validate`), when the node's lowest slot applied it; one
   * evaluation at a time (rounds can come faster than evaluations: those are skipped)
   */
  private async evaluate (round: number): Promise<void> {
    const every = this.init.evalEvery ?? 1
    const validation = this.init.data?.validation
    if (every <= 0 || validation == null || validation.length === 0 || round % every !== 0 || round <= this.lastEvalRound) return
    if (this.evaluating) return
    this.evaluating = true
    this.lastEvalRound = round
    try {
      await this.validate(round)
    } catch (err: any) {
      if (this.running) log('validation after round %d failed: %s', round, err.message)
    } finally {
      this.evaluating = false
    }
  }

  /**
   * Measures the validation loss of the network's model after `round`, records it (API, dashboard) and dispatches
   * `node:validation`: every slot's base weights of that round (this node's own, the others fetched over
   * layer-pool's weight transfer from holders announcing that step, checked against their hashes), run through a
   * local copy of the whole model. When that round is gone (every holder of a slot moved past it: slot groups drift
   * apart after kills) or not reached within `timeoutMs`, the model as the network serves it: each slot's newest
   * weights, labelled with the round of each (`slotRounds`, `exact: false`). undefined when the node stopped or no
   * weights of some slot could be had in time.
   */
  async validate (round: number, options: { timeoutMs?: number } = {}): Promise<NetworkValidation | undefined> {
    if (!Number.isSafeInteger(round) || round < 0) throw new InvalidParametersError('round must be an integer >= 0')
    const batches = this.validationBatches()
    if (batches.length === 0) throw new InvalidParametersError('no validation data (init.data.validation)')
    const weights = await this.networkWeights(round, options)
    if (weights == null || !this.running) return undefined
    const run = this.evalLock.then(async () => await modelBatchLosses(weights.weights, batches, async () => {
      this.evalStage ??= createPipelineStage({ config: this.config, start: 0, end: this.slots, parameters: weights.weights, intraOpNumThreads: this.init.threads ?? 1 })
      return await this.evalStage
    }))
    this.evalLock = run.catch(() => {})
    const batchLosses = await run
    if (!this.running) return undefined
    const loss = batchLosses.reduce((a, b) => a + b, 0) / batchLosses.length
    const tokens = batches.reduce((n, b) => n + b.batch * b.seq, 0)
    const point: NetworkValidation = { round, loss, batchLosses, tokens, slotRounds: weights.slotRounds, exact: weights.exact }
    this.recorder.recordValidation(loss, { step: round * this.innerSteps, slotRounds: weights.slotRounds })
    this.safeDispatchEvent('node:validation', { detail: point })
    return point
  }

  /**
   * Every slot's weights at `round` (own or fetched); when that round is gone for some slot or not reached within
   * `timeoutMs`, each slot's newest weights (`exact: false`); undefined when the node stopped or some slot's weights
   * could not be had in time
   */
  async networkWeights (round: number, options: { timeoutMs?: number } = {}): Promise<NetworkWeights | undefined> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_VALIDATION_WAIT_MS
    const at = await this.weightsAt(round * this.innerSteps, Date.now() + timeoutMs)
    if (at instanceof Map) return { weights: at, slotRounds: Array.from({ length: this.slots }, () => round), exact: true }
    if (!this.running) return undefined
    log('validation after round %d: %s, measuring the model as served', round, at === 'gone' ? 'the round is gone' : 'the round was not reached in time')
    return await this.servedWeights(Date.now() + timeoutMs)
  }

  /** A held slot's weights and their step: its group's (training) or the layer pool's (serving only) */
  private ownSlot (slot: number): { weights: Map<string, Float32Array>, step: number } | undefined {
    const g = this.groups.get(slot)
    if (g?.initialized === true) return { weights: g.parameters(), step: g.round * this.innerSteps }
    if (this.training) return undefined
    const weights = this.host.services.layerPool.slotWeights(slot)
    const span = this.host.services.layerPool.records().get(this.host.peerId.toString())?.record.spans
      .find(s => s.start <= slot && slot < s.end && (s.state === 'serving' || s.state === 'training'))
    return weights == null || span == null ? undefined : { weights, step: slotWeightsStep(span, slot) }
  }

  /** Every slot's weights at `step`; 'gone' when every holder of some slot is past it; undefined after `deadline` */
  private async weightsAt (step: number, deadline: number): Promise<Map<string, Float32Array> | 'gone' | undefined> {
    const out = new Map<string, Float32Array>()
    // this node's own slots first, before its groups move on to the next round while remote slots are fetched
    const remote: number[] = []
    for (let slot = 0; slot < this.slots; slot++) {
      const own = this.ownSlot(slot)
      if (own?.step === step) for (const [k, v] of own.weights) out.set(k, v)
      else remote.push(slot)
    }
    for (const slot of remote) {
      let got: Map<string, Float32Array> | undefined
      while (got == null) {
        if (!this.running || Date.now() > deadline) return undefined
        const holders = this.holdersAt(slot, step)
        if (holders == null) {
          // every holder of the slot (this node included) is past this step: its weights at the step are gone
          const steps = this.otherHolders(slot).map(h => slotWeightsStep(h.span, slot))
          const own = this.ownSlot(slot)
          if (own != null) steps.push(own.step)
          if (steps.length > 0 && steps.every(s => s > step)) return 'gone'
          await sleep(250, this.controller.signal)
          continue
        }
        got = await this.fetchSlot(slot, holders)
        if (got == null) await sleep(500, this.controller.signal)
      }
      for (const [k, v] of got) out.set(k, v)
    }
    return out
  }

  /** The model as the network serves it: each slot's newest weights (this node's own when none is newer) */
  private async servedWeights (deadline: number): Promise<NetworkWeights | undefined> {
    const weights = new Map<string, Float32Array>()
    const slotRounds: number[] = []
    for (let slot = 0; slot < this.slots; slot++) {
      let got: { weights: Map<string, Float32Array>, step: number } | undefined
      while (got == null) {
        if (!this.running || Date.now() > deadline) return undefined
        const own = this.ownSlot(slot)
        const newest = this.otherHolders(slot).reduce((step, h) => Math.max(step, slotWeightsStep(h.span, slot)), -1)
        if (own != null && own.step >= newest) {
          got = own
          break
        }
        const holders = newest >= 0 ? this.holdersAt(slot, newest) : undefined
        if (holders != null) {
          const tensors = await this.fetchSlot(slot, holders)
          if (tensors != null) got = { weights: tensors, step: newest }
        }
        if (got == null) await sleep(holders == null ? 250 : 500, this.controller.signal)
      }
      for (const [k, v] of got.weights) weights.set(k, v)
      slotRounds.push(Math.floor(got.step / this.innerSteps))
    }
    return { weights, slotRounds, exact: false }
  }

  /** A slot's weights from holders announcing the same hashes, checked against them; undefined when that failed */
  private async fetchSlot (slot: number, holders: { peers: PeerId[], weightsHash: string, chunksRoot: string }): Promise<Map<string, Float32Array> | undefined> {
    try {
      const res = await fetchSpanWeights(this.host as any, holders.peers, {
        modelId: this.modelId,
        version: this.host.services.layerPool.version,
        start: slot,
        end: slot + 1,
        part: 'weights',
        config: this.config,
        chunksRoot: holders.chunksRoot,
        weightsHash: holders.weightsHash
      }, { signal: this.controller.signal })
      return res.tensors
    } catch (err: any) {
      log('fetching slot %d for validation failed: %s', slot, err.message)
      return undefined
    }
  }

  private holdersAt (slot: number, step: number): { peers: PeerId[], weightsHash: string, chunksRoot: string } | undefined {
    const holders = this.otherHolders(slot)
    // the slot's own step (layer-pool 1.6.0): a span's step is its most trained slot's, and the slots of a span
    // move to a round one group at a time (the span's step took a slot still at the previous round for this one)
    const at = holders.find(h => slotWeightsStep(h.span, slot) === step)
    if (at == null) return undefined
    const info = at.span.slots[slot - at.span.start]
    const peers = holders.filter(h => h.span.slots[slot - h.span.start]?.weightsHash === info.weightsHash).map(h => h.peerId)
    return { peers, weightsHash: info.weightsHash, chunksRoot: info.chunksRoot }
  }

  /**
   * Fixed validation batches (the same every round, so the curve compares like with like): the first `evalBatches`
   * of the validation split, every one with `evalBatches` 0
   */
  validationBatches (): TrainBatch[] {
    const validation = this.init.data?.validation ?? []
    const seqLen = Math.min(this.init.seqLen ?? DEFAULT_NODE_SEQ_LEN, this.config.maxSeqLen)
    const max = this.init.evalBatches ?? 4
    if (!Number.isSafeInteger(max) || max < 0) throw new InvalidParametersError('evalBatches must be an integer >= 0')
    const out: TrainBatch[] = []
    for (const b of batches(validation, { seqLen, batchSize: this.init.batchSize ?? DEFAULT_NODE_BATCH_SIZE, shuffle: false })) {
      out.push({ inputIds: b.input as BigInt64Array, targets: b.target as BigInt64Array, batch: b.batchSize, seq: b.seqLen })
      if (max > 0 && out.length >= max) break
    }
    return out
  }

  /** Tokens one inner step of a training chain trains on: the Driver's batch (batch size × sequence length) */
  get tokensPerStep (): number {
    return (this.init.batchSize ?? DEFAULT_NODE_BATCH_SIZE) * Math.min(this.init.seqLen ?? DEFAULT_NODE_SEQ_LEN, this.config.maxSeqLen)
  }

  /**
   * What went into a held slot's `round` (the update that made it: the record of round − 1): contributions, those the
   * aggregation accepted, their inner steps (as each sender announced them) and tokens = those inner steps × this
   * node's `tokensPerStep` (every node of a network trains the same batch shape); `distinctTokens`: the same with
   * contributions that name the same data shards counted once (they trained the same batches: two replicas of a
   * network with as few train shards as DEFAULT_SHARDS_PER_ROUND train the same tokens every round). undefined when
   * this node has no record of it (round 0, or it joined after).
   */
  roundWork (slot: number, round: number): { contributions: number, accepted: number, innerSteps: number, tokens: number, distinctTokens: number } | undefined {
    const record = round > 0 ? this.groups.get(slot)?.record(round - 1) : undefined
    if (record == null) return undefined
    const accepted = record.contributions.filter(c => c.accepted)
    const innerSteps = accepted.reduce((n, c) => n + c.innerSteps, 0)
    // distinct tokens: Drivers whose contributions name the same data shards trained the same batches (batchesFor:
    // those shards in manifest order, shuffled with the round as seed), so their steps are the same tokens and count
    // once (the most steps of them); contributions naming no shards (not slot 0's) count each
    const bySet = new Map<string, number>()
    let unnamed = 0
    for (const c of accepted) {
      if (c.dataShards.length === 0) { unnamed += c.innerSteps; continue }
      const key = [...c.dataShards].sort().join(',')
      bySet.set(key, Math.max(bySet.get(key) ?? 0, c.innerSteps))
    }
    const distinctSteps = unnamed + [...bySet.values()].reduce((n, k) => n + k, 0)
    return { contributions: record.contributions.length, accepted: accepted.length, innerSteps, tokens: innerSteps * this.tokensPerStep, distinctTokens: distinctSteps * this.tokensPerStep }
  }
}

/**
 * Mean next-token loss of a whole model on `batches`, run on one local stage (embed → blocks → head's
 * loss); the stage's accumulated gradients are dropped afterwards.
 */
export async function modelLoss (weights: Map<string, Float32Array>, list: TrainBatch[], stageOf: () => Promise<PipelineStage>): Promise<number> {
  const losses = await modelBatchLosses(weights, list, stageOf)
  return losses.reduce((a, b) => a + b, 0) / losses.length
}

/** `modelLoss` per batch: each batch's mean next-token loss, in the order of `list` */
export async function modelBatchLosses (weights: Map<string, Float32Array>, list: TrainBatch[], stageOf: () => Promise<PipelineStage>): Promise<number[]> {
  const stage = await stageOf()
  for (const e of stage.executors) {
    const names = new Map<string, Float32Array>()
    const own = await e.getParameters()
    for (const name of own.keys()) names.set(name, weights.get(name)!)
    await e.setParameters(names)
  }
  const out: number[] = []
  for (const b of list) {
    const h0 = (await stage.embed!.forward({ input_ids: { type: 'int64', dims: [b.batch, b.seq], data: b.inputIds } })).hidden
    const h = stage.blocks != null ? (await stage.blocks.forward({ hidden_in: h0 })).hidden_out : h0
    const r = await stage.head!.backward({ hidden: h, targets: { type: 'int64', dims: [b.batch, b.seq], data: b.targets }, grad_loss: { type: 'float32', dims: [], data: Float32Array.of(1) } })
    out.push((r.loss.data as Float32Array)[0])
  }
  for (const e of stage.executors) await e.zeroGradients()
  return out
}

/**
 * One AdamW step of a whole-model stage on one batch: embed → blocks → head loss, gradients back, the global
 * gradient norm over every executor (tied gradients moved to their owner first), a step everywhere.
 */
export async function localTrainStep (stage: PipelineStage, b: TrainBatch): Promise<{ step: number, loss: number }> {
  const ids = { type: 'int64' as const, dims: [b.batch, b.seq], data: b.inputIds }
  const h0 = (await stage.embed!.forward({ input_ids: ids })).hidden
  const h = stage.blocks != null ? (await stage.blocks.forward({ hidden_in: h0 })).hidden_out : h0
  const r = await stage.head!.backward({ hidden: h, targets: { type: 'int64', dims: [b.batch, b.seq], data: b.targets }, grad_loss: { type: 'float32', dims: [], data: Float32Array.of(1) } })
  const g = stage.blocks != null ? (await stage.blocks.backward({ hidden_in: h0, grad_hidden_out: r.grad_hidden })).grad_hidden_in : r.grad_hidden
  await stage.embed!.backward({ input_ids: ids, grad_hidden: g })
  const tied = await stage.head!.takeTiedGradients()
  if (tied.size > 0) await stage.embed!.addGradients(tied)
  let sq = 0
  for (const e of stage.executors) sq += await e.gradNormSquared()
  const step = stage.embed!.stepCount
  for (const e of stage.executors) await e.step({ gradNorm: Math.sqrt(sq) })
  if (tied.size > 0) {
    const w = (await stage.embed!.getParameters()).get('embed.weight')!
    await stage.head!.setParameters(new Map([['embed.weight', w]]), { partial: true })
  }
  return { step, loss: (r.loss.data as Float32Array)[0] }
}

function peerOf (host: NetworkHost, peer: string): PeerId {
  const record = host.services.layerPool.records().get(peer)?.record
  if (record == null) throw new InvalidParametersError(`unknown peer ${peer}`)
  return record.peerId
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return
  await new Promise<void>(resolve => {
    const t = setTimeout(done, ms)
    function done (): void { clearTimeout(t); signal?.removeEventListener('abort', done); resolve() }
    signal?.addEventListener('abort', done, { once: true })
  })
}

