import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { PRESETS, countParameters, modelParameters, validateConfig } from '@neuroshard/model'
import { train } from '@neuroshard/trainer'
import { ProgressReporter, formatCount, formatDuration, parseDuration } from '../progress.js'
import { DEFAULT_DATA_DIR, parseDataSource, prepareData, workspacePaths } from '../workspace.js'
import type { CliIO } from '../progress.js'
import type { ModelConfig, PresetName } from '@neuroshard/model'
import type { TrainEvent } from '@neuroshard/trainer'
import { rm } from 'node:fs/promises'

/** Tokenizer vocabulary for the `tiny` preset (its own vocabSize, 256, is bytes only) @default 4096 */
export const DEFAULT_TINY_VOCAB = 4096
/** Peak learning rate per preset (custom configs use bootstrap's) */
export const DEFAULT_PRESET_LR: Readonly<Record<PresetName, number>> = Object.freeze({ tiny: 5e-3, small: 1e-3, bootstrap: 6e-4 })
/** Steps when neither --steps nor --time is given @default 1000 */
export const DEFAULT_TRAIN_STEPS = 1000

export const TRAIN_USAGE = `Usage: neuroshard train [options]

Trains NeuroLLM on this machine from nothing: trains a BPE tokenizer and builds the verifiable genesis
dataset in the data directory (or loads and verifies them), then trains with warmup + cosine schedule,
validation and checkpoints. Run the same command again to resume from the last checkpoint.

Options:
  -p, --preset <name>        tiny | small | bootstrap (default tiny)
      --config <file>        model config JSON (overrides --preset; vocabSize comes from the tokenizer)
      --data <source>        nlp-corpus (default) or comma-separated .txt / .jsonl files
      --text-field <name>    JSONL field holding the text (default text)
      --vocab-size <n>       vocabulary of a new tokenizer (default ${DEFAULT_TINY_VOCAB} for tiny, else the preset's)
  -d, --data-dir <dir>       where data, tokenizer and checkpoints live (default ${DEFAULT_DATA_DIR})
  -s, --steps <n>            optimizer steps (default ${DEFAULT_TRAIN_STEPS} unless --time is given)
  -t, --time <duration>      training time budget, e.g. 90s, 10m, 1h (fixes the step count after a few steps)
      --device <cpu|cuda>    execution provider (cuda falls back to cpu with a warning; default cpu)
      --batch-size <n>       sequences per micro-batch (default 16)
      --seq-len <n>          tokens per sequence (default min(128, maxSeqLen))
      --accum <n>            micro-batches per step, gradient accumulation (default 1)
      --lr <x>               peak learning rate (default 5e-3 tiny, 1e-3 small, 6e-4 bootstrap/custom)
      --warmup <n>           warmup steps (default 100)
      --eval-every <n>       steps between validation losses (default 100)
      --checkpoint-every <n> steps between checkpoints (default 100)
      --seed <n>             init and data-order seed (default 0)
      --threads <n>          onnxruntime threads (default: all cores)
      --fresh                delete existing checkpoints and start over
      --json                 JSON lines (the default when stdout is not a terminal)
  -h, --help                 show this help
`

function int (name: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`)
  return n
}

/** Runs `neuroshard train`; returns the exit code */
export async function trainCommand (argv: string[], io: CliIO): Promise<number> {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        preset: { type: 'string', short: 'p' },
        config: { type: 'string' },
        data: { type: 'string' },
        'text-field': { type: 'string' },
        'vocab-size': { type: 'string' },
        'data-dir': { type: 'string', short: 'd' },
        steps: { type: 'string', short: 's' },
        time: { type: 'string', short: 't' },
        device: { type: 'string' },
        'batch-size': { type: 'string' },
        'seq-len': { type: 'string' },
        accum: { type: 'string' },
        lr: { type: 'string' },
        warmup: { type: 'string' },
        'eval-every': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        seed: { type: 'string' },
        threads: { type: 'string' },
        fresh: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      },
      strict: true,
      allowPositionals: false
    }))
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${TRAIN_USAGE}`)
    return 2
  }
  if (values.help === true) {
    io.stdout.write(TRAIN_USAGE)
    return 0
  }

  let base: ModelConfig
  let presetName = values.preset ?? 'tiny'
  let steps: number | undefined
  let timeBudgetMs: number | undefined
  let opts
  try {
    if (values.config !== undefined) {
      base = JSON.parse(await readFile(values.config, 'utf8')) as ModelConfig
      presetName = 'custom'
    } else {
      if (!(presetName in PRESETS)) throw new Error(`unknown preset ${presetName} (tiny, small, bootstrap)`)
      base = { ...PRESETS[presetName as PresetName] }
    }
    if (values.device !== undefined && values.device !== 'cpu' && values.device !== 'cuda') throw new Error('--device must be cpu or cuda')
    steps = int('steps', values.steps)
    if (values.time !== undefined) timeBudgetMs = parseDuration(values.time)
    if (steps === undefined && timeBudgetMs === undefined) steps = DEFAULT_TRAIN_STEPS
    const lr = values.lr !== undefined ? Number(values.lr) : DEFAULT_PRESET_LR[presetName as PresetName] ?? DEFAULT_PRESET_LR.bootstrap
    if (!(lr > 0)) throw new Error('--lr must be a positive number')
    opts = {
      vocabSize: int('vocab-size', values['vocab-size'], 260) ?? (presetName === 'tiny' ? DEFAULT_TINY_VOCAB : base.vocabSize),
      batchSize: int('batch-size', values['batch-size']) ?? 16,
      seqLen: int('seq-len', values['seq-len']) ?? Math.min(128, base.maxSeqLen),
      gradAccumulation: int('accum', values.accum) ?? 1,
      warmupSteps: int('warmup', values.warmup, 0),
      evalEvery: int('eval-every', values['eval-every'], 0),
      checkpointEvery: int('checkpoint-every', values['checkpoint-every'], 0),
      seed: int('seed', values.seed, 0) ?? 0,
      threads: int('threads', values.threads),
      lr
    }
  } catch (err: any) {
    io.stderr.write(`${err.message}\n`)
    return 2
  }

  const progress = new ProgressReporter(io, { json: values.json === true })
  const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR
  const paths = workspacePaths(dataDir)
  const abort = new AbortController()
  void io.stopSignal?.then(() => {
    progress.print('stopping after this step (writing a checkpoint)…')
    abort.abort()
  })
  try {
    if (values.fresh === true) await rm(paths.checkpoints, { recursive: true, force: true })
    const source = parseDataSource(values.data ?? 'nlp-corpus', values['text-field'])
    const t0 = performance.now()
    const data = await prepareData({
      dataDir,
      source,
      vocabSize: opts.vocabSize,
      signal: abort.signal,
      onStage: (stage, info) => {
        const msg = stage === 'tokenizer'
          ? `training a ${String(info.vocabSize)}-token BPE tokenizer on ${String(info.documents)} documents…`
          : stage === 'dataset' ? 'building the genesis dataset…' : `verifying the genesis dataset in ${String(info.dir)}…`
        progress.event(stage, info, msg)
      }
    })
    const trainTokens = data.train.reduce((a, s) => a + s.length, 0)
    const valTokens = data.validation.reduce((a, s) => a + s.length, 0)
    progress.event('data', { manifestHash: data.manifest.manifestHash, built: data.built, vocabSize: data.tokenizer.vocabSize, trainTokens, validationTokens: valTokens, seconds: (performance.now() - t0) / 1000 },
      `genesis dataset ${data.manifest.manifestHash.slice(0, 16)}…: ${formatCount(trainTokens)} training + ${formatCount(valTokens)} validation tokens, vocabulary ${data.tokenizer.vocabSize}`)

    const config = validateConfig({ ...base, vocabSize: data.tokenizer.vocabSize })
    let lastLoss = NaN
    let lastVal: number | undefined
    const onProgress = (e: TrainEvent): void => {
      switch (e.type) {
        case 'start':
          progress.event('start', { ...e, preset: presetName, config, dataDir: paths.root }, `${e.resumedFrom !== undefined ? `resuming from ${e.resumedFrom}` : 'starting'}: ${presetName} (${formatCount(e.parameters)} parameters) on ${e.executionProvider}, ${e.tokensPerStep} tokens/step`)
          break
        case 'schedule':
          progress.event('schedule', e, `time budget: ${e.totalSteps} steps at ${e.secondsPerStep.toFixed(3)} s/step`)
          break
        case 'step':
          lastLoss = e.loss
          progress.event('step', e)
          progress.bar({
            label: 'step',
            done: e.step,
            ...(e.totalSteps !== undefined ? { total: e.totalSteps } : {}),
            fields: [`loss ${lastLoss.toFixed(3)}`, ...(lastVal !== undefined ? [`val ${lastVal.toFixed(3)}`] : []), `${formatCount(e.tokensPerSecond)} tok/s`],
            ...(e.etaMs !== undefined ? { etaMs: e.etaMs } : {})
          })
          break
        case 'eval':
          lastVal = e.loss
          progress.event('eval', e, `step ${e.step}: validation loss ${e.loss.toFixed(4)} (${formatCount(e.tokens)} tokens, ${formatDuration(e.elapsedMs)})`)
          break
        case 'checkpoint':
          progress.event('checkpoint', e)
          break
      }
    }
    const r = await train({
      config,
      train: data.train,
      validation: data.validation,
      dataId: data.manifest.manifestHash,
      seqLen: opts.seqLen,
      batchSize: opts.batchSize,
      gradAccumulation: opts.gradAccumulation,
      ...(steps !== undefined ? { steps } : {}),
      ...(timeBudgetMs !== undefined ? { timeBudgetMs } : {}),
      seed: opts.seed,
      peakLr: opts.lr,
      ...(opts.warmupSteps !== undefined ? { warmupSteps: opts.warmupSteps } : {}),
      ...(opts.evalEvery !== undefined ? { evalEvery: opts.evalEvery } : {}),
      ...(opts.checkpointEvery !== undefined ? { checkpointEvery: opts.checkpointEvery } : {}),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      checkpointDir: paths.checkpoints,
      device: (values.device ?? 'cpu') as 'cpu' | 'cuda',
      onWarning: (m) => { io.stderr.write(`warning: ${m}\n`) },
      onProgress,
      signal: abort.signal
    })
    progress.end()
    const val = r.evals.at(-1)
    progress.event('done', {
      step: r.step,
      totalSteps: r.totalSteps,
      stopped: r.stopped,
      validationLoss: val?.loss,
      tokens: r.tokens,
      tokensPerSecond: r.tokensPerSecond,
      elapsedMs: r.elapsedMs,
      contentHash: r.contentHash,
      checkpoint: r.checkpointPath,
      parameters: countParameters(modelParameters(config))
    }, `${r.stopped === 'aborted' ? 'stopped' : 'done'} at step ${r.step}/${r.totalSteps}: validation loss ${val?.loss.toFixed(4) ?? 'n/a'}, ${formatCount(r.tokensPerSecond)} tokens/s, checkpoint ${r.checkpointPath ?? 'none'}\n` +
      (r.stopped === 'aborted' ? 'run the same command again to resume\n' : `try: neuroshard generate --data-dir ${dataDir} --prompt "The"`))
    return r.stopped === 'aborted' ? 130 : 0
  } catch (err: any) {
    progress.end()
    if (err?.name === 'ResumeMismatchError') {
      io.stderr.write(`${err.message}\n(checkpoints in ${paths.checkpoints} belong to a run with other settings: pass the same options, --fresh to start over, or another --data-dir)\n`)
      return 2
    }
    if (err?.name === 'AbortError') {
      io.stderr.write('stopped\n')
      return 130
    }
    io.stderr.write(`train failed: ${err?.message ?? err}\n`)
    return 1
  }
}
