/**
 * The inner loop of a replica: H AdamW steps on the node's own data shards with the replica's own optimizer
 * state (kept across rounds, as in the DiLoCo paper), through `@neuroshard/runtime`'s shard executor.
 * A node holding the whole model lets `InnerLoop.create` build the executor (monolithic backward graph); a
 * pipeline stage passes the executor its pipeline drives and calls `run` with its own step function.
 */

import { InvalidParametersError } from '@neuroshard/interface'
import { buildModelGraph, modelParameters, validateConfig } from '@neuroshard/model'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import { learningRate, TrainBatchStream, validationBatches } from '@neuroshard/trainer'
import type { ModelConfig } from '@neuroshard/model'
import type { Device, ShardExecutor } from '@neuroshard/runtime'
import type { DataPosition, TokenBatch, Tokens } from '@neuroshard/trainer'

export interface InnerLoopInit {
  config: ModelConfig
  /** Starting weights (the group's base) */
  parameters: Map<string, Float32Array>
  /** This node's training shards (token arrays, e.g. the genesis shards `assignShards` gave it) */
  train: readonly Tokens[]
  /** Validation shards (for `evaluate`) */
  validation?: readonly Tokens[]
  /** @default 128 */
  seqLen?: number
  /** @default 8 */
  batchSize?: number
  /** Data order seed @default 0 */
  seed?: number
  /** Inner AdamW schedule: warmup + cosine over `totalSteps` (every inner step of the run) */
  peakLr?: number
  minLr?: number
  warmupSteps?: number
  totalSteps: number
  /**
   * Optimizer steps already taken (a resumed run): the schedule and AdamW's bias correction go on from this step
   * count instead of restarting at step 0. The moments go in with `executor.setOptimizerState`. @default 0
   */
  step?: number
  /** Where this node's data stream starts (a resumed run: the `position` the stream had) @default the start */
  position?: DataPosition
  weightDecay?: number
  maxGradNorm?: number
  /** @default 1 */
  threads?: number
  device?: Device
  /** Validation batches for `evaluate` @default 8 */
  evalBatches?: number
}

export interface InnerRunResult {
  steps: number
  tokens: number
  meanLoss: number
}

function feeds (b: TokenBatch): Record<string, ReturnType<typeof int64>> {
  return { input_ids: int64(b.input, [b.batchSize, b.seqLen]), targets: int64(b.target, [b.batchSize, b.seqLen]) }
}

export class InnerLoop {
  readonly executor: ShardExecutor
  private readonly stream: TrainBatchStream
  private readonly valBatches?: TokenBatch[]
  private readonly tokensPerStep: number
  /** Inner steps taken, counting the `step` it was created at */
  step: number

  private constructor (executor: ShardExecutor, stream: TrainBatchStream, tokensPerStep: number, step: number, valBatches?: TokenBatch[]) {
    this.executor = executor
    this.step = step
    this.stream = stream
    this.tokensPerStep = tokensPerStep
    if (valBatches !== undefined) this.valBatches = valBatches
  }

  static async create (init: InnerLoopInit): Promise<InnerLoop> {
    const config = validateConfig(init.config)
    const seqLen = init.seqLen ?? Math.min(128, config.maxSeqLen)
    const batchSize = init.batchSize ?? 8
    if (!Number.isSafeInteger(init.totalSteps) || init.totalSteps < 1) throw new InvalidParametersError('totalSteps must be a positive integer')
    const step = init.step ?? 0
    if (!Number.isSafeInteger(step) || step < 0) throw new InvalidParametersError(`step must be a non-negative integer, got ${String(init.step)}`)
    const peakLr = init.peakLr ?? 3e-3
    const schedule = { peakLr, minLr: init.minLr ?? peakLr / 10, warmupSteps: init.warmupSteps ?? Math.min(100, Math.floor(init.totalSteps / 10)), totalSteps: init.totalSteps }
    const stream = new TrainBatchStream(init.train, { seqLen, batchSize, seed: init.seed ?? 0, ...(init.position !== undefined ? { position: init.position } : {}) })
    const val = init.validation !== undefined ? validationBatches(init.validation, { seqLen, batchSize, maxBatches: init.evalBatches ?? 8 }) : undefined
    const executor = await createShardExecutor({
      config,
      role: { kind: 'blocks', start: 0, end: config.nLayers },
      parameterSpecs: modelParameters(config),
      parameters: init.parameters,
      graphs: {
        backward: buildModelGraph(config, 'backward').bytes,
        ...(val !== undefined ? { forward: buildModelGraph(config, 'forward').bytes } : {})
      },
      optimizer: {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weightDecay: init.weightDecay ?? 0.1,
        maxGradNorm: init.maxGradNorm ?? 1,
        schedule: (s: number) => learningRate(schedule, s)
      },
      device: init.device ?? 'cpu',
      intraOpNumThreads: init.threads ?? 1,
      step
    })
    return new InnerLoop(executor, stream, seqLen * batchSize, step, val)
  }

  /** `steps` AdamW steps on this replica's data; the optimizer state stays in the executor */
  async run (steps: number, options: { signal?: AbortSignal } = {}): Promise<InnerRunResult> {
    let loss = 0
    for (let i = 0; i < steps; i++) {
      options.signal?.throwIfAborted()
      const out = await this.executor.backward(feeds(this.stream.next()), { transfer: true })
      loss += (out.loss.data as Float32Array)[0]
      await this.executor.step()
      this.step++
    }
    return { steps, tokens: steps * this.tokensPerStep, meanLoss: steps > 0 ? loss / steps : NaN }
  }

  /** Position of this node's next batch (with `step`, the executor's moments and the weights: what resumes the run) */
  get position (): DataPosition { return this.stream.position }

  async getParameters (): Promise<Map<string, Float32Array>> { return await this.executor.getParameters() }
  async setParameters (p: Map<string, Float32Array>): Promise<void> { await this.executor.setParameters(p) }

  /** Mean validation loss over the fixed validation batches (token-weighted) */
  async evaluate (): Promise<number> {
    if (this.valBatches === undefined) throw new InvalidParametersError('no validation data')
    let sum = 0
    let n = 0
    for (const b of this.valBatches) {
      const out = await this.executor.forward(feeds(b))
      sum += (out.loss.data as Float32Array)[0] * b.batchSize * b.seqLen
      n += b.batchSize * b.seqLen
    }
    return sum / n
  }

  async close (): Promise<void> { await this.executor.close() }
}
