/**
 * DiLoCo experiments on the `tiny` model and the genesis data (packages/diloco/README.md, "Experiments").
 *
 * In-process simulation: 4 workers are 4 shard executors (each with its own AdamW state) run one after the
 * other in this process; their pseudo-gradients go through this package's codecs, error feedback,
 * aggregation (`aggregateRound`) and outer step (`outerStep`) exactly as the libp2p service runs them, but
 * without the network. Bytes are the payload bytes each node publishes (plus the announce), and wall-clock
 * per round is the measured compute of one worker's H steps plus the transfer time of the payloads at a
 * simulated link speed.
 *
 * Resumable: each configuration's result is appended to bench-results/diloco-experiments.json as soon as it
 * finishes, and configurations already there are skipped. Environment:
 *   DILOCO_STEPS (inner steps per worker, default 1000), DILOCO_BYZ_STEPS (default 150),
 *   DILOCO_ONLY (comma-separated config-name prefixes; a trailing `$` asks for the exact name),
 *   DILOCO_LINK_MBIT (default 100), DILOCO_THREADS (default 1), DILOCO_PRESET (`tiny` (default) or `small`),
 *   DILOCO_RESULTS (the results file), DILOCO_PEAK_LR (inner peak lr, default 3e-3; the schedule decays to a tenth),
 *   DILOCO_SAVE_CHECKPOINT (file: sync DP writes its final weights there, raw float32 in the span layout's order),
 *   DILOCO_CHECKPOINT (file written that way: every run starts from those weights instead of the random init,
 *   with fresh AdamW state and the same schedule; the "from a pretrained checkpoint" protocol of the README),
 *   DILOCO_SCHEDULE_STEPS (the inner schedule's length, warmup min(50, a tenth) + cosine to a tenth of the peak;
 *   default DILOCO_STEPS, or the resumed step + DILOCO_STEPS with DILOCO_RESUME),
 *   DILOCO_SAVE_STATE (file prefix) with DILOCO_SAVE_STATE_AT (comma-separated step counts): sync DP writes its full
 *   training state (weights, AdamW moments, step count, its 4 data streams' positions; bench/train-state.ts) to
 *   `<prefix>-<step>.state` after those steps,
 *   DILOCO_RESUME (such a file): every run continues it as one run — weights, AdamW moments and step count into sync
 *   DP's and every worker's inner optimizer, data stream i (sync DP's i-th, worker i's) from its saved position, the
 *   schedule going on from the saved step (no re-warmup); the README's "continued run" protocol)
 */

import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildGenesisDataset, readCorpus } from '@neuroshard/genesis-data'
import { countParameters, initParameter, modelParameters, preset } from '@neuroshard/model'
import { aLittleIsEnough, innerProductManipulation, signFlipping } from '@neuroshard/robust-agg'
import { trainBpe } from '@neuroshard/tokenizer'
import { aggregateRound, ErrorFeedback, flatten, InnerLoop, outerStep, payloadSize, resolveCodec, spanLayout, unflatten } from '../src/index.js'
import { decodeTrainState, encodeTrainState } from './train-state.js'
import { loadWorkerData } from './worker-data.js'
import { lowRank, packedSparse, riceSparse, simCompress } from './sim-codec.js'
import type { SimCodec } from './sim-codec.js'
import type { TrainState } from './train-state.js'
import type { DataPosition } from '@neuroshard/trainer'
import type { AggregatorChoice, CodecName, CodecParams } from '../src/index.js'
import type { Attack } from '@neuroshard/robust-agg'

const here = dirname(fileURLToPath(import.meta.url))
const resultsDir = join(here, '..', '..', 'bench-results')
const resultsFile = process.env.DILOCO_RESULTS ?? join(resultsDir, 'diloco-experiments.json')
const genesis = join(resultsDir, 'diloco-genesis')
const STEPS = Number(process.env.DILOCO_STEPS ?? 1000)
const BYZ_STEPS = Number(process.env.DILOCO_BYZ_STEPS ?? 150)
const LINK = Number(process.env.DILOCO_LINK_MBIT ?? 100) * 1e6 / 8 // bytes/s
const THREADS = Number(process.env.DILOCO_THREADS ?? 1)
const ONLY = process.env.DILOCO_ONLY?.split(',')
const PRESET = (process.env.DILOCO_PRESET ?? 'tiny') as 'tiny' | 'small'
const WORKERS = 4
const SEQ = 64
const BATCH = 8
const PEAK_LR = Number(process.env.DILOCO_PEAK_LR ?? 3e-3)
const SAVE_CHECKPOINT = process.env.DILOCO_SAVE_CHECKPOINT
const CHECKPOINT = process.env.DILOCO_CHECKPOINT
const RESUME = process.env.DILOCO_RESUME
const SAVE_STATE = process.env.DILOCO_SAVE_STATE
const SAVE_STATE_AT = new Set((process.env.DILOCO_SAVE_STATE_AT ?? '').split(',').filter(x => x !== '').map(Number))
const ANNOUNCE_BYTES = 300 // a signed announce with a few data-shard ids, measured on the wire format

interface Result {
  name: string
  kind: 'sync-dp' | 'single' | 'diloco'
  H?: number
  codec?: string
  aggregator?: string
  attack?: string
  steps: number
  tokens: number
  valLoss: number
  bytesPerNode: number
  rounds?: number
  computeSecondsPerRound?: number
  commSecondsPerRound?: number
  wallSeconds: number
  finishedAt: string
  /** the inner peak lr (DILOCO_PEAK_LR) of the run; absent in results written before it was recorded (3e-3 then, unless the README says otherwise) */
  peakLr?: number
  /** DiLoCo with an H schedule: each round's inner steps */
  hSchedule?: string
  /** DiLoCo: the outer optimizer when the config set it (Nesterov; μ 0 is plain SGD) */
  outer?: { lr: number, momentum: number }
  /** DILOCO_RESUME: the training-state file and the step it continued from */
  resumedFrom?: { file: string, step: number }
}

await mkdir(resultsDir, { recursive: true })
const results: Result[] = existsSync(resultsFile) ? JSON.parse(await readFile(resultsFile, 'utf8')) : []
/** a run at another inner peak lr than the default is saved as `<name>@lr<lr>` (so one table can hold several lrs) */
const lrName = (name: string): string => PEAK_LR === 3e-3 ? name : `${name}@lr${PEAK_LR}`
const save = async (r0: Result): Promise<void> => {
  const r = { ...r0, name: lrName(r0.name), peakLr: PEAK_LR }
  results.push(r)
  await writeFile(resultsFile, JSON.stringify(results, null, 2))
  console.log(`done ${r.name}: val ${r.valLoss.toFixed(4)}, ${r.bytesPerNode} B/node, ${r.wallSeconds.toFixed(0)} s`)
}

// ---- data ----------------------------------------------------------------------------------------
if (!existsSync(join(genesis, 'manifest.json'))) {
  console.log('building the genesis dataset (tokenizer + shards)…')
  const corpus = await readCorpus('nlp-corpus')
  const tokenizer = trainBpe(corpus.documents, { vocabSize: 4096 })
  await buildGenesisDataset({ source: 'nlp-corpus', tokenizer, outDir: genesis })
}
const { manifest, perWorker, workerShards, allShards, valShards } = await loadWorkerData(genesis, WORKERS)
const config = { ...preset(PRESET), vocabSize: manifest.tokenizer.vocabSize }
const specs = modelParameters(config)
const P = countParameters(specs)
const layout = spanLayout({ id: 'full', parameters: specs })
if (CHECKPOINT !== undefined && RESUME !== undefined) throw new Error('DILOCO_CHECKPOINT and DILOCO_RESUME exclude each other')
const resumed: TrainState | undefined = RESUME !== undefined ? decodeTrainState(readFileSync(RESUME), layout.size) : undefined
if (resumed !== undefined && resumed.positions.length !== WORKERS) throw new Error(`${RESUME}: ${resumed.positions.length} data streams, expected ${WORKERS}`)
const START_STEP = resumed?.step ?? 0
const SCHEDULE_STEPS = Number(process.env.DILOCO_SCHEDULE_STEPS ?? START_STEP + STEPS)
const WARMUP = Math.min(50, Math.floor(SCHEDULE_STEPS / 10))
const fromCheckpoint = ((): Float32Array | undefined => {
  if (resumed !== undefined) return resumed.weights
  if (CHECKPOINT === undefined) return undefined
  const b = readFileSync(CHECKPOINT)
  if (b.byteLength !== layout.size * 4) throw new Error(`${CHECKPOINT}: ${b.byteLength} bytes, expected ${layout.size * 4} (${layout.size} float32)`)
  const flat = new Float32Array(layout.size)
  new Uint8Array(flat.buffer).set(b)
  return flat
})()
const init = (): Map<string, Float32Array> => fromCheckpoint !== undefined
  ? unflatten(layout, fromCheckpoint.slice())
  : new Map(specs.map(s => [s.name, initParameter(config, s, 0)]))
if (CHECKPOINT !== undefined) console.log(`starting every run from ${CHECKPOINT}; inner peak lr ${PEAK_LR}`)
if (resumed !== undefined) console.log(`continuing every run from ${RESUME} (step ${START_STEP}, AdamW moments, data positions ${JSON.stringify(resumed.positions)}); schedule warmup ${WARMUP} + cosine over ${SCHEDULE_STEPS} steps, peak lr ${PEAK_LR}`)
console.log(`${PRESET}: ${P} parameters; ${allShards.length} train shards (${perWorker} per worker by assignShards), ${STEPS} inner steps per worker of ${BATCH}×${SEQ} tokens`)

async function loop (shards: ArrayLike<number>[], steps: number, seed: number, parameters = init(), position?: DataPosition): Promise<InnerLoop> {
  // the `single` baseline keeps its own schedule over its steps; every other run follows the run's schedule
  const schedule = steps === STEPS ? { totalSteps: SCHEDULE_STEPS, warmupSteps: WARMUP } : { totalSteps: steps, warmupSteps: Math.min(50, Math.floor(steps / 10)) }
  const l = await InnerLoop.create({ config, parameters, train: shards, validation: valShards, seqLen: SEQ, batchSize: BATCH, seed, peakLr: PEAK_LR, ...schedule, threads: THREADS, evalBatches: 16, ...(resumed !== undefined ? { step: resumed.step, ...(position !== undefined ? { position } : {}) } : {}) })
  if (resumed !== undefined) await l.executor.setOptimizerState({ m: unflatten(layout, resumed.m.slice()), v: unflatten(layout, resumed.v.slice()) })
  return l
}
const resumedInfo = resumed !== undefined ? { resumedFrom: { file: RESUME as string, step: resumed.step } } : {}

// ---- baselines -----------------------------------------------------------------------------------
async function single (): Promise<void> {
  if (resumed !== undefined) throw new Error('the single-worker baseline does not continue a training state')
  const t0 = performance.now()
  const steps = STEPS * WORKERS
  const l = await loop(allShards, steps, 0)
  await l.run(steps)
  const valLoss = await l.evaluate()
  await l.close()
  await save({ name: 'single', kind: 'single', steps, tokens: steps * BATCH * SEQ, valLoss, bytesPerNode: 0, wallSeconds: (performance.now() - t0) / 1000, finishedAt: new Date().toISOString() })
}

/** All-reduce every step: one executor accumulating the 4 workers' micro-batches = the averaged gradient */
async function syncDp (): Promise<void> {
  const t0 = performance.now()
  // a worker per shard set, but one set of weights: gradients of the 4 micro-batches are summed, then one step
  const { TrainBatchStream } = await import('@neuroshard/trainer')
  const { int64 } = await import('@neuroshard/runtime')
  const streams = workerShards.map((s, i) => new TrainBatchStream(s, { seqLen: SEQ, batchSize: BATCH, seed: i, ...(resumed !== undefined ? { position: resumed.positions[i] } : {}) }))
  const l = await loop(allShards, STEPS, 0)
  const ex = l.executor
  let computeMs = 0
  for (let s = 0; s < STEPS; s++) {
    const c0 = performance.now()
    for (const st of streams) {
      const b = st.next()
      await ex.backward({ input_ids: int64(b.input, [b.batchSize, b.seqLen]), targets: int64(b.target, [b.batchSize, b.seqLen]) }, { transfer: true })
    }
    await ex.step({ gradNorm: Math.sqrt(await ex.gradNormSquared()) / WORKERS })
    computeMs += (performance.now() - c0) / WORKERS
    if (SAVE_STATE !== undefined && SAVE_STATE_AT.has(ex.stepCount)) {
      const opt = await ex.getOptimizerState()
      const file = `${SAVE_STATE}-${ex.stepCount}.state`
      await writeFile(file, encodeTrainState({
        step: ex.stepCount, weights: flatten(layout, await l.getParameters()), m: flatten(layout, opt.m), v: flatten(layout, opt.v), positions: streams.map(st => st.position)
      }))
      console.log(`wrote ${file} (step ${ex.stepCount}, val loss ${(await l.evaluate()).toFixed(4)})`)
    }
  }
  const valLoss = await l.evaluate()
  if (SAVE_CHECKPOINT !== undefined) {
    const flat = flatten(layout, await l.getParameters())
    await writeFile(SAVE_CHECKPOINT, new Uint8Array(flat.buffer, flat.byteOffset, flat.byteLength))
    console.log(`wrote ${SAVE_CHECKPOINT} (val loss ${valLoss.toFixed(4)})`)
  }
  await l.close()
  // ring all-reduce: each node sends 2(n−1)/n of the fp32 gradient per step
  const perStep = Math.round(2 * (WORKERS - 1) / WORKERS * P * 4)
  await save({
    name: 'sync-dp', kind: 'sync-dp', steps: STEPS, tokens: STEPS * WORKERS * BATCH * SEQ, valLoss, bytesPerNode: perStep * STEPS,
    rounds: STEPS, computeSecondsPerRound: computeMs / 1000 / STEPS, commSecondsPerRound: perStep / LINK,
    wallSeconds: (performance.now() - t0) / 1000, finishedAt: new Date().toISOString(), ...resumedInfo
  })
}

// ---- DiLoCo --------------------------------------------------------------------------------------
/** `efDecay`: the error-feedback decay β (e ← β·e + Δ; SparseLoCo's β), default 1 */
/** `rounds`: the inner steps of each round (an H schedule; `H` is then their mean), instead of ⌈steps / H⌉ rounds of H */
interface DilocoConfig { name: string, H: number, codec: CodecName | CodecParams, aggregator: AggregatorChoice, attack?: { name: string, craft: Attack }, steps: number, outer?: { lr: number, momentum: number }, sim?: SimCodec, efDecay?: number, rounds?: number[] }


/** Lloyd–Max levels and thresholds of a unit Gaussian (b = 1, 2, 3 bits), positive half */
const LLOYD_MAX: Record<number, { levels: number[], thresholds: number[] }> = {
  1: { levels: [0.7979], thresholds: [] },
  2: { levels: [0.4528, 1.5104], thresholds: [0.9816] },
  3: { levels: [0.2451, 0.7560, 1.3439, 2.1519], thresholds: [0.5006, 1.0500, 1.7480] }
}

/** 32-bit mix of (round, index): the shared random mask every worker derives without sending indices */
function mix (round: number, i: number): number {
  let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(round + 0x632be5ab, 0xc2b2ae35)
  h ^= h >>> 16; h = Math.imul(h, 0x7feb352d); h ^= h >>> 15; h = Math.imul(h, 0x846ca68b); h ^= h >>> 16
  return h >>> 0
}

/**
 * Shared-mask random-k (the same coordinates for every worker in a round, drawn from the round number, so no
 * indices travel) with b-bit Lloyd–Max values scaled by each chunk's RMS over the kept values (one float32 scale
 * per chunk of C): Σ_chunks 4 + ⌈k_c·b/8⌉ bytes. Aggregation is then exact per coordinate on the mask.
 */
function randK (n: number, density: number, bits: number, chunk = 4096): SimCodec {
  const thr = Math.floor(density * 2 ** 32)
  const q = LLOYD_MAX[bits]
  const maskCount = (round: number, start: number, end: number): number => { let k = 0; for (let i = start; i < end; i++) if (mix(round, i) < thr) k++; return k }
  return {
    label: `randk(${(100 * density).toFixed(1)} %, ${bits}-bit)`,
    bytes: (round) => { let b = 0; for (let s = 0; s < n; s += chunk) b += 4 + Math.ceil(maskCount(round, s, Math.min(n, s + chunk)) * bits / 8); return b },
    roundTrip: (e, round) => {
      const out = new Float32Array(n)
      for (let s = 0; s < n; s += chunk) {
        const end = Math.min(n, s + chunk)
        let ss = 0; let k = 0
        for (let i = s; i < end; i++) if (mix(round, i) < thr) { ss += e[i] * e[i]; k++ }
        if (k === 0) continue
        const sigma = Math.fround(Math.sqrt(ss / k))
        if (sigma === 0) continue
        for (let i = s; i < end; i++) {
          if (mix(round, i) >= thr) continue
          const a = Math.abs(e[i]) / sigma
          let j = 0
          while (j < q.thresholds.length && a > q.thresholds[j]) j++
          out[i] = Math.fround(Math.sign(e[i]) * q.levels[j] * sigma)
        }
      }
      return out
    }
  }
}

async function dilocoRun (c: DilocoConfig): Promise<void> {
  const t0 = performance.now()
  const codec = resolveCodec(c.codec)
  const loops: InnerLoop[] = []
  for (let i = 0; i < WORKERS; i++) loops.push(await loop(workerShards[i], c.steps, i, init(), resumed?.positions[i]))
  const ef = loops.map(() => new ErrorFeedback(layout.size, c.efDecay ?? 1))
  let base = flatten(layout, init())
  const momentum = new Float32Array(layout.size)
  const schedule = c.rounds ?? Array.from({ length: Math.ceil(c.steps / c.H) }, (_, r) => Math.min(c.H, c.steps - r * c.H))
  if (schedule.reduce((a, b) => a + b, 0) !== c.steps) throw new Error(`${c.name}: the rounds' steps do not add up to ${c.steps}`)
  const rounds = schedule.length
  let bytes = 0
  let computeMs = 0
  let diverged = false
  for (let r = 0; r < rounds; r++) {
    const h = schedule[r]
    const inputs: Float32Array[] = []
    for (let i = 0; i < WORKERS; i++) {
      const l = loops[i]
      await l.setParameters(unflatten(layout, base))
      const c0 = performance.now()
      await l.run(h)
      computeMs += (performance.now() - c0) / WORKERS
      const local = flatten(layout, await l.getParameters())
      const delta = new Float32Array(layout.size)
      for (let k = 0; k < delta.length; k++) delta[k] = Math.fround(base[k] - local[k])
      if (c.sim !== undefined) inputs.push(simCompress(ef[i].residual, delta, c.sim, r, i, ef[i].decay))
      else inputs.push(ef[i].compress(delta, codec).decoded)
    }
    if (c.attack !== undefined) {
      // worker 3 is Byzantine and omniscient: it sends a vector crafted from the honest ones
      inputs[WORKERS - 1] = c.attack.craft.craft(inputs.slice(0, WORKERS - 1), 1)[0]
    }
    bytes += (c.sim !== undefined ? c.sim.bytes(r) : payloadSize(layout.size, codec)) + ANNOUNCE_BYTES
    const agg = aggregateRound(inputs, c.aggregator)
    outerStep(base, momentum, agg.value, c.outer ?? {})
    if (!base.every(Number.isFinite)) { diverged = true; break }
  }
  let valLoss = Infinity
  if (!diverged) {
    await loops[0].setParameters(unflatten(layout, base))
    valLoss = await loops[0].evaluate()
    if (!Number.isFinite(valLoss)) valLoss = Infinity
  }
  for (const l of loops) await l.close()
  base = new Float32Array(0)
  const payload = (c.sim !== undefined ? bytes / rounds - ANNOUNCE_BYTES : payloadSize(layout.size, codec)) + ANNOUNCE_BYTES
  await save({
    name: c.name, kind: 'diloco', H: c.H, ...(c.rounds !== undefined ? { hSchedule: c.rounds.join(',') } : {}), ...(c.outer !== undefined ? { outer: c.outer } : {}), codec: c.sim?.label ?? (typeof c.codec === 'string' ? c.codec : `${c.codec.codec}(k ${codec.topK}/${codec.chunk}, ${codec.bits}-bit)`), aggregator: typeof c.aggregator === 'string' ? c.aggregator : 'custom', ...(c.attack !== undefined ? { attack: c.attack.name } : {}),
    steps: c.steps, tokens: c.steps * WORKERS * BATCH * SEQ, valLoss, bytesPerNode: bytes, rounds,
    computeSecondsPerRound: computeMs / 1000 / rounds,
    // each node uploads its payload to the n − 1 others (direct streams; gossipsub's D-fanout is no cheaper)
    commSecondsPerRound: (WORKERS - 1) * payload / LINK,
    wallSeconds: (performance.now() - t0) / 1000, finishedAt: new Date().toISOString(), ...resumedInfo
  })
}

/** Gaussian noise 10× the honest pseudo-gradients' RMS (the attack "of our choice") */
const loudNoise: Attack = {
  name: 'noise',
  craft (honest, f) {
    let s = 0
    let n = 0
    for (const x of honest) for (let i = 0; i < x.length; i++) { s += x[i] * x[i]; n++ }
    const sigma = 10 * Math.sqrt(s / n)
    let seed = 12345
    const u = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed + 0.5) / 4294967296 }
    return Array.from({ length: f }, () => {
      const out = new Float32Array(honest[0].length)
      for (let i = 0; i < out.length; i++) out[i] = sigma * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u())
      return out
    })
  }
}

const attacks: Array<{ name: string, craft: Attack }> = [
  { name: 'sign-flip(4)', craft: signFlipping({ scale: 4 }) },
  { name: 'alie', craft: aLittleIsEnough() },
  { name: 'ipm(0.5)', craft: innerProductManipulation({ epsilon: 0.5 }) },
  { name: 'noise(10×rms)', craft: loudNoise }
]

const configs: Array<{ name: string, run: () => Promise<void> }> = [
  { name: 'single', run: single },
  { name: 'sync-dp', run: syncDp }
]
const diloco = (H: number, codec: CodecName): void => {
  const name = `diloco-H${H}-${codec}`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec, aggregator: 'mean', steps: STEPS }) } })
}
const BYZ_H = 50
const byz = (agg: AggregatorChoice, attack?: { name: string, craft: Attack }): void => {
  const name = attack === undefined ? `byz-clean-${String(agg)}` : `byz-${attack.name}-${String(agg)}`
  configs.push({ name, run: async () => { await dilocoRun({ name, H: BYZ_H, codec: 'int8', aggregator: agg, ...(attack !== undefined ? { attack } : {}), steps: BYZ_STEPS }) } })
}
// in the order of what matters most, so a partial run still answers the questions (the run is resumable)
diloco(50, 'int8')
diloco(50, 'sparse')
byz('mean')
for (const attack of attacks) for (const agg of ['mean', 'trimmed-mean', 'geometric-median'] as AggregatorChoice[]) byz(agg, attack)
diloco(500, 'sparse')
diloco(500, 'int8')
diloco(100, 'sparse')
diloco(50, 'fp32')
// SparseLoCo drops the outer momentum (its error feedback plays that part): plain averaging, outer lr 1, for the
// sparse codec at several H, and the same control for int8
const averaged = (H: number, codec: CodecName): void => {
  const name = `diloco-H${H}-${codec}-avg`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec, aggregator: 'mean', steps: STEPS, outer: { lr: 1, momentum: 0 } }) } })
}
averaged(100, 'sparse')
averaged(50, 'sparse')
averaged(250, 'sparse')
averaged(50, 'int8')
diloco(500, 'fp32')
for (const attack of attacks) for (const agg of ['median', 'nnm-trimmed-mean'] as AggregatorChoice[]) byz(agg, attack)
diloco(250, 'sparse')
// longer runs (README, "Bytes goal"): sparse between the H = 100 and H = 250 candidates, and int8 at H = 50 for small
averaged(150, 'sparse')
diloco(25, 'int8')
averaged(25, 'int8')
// what each robust aggregator costs when nobody attacks
for (const agg of ['trimmed-mean', 'geometric-median', 'nnm-trimmed-mean'] as AggregatorChoice[]) byz(agg)

// bytes goal (#11): shared-mask random-k with Lloyd–Max 1–3-bit values and error feedback, plain averaging, the
// density set so that the run sends about sync DP ÷ 10,500 bytes (P floats × 6 bytes per step × steps / 10,500)
const randkAvg = (H: number, bits: number, ratio = 10_500): void => {
  const perRound = 6 * P * H / ratio - ANNOUNCE_BYTES - 4 * Math.ceil(P / 4096)
  const density = Math.min(1, 8 * perRound / bits / P)
  const name = `diloco-H${H}-randk${bits}b-avg`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec: 'sparse', aggregator: 'mean', steps: STEPS, outer: { lr: 1, momentum: 0 }, sim: randK(P, density, bits) }) } })
}
// outer learning rate above 1 without momentum (extrapolating the averaged pseudo-gradient)
const extrapolated = (H: number, codec: CodecName, lr: number): void => {
  const name = `diloco-H${H}-${codec}-olr${lr}`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec, aggregator: 'mean', steps: STEPS, outer: { lr, momentum: 0 } }) } })
}
// outer Nesterov with a lower momentum than DiLoCo's 0.9 (which overshoots with error feedback)
const nesterov = (H: number, codec: CodecName, lr: number, momentum: number): void => {
  const name = `diloco-H${H}-${codec}-nlr${lr}-mu${momentum}`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec, aggregator: 'mean', steps: STEPS, outer: { lr, momentum } }) } })
}
nesterov(100, 'sparse', 1, 0.5)
// where DiLoCo itself (int8, plain averaging) gets close to sync DP at this run length
averaged(10, 'int8')
extrapolated(100, 'sparse', 3)
extrapolated(50, 'int8', 2)
extrapolated(100, 'sparse', 2)
extrapolated(100, 'sparse', 1.5)
randkAvg(25, 2)
randkAvg(50, 2)
randkAvg(50, 1)
randkAvg(100, 1)
randkAvg(100, 2)
randkAvg(25, 1)
// from a pretrained checkpoint (README, "Bytes goal from a pretrained checkpoint"): DiLoCo itself with its default
// outer Nesterov at H = 100 (int8), and outer settings for the sparse codec
diloco(100, 'int8')
averaged(100, 'int8')
nesterov(100, 'sparse', 0.5, 0.9)
nesterov(100, 'sparse', 0.3, 0.9)
nesterov(100, 'sparse', 0.7, 0.5)

// bytes goal (#11, 2026-12-07 evening): spend the whole ≥ 10,000× budget (per round at most sync DP's 6·P bytes per
// step × H / 10,500, announce included) instead of the 16,340× of k = 64, with the wire's sparse codec (16-bit
// indices), the same top-k with packed 12-bit indices (bench only), PowerSGD-style low rank (bench only), and
// SparseLoCo's error-feedback decay β = 0.95; plain averaging throughout
const budget = (H: number): number => 6 * P * H / 10_500 - ANNOUNCE_BYTES
const chunks = Math.ceil(P / 4096)
const sparseK = (H: number, idxBits: number): number => Math.floor((budget(H) / chunks - 4) / ((idxBits + 2) / 8))
const sparseFull = (H: number, decay = 1): void => {
  const k = sparseK(H, 16)
  const name = `diloco-H${H}-sparse-k${k}${decay !== 1 ? `-ef${decay}` : ''}-avg`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec: { codec: 'sparse', topK: k }, aggregator: 'mean', steps: STEPS, outer: { lr: 1, momentum: 0 }, efDecay: decay }) } })
}
const sparsePacked = (H: number, decay = 1): void => {
  const k = sparseK(H, 12)
  const name = `diloco-H${H}-sparse12-k${k}${decay !== 1 ? `-ef${decay}` : ''}-avg`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec: 'sparse', aggregator: 'mean', steps: STEPS, outer: { lr: 1, momentum: 0 }, sim: packedSparse(layout.size, resolveCodec({ codec: 'sparse', topK: k })), efDecay: decay }) } })
}
const lowRankAvg = (H: number, rank: number, decay = 1): void => {
  const name = `diloco-H${H}-lowrank${rank}${decay !== 1 ? `-ef${decay}` : ''}-avg`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec: 'fp32', aggregator: 'mean', steps: STEPS, outer: { lr: 1, momentum: 0 }, sim: lowRank(layout, rank, WORKERS), efDecay: decay }) } })
}
sparseFull(100)
sparsePacked(100)
// the same top-k with Rice-coded index gaps (size measured per payload), 2-bit values or sign + mean scale; k set
// for the budget at the gaps' typical cost (about 6 bits at k ≈ 200 of 4096), the ratio is what the run measures
const riceAvg = (H: number, k: number, values: '2bit' | 'sign', decay = 1): void => {
  const name = `diloco-H${H}-sparse-rice-${values}-k${k}${decay !== 1 ? `-ef${decay}` : ''}-avg`
  configs.push({ name, run: async () => { await dilocoRun({ name, H, codec: 'sparse', aggregator: 'mean', steps: STEPS, outer: { lr: 1, momentum: 0 }, sim: riceSparse(layout.size, 4096, k, values), efDecay: decay }) } })
}
riceAvg(100, 200, '2bit')
riceAvg(100, 230, 'sign')
lowRankAvg(100, 3)
lowRankAvg(35, 1)
sparseFull(100, 0.95)
lowRankAvg(100, 3, 0.95)
sparsePacked(100, 0.95)
sparseFull(100, 0.9)
riceAvg(100, 200, '2bit', 0.95)
riceAvg(100, 230, 'sign', 0.95)
// the budget with the payload and announce sent to each of the 3 peers (a third of the above per round)
riceAvg(100, 66, 'sign', 0.95)
riceAvg(100, 58, '2bit', 0.95)
// lower error-feedback decays (β = 0.9 beat 0.95 and 1 at k = 101)
riceAvg(100, 230, 'sign', 0.8)
riceAvg(100, 230, 'sign', 0.5)
riceAvg(100, 66, 'sign', 0.8)
riceAvg(100, 66, 'sign', 0.5)
// other H at β = 0.8: H = 50 at the once-counted budget (k = 110), H = 50 and 200 at the to-each-peer budget
riceAvg(50, 110, 'sign', 0.8)
riceAvg(50, 25, 'sign', 0.8)
riceAvg(200, 150, 'sign', 0.8)
// the whole once-counted budget at β = 0.8 (k = 265), and β = 0.65
riceAvg(100, 265, 'sign', 0.8)
riceAvg(100, 230, 'sign', 0.65)
riceAvg(100, 66, 'sign', 0.65)

// issue #11, closing DiLoCo's own gap (README, "Closing DiLoCo's own gap"): configurations named in DILOCO_ONLY as
//   diloco-<H>-<codec>-o<outer lr>m<outer momentum>
// are built from the name: <H> is `H<n>` (rounds of n steps) or `Hr<a>to<b>x<R>` (an H schedule: R rounds whose
// lengths ramp linearly from about a to about b, rounded, the last one taking what makes them add up to the run's
// steps); <codec> is `int8`, `fp32`, or `rs<k>ef<β>` (the bench's Rice-coded sign top-k, k per chunk of 4096,
// error-feedback decay β); the outer step is Nesterov SGD (plain SGD where the momentum is 0)
const ramp = (a: number, b: number, R: number, steps: number): number[] => {
  const hs = Array.from({ length: R }, (_, r) => Math.max(1, Math.round(R === 1 ? a : a + (b - a) * r / (R - 1))))
  hs[R - 1] = steps - hs.slice(0, R - 1).reduce((x, y) => x + y, 0)
  if (hs[R - 1] < 1) throw new Error(`ramp ${a}→${b} over ${R} rounds does not fit ${steps} steps`)
  return hs
}
for (const o of ONLY ?? []) {
  const m = /^diloco-(?:H(\d+)|Hr(\d+)to(\d+)x(\d+))-(int8|fp32|rs(\d+)ef([0-9.]+))-o([0-9.]+)m([0-9.]+)\$?$/.exec(o)
  if (m === null) continue
  const name = o.replace(/\$$/, '')
  if (configs.some(c => c.name === name)) continue
  const rounds = m[1] === undefined ? ramp(Number(m[2]), Number(m[3]), Number(m[4]), STEPS) : undefined
  const H = rounds !== undefined ? Math.round(STEPS / rounds.length) : Number(m[1])
  const rice = m[6] !== undefined
  const codec: CodecName = rice ? 'sparse' : m[5] as CodecName
  configs.push({
    name,
    run: async () => {
      await dilocoRun({
        name, H, codec, aggregator: 'mean', steps: STEPS, outer: { lr: Number(m[8]), momentum: Number(m[9]) },
        ...(rounds !== undefined ? { rounds } : {}), ...(rice ? { sim: riceSparse(layout.size, 4096, Number(m[6]), 'sign'), efDecay: Number(m[7]) } : {})
      })
    }
  })
}

for (const c of configs) {
  if (ONLY !== undefined && !ONLY.some(o => o.endsWith('$') ? c.name === o.slice(0, -1) : c.name.startsWith(o))) continue
  if (results.some(r => r.name === lrName(c.name))) { console.log(`skip ${c.name} (in ${resultsFile})`); continue }
  console.log(`run ${c.name}…`)
  await c.run()
}

// ---- tables ---------------------------------------------------------------------------------------
// the yardstick: the best sync DP in the file (several inner peak lrs may be there: a tuned baseline, not a weakened one)
const sync = results.filter(r => r.kind === 'sync-dp').sort((a, b) => a.valLoss - b.valLoss)[0]
const fmtB = (b: number): string => b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${b} B`
const loss = (r: Result): string => Number.isFinite(r.valLoss) ? r.valLoss.toFixed(4) : 'diverged'
const outerOf = (r: Result): string => r.kind !== 'diloco' ? '—' : r.outer !== undefined ? (r.outer.momentum === 0 ? (r.outer.lr === 1 ? 'avg (lr 1, μ 0)' : `lr ${r.outer.lr}, μ 0`) : `Nesterov ${r.outer.lr}/${r.outer.momentum}`) : r.name.endsWith('-avg') ? 'avg (lr 1, μ 0)' : /-olr[0-9.]+$/.test(r.name) ? `lr ${r.name.split('-olr')[1]}, μ 0` : /-nlr/.test(r.name) ? `Nesterov ${r.name.split('-nlr')[1].replace('-mu', '/')}` : 'Nesterov 0.7/0.9'
console.log(`\nvs sync DP: against ${sync?.name ?? '(none)'}\n`)
console.log(`| config | H | codec | outer | inner peak lr | inner steps/worker | val loss | vs sync DP | bytes sent/node | sync DP bytes ÷ this | ÷ this to each of ${WORKERS - 1} peers | compute s/round | comm s/round @100 Mbit/s | comm share |`)
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
for (const r of results.filter(r => !r.name.startsWith('byz-'))) {
  const vs = sync !== undefined ? `${((r.valLoss / sync.valLoss - 1) * 100).toFixed(1)} %` : ''
  const ratio = sync !== undefined && r.bytesPerNode > 0 ? `${Math.round(sync.bytesPerNode / r.bytesPerNode)}×` : '—'
  // DiLoCo: the node's payload and announce go to each of the other replicas (direct streams: every byte it sends,
  // framing left out); sync DP's ring figure already is what each node sends
  const ratioPeers = sync !== undefined && r.bytesPerNode > 0 ? `${Math.round(sync.bytesPerNode / (r.kind === 'diloco' ? (WORKERS - 1) * r.bytesPerNode : r.bytesPerNode))}×` : '—'
  const comm = r.commSecondsPerRound
  const comp = r.computeSecondsPerRound
  const share = comm !== undefined && comp !== undefined ? `${(100 * comm / (comm + comp)).toFixed(1)} %` : '—'
  console.log(`| ${r.name} | ${r.hSchedule !== undefined ? `${r.H} (${r.hSchedule})` : r.H ?? (r.kind === 'sync-dp' ? 1 : '—')} | ${r.codec ?? (r.kind === 'sync-dp' ? 'fp32' : '—')} | ${outerOf(r)} | ${r.peakLr ?? '—'} | ${r.steps} | ${loss(r)} | ${vs} | ${fmtB(r.bytesPerNode)} | ${ratio} | ${ratioPeers} | ${comp?.toFixed(3) ?? '—'} | ${comm?.toFixed(3) ?? '—'} | ${share} |`)
}
const clean = results.find(r => r.name === 'byz-clean-mean')
const byzAggNames = ['mean', 'trimmed-mean', 'median', 'geometric-median', 'nnm-trimmed-mean']
const byzAttacks = ['clean', ...attacks.map(a => a.name)]
console.log(`\nByzantine: val loss (× the clean run with the mean, ${clean !== undefined ? loss(clean) : '?'}); 1 of 4 workers attacking, H = ${BYZ_H}, int8, ${BYZ_STEPS} inner steps per worker\n`)
console.log(`| aggregator | ${byzAttacks.join(' | ')} | worst |`)
console.log(`|---|${byzAttacks.map(() => '---').join('|')}|---|`)
for (const agg of byzAggNames) {
  const cells: string[] = []
  let worst = 0
  for (const a of byzAttacks) {
    const r = results.find(x => x.name === (a === 'clean' ? `byz-clean-${agg}` : `byz-${a}-${agg}`))
    if (r === undefined || clean === undefined) { cells.push('not run'); continue }
    const x = r.valLoss / clean.valLoss
    if (a !== 'clean') worst = Math.max(worst, x)
    cells.push(`${loss(r)} (${x.toFixed(3)}×)`)
  }
  console.log(`| ${agg} | ${cells.join(' | ')} | ${worst > 0 ? worst.toFixed(3) + '×' : '—'} |`)
}
