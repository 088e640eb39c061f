/**
 * The Driver refuses a bad `trainStep` before anything leaves it: micro-batch counts, shapes, id arrays of the wrong
 * type or length, and token ids / targets outside `[0, vocab)` are typed errors, no route is asked for and no request
 * is sent (the targets would go first, to the Validator), and the Driver's own optimizer does not move. A good step
 * right after is the single-process model's first step.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { int64 } from '@neuroshard/runtime'
import { staticRouter } from '../src/index.js'
import { mesh, monolith, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineRouter, PipelineStage, TrainBatch } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const V = config.vocabSize
const params = weights(config, 41)
const MAX_MICRO_BATCHES = 3
const MAX_BATCH = 4
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
let driver: PipelineHost
/** Chains the Driver asked its router for (asked right before a micro-batch is sent) */
let chains = 0

function good (rows = 2, seq = 8): TrainBatch {
  const inputIds = BigInt64Array.from({ length: rows * seq }, (_, i) => BigInt((i * 7 + 3) % V))
  const targets = BigInt64Array.from({ length: rows * seq }, (_, i) => BigInt((i * 7 + 10) % V))
  return { inputIds, targets, batch: rows, seq }
}

/** `good()` with one id replaced */
function withId (which: 'inputIds' | 'targets', at: number, value: bigint): TrainBatch {
  const b = good()
  const ids = BigInt64Array.from(b[which])
  ids[at] = value
  return { ...b, [which]: ids }
}

beforeAll(async () => {
  stages.push(...await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([a, b]) => await stage(config, a, b, params))))
  reference = await monolith(config, params)
  const worker = await startHost({ stages: [stages[1]] })
  const validator = await startHost({ stages: [stages[2]] })
  const inner = staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }])
  const router: PipelineRouter = {
    async chain (o) {
      chains++
      return await inner.chain(o)
    },
    reportFailure: (p, e) => { inner.reportFailure(p, e) }
  }
  driver = await startHost({ stages: [stages[0]], router, maxMicroBatchesPerStep: MAX_MICRO_BATCHES, maxBatch: MAX_BATCH })
  hosts.push(driver, worker, validator)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

const cases: Array<{ what: string, batches: () => TrainBatch | TrainBatch[], error: string, tensorName?: string }> = [
  { what: 'no micro-batch', batches: () => [], error: 'InvalidParametersError' },
  { what: 'more micro-batches than the cap', batches: () => Array.from({ length: MAX_MICRO_BATCHES + 1 }, () => good()), error: 'InvalidParametersError' },
  { what: 'batch 0', batches: () => ({ inputIds: new BigInt64Array(0), targets: new BigInt64Array(0), batch: 0, seq: 8 }), error: 'InvalidParametersError' },
  { what: 'seq 0', batches: () => ({ inputIds: new BigInt64Array(0), targets: new BigInt64Array(0), batch: 2, seq: 0 }), error: 'InvalidParametersError' },
  { what: 'seq over maxSeqLen', batches: () => good(1, config.maxSeqLen + 1), error: 'InvalidParametersError' },
  { what: 'batch over maxBatch', batches: () => good(MAX_BATCH + 1, 2), error: 'InvalidParametersError' },
  { what: 'a fractional batch', batches: () => ({ ...good(), batch: 1.5 }), error: 'InvalidParametersError' },
  { what: 'inputIds shorter than batch × seq', batches: () => ({ ...good(), inputIds: good().inputIds.subarray(1) }), error: 'InvalidParametersError' },
  { what: 'targets longer than batch × seq', batches: () => ({ ...good(), targets: BigInt64Array.from([...good().targets, 1n]) }), error: 'InvalidParametersError' },
  // numbers instead of int64: `int64()` would convert them for the embedding, so only the type check refuses them
  { what: 'inputIds as a plain array of numbers', batches: () => ({ ...good(), inputIds: Array.from(good().inputIds, Number) as unknown as BigInt64Array }), error: 'InvalidParametersError' },
  { what: 'targets as an Int32Array', batches: () => ({ ...good(), targets: Int32Array.from(good().targets, Number) as unknown as BigInt64Array }), error: 'InvalidParametersError' },
  { what: 'a negative input id', batches: () => withId('inputIds', 5, -1n), error: 'TokenIdOutOfRangeError', tensorName: 'inputIds' },
  { what: 'an input id = vocab', batches: () => withId('inputIds', 0, BigInt(V)), error: 'TokenIdOutOfRangeError', tensorName: 'inputIds' },
  { what: 'a negative target', batches: () => withId('targets', 15, -1n), error: 'TokenIdOutOfRangeError', tensorName: 'targets' },
  { what: 'a target = vocab', batches: () => withId('targets', 3, BigInt(V)), error: 'TokenIdOutOfRangeError', tensorName: 'targets' },
  // the bad id in the second micro-batch: the first must not go out either
  { what: 'a target out of range in the second micro-batch', batches: () => [good(), withId('targets', 7, BigInt(V) + 5n)], error: 'TokenIdOutOfRangeError', tensorName: 'targets' }
]

describe('trainStep: Driver-side refusals', () => {
  for (const c of cases) {
    it(`${c.what}: ${c.error}, nothing sent, nothing stepped`, async () => {
      const before = driver.services.pipeline.trafficStats()
      const chainsBefore = chains
      const err = await driver.services.pipeline.trainStep(c.batches()).then(() => undefined, (e: any) => e)
      expect(err?.name).toBe(c.error)
      if (c.tensorName != null) expect(err.tensorName).toBe(c.tensorName)
      expect(chains).toBe(chainsBefore) // no route asked for
      expect(driver.services.pipeline.trafficStats().requests).toBe(before.requests)
      expect(driver.services.pipeline.trafficStats().sent).toBe(before.sent)
      expect(stages[0].embed!.stepCount).toBe(0)
    })
  }

  it('after all the refusals a good step is the single-process model\'s first step', async () => {
    const b = good()
    const out = await reference.backward({ input_ids: int64(b.inputIds, [b.batch, b.seq]), targets: int64(b.targets, [b.batch, b.seq]) })
    const want = await reference.step()
    const r = await driver.services.pipeline.trainStep(b)
    expect(r.step).toBe(0)
    const loss = (out.loss.data as Float32Array)[0]
    expect(Math.abs(r.loss - loss) / loss).toBeLessThan(1e-5)
    expect(Math.abs(r.gradNorm - want.gradNorm) / want.gradNorm).toBeLessThan(1e-4)
    expect(chains).toBe(1)
    expect(stages[0].embed!.stepCount).toBe(1)
    expect(stages[1].blocks!.stepCount).toBe(1)
    expect(stages[2].head!.stepCount).toBe(1)
  })
})
