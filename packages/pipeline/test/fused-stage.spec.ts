/**
 * Fused inference stages (`fuseInference`): a serving node whose span holds the embedding and blocks runs them in one
 * onnxruntime session per token (token ids in), one whose span holds blocks and the head runs the head over the last
 * position in the same session (logits out). Over a 2-host route (Driver [0, 2), Validator [2, 4) of `tiny`) the
 * tokens and logits must be those of unfused stages (and the single-process model's tokens), plain, sampled and
 * speculative, and a decoded token must not call the embed or head executors at all.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { createPipelineStage, ngramDrafter, staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { GenerateOptions, PipelineStage } from '../src/index.js'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config)
const TOL = 1e-5
const stages: PipelineStage[] = []
const hosts: PipelineHost[] = []
const closers: Array<{ close: () => Promise<void> }> = []

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages, ...closers].map(async s => { await s.close() }))
})

async function chain (fuse: boolean): Promise<{ driver: PipelineHost, s0: PipelineStage, s1: PipelineStage }> {
  const [s0, s1] = await Promise.all([[0, 2], [2, L + 2]].map(async ([start, end]) =>
    await createPipelineStage({ config, start, end, parameters: params, training: false, intraOpNumThreads: 1, inThread: true, fuseInference: fuse })))
  stages.push(s0, s1)
  const validator = await startHost({ stages: [s1] })
  const driver = await startHost({ stages: [s0], router: staticRouter([{ peer: validator.peerId, start: 2, end: L + 2 }]) })
  hosts.push(driver, validator)
  await mesh([driver, validator])
  return { driver, s0, s1 }
}

async function run (driver: PipelineHost, prompt: number[], options: GenerateOptions): Promise<{ ids: number[], logits: Float32Array[] }> {
  const got = { ids: [] as number[], logits: [] as Float32Array[] }
  for await (const t of driver.services.pipeline.generate(prompt, { ...options, returnLogits: true })) {
    got.ids.push(t.id)
    got.logits.push(t.logits as Float32Array)
  }
  return got
}

function maxDiff (a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]))
  return worst
}

describe('fused inference stages', () => {
  it('are built only where they apply, and refuse hidden states where the blocks take token ids', async () => {
    const [a, b, c, d, e] = await Promise.all([
      [0, 2, false], [2, L + 2, false], [1, L + 1, false], [0, 2, true], [0, 1, false]
    ].map(async ([start, end, training]) => await createPipelineStage({ config, start: start as number, end: end as number, parameters: params, training: training as boolean, intraOpNumThreads: 1, fuseInference: true })))
    stages.push(a, b, c, d, e)
    expect(a.fused).toEqual({ embed: true, head: false })
    expect(b.fused).toEqual({ embed: false, head: true })
    // blocks only, a training stage, an embed-only stage: nothing to fuse
    expect([c.fused, d.fused, e.fused]).toEqual([undefined, undefined, undefined])
    const kv = await a.blocks!.openInference()
    await expect(kv.run({ hidden_in: { type: 'float32', dims: [1, 1, config.dModel], data: new Float32Array(config.dModel) } })).rejects.toMatchObject({ name: 'InvalidTensorError' })
    await kv.close()
    const f = await createPipelineStage({ config, start: 0, end: 2, parameters: params, training: false, intraOpNumThreads: 1 })
    stages.push(f)
    expect(f.fused).toBeUndefined()
  }, 120_000)

  it('give the unfused stages\' tokens and logits (1e-5) and the single-process model\'s tokens; no embed or head call per token', async () => {
    const fused = await chain(true)
    const plain = await chain(false)
    expect([fused.s0.fused?.embed, fused.s1.fused?.head]).toEqual([true, true])
    const reference = await monolith(config, params)
    closers.push(reference)
    const prompt = [3, 17, 200, 45, 9, 100, 77]
    const n = 30
    const want = await referenceGreedy(reference, prompt, n)
    for (const options of [{ maxNewTokens: n }, { maxNewTokens: n, temperature: 1, seed: 11 }, { maxNewTokens: n, draft: ngramDrafter() }] as GenerateOptions[]) {
      // count the embed and head executors' calls on the fused chain (after a first generation warmed everything)
      const [a, b] = [await run(fused.driver, prompt, options), await run(plain.driver, prompt, options)]
      let calls = 0
      const embedForward = fused.s0.embed!.forward.bind(fused.s0.embed)
      fused.s0.embed!.forward = async (...args) => { calls++; return await embedForward(...args) }
      const worker = fused.s1.head!.runtime.worker as any
      const headCall = worker.call
      worker.call = async function (this: unknown, ...args: unknown[]) { calls++; return await headCall.apply(worker, args) }
      const again = await run(fused.driver, prompt, options)
      fused.s0.embed!.forward = embedForward
      worker.call = headCall
      expect(a.ids.length).toBe(n)
      expect(a.ids).toEqual(b.ids)
      expect(again.ids).toEqual(a.ids)
      let worst = 0
      let compared = 0
      for (let i = 0; i < n; i++) {
        expect(a.logits[i] == null).toBe(b.logits[i] == null)
        if (a.logits[i] == null) continue
        worst = Math.max(worst, maxDiff(a.logits[i], b.logits[i]))
        compared++
      }
      expect(compared).toBeGreaterThan(0)
      expect(worst).toBeLessThan(TOL)
      if (options.temperature == null) expect(a.ids).toEqual(want.ids)
      // speculative rounds score their drafts with the head executor over several positions; plain tokens never call it
      if (options.draft == null) expect(calls).toBe(0)
    }
  }, 180_000)
})
