/**
 * Local speculative decoding (`GenerateOptions.draft`): the same tokens as plain generation with the same random
 * stream, greedy and sampled, with drafts that are always right, always wrong and mixed; the cache and history after
 * a speculative turn are the ones plain generation leaves (a later turn continues identically).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initParameter, modelParameters, preset } from '@neuroshard/model'
import { TextGenerator, samplingRng } from '../src/index.js'
import type { GenerateOptions, TokenDrafter } from '../src/index.js'

const config = { ...preset('tiny'), maxSeqLen: 64 }
const parameters = new Map(modelParameters(config).map(s => [s.name, initParameter(config, s, 5)]))
async function run (gen: TextGenerator, prompt: number[], options: GenerateOptions, turns = 1): Promise<{ ids: number[][], history: number[], position: number }> {
  const s = await gen.session()
  const ids: number[][] = []
  for (let t = 0; t < turns; t++) {
    const got: number[] = []
    for await (const id of s.generate(t === 0 ? prompt : [t + 40, t + 41], options)) got.push(id)
    ids.push(got)
  }
  const out = { ids, history: s.history, position: s.position }
  await s.close()
  return out
}

/** Proposes the continuation of `oracle` (right while the history follows it), else tokens from `wrong` */
function scripted (oracle: number[], wrongEvery: number): TokenDrafter {
  let calls = 0
  return {
    async propose (context, gamma) {
      calls++
      const out: Array<{ token: number }> = []
      for (let i = 0; i < gamma; i++) {
        const at = context.length + i
        const right = oracle[at] ?? 0
        out.push({ token: wrongEvery > 0 && (calls + i) % wrongEvery === 0 ? (right + 1) % config.vocabSize : right })
      }
      return out
    }
  }
}

// with the shard executors and with the baked whole-model engine (whose append caches are truncated by a rollback)
describe.each([
  { name: 'shard executors', bakeWeights: false },
  { name: 'baked whole-model engine', bakeWeights: true }
])('speculative decoding on one machine, $name', ({ bakeWeights }) => {
  let gen: TextGenerator
  beforeAll(async () => { gen = await TextGenerator.create({ config, parameters, threads: 1, bakeWeights }) })
  afterAll(async () => { await gen?.close() })
  const prompt = [3, 14, 15, 92, 65, 35]

  for (const [name, sampling] of [['greedy', { temperature: 0 }], ['sampled', { temperature: 0.9, topK: 50, topP: 0.95 }]] as const) {
    it(`${name}: the same tokens, history and cache as plain generation, over two turns`, async () => {
      const plain = await run(gen, prompt, { ...sampling, maxTokens: 20, random: samplingRng(7) }, 2)
      const oracle = [...prompt, ...plain.ids[0]]
      const rounds: Array<{ proposed: number, accepted: number }> = []
      for (const wrongEvery of [0, 2, 1]) {
        const got = await run(gen, prompt, { ...sampling, maxTokens: 20, random: samplingRng(7), draft: scripted(oracle, wrongEvery), gamma: 4, onRound: r => rounds.push(r) }, 2)
        expect(got.ids, `wrongEvery ${wrongEvery}`).toEqual(plain.ids)
        expect(got.history).toEqual(plain.history)
        expect(got.position).toBe(plain.position)
      }
      // right drafts were accepted, wrong ones rejected: both paths ran
      expect(rounds.some(r => r.accepted === r.proposed && r.proposed > 1)).toBe(true)
      expect(rounds.some(r => r.accepted < r.proposed)).toBe(true)
    }, 120_000)
  }

  it('stops at a stop token and at maxTokens inside an accepted draft, leaving the last token pending', async () => {
    const plain = await run(gen, prompt, { temperature: 0, maxTokens: 10 })
    const oracle = [...prompt, ...plain.ids[0]]
    for (const maxTokens of [1, 2, 3, 7]) {
      const a = await run(gen, prompt, { temperature: 0, maxTokens })
      const b = await run(gen, prompt, { temperature: 0, maxTokens, draft: scripted(oracle, 0), gamma: 8 })
      expect(b).toEqual(a)
    }
    const stopAt = plain.ids[0][4]
    const a = await run(gen, prompt, { temperature: 0, maxTokens: 10, stopTokens: [stopAt] })
    const b = await run(gen, prompt, { temperature: 0, maxTokens: 10, stopTokens: [stopAt], draft: scripted(oracle, 0) })
    expect(b).toEqual(a)
    await expect(run(gen, prompt, { temperature: 0, maxTokens: 5, draft: { propose: async () => [{ token: config.vocabSize }] } })).rejects.toMatchObject({ name: 'InvalidParametersError' })
  }, 120_000)
})
