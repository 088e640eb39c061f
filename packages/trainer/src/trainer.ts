import { createHash } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { logger } from '@libp2p/logger'
import { InvalidParametersError } from '@neuroshard/interface'
import { buildModelGraph, contentHash, float32AsBytes, initParameter, modelParameters, validateConfig } from '@neuroshard/model'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import {
  DEFAULT_BATCH_SIZE, DEFAULT_CHECKPOINT_EVERY, DEFAULT_EVAL_BATCHES, DEFAULT_EVAL_EVERY, DEFAULT_GRAD_ACCUMULATION,
  DEFAULT_KEEP_CHECKPOINTS, DEFAULT_MAX_GRAD_NORM, DEFAULT_MIN_LR_RATIO, DEFAULT_PEAK_LR, DEFAULT_WARMUP_STEPS,
  DEFAULT_WEIGHT_DECAY, RESCHEDULE_EVERY, TIME_BUDGET_PROBE_STEPS
} from './constants.js'
import { checkTokenRange, TrainBatchStream, validationBatches } from './data.js'
import { ResumeMismatchError } from './errors.js'
import { loadLatestTrainState, saveTrainState } from './state.js'
import type { Tokens, TokenBatch } from './data.js'
import type { EvalPoint, TrainSettings, TrainState } from './state.js'
import type { ModelConfig } from '@neuroshard/model'
import type { Device, ShardExecutor } from '@neuroshard/runtime'

const log = logger('neuroshard:trainer')

/** What a training run reports while it runs (`onProgress`) */
export type TrainEvent =
  | { type: 'start', step: number, totalSteps: number | undefined, resumedFrom?: string, parameters: number, tokensPerStep: number, executionProvider: Device }
  | { type: 'schedule', totalSteps: number, secondsPerStep: number }
  | { type: 'step', step: number, totalSteps: number | undefined, loss: number, lr: number, gradNorm: number, tokens: number, tokensPerSecond: number, elapsedMs: number, etaMs: number | undefined }
  | { type: 'eval', step: number, loss: number, tokens: number, elapsedMs: number }
  | { type: 'checkpoint', step: number, path: string, contentHash: string }

export interface TrainOptions {
  config: ModelConfig
  /** Training token shards (e.g. `Shard.tokens` of the genesis train split) */
  train: readonly Tokens[]
  /** Validation token shards; without them no validation loss is measured */
  validation?: readonly Tokens[]
  /** Identity of the data, checked on resume @default sha256 of the training tokens */
  dataId?: string
  /** Tokens per sequence @default min(config.maxSeqLen, 128) */
  seqLen?: number
  /** Sequences per micro-batch @default 8 */
  batchSize?: number
  /** Micro-batches per optimizer step @default 1 */
  gradAccumulation?: number
  /** Optimizer steps; give this or `timeBudgetMs` (then `steps`, if also given, caps the run) */
  steps?: number
  /** Training wall-time budget in ms (summed over resumed sessions); fixes the step count after a few timed steps */
  timeBudgetMs?: number
  /** Weight init seed @default 0 */
  seed?: number
  /** Data order seed @default seed */
  dataSeed?: number
  /** @default 3e-3 */
  peakLr?: number
  /** @default peakLr / 10 */
  minLr?: number
  /** Linear warmup steps, capped at a tenth of the run when the step count is known @default 100 */
  warmupSteps?: number
  /** @default 0.1 */
  weightDecay?: number
  /** @default 1 */
  maxGradNorm?: number
  /** @default 0.9 */
  beta1?: number
  /** @default 0.95 */
  beta2?: number
  /** @default 1e-8 */
  eps?: number
  /** Steps between validations (0: only at start and end) @default 100 */
  evalEvery?: number
  /** Validation micro-batches per evaluation @default 8 */
  evalBatches?: number
  /** Directory for training-state checkpoints; without it nothing is saved and nothing resumed */
  checkpointDir?: string
  /** Steps between checkpoints (0: only at the end) @default 100 */
  checkpointEvery?: number
  /** @default 2 */
  keepCheckpoints?: number
  /** Continue from the newest checkpoint in `checkpointDir` when there is one @default true */
  resume?: boolean
  /** Stop (with a checkpoint) once this many steps are done, leaving the run resumable (tests, staged runs) */
  stopAtStep?: number
  /** @default 'cpu' */
  device?: Device
  /** onnxruntime intra-op threads; results are bit-reproducible at a fixed count @default availableParallelism() */
  threads?: number
  onProgress?: (event: TrainEvent) => void
  onWarning?: (message: string) => void
  /** Abort: the run stops after the current step and writes a checkpoint */
  signal?: AbortSignal
}

export interface TrainResult {
  /** Optimizer steps done */
  step: number
  totalSteps: number
  /** Why it stopped */
  stopped: 'completed' | 'time-budget' | 'stop-at-step' | 'aborted'
  parameters: Map<string, Float32Array>
  /** Content hash of the final weights (`@neuroshard/model`'s `contentHash`) */
  contentHash: string
  evals: EvalPoint[]
  /** Training tokens consumed (whole run, all sessions) */
  tokens: number
  /** Training wall time (whole run) */
  elapsedMs: number
  /** Tokens per second of this session's steps */
  tokensPerSecond: number
  /** Last checkpoint written or resumed from */
  checkpointPath?: string
  resumedFrom?: string
  executionProvider: Device
}

/** sha256 over the token values of every shard (a cheap identity for in-memory data) */
export function tokensDigest (shards: readonly Tokens[]): string {
  const h = createHash('sha256')
  for (const s of shards) {
    const u = Uint32Array.from(s as ArrayLike<number>)
    h.update(Buffer.from(u.buffer, u.byteOffset, u.byteLength)).update(Buffer.of(0xff))
  }
  return h.digest('hex')
}

function positiveInt (name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new InvalidParametersError(`${name} must be a positive integer, got ${v}`)
  return v
}

function nonNegInt (name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidParametersError(`${name} must be a non-negative integer, got ${v}`)
  return v
}

/** lr at 0-based `step`: linear warmup to the peak, cosine to `minLr` at `totalSteps`, then `minLr` */
export function learningRate (schedule: TrainSettings['schedule'], step: number): number {
  const { peakLr, minLr, warmupSteps, totalSteps } = schedule
  if (step < warmupSteps) return peakLr * (step + 1) / warmupSteps
  if (totalSteps <= warmupSteps) return step === warmupSteps ? peakLr : minLr
  if (step >= totalSteps) return minLr
  const progress = (step - warmupSteps) / (totalSteps - warmupSteps)
  return minLr + 0.5 * (peakLr - minLr) * (1 + Math.cos(Math.PI * progress))
}

function sameSettings (a: TrainSettings, b: TrainSettings): string | undefined {
  const strip = (s: TrainSettings): unknown => ({ ...s, threads: undefined, schedule: { ...s.schedule, totalSteps: undefined } })
  const x = JSON.stringify(strip(a))
  const y = JSON.stringify(strip(b))
  if (x !== y) return `checkpoint settings ${x} differ from this run's ${y}`
  if (a.schedule.totalSteps !== 0 && b.schedule.totalSteps !== 0 && a.schedule.totalSteps !== b.schedule.totalSteps) {
    return `checkpoint was made for ${a.schedule.totalSteps} steps, this run asks for ${b.schedule.totalSteps}`
  }
  return undefined
}

function feeds (b: TokenBatch): Record<string, ReturnType<typeof int64>> {
  return { input_ids: int64(b.input, [b.batchSize, b.seqLen]), targets: int64(b.target, [b.batchSize, b.seqLen]) }
}

/** Mean validation loss over fixed batches, weighted by tokens */
async function evaluate (ex: ShardExecutor, batches: TokenBatch[], signal?: AbortSignal): Promise<number> {
  let sum = 0
  let n = 0
  for (const b of batches) {
    const out = await ex.forward(feeds(b), signal !== undefined ? { signal } : {})
    const loss = (out.loss.data as Float32Array)[0]
    sum += loss * b.batchSize * b.seqLen
    n += b.batchSize * b.seqLen
  }
  return sum / n
}

/**
 * Train the whole model on this machine: one shard executor holding every parameter, the monolithic
 * backward graph (forward + loss + gradients in one onnxruntime run), AdamW in the executor's worker,
 * warmup + cosine schedule, gradient accumulation, periodic validation loss and atomic checkpoints of
 * the full training state (weights, AdamW moments, step, data position, schedule, validation curve).
 *
 * With a `checkpointDir`, a run picks up from its newest checkpoint, and a run that is killed and
 * resumed ends with bit-identical weights to an uninterrupted run (same settings, same data, same
 * thread count): the data order is a pure function of (seed, epoch, position), and the checkpoint
 * holds everything else that changes during training.
 */
export async function train (options: TrainOptions): Promise<TrainResult> {
  const config = validateConfig(options.config)
  if (options.steps === undefined && options.timeBudgetMs === undefined) throw new InvalidParametersError('give steps or timeBudgetMs')
  if (options.steps !== undefined) positiveInt('steps', options.steps)
  if (options.timeBudgetMs !== undefined && !(options.timeBudgetMs > 0)) throw new InvalidParametersError('timeBudgetMs must be positive')
  const seqLen = positiveInt('seqLen', options.seqLen ?? Math.min(config.maxSeqLen, 128))
  if (seqLen > config.maxSeqLen) throw new InvalidParametersError(`seqLen ${seqLen} is over the model's maxSeqLen ${config.maxSeqLen}`)
  const batchSize = positiveInt('batchSize', options.batchSize ?? DEFAULT_BATCH_SIZE)
  const accum = positiveInt('gradAccumulation', options.gradAccumulation ?? DEFAULT_GRAD_ACCUMULATION)
  const seed = nonNegInt('seed', options.seed ?? 0)
  const dataSeed = nonNegInt('dataSeed', options.dataSeed ?? seed)
  const peakLr = options.peakLr ?? DEFAULT_PEAK_LR
  const minLr = options.minLr ?? peakLr * DEFAULT_MIN_LR_RATIO
  if (!(peakLr > 0) || !(minLr >= 0) || minLr > peakLr) throw new InvalidParametersError('need peakLr > 0 and 0 <= minLr <= peakLr')
  let warmupSteps = nonNegInt('warmupSteps', options.warmupSteps ?? DEFAULT_WARMUP_STEPS)
  if (options.steps !== undefined && options.timeBudgetMs === undefined) warmupSteps = Math.min(warmupSteps, Math.floor(options.steps / 10))
  const evalEvery = nonNegInt('evalEvery', options.evalEvery ?? DEFAULT_EVAL_EVERY)
  const ckptEvery = nonNegInt('checkpointEvery', options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY)
  const threads = positiveInt('threads', options.threads ?? availableParallelism())
  checkTokenRange(options.train, config.vocabSize)
  if (options.validation !== undefined) checkTokenRange(options.validation, config.vocabSize)

  const settings: TrainSettings = {
    config,
    seed,
    dataSeed,
    seqLen,
    batchSize,
    gradAccumulation: accum,
    schedule: { peakLr, minLr, warmupSteps, totalSteps: options.timeBudgetMs === undefined ? options.steps as number : 0 },
    optimizer: {
      beta1: options.beta1 ?? 0.9,
      beta2: options.beta2 ?? 0.95,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? DEFAULT_WEIGHT_DECAY,
      maxGradNorm: options.maxGradNorm ?? DEFAULT_MAX_GRAD_NORM
    },
    threads,
    dataId: options.dataId ?? tokensDigest(options.train)
  }

  // resume
  let resumed: (TrainState & { path: string }) | undefined
  if (options.checkpointDir !== undefined && options.resume !== false) {
    resumed = await loadLatestTrainState(options.checkpointDir)
    if (resumed !== undefined) {
      const why = sameSettings(resumed.settings, settings)
      if (why !== undefined) throw new ResumeMismatchError(`cannot resume from ${resumed.path}: ${why}`)
      if (resumed.settings.schedule.totalSteps !== 0) settings.schedule.totalSteps = resumed.settings.schedule.totalSteps
      if (resumed.settings.threads !== threads) log('resuming with %d threads instead of %d: results may differ in the last bits', threads, resumed.settings.threads)
    }
  }
  const schedule = settings.schedule
  const specs = modelParameters(config)
  const parameters = resumed?.parameters ?? new Map(specs.map(s => [s.name, initParameter(config, s, seed)]))
  let step = resumed?.step ?? 0
  let tokens = resumed?.tokens ?? 0
  const priorMs = resumed?.elapsedMs ?? 0
  const evals: EvalPoint[] = resumed?.evals.slice() ?? []
  const stream = new TrainBatchStream(options.train, { seqLen, batchSize, seed: dataSeed, ...(resumed !== undefined ? { position: resumed.data } : {}) })
  const valBatches = options.validation !== undefined && options.validation.length > 0
    ? validationBatches(options.validation, { seqLen, batchSize, maxBatches: options.evalBatches ?? DEFAULT_EVAL_BATCHES })
    : undefined

  const o = settings.optimizer
  const ex = await createShardExecutor({
    config,
    // the monolithic graphs take every parameter; the role is nominal (checkpoints here are training states)
    role: { kind: 'blocks', start: 0, end: config.nLayers },
    parameterSpecs: specs,
    parameters,
    step,
    graphs: {
      backward: buildModelGraph(config, 'backward').bytes,
      ...(valBatches !== undefined ? { forward: buildModelGraph(config, 'forward').bytes } : {})
    },
    optimizer: {
      beta1: o.beta1,
      beta2: o.beta2,
      // the executor sums accumulated gradients; Adam on a sum with eps·A is Adam on the mean with eps
      eps: o.eps * accum,
      weightDecay: o.weightDecay,
      maxGradNorm: o.maxGradNorm,
      schedule: (s: number) => learningRate(schedule, s)
    },
    device: options.device ?? 'cpu',
    intraOpNumThreads: threads,
    ...(options.onWarning !== undefined ? { onWarning: options.onWarning } : {})
  })
  try {
    if (resumed !== undefined && resumed.m.size > 0) await ex.setOptimizerState({ m: resumed.m, v: resumed.v })
    const tokensPerStep = accum * batchSize * seqLen
    options.onProgress?.({
      type: 'start',
      step,
      totalSteps: schedule.totalSteps === 0 ? undefined : schedule.totalSteps,
      ...(resumed !== undefined ? { resumedFrom: resumed.path } : {}),
      parameters: specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0),
      tokensPerStep,
      executionProvider: ex.executionProvider
    })
    const sessionStart = performance.now()
    const elapsed = (): number => priorMs + (performance.now() - sessionStart)
    let checkpointPath: string | undefined = resumed?.path
    let lastSaved = resumed?.step ?? -1
    let lastEval = evals.at(-1)?.step ?? -1

    const state = async (): Promise<TrainState> => {
      const st = await ex.getOptimizerState()
      return { settings, step, data: stream.position, tokens, elapsedMs: elapsed(), evals, parameters: await ex.getParameters(), m: st.m, v: st.v }
    }
    const save = async (): Promise<void> => {
      if (options.checkpointDir === undefined || lastSaved === step) return
      const st = await state()
      checkpointPath = await saveTrainState(options.checkpointDir, st, options.keepCheckpoints ?? DEFAULT_KEEP_CHECKPOINTS)
      lastSaved = step
      options.onProgress?.({ type: 'checkpoint', step, path: checkpointPath, contentHash: weightsHash(config, st.parameters) })
    }
    const runEval = async (): Promise<void> => {
      if (valBatches === undefined || lastEval === step) return
      const loss = await evaluate(ex, valBatches)
      const point = { step, loss, tokens, elapsedMs: elapsed() }
      evals.push(point)
      lastEval = step
      options.onProgress?.({ type: 'eval', ...point })
    }

    if (step === 0) await runEval()
    const stepTimes: number[] = []
    let sessionTokens = 0
    let sessionStepMs = 0
    let stopped: TrainResult['stopped'] = 'completed'
    const budget = options.timeBudgetMs
    let mark = { step, ms: elapsed() }
    const cap = options.steps
    for (;;) {
      if (schedule.totalSteps !== 0 && step >= schedule.totalSteps) { stopped = 'completed'; break }
      if (cap !== undefined && step >= cap) { stopped = 'completed'; break }
      if (budget !== undefined && elapsed() >= budget) { stopped = 'time-budget'; break }
      if (options.stopAtStep !== undefined && step >= options.stopAtStep) { stopped = 'stop-at-step'; break }
      if (options.signal?.aborted === true) { stopped = 'aborted'; break }

      const t0 = performance.now()
      let lossSum = 0
      for (let a = 0; a < accum; a++) {
        const out = await ex.backward(feeds(stream.next()), { transfer: true })
        lossSum += (out.loss.data as Float32Array)[0]
      }
      const r = accum > 1
        ? await ex.step({ gradNorm: Math.sqrt(await ex.gradNormSquared()) / accum })
        : await ex.step()
      step++
      tokens += tokensPerStep
      const dt = performance.now() - t0
      sessionTokens += tokensPerStep
      sessionStepMs += dt
      stepTimes.push(dt)
      if (stepTimes.length > 20) stepTimes.shift()

      // a time-budgeted run fixes its length once the lr no longer ignores it (steps ≤ warmup are T-free)
      if (budget !== undefined && schedule.totalSteps === 0 && (step >= Math.min(TIME_BUDGET_PROBE_STEPS, warmupSteps + 1))) {
        // the first step of a session includes onnxruntime's warm-up: leave it out when there are others
        const timed = stepTimes.length > 1 ? stepTimes.slice(1) : stepTimes
        const perStep = timed.reduce((x, y) => x + y, 0) / timed.length
        const left = Math.max(0, budget - elapsed())
        let total = step + Math.floor(0.97 * left / Math.max(perStep, 1e-3))
        if (cap !== undefined) total = Math.min(total, cap)
        schedule.totalSteps = Math.max(total, warmupSteps, step)
        options.onProgress?.({ type: 'schedule', totalSteps: schedule.totalSteps, secondsPerStep: perStep / 1000 })
        mark = { step, ms: elapsed() }
      } else if (budget !== undefined && schedule.totalSteps !== 0 && step - mark.step >= RESCHEDULE_EVERY && step < 0.9 * schedule.totalSteps) {
        // the speed of a shared machine drifts: re-fit the length to the time left, measured over the last
        // window including evaluations and checkpoints; the new length is recorded in the next checkpoint
        const perStep = (elapsed() - mark.ms) / (step - mark.step)
        let total = step + Math.floor(0.99 * Math.max(0, budget - elapsed()) / Math.max(perStep, 1e-3))
        if (cap !== undefined) total = Math.min(total, cap)
        total = Math.max(total, warmupSteps, step)
        if (Math.abs(total - schedule.totalSteps) > 0.02 * schedule.totalSteps) {
          schedule.totalSteps = total
          options.onProgress?.({ type: 'schedule', totalSteps: total, secondsPerStep: perStep / 1000 })
        }
        mark = { step, ms: elapsed() }
      }

      const meanMs = stepTimes.reduce((x, y) => x + y, 0) / stepTimes.length
      const total = schedule.totalSteps === 0 ? undefined : schedule.totalSteps
      let eta: number | undefined = total !== undefined ? (total - step) * meanMs : undefined
      if (budget !== undefined) eta = Math.min(eta ?? Infinity, Math.max(0, budget - elapsed()))
      options.onProgress?.({
        type: 'step',
        step,
        totalSteps: total,
        loss: lossSum / accum,
        lr: r.lr,
        gradNorm: r.gradNorm / accum,
        tokens,
        tokensPerSecond: tokensPerStep / (meanMs / 1000),
        elapsedMs: elapsed(),
        etaMs: eta
      })
      if (evalEvery > 0 && step % evalEvery === 0) await runEval()
      if (ckptEvery > 0 && step % ckptEvery === 0) await save()
    }
    // an interrupted run is continued later: an extra validation point here would not be in an uninterrupted run's curve
    if (stopped === 'completed' || stopped === 'time-budget') await runEval()
    await save()
    const finalParams = await ex.getParameters()
    return {
      step,
      totalSteps: schedule.totalSteps === 0 ? step : schedule.totalSteps,
      stopped,
      parameters: finalParams,
      contentHash: weightsHash(config, finalParams),
      evals,
      tokens,
      elapsedMs: elapsed(),
      tokensPerSecond: sessionStepMs > 0 ? sessionTokens / (sessionStepMs / 1000) : 0,
      ...(checkpointPath !== undefined ? { checkpointPath } : {}),
      ...(resumed !== undefined ? { resumedFrom: resumed.path } : {}),
      executionProvider: ex.executionProvider
    }
  } finally {
    await ex.close()
  }
}

/** The weights' content hash, as the checkpoint's `content_hash` records it */
export function weightsHash (config: ModelConfig, parameters: Map<string, Float32Array>): string {
  return contentHash(modelParameters(config).map(s => ({ name: s.name, dtype: 'F32', shape: s.shape, data: float32AsBytes(parameters.get(s.name) as Float32Array) })))
}
