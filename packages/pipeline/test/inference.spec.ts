/**
 * Three separate libp2p hosts (Driver: embedding, Worker: both blocks, Validator: final norm + LM head)
 * generate greedily exactly what the single-process model generates, with logits within 1e-4.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { byteTokenizer, staticRouter } from '../src/index.js'
import { maxAbsDiff, mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor

beforeAll(async () => {
  const [s0, s1, s2] = await Promise.all([stage(config, 0, 1, params), stage(config, 1, L + 1, params), stage(config, L + 1, L + 2, params)])
  stages.push(s0, s1, s2)
  reference = await monolith(config, params)
  const worker = await startHost({ stages: [s1] })
  const validator = await startHost({ stages: [s2] })
  const router = staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }])
  const driver = await startHost({ stages: [s0], router })
  hosts.push(driver, worker, validator)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

describe('pipeline inference over three hosts', () => {
  it('greedy generation equals the single-process model, logits within 1e-4', async () => {
    const prompt = byteTokenizer().encode('The quick brown fox')
    const n = 24
    const want = await referenceGreedy(reference, prompt, n)
    const got: number[] = []
    let worst = 0
    for await (const t of hosts[0].services.pipeline.generate(prompt, { maxNewTokens: n, returnLogits: true })) {
      expect(t.position).toBe(prompt.length + got.length)
      worst = Math.max(worst, maxAbsDiff(t.logits!, want.logits[got.length]))
      // one long-lived session stream per hop carries every token
      expect(hosts.map(h => h.services.pipeline.sessionStats().links)).toEqual([1, 1, 0])
      got.push(t.id)
    }
    expect(got).toEqual(want.ids)
    expect(worst).toBeLessThan(1e-4)
    // the Worker's cache was freed when the generation ended
    await expect.poll(() => hosts[1].services.pipeline.sessionStats().sessions, { timeout: 10_000 }).toBe(0)
    // the session streams (Driver → Worker → Validator) were closed too
    await expect.poll(() => hosts.map(h => h.services.pipeline.sessionStats().links), { timeout: 10_000 }).toEqual([0, 0, 0])
  })

  it('text prompt, stop string, abort signal', async () => {
    const pipe = hosts[0].services.pipeline
    const all: string[] = []
    for await (const t of pipe.generate('abc', { maxNewTokens: 8 })) all.push(t.text)
    expect(all.length).toBe(8)
    const stopAt = all.slice(0, 3).join('')
    const stopped: string[] = []
    for await (const t of pipe.generate('abc', { maxNewTokens: 8, stop: [stopAt] })) stopped.push(t.text)
    expect(stopped.join('').endsWith(stopAt)).toBe(true)
    expect(stopped.length).toBeLessThanOrEqual(3)
    const controller = new AbortController()
    const seen: number[] = []
    const run = async (): Promise<void> => {
      for await (const t of pipe.generate('abc', { maxNewTokens: 50, signal: controller.signal })) {
        seen.push(t.id)
        if (seen.length === 2) controller.abort()
      }
    }
    await expect(run()).rejects.toHaveProperty('name', 'AbortError')
    expect(seen.length).toBe(2)
  })

  it('sampling with a seed is reproducible and respects top-k', async () => {
    const pipe = hosts[0].services.pipeline
    const opts = { maxNewTokens: 12, temperature: 0.9, topK: 5, topP: 0.95, seed: 1234, returnLogits: true }
    const a: number[] = []
    for await (const t of pipe.generate('xyz', opts)) {
      a.push(t.id)
      // the token is among the 5 most likely
      const row = t.logits!
      const rank = [...row].filter(v => v > row[t.id]).length
      expect(rank).toBeLessThan(5)
    }
    const b: number[] = []
    for await (const t of pipe.generate('xyz', opts)) b.push(t.id)
    expect(b).toEqual(a)
  })
})
