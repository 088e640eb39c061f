/**
 * Quantized spans through the pipeline: the Worker and the Validator serve with int8 / 4-bit weights; the logits stay
 * within the stated tolerance of the float32 model's. Quantized stages that hold the embedding too compute the same
 * quantized model as a whole-model `InferenceEngine` of that format and group size.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { createInferenceEngine, int64 } from '@neuroshard/runtime'
import { byteTokenizer, createPipelineStage, staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config)
/** Worst |Δlogit| relative to the spread of the float32 logits (the runtime's stated bounds for quantized shards) */
const TOLERANCE = { int8: 0.02, int4: 0.10 }
const open: Array<{ stop?: () => Promise<void> | void, close?: () => Promise<void> }> = []

afterAll(async () => {
  await stopAll(open.filter(o => o.stop != null) as PipelineHost[])
  await Promise.all(open.filter(o => o.close != null).map(async o => { await o.close!() }))
})

describe('quantized spans', () => {
  for (const quantization of ['int8', 'int4'] as const) {
    it(`${quantization} Worker and Validator: logits within ${TOLERANCE[quantization] * 100} % of the float32 spread`, async () => {
      const reference = await monolith(config, params)
      open.push(reference)
      const s0 = await stage(config, 0, 1, params)
      const [s1, s2] = await Promise.all([[1, L + 1], [L + 1, L + 2]].map(async ([start, end]) =>
        await createPipelineStage({ config, start, end, parameters: params, training: false, quantization, intraOpNumThreads: 1 })))
      open.push(s0, s1, s2)
      expect([s0.quantization, s1.quantization, s2.quantization]).toEqual(['fp32', quantization, quantization])
      expect(s1.blocks!.weightFormat).toBe(quantization)
      const worker = await startHost({ stages: [s1] })
      const validator = await startHost({ stages: [s2] })
      const driver = await startHost({ stages: [s0], router: staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]) })
      open.push(driver, worker, validator)
      await mesh([driver, worker, validator])
      const prompt = byteTokenizer().encode('quantized spans on the wire')
      const n = 12
      // teacher-forced: the reference's own greedy tokens, so both score the same sequence
      const want = await referenceGreedy(reference, prompt, n)
      let worst = 0
      let i = 0
      for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n, returnLogits: true })) {
        const ref = want.logits[i]
        let lo = Infinity
        let hi = -Infinity
        for (const v of ref) { lo = Math.min(lo, v); hi = Math.max(hi, v) }
        let d = 0
        for (let k = 0; k < ref.length; k++) d = Math.max(d, Math.abs(t.logits![k] - ref[k]))
        worst = Math.max(worst, d / (hi - lo))
        if (t.id !== want.ids[i]) break // a different token: later positions score another sequence
        i++
      }
      expect(i).toBeGreaterThan(0)
      expect(worst).toBeLessThan(TOLERANCE[quantization])
      // and it is not float32: the quantized sessions do change the logits
      expect(worst).toBeGreaterThan(1e-6)
    }, 180_000)
  }

  it('quantized stages holding the embedding serve the whole-model engine\'s quantized model: logits within 1e-4 (int8, int4 with 32- and 128-value groups)', async () => {
    // the same format and group size split as Driver [0, 2) and Validator [2, L + 2) over the wire, against one
    // InferenceEngine holding the whole model (every matrix quantized, the embedding lookup included: layer-pool §2.4)
    const prompt = byteTokenizer().encode('one quantized model, however it is split')
    const n = 8
    const fp32 = await createInferenceEngine({ config, parameters: params, intraOpNumThreads: 1 })
    open.push(fp32)
    for (const [quantization, quantBlockSize] of [['int8', 32], ['int4', 32], ['int4', 128]] as const) {
      const engine = await createInferenceEngine({ config, parameters: params, quantization, blockSize: quantBlockSize, intraOpNumThreads: 1 })
      open.push(engine)
      const [s0, s1] = await Promise.all([[0, 2], [2, L + 2]].map(async ([start, end]) =>
        await createPipelineStage({ config, start, end, parameters: params, training: false, quantization, quantBlockSize, intraOpNumThreads: 1 })))
      open.push(s0, s1)
      expect(s0.embed!.weightFormat).toBe(quantization)
      const validator = await startHost({ stages: [s1] })
      const driver = await startHost({ stages: [s0], router: staticRouter([{ peer: validator.peerId, start: 2, end: L + 2 }]) })
      open.push(driver, validator)
      await mesh([driver, validator])
      // the engine scores the tokens the pipeline chose: the prompt, then each served token in turn
      const kv = await engine.openInference()
      const kv32 = await fp32.openInference()
      const V = config.vocabSize
      let feed = BigInt64Array.from(prompt.map(BigInt))
      let worst = 0
      let fromFp32 = 0
      let count = 0
      for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n, returnLogits: true })) {
        const rows = (await kv.run({ input_ids: int64(feed, [1, feed.length]) })).logits.data as Float32Array
        const rows32 = (await kv32.run({ input_ids: int64(feed, [1, feed.length]) })).logits.data as Float32Array
        const want = rows.subarray(rows.length - V)
        for (let k = 0; k < V; k++) {
          worst = Math.max(worst, Math.abs(t.logits![k] - want[k]))
          fromFp32 = Math.max(fromFp32, Math.abs(rows32[rows32.length - V + k] - want[k]))
        }
        feed = BigInt64Array.of(BigInt(t.id))
        count++
      }
      await kv.close()
      await kv32.close()
      console.log(`${quantization}/${quantBlockSize}: served vs whole-model engine max |Δlogit| ${worst.toExponential(2)} over ${count} tokens (engine vs fp32 ${fromFp32.toExponential(2)})`)
      expect(count).toBe(n)
      expect(worst, `${quantization}/${quantBlockSize} served vs whole-model engine`).toBeLessThan(1e-4)
      // the engine's model is not float32 (so the bound above compares two quantized models)
      expect(fromFp32).toBeGreaterThan(1e-3)
    }
  }, 300_000)

  it('a quantized stage is inference-only; an unknown format is refused', async () => {
    await expect(createPipelineStage({ config, start: 1, end: L + 1, parameters: params, quantization: 'int4' })).rejects.toThrow(/training: false/)
    await expect(createPipelineStage({ config, start: 1, end: L + 1, parameters: params, training: false, quantization: 'int3' as any })).rejects.toMatchObject({ name: 'InvalidParametersError' })
  })

  it('quantBlockSize: the blocks\' and head\'s executors are built with it; other sizes and float32 stages refuse it', async () => {
    const s = await createPipelineStage({ config, start: L, end: L + 2, parameters: params, training: false, quantization: 'int4', quantBlockSize: 128, intraOpNumThreads: 1 })
    open.push(s)
    expect(s.quantBlockSize).toBe(128)
    expect(s.executors.map(e => [e.role.kind, e.weightFormat, e.quantBlockSize])).toEqual([['blocks', 'int4', 128], ['head', 'int4', 128]])
    await expect(createPipelineStage({ config, start: L, end: L + 1, parameters: params, training: false, quantization: 'int4', quantBlockSize: 96 as any })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await expect(createPipelineStage({ config, start: L, end: L + 1, parameters: params, training: false, quantBlockSize: 128 })).rejects.toMatchObject({ name: 'InvalidParametersError', message: /needs quantization/ })
  })
})
