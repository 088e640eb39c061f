import { describe, it, expect, afterAll } from 'vitest'
import { TIED_HEAD_WEIGHT, initParameter, modelParameters, preset } from '@neuroshard/model'
import { createInferenceEngine } from '../src/index.js'
import { decodeLogits, maxDiff, modelGraphLogits } from './decode-check.js'
import type { InferenceEngine, Runtime } from '../src/index.js'

/**
 * fp32 engines of a tied model read the embedding table transposed (the LM head as a plain MatMul): their logits
 * must equal the monolithic model graph's (decomposed ops, no cache: an independent reference), with the weights
 * resident or baked, and after `setParameters` (the transposed table is made again from the new embedding).
 */
const config = { ...preset('tiny'), tieEmbeddings: true, maxSeqLen: 64 }
const V = config.vocabSize
const TOL = 1e-4
const open: Array<InferenceEngine | Runtime> = []
afterAll(async () => { await Promise.all(open.map(async e => { await e.close() })) })
const paramsOf = (seed: number): Map<string, Float32Array> => new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, seed)]))
const tokens = Array.from({ length: 20 }, (_, i) => (i * 37 + 11) % V)

const reference = async (params: Map<string, Float32Array>): Promise<Float32Array> => await modelGraphLogits(config, params, tokens, open)
const decode = async (e: InferenceEngine): Promise<Float32Array> => await decodeLogits(e, tokens, 8, V)

describe('fp32 tied head over the transposed table', () => {
  it('resident and baked engines give the model graph\'s logits; the resident one reads only the transposed table', async () => {
    const params = paramsOf(21)
    const ref = await reference(params)
    for (const bakeWeights of [false, true]) {
      const e = await createInferenceEngine({ config, parameters: params, bakeWeights })
      open.push(e)
      expect(maxDiff(await decode(e), ref), `bakeWeights ${String(bakeWeights)}`).toBeLessThan(TOL)
    }
    const resident = await createInferenceEngine({ config, parameters: params })
    open.push(resident)
    const got = await resident.runtime.getResident([TIED_HEAD_WEIGHT])
    expect(got[TIED_HEAD_WEIGHT].dims).toEqual([config.dModel, V])
    // column v of the transposed table is embedding row v
    const emb = params.get('embed.weight') as Float32Array
    const t = got[TIED_HEAD_WEIGHT].data as Float32Array
    for (const v of [0, 1, 77, V - 1]) for (const k of [0, 5, config.dModel - 1]) expect(t[k * V + v]).toBe(emb[v * config.dModel + k])
  }, 120_000)

  it('setParameters on a resident engine makes the transposed table again from the new embedding', async () => {
    const [a, b] = [paramsOf(31), paramsOf(32)]
    const e = await createInferenceEngine({ config, parameters: a })
    open.push(e)
    expect(maxDiff(await decode(e), await reference(a))).toBeLessThan(TOL)
    await e.setParameters(b)
    const refB = await reference(b)
    expect(maxDiff(await decode(e), refB)).toBeLessThan(TOL)
    // only the embedding changed: the head and the lookup must both follow it
    const onlyEmbed = new Map(a)
    onlyEmbed.set('embed.weight', b.get('embed.weight') as Float32Array)
    await e.setParameters(onlyEmbed)
    expect(maxDiff(await decode(e), await reference(onlyEmbed))).toBeLessThan(TOL)
  }, 120_000)
})
