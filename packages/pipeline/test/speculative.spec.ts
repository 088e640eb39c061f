/**
 * Speculative decoding over three libp2p hosts (Driver: embedding; Worker: block 0; Validator: block 1, final
 * norm and head — so two hops keep KV caches): the output equals plain decoding, rejected draft tokens leave
 * every cache, and bad TRUNCATE / DRAFT requests get typed errors.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { createInferenceEngine, float32, int64 } from '@neuroshard/runtime'
import { Kind, PipelineRequest, PipelineResponse, byteTokenizer, encodeActivation, modelDrafter, ngramDrafter, peerBytes, staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { DraftToken, Drafter, GenerateOptions, PipelineStage, SpeculativeRound } from '../src/index.js'
import type { InferenceEngine, ShardExecutor, TensorData } from '@neuroshard/runtime'
import { sendRequest } from '@neuroshard/utils'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
const engines: InferenceEngine[] = []
let reference: ShardExecutor

beforeAll(async () => {
  const [s0, s1, s2] = await Promise.all([stage(config, 0, 1, params), stage(config, 1, 2, params), stage(config, 2, L + 2, params)])
  stages.push(s0, s1, s2)
  reference = await monolith(config, params)
  const worker = await startHost({ stages: [s1] })
  const validator = await startHost({ stages: [s2], timeout: 5_000 })
  const router = staticRouter([{ peer: worker.peerId, start: 1, end: 2 }, { peer: validator.peerId, start: 2, end: L + 2 }])
  const driver = await startHost({ stages: [s0], router })
  hosts.push(driver, worker, validator)
  await mesh(hosts)
  // draft models: the target itself (every greedy draft token is right) and a differently initialised model
  engines.push(await createInferenceEngine({ config, parameters: params, intraOpNumThreads: 1 }))
  engines.push(await createInferenceEngine({ config, parameters: weights(config, 99), intraOpNumThreads: 1 }))
}, 120_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), ...engines.map(async e => { await e.close() }), reference?.close()])
})

async function generate (prompt: number[], options: GenerateOptions): Promise<{ ids: number[], rounds: SpeculativeRound[] }> {
  const ids: number[] = []
  const rounds: SpeculativeRound[] = []
  for await (const t of hosts[0].services.pipeline.generate(prompt, { ...options, onRound: r => rounds.push(r) })) {
    expect(t.position).toBe(prompt.length + ids.length)
    ids.push(t.id)
  }
  return { ids, rounds }
}

const sum = (rounds: SpeculativeRound[], k: 'proposed' | 'accepted'): number => rounds.reduce((a, r) => a + r[k], 0)

describe('speculative decoding over three hosts', () => {
  const prompt = byteTokenizer().encode('the cat sat on the mat, the cat sat on the')
  const n = 40

  it('greedy output equals plain greedy decoding token for token (n-gram, self-draft, a poor draft model; inline and message rollback)', async () => {
    const want = await referenceGreedy(reference, prompt, n)
    const plain = await generate(prompt, { maxNewTokens: n })
    expect(plain.ids).toEqual(want.ids)
    const drafters: Array<[string, () => Drafter]> = [
      ['ngram', () => ngramDrafter()],
      ['self', () => modelDrafter({ open: async () => await engines[0].openInference(), vocabSize: config.vocabSize })],
      ['poor', () => modelDrafter({ open: async () => await engines[1].openInference(), vocabSize: config.vocabSize })]
    ]
    const stats: Record<string, [number, number]> = {}
    for (const [name, make] of drafters) {
      for (const rollback of ['inline', 'message'] as const) {
        const draft = make()
        const got = await generate(prompt, { maxNewTokens: n, draft, rollback })
        await draft.close?.()
        expect(got.ids, `${name} ${rollback}`).toEqual(want.ids)
        stats[`${name}-${rollback}`] = [sum(got.rounds, 'proposed'), sum(got.rounds, 'accepted')]
        // fewer rounds than tokens whenever drafts were accepted
        expect(got.rounds.reduce((a, r) => a + r.tokens, 0)).toBeGreaterThanOrEqual(n)
      }
    }
    // the self-draft is always right; the poor draft model is mostly wrong; both paths of the rule ran
    expect(stats['self-inline'][1]).toBe(stats['self-inline'][0])
    expect(stats['self-inline'][0]).toBeGreaterThan(n / 2)
    expect(stats['poor-inline'][1]).toBeLessThan(stats['poor-inline'][0])
    // every cache was freed at the end
    await expect.poll(() => hosts.map(h => h.services.pipeline.sessionStats().sessions), { timeout: 10_000 }).toEqual([0, 0, 0])
  }, 240_000)

  it('the Worker gets no answer: the accepted tokens come to the Driver on its tokens stream (1.3.0; quiet, 1.5.0)', async () => {
    const pipe = hosts[1].services.pipeline as any
    const send = pipe.sendMaybeQuiet.bind(pipe)
    const seen: Array<number[] | null> = []
    pipe.sendMaybeQuiet = async (...args: any[]) => {
      const res = await send(...args)
      // null: nothing came back (a quiet INFER that went through; it settles when the next one or CLOSE follows)
      if (args[2]?.kind === Kind.INFER) seen.push(res == null ? null : [...res.tokens, res.direct === true ? -1 : res.token])
      return res
    }
    try {
      const want = await referenceGreedy(reference, prompt, 16)
      const got = await generate(prompt, { maxNewTokens: 16, draft: ngramDrafter() })
      expect(got.ids).toEqual(want.ids)
      expect(got.rounds.length).toBeGreaterThan(1)
      // every INFER after the prefill was direct and quiet: the Worker saw no answer, so no token id of any round (the
      // last one settles when the Driver's CLOSE reaches the Worker)
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(got.rounds.length)
      expect(seen[0]).not.toBeNull()
      expect(seen.slice(1).every(t => t === null)).toBe(true)
    } finally {
      pipe.sendMaybeQuiet = send
    }
  }, 120_000)

  it('sampled output with point-mass drafts is the plain sampler\'s token for token; a sampled draft (q sent) runs', async () => {
    const sampling = { temperature: 0.8, topK: 40, topP: 0.95 }
    for (const seed of [1, 2, 3]) {
      const plain = await generate(prompt, { maxNewTokens: 24, ...sampling, seed })
      const draft = modelDrafter({ open: async () => await engines[0].openInference(), vocabSize: config.vocabSize })
      const got = await generate(prompt, { maxNewTokens: 24, ...sampling, seed, draft })
      await draft.close?.()
      expect(got.ids).toEqual(plain.ids)
      const ngram = await generate(prompt, { maxNewTokens: 24, ...sampling, seed, draft: ngramDrafter() })
      expect(ngram.ids).toEqual(plain.ids)
    }
    const q = modelDrafter({ open: async () => await engines[0].openInference(), vocabSize: config.vocabSize, mode: 'sample' })
    const got = await generate(prompt, { maxNewTokens: 24, ...sampling, seed: 5, draft: q })
    await q.close?.()
    expect(got.ids.length).toBe(24)
    // drafting from the model's own distribution: most tokens are accepted (p = q)
    expect(sum(got.rounds, 'accepted')).toBeGreaterThan(sum(got.rounds, 'proposed') / 2)
  }, 240_000)

  it('after a rejection every Worker\'s cache equals a cache built without the rejected tokens', async () => {
    const want = await referenceGreedy(reference, prompt, 8)
    const caches: Array<Array<{ position: number, past: Record<string, TensorData> }>> = []
    const contexts: number[][] = []
    let round = 0
    const kvs: unknown[] = []
    const workerEntries = (): any[] => [hosts[1], hosts[2]].map(h => [...(h.services.pipeline as any).sessions.entries.values()][0]?.kv)
    // round 1: one right token, then three wrong ones; round 2: no draft (the INFER carries the rollback);
    // round 3: look at the caches before anything else runs
    const scripted: Drafter = {
      async propose (context) {
        round++
        if (round === 1) return [want.ids[0], (want.ids[1] + 1) % config.vocabSize, 7, 9].map(token => ({ token })) as DraftToken[]
        // the caches that took the draft are the ones rolled back, not new ones from a replay (position 0)
        if (round === 2) kvs.push(...workerEntries())
        if (round === 3) expect(workerEntries()).toEqual(kvs.splice(0))
        if (round === 3) {
          contexts.push([...context])
          caches.push(await Promise.all([hosts[1], hosts[2]].map(async h => {
            const entries = [...(h.services.pipeline as any).sessions.entries.values()]
            expect(entries.length).toBe(1)
            return await entries[0].kv.state()
          })))
        }
        return []
      }
    }
    for (const rollback of ['inline', 'message'] as const) {
      round = 0
      const got = await generate(prompt, { maxNewTokens: 6, draft: scripted, rollback })
      expect(got.ids).toEqual(want.ids.slice(0, 6))
      expect(got.rounds[0]).toMatchObject({ proposed: 4, accepted: 1, tokens: 2 })
    }
    // the reference: the same tokens, never a rejected one, run as one prefill on fresh caches of the same stages
    for (let k = 0; k < caches.length; k++) {
      const committed = contexts[k].slice(0, -1) // the last token is not in any cache yet
      // round 1 answered two tokens (one kept draft token and the model's), round 2 one: the third is not in a cache
      expect(committed).toEqual([...prompt, ...want.ids.slice(0, 2)])
      const h0 = (await stages[0].embed!.forward({ input_ids: int64(BigInt64Array.from(committed, BigInt), [1, committed.length]) })).hidden
      const kv1 = await stages[1].blocks!.openInference()
      const h1 = (await kv1.run({ hidden_in: h0 })).hidden_out
      const kv2 = await stages[2].blocks!.openInference()
      await kv2.run({ hidden_in: h1 })
      const expected = [await kv1.state(), await kv2.state()]
      await kv1.close()
      await kv2.close()
      for (let w = 0; w < 2; w++) {
        expect(caches[k][w].position).toBe(committed.length)
        expect(Object.keys(caches[k][w].past).sort()).toEqual(Object.keys(expected[w].past).sort())
        let worst = 0
        for (const [name, t] of Object.entries(expected[w].past)) {
          expect(caches[k][w].past[name].dims).toEqual(t.dims)
          const a = caches[k][w].past[name].data as Float32Array
          const b = t.data as Float32Array
          for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]))
        }
        expect(worst).toBeLessThan(1e-5)
      }
    }
  }, 240_000)

  it('bad TRUNCATE and DRAFT requests get typed errors and change nothing', async () => {
    const [driver, worker, validator] = hosts
    const route = [
      { peer: peerBytes(driver.peerId), start: 0, end: 1 },
      { peer: peerBytes(worker.peerId), start: 1, end: 2 },
      { peer: peerBytes(validator.peerId), start: 2, end: L + 2 }
    ]
    const session = new Uint8Array(16).fill(9)
    const base: PipelineRequest = {
      kind: Kind.INFER, session, position: 0, hop: 1, route, hidden: encodeActivation(float32(new Float32Array(5 * config.dModel).fill(0.1), [1, 5, config.dModel]), false),
      microBatch: 0, targets: new Uint8Array(0), step: 0, gradNorm: 0, compress: false, tied: new Uint8Array(0), lossScale: 0,
      tiedReplica: false, tiedIds: new Uint8Array(0), tiedM: new Uint8Array(0), tiedV: new Uint8Array(0), deflate: false, lastMicroBatch: false,
      rollback: false, draftCount: 0, draft: [], direct: false, mirror: false, standbys: [], quiet: false, tiedRecompute: false, recomputed: [], tiedOwner: false, tiedPart: 0
    }
    const send = async (hop: number, fields: Partial<PipelineRequest>): Promise<PipelineResponse> => await sendRequest(driver, [driver, worker, validator][hop].peerId, '/neuroshard/pipeline/1.0.0',
      { ...base, hop, ...fields }, { requestCodec: PipelineRequest, responseCodec: PipelineResponse, maxMessageSize: 1 << 26, timeout: 30_000 })
    await expect.poll(() => hosts.map(h => h.services.pipeline.sessionStats().sessions), { timeout: 10_000 }).toEqual([0, 0, 0])
    // open a 5-token session on the Worker and the Validator (which answers a token)
    expect((await send(1, {})).error).toBe('')
    expect((await send(1, { kind: Kind.TRUNCATE, position: 6 })).error).toBe('SessionPositionError')
    expect((await send(1, { kind: Kind.TRUNCATE, position: 3, session: new Uint8Array(16).fill(1) })).error).toBe('UnknownSessionError')
    const workerKv = (): any => [...(worker.services.pipeline as any).sessions.entries.values()].find((e: any) => e.key.startsWith('0909'))
    expect(workerKv().kv.position).toBe(5)
    expect(await send(1, { kind: Kind.TRUNCATE, position: 3 })).toMatchObject({ error: '', position: 3 })
    expect(await send(2, { kind: Kind.TRUNCATE, position: 3 })).toMatchObject({ error: '', position: 3 })
    expect(workerKv().kv.position).toBe(3)
    expect(worker.services.pipeline.sessionStats().bytes).toBe(3 * 2 * 1 * config.nKvHeads * (config.dModel / config.nHeads) * 4)
    // an INFER for position 3 now fits; one for position 5 does not, even with `rollback` (a cache never grows back)
    const one = encodeActivation(float32(new Float32Array(config.dModel).fill(0.2), [1, 1, config.dModel]), false)
    expect((await send(1, { position: 5, hidden: one, rollback: true })).error).toBe('SessionPositionError')
    expect((await send(1, { position: 3, hidden: one })).error).toBe('')
    // rollback in the INFER itself: the cache holds 4, the request says 2
    expect(await send(1, { position: 2, hidden: one, rollback: true })).toMatchObject({ error: '', position: 3 })
    expect(workerKv().kv.position).toBe(3)
    // DRAFT goes to the Validator only, with sane tokens and q
    expect((await send(1, { kind: Kind.DRAFT, position: 3, draft: [{ token: 1, ids: [], probs: [] }] })).error).toBe('InvalidRouteError')
    const bad: Array<PipelineRequest['draft']> = [
      [],
      [{ token: config.vocabSize, ids: [], probs: [] }],
      [{ token: 1, ids: [1, 2], probs: [0.5] }],
      [{ token: 1, ids: [1, 1], probs: [0.5, 0.5] }],
      [{ token: 1, ids: [2, 3], probs: [0.5, 0.5] }],
      [{ token: 1, ids: [1, 2], probs: [0.9, 0.9] }],
      [{ token: 1, ids: [1, 2], probs: [Number.NaN, 1] }]
    ]
    for (const draft of bad) expect((await send(2, { kind: Kind.DRAFT, position: 3, draft })).error).toBe('InvalidDraftError')
    expect((await send(2, { kind: Kind.DRAFT, position: config.maxSeqLen - 1, draft: [{ token: 1, ids: [], probs: [] }, { token: 1, ids: [], probs: [] }] })).error).toBe('InvalidDraftError')
    // more than 32 tokens does not even decode (the decoder's cap): the stream is reset
    await expect(send(2, { kind: Kind.DRAFT, position: 3, draft: Array.from({ length: 33 }, () => ({ token: 1, ids: [], probs: [] })) })).rejects.toThrow(/reset/)
    expect((validator.services.pipeline as any).drafts.size).toBe(0)
    // an INFER naming a draft the Validator does not hold (it waits for it, then refuses)
    const two = encodeActivation(float32(new Float32Array(2 * config.dModel).fill(0.2), [1, 2, config.dModel]), false)
    const validatorKv = (): any => [...(validator.services.pipeline as any).sessions.entries.values()].find((e: any) => e.key.startsWith('0909'))
    expect((await send(1, { position: 3, hidden: two, draftCount: 1 })).error).toBe('InvalidDraftError')
    expect(validatorKv().kv.position).toBe(3) // the Validator ran nothing (the Worker did: the Driver rolls it back)
    expect((await send(1, { position: 5, hidden: two, draftCount: 2, rollback: true })).error).toBe('InvalidDraftError')
    // the node serves right after
    const got = await generate(prompt, { maxNewTokens: 4, draft: ngramDrafter() })
    expect(got.ids.length).toBe(4)
  }, 120_000)
})
