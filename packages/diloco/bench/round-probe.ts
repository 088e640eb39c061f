/**
 * Round probe (issue #11): what happens inside the first DiLoCo rounds of `bench/experiments.ts`, from the random
 * init and from a checkpoint. Same model, data, workers, InnerLoop settings and schedule as experiments.ts; the
 * pseudo-gradients are averaged exactly (fp32, no codec, outer lr 1, μ 0: plain averaging), so the codec and the
 * outer optimizer are out of the picture. Per round it prints each worker's val loss on its own weights after its H
 * inner steps, the averaged model's val loss, the workers' executor step counts and the lr of their last step, and
 * sync DP's val loss after the same number of steps (same 4 data streams as experiments.ts's sync DP).
 * Environment: DILOCO_CHECKPOINT (as in experiments.ts; without it only the random init is probed),
 * DILOCO_PEAK_LR (default 3e-3), DILOCO_PROBE_ROUNDS (default 3), DILOCO_PROBE_H (default 100),
 * DILOCO_STEPS (the schedule's length, default 1000), DILOCO_PROBE_STARTS (`init,checkpoint` by default),
 * DILOCO_PROBE_ALL_DATA=1 (each worker draws from all 40 train shards, data-order seed i, instead of its 10 shards).
 */

import { readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { initParameter, modelParameters, preset } from '@neuroshard/model'
import { int64 } from '@neuroshard/runtime'
import { learningRate, TrainBatchStream } from '@neuroshard/trainer'
import { flatten, InnerLoop, spanLayout, unflatten } from '../src/index.js'
import { loadWorkerData } from './worker-data.js'

const here = dirname(fileURLToPath(import.meta.url))
const genesis = join(here, '..', '..', 'bench-results', 'diloco-genesis')
const STEPS = Number(process.env.DILOCO_STEPS ?? 1000)
const PEAK_LR = Number(process.env.DILOCO_PEAK_LR ?? 3e-3)
const ROUNDS = Number(process.env.DILOCO_PROBE_ROUNDS ?? 3)
const H = Number(process.env.DILOCO_PROBE_H ?? 100)
const CHECKPOINT = process.env.DILOCO_CHECKPOINT
const STARTS = (process.env.DILOCO_PROBE_STARTS ?? 'init,checkpoint').split(',')
const WORKERS = 4
const SEQ = 64
const BATCH = 8
const WARMUP = Math.min(50, Math.floor(STEPS / 10))
const ALL_DATA = process.env.DILOCO_PROBE_ALL_DATA === '1'

const { manifest, workerShards, allShards, valShards } = await loadWorkerData(genesis, WORKERS)
const config = { ...preset('tiny'), vocabSize: manifest.tokenizer.vocabSize }
const specs = modelParameters(config)
const layout = spanLayout({ id: 'full', parameters: specs })

const startWeights = (start: string): Float32Array => {
  if (start === 'init') return flatten(layout, new Map(specs.map(s => [s.name, initParameter(config, s, 0)])))
  if (CHECKPOINT === undefined) throw new Error('DILOCO_CHECKPOINT is needed for the checkpoint start')
  const b = readFileSync(CHECKPOINT)
  if (b.byteLength !== layout.size * 4) throw new Error(`${CHECKPOINT}: ${b.byteLength} bytes, expected ${layout.size * 4}`)
  const flat = new Float32Array(layout.size)
  new Uint8Array(flat.buffer).set(b)
  return flat
}

const loop = async (shards: ArrayLike<number>[], seed: number, flat: Float32Array): Promise<InnerLoop> =>
  await InnerLoop.create({ config, parameters: unflatten(layout, flat), train: shards, validation: valShards, seqLen: SEQ, batchSize: BATCH, seed, peakLr: PEAK_LR, totalSteps: STEPS, warmupSteps: WARMUP, threads: 1, evalBatches: 16 })
const schedule = { peakLr: PEAK_LR, minLr: PEAK_LR / 10, warmupSteps: WARMUP, totalSteps: STEPS }
const f4 = (x: number): string => x.toFixed(4)

console.log(`round probe: tiny, ${WORKERS} workers, H = ${H}, ${ROUNDS} rounds, schedule warmup ${WARMUP} + cosine over ${STEPS} steps, peak lr ${PEAK_LR}; plain averaging of exact (fp32) pseudo-gradients; workers draw from ${ALL_DATA ? 'all 40 train shards (seed i)' : 'their own 10 shards'}`)
for (const start of STARTS) {
  const base = startWeights(start)
  const evaluator = await loop(allShards, 0, base)
  const valStart = await evaluator.evaluate()
  // sync DP as experiments.ts runs it: 4 streams, summed gradients, one step with the mean's norm
  const sync = await loop(allShards, 0, base)
  const streams = workerShards.map((s, i) => new TrainBatchStream(s, { seqLen: SEQ, batchSize: BATCH, seed: i }))
  const workers: InnerLoop[] = []
  for (let i = 0; i < WORKERS; i++) workers.push(await loop(ALL_DATA ? allShards : workerShards[i], i, base))
  console.log(`\nstart ${start}${start === 'checkpoint' ? ` (${CHECKPOINT})` : ''}: val loss ${f4(valStart)}`)
  console.log('\n| round | steps/worker | worker val losses (own weights after the round) | mean of workers | averaged model | averaged − best worker | sync DP after the same steps | worker train loss (mean over the round) | executor steps | lr of the last step |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (let r = 0; r < ROUNDS; r++) {
    const local: Float32Array[] = []
    const vals: number[] = []
    const trainLoss: number[] = []
    const stepCounts: number[] = []
    for (const w of workers) {
      await w.setParameters(unflatten(layout, base))
      const res = await w.run(H)
      trainLoss.push(res.meanLoss)
      vals.push(await w.evaluate())
      stepCounts.push(w.executor.stepCount)
      local.push(flatten(layout, await w.getParameters()))
    }
    for (let k = 0; k < base.length; k++) {
      let s = 0
      for (const x of local) s += x[k]
      base[k] = Math.fround(s / WORKERS)
    }
    await evaluator.setParameters(unflatten(layout, base))
    const avg = await evaluator.evaluate()
    for (let s = 0; s < H; s++) {
      for (const st of streams) {
        const b = st.next()
        await sync.executor.backward({ input_ids: int64(b.input, [b.batchSize, b.seqLen]), targets: int64(b.target, [b.batchSize, b.seqLen]) }, { transfer: true })
      }
      await sync.executor.step({ gradNorm: Math.sqrt(await sync.executor.gradNormSquared()) / WORKERS })
    }
    const syncVal = await sync.evaluate()
    const meanW = vals.reduce((a, b) => a + b, 0) / vals.length
    console.log(`| ${r + 1} | ${(r + 1) * H} | ${vals.map(f4).join(', ')} | ${f4(meanW)} | ${f4(avg)} | ${(avg - Math.min(...vals)).toFixed(4)} | ${f4(syncVal)} | ${f4(trainLoss.reduce((a, b) => a + b, 0) / trainLoss.length)} | ${[...new Set(stepCounts)].join(', ')} | ${learningRate(schedule, stepCounts[0] - 1).toExponential(2)} |`)
  }
  for (const w of workers) await w.close()
  await sync.close()
  await evaluator.close()
}
