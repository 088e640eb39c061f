import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildModelGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { createRuntime, int64 } from '@neuroshard/runtime'
import { TextGenerator, argmax, samplingRng } from '../src/index.js'
import type { Runtime, RuntimeSession } from '@neuroshard/runtime'

const config = { ...preset('tiny'), maxSeqLen: 32 }
const parameters = new Map(modelParameters(config).map(s => [s.name, initParameter(config, s, 3)]))
let rt: Runtime
let full: RuntimeSession

beforeAll(async () => {
  rt = await createRuntime({ intraOpNumThreads: 1 })
  full = await rt.createSession(buildModelGraph(config, 'inference').bytes)
  const resident: Record<string, { type: 'float32', dims: number[], data: Float32Array }> = {}
  for (const s of modelParameters(config)) resident[s.name] = { type: 'float32', dims: s.shape, data: parameters.get(s.name)! }
  await rt.setResident(resident)
})
afterAll(async () => { await rt?.close() })

/** Next-token logits from the monolithic graph, recomputing the whole sequence (no cache) */
async function reference (ids: number[]): Promise<Float32Array> {
  const out = await full.run({ input_ids: int64(BigInt64Array.from(ids, BigInt), [1, ids.length]) })
  const v = config.vocabSize
  return (out.logits.data as Float32Array).slice((ids.length - 1) * v, ids.length * v)
}

function near (a: Float32Array, b: Float32Array): void {
  let d = 0
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]))
  expect(d).toBeLessThan(1e-4)
}

// both ways the generator runs the model: three shard executors with resident weights, and one session with the
// weights baked in (prepacked, q/k/v and gate/up fused): each must match the monolithic graph within 1e-4
describe.each([
  { name: 'shard executors', bakeWeights: false },
  { name: 'baked whole-model engine', bakeWeights: true }
])('TextGenerator (KV cache), $name', ({ bakeWeights }) => {
  let gen: TextGenerator
  beforeAll(async () => {
    gen = await TextGenerator.create({ config, parameters, threads: 1, bakeWeights })
    expect(gen.bakedWeights).toBe(bakeWeights)
  })
  afterAll(async () => { await gen?.close() })

  it('prefill, token-by-token decode and later turns match recomputing the whole sequence', async () => {
    const s = await gen.session()
    const prompt = [5, 17, 200, 3, 99]
    near(await s.feed(prompt), await reference(prompt))
    const hist = [...prompt]
    for (const t of [7, 8, 250]) {
      hist.push(t)
      near(await s.feed([t]), await reference(hist))
    }
    expect(s.position).toBe(hist.length)
    // a second turn runs only its own tokens on top of the cache
    const turn = [1, 2, 3]
    hist.push(...turn)
    near(await s.feed(turn), await reference(hist))
    expect(s.position).toBe(hist.length)
    await s.close()
  })

  it('greedy generation equals argmax over full recomputation; the cache persists across calls', async () => {
    const s = await gen.session()
    const prompt = [10, 20, 30]
    const got: number[] = []
    for await (const t of s.generate(prompt, { temperature: 0, maxTokens: 5 })) got.push(t)
    const hist = [...prompt]
    for (const t of got) {
      expect(t).toBe(argmax(await reference(hist)))
      hist.push(t)
    }
    expect(s.history).toEqual(hist)
    // the last sampled token is pending: it goes in with the next turn
    expect(s.position).toBe(hist.length - 1)
    const more: number[] = []
    for await (const t of s.generate([4], { temperature: 0, maxTokens: 2 })) more.push(t)
    expect(more[0]).toBe(argmax(await reference([...hist, 4])))
    await s.close()
  })

  it('seeded sampling is reproducible; stop tokens end the turn', async () => {
    const run = async (): Promise<number[]> => {
      const s = await gen.session()
      const out: number[] = []
      for await (const t of s.generate([1, 2], { temperature: 1, topK: 20, maxTokens: 8, random: samplingRng(42) })) out.push(t)
      await s.close()
      return out
    }
    const a = await run()
    expect(a.length).toBe(8)
    expect(await run()).toEqual(a)
    const s = await gen.session()
    const out: number[] = []
    for await (const t of s.generate([1, 2], { temperature: 1, topK: 20, maxTokens: 8, random: samplingRng(42), stopTokens: [a[2]] })) out.push(t)
    expect(out).toEqual(a.slice(0, a.indexOf(a[2]) + 1))
    await s.close()
  })

  it('slides the window when the context fills up, and refuses out-of-vocabulary prompts', async () => {
    const s = await gen.session()
    let n = 0
    for await (const _ of s.generate([1, 2, 3], { temperature: 0, maxTokens: 40 })) n++
    expect(n).toBe(40)
    expect(s.rebuilds).toBeGreaterThan(0)
    expect(s.position).toBeLessThanOrEqual(config.maxSeqLen)
    const bad = s.generate([config.vocabSize], { maxTokens: 1 })
    await expect(bad.next()).rejects.toMatchObject({ name: 'InvalidParametersError' })
    await s.close()
  })

  it('refuses a parameter set with a missing weight (typed)', async () => {
    const partial = new Map(parameters)
    partial.delete('blocks.0.attn.wq')
    await expect(TextGenerator.create({ config, parameters: partial, threads: 1, bakeWeights })).rejects.toMatchObject({ name: 'InvalidParametersError' })
  })
})
