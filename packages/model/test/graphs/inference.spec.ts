import { describe, it, expect } from 'vitest'
import { TIED_HEAD_WEIGHT, buildInferenceGraph, buildModelGraph, dequantizeMatrix, headDim, quantizeMatrix, SHARD_IO, transposeEmbedding } from '../../src/index.js'
import type { ModelConfig } from '../../src/index.js'
import { Runner, TINY_TEST, allParams, ids, maxAbs, maxAbsDiff, rng } from './helpers.js'
import type { T } from './helpers.js'

describe('blockwise quantization', () => {
  it('int4 follows the Q4_0 rule: the largest-magnitude value maps to code 0 (−8 · scale), nibbles low-first', () => {
    // one column, K = 32: values −8 … 7 then 16 zeros, times 0.5 → scale = −8·0.5 / −8 = 0.5, codes = v + 8
    const K = 32
    const w = new Float32Array(K)
    for (let k = 0; k < 16; k++) w[k] = (k - 8) * 0.5
    const q = quantizeMatrix(w, K, 1, { bits: 4 })
    expect(q.scales[0]).toBe(0.5)
    expect(q.packed[0]).toBe(0 | (1 << 4)) // codes 0 and 1
    expect(q.packed[7]).toBe(14 | (15 << 4)) // codes 14 and 15
    expect(q.packed[8]).toBe(8 | (8 << 4)) // zeros → code 8
    expect(Array.from(dequantizeMatrix(q))).toEqual(Array.from(w))
  })

  it('round-trip error is at most half a step per value (int8) and one step (int4), for [K, N] and [N, K] layouts', () => {
    const r = rng(3)
    const K = 70 // two full blocks and a padded one
    const N = 5
    const w = Float32Array.from({ length: K * N }, () => (r() - 0.5) * 2)
    const wt = new Float32Array(K * N)
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wt[n * K + k] = w[k * N + n]
    for (const bits of [8, 4] as const) {
      for (const [data, layout] of [[w, 'KN'], [wt, 'NK']] as const) {
        const q = quantizeMatrix(data, K, N, { bits, layout })
        const d = dequantizeMatrix(q)
        for (let k = 0; k < K; k++) {
          for (let n = 0; n < N; n++) {
            const s = Math.abs(q.scales[n * q.kBlocks + Math.floor(k / 32)])
            expect(Math.abs(d[k * N + n] - w[k * N + n])).toBeLessThanOrEqual((bits === 8 ? 0.5 : 1) * s + 1e-7)
          }
        }
      }
    }
  })
})

describe('inference graphs with baked weights', () => {
  it('the whole-model span (fp32, one graph) gives the monolithic logits through prefill + decode', async () => {
    const config: ModelConfig = { ...TINY_TEST, tieEmbeddings: true }
    const params = allParams(config, 5, 'float32')
    const parameters = new Map(Object.entries(params).map(([k, v]) => [k, v.data as Float32Array]))
    const all = ids(rng(9), 1, 7, config.vocabSize)
    const mono = await Runner.create(buildModelGraph(config, 'inference').bytes)
    const ref = (await mono.run({ [SHARD_IO.inputIds]: all, ...params }))[SHARD_IO.logits].data
    const decode = async (bytes: Uint8Array): Promise<Float32Array> => {
      const s = await Runner.create(bytes)
      const hd = headDim(config)
      let past: Record<string, T> = {}
      for (let k = 0; k < config.nLayers; k++) {
        past[SHARD_IO.pastKey(k)] = { data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
        past[SHARD_IO.pastValue(k)] = { data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
      }
      const logits: number[] = []
      for (const [from, to] of [[0, 4], [4, 5], [5, 6], [6, 7]]) {
        const chunk = { data: (all.data as BigInt64Array).slice(from, to), dims: [1, to - from] }
        const out = await s.run({ [SHARD_IO.inputIds]: chunk, [SHARD_IO.positionOffset]: { data: BigInt64Array.of(BigInt(from)), dims: [] }, ...past })
        logits.push(...out[SHARD_IO.logits].data as Float32Array)
        past = {}
        for (const [k, v] of Object.entries(out)) if (k.startsWith('present_')) past['past_' + k.slice(8)] = v
      }
      await s.release()
      return Float32Array.from(logits)
    }
    const graph = buildInferenceGraph(config, { kind: 'model' }, { parameters })
    expect(graph.inputs.map(i => i.name)).not.toContain('embed.weight')
    expect(maxAbsDiff(await decode(graph.bytes), ref) / maxAbs(ref)).toBeLessThan(1e-5)
    await mono.release()
  })

  it('residual adds are fused into the norm that reads them (SkipSimplifiedLayerNormalization); embed → blocks → head spans give the monolithic logits', async () => {
    const config: ModelConfig = { ...TINY_TEST, nLayers: 3, tieEmbeddings: true }
    const L = config.nLayers
    const params = allParams(config, 7, 'float32')
    const parameters = new Map(Object.entries(params).map(([k, v]) => [k, v.data as Float32Array]))
    const count = (g: ReturnType<typeof buildInferenceGraph>, op: string): number => g.graph.nodes.filter(n => n.op === op).length
    const residualAdds = (g: ReturnType<typeof buildInferenceGraph>): number => g.graph.nodes.filter(n => n.op === 'Add' && n.name.includes('residual')).length
    // whole model: block 0's attn_norm is plain; every other norm (mlp_norm ×L, attn_norm ×(L − 1), final_norm) adds
    // the residual itself, so no Add is left
    const model = buildInferenceGraph(config, { kind: 'model' }, { parameters })
    expect(count(model, 'SkipSimplifiedLayerNormalization')).toBe(2 * L)
    expect(count(model, 'RMSNormalization')).toBe(1)
    expect(residualAdds(model)).toBe(0)
    // a block span ends on its last residual add (hidden_out is the sum, not a norm)
    const blocks = buildInferenceGraph(config, { kind: 'blocks', start: 0, end: L }, { parameters })
    expect(count(blocks, 'SkipSimplifiedLayerNormalization')).toBe(2 * L - 1)
    expect(residualAdds(blocks)).toBe(1)
    const x = ids(rng(4), 1, 5, config.vocabSize)
    const mono = await Runner.create(buildModelGraph(config, 'inference').bytes)
    const ref = (await mono.run({ [SHARD_IO.inputIds]: x, ...params }))[SHARD_IO.logits].data
    await mono.release()
    const run = async (bytes: Uint8Array, feeds: Record<string, T>): Promise<Record<string, T>> => {
      const s = await Runner.create(bytes)
      const out = await s.run(feeds)
      await s.release()
      return out
    }
    const hd = headDim(config)
    const past: Record<string, T> = { [SHARD_IO.positionOffset]: { data: BigInt64Array.of(0n), dims: [] } }
    for (let k = 0; k < L; k++) {
      past[SHARD_IO.pastKey(k)] = { data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
      past[SHARD_IO.pastValue(k)] = { data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
    }
    const h = (await run(buildInferenceGraph(config, { kind: 'embed' }, { parameters }).bytes, { [SHARD_IO.inputIds]: x }))[SHARD_IO.hidden]
    const y = (await run(blocks.bytes, { [SHARD_IO.hiddenIn]: h, ...past }))[SHARD_IO.hiddenOut]
    const logits = (await run(buildInferenceGraph(config, { kind: 'head' }, { parameters }).bytes, { [SHARD_IO.hidden]: y }))[SHARD_IO.logits].data
    expect(maxAbsDiff(logits, ref) / maxAbs(ref)).toBeLessThan(1e-5)
    expect(maxAbsDiff((await run(model.bytes, { [SHARD_IO.inputIds]: x, ...past }))[SHARD_IO.logits].data, ref) / maxAbs(ref)).toBeLessThan(1e-5)
  })

  it('fp32 tied head: a plain MatMul over the transposed table (an input when not baked), no Transpose of a weight; same logits', async () => {
    const config: ModelConfig = { ...TINY_TEST, vocabSize: 100, dModel: 68, nHeads: 2, nKvHeads: 1, tieEmbeddings: true }
    const params = allParams(config, 8, 'float32')
    const parameters = new Map(Object.entries(params).map(([k, v]) => [k, v.data as Float32Array]))
    // the transposed table against a plain loop (shapes not multiples of its 64-wide tiles)
    const emb = parameters.get('embed.weight') as Float32Array
    const t = transposeEmbedding(config, emb)
    for (let v = 0; v < 100; v++) for (let k = 0; k < 68; k++) expect(t[k * 100 + v]).toBe(emb[v * 68 + k])
    const x = ids(rng(5), 1, 6, config.vocabSize)
    const mono = await Runner.create(buildModelGraph(config, 'inference').bytes)
    const ref = (await mono.run({ [SHARD_IO.inputIds]: x, ...params }))[SHARD_IO.logits].data
    await mono.release()
    const hd = headDim(config)
    const past: Record<string, T> = { [SHARD_IO.positionOffset]: { data: BigInt64Array.of(0n), dims: [] } }
    for (let k = 0; k < config.nLayers; k++) {
      past[SHARD_IO.pastKey(k)] = { data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
      past[SHARD_IO.pastValue(k)] = { data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
    }
    for (const bakeWeights of [true, false]) {
      const graph = buildInferenceGraph(config, { kind: 'model' }, { parameters, bakeWeights })
      const head = graph.graph.nodes.find(n => n.name === 'lm_head')
      expect(head?.op).toBe('MatMul')
      expect(head?.inputs[1]?.name).toBe(TIED_HEAD_WEIGHT)
      expect(graph.graph.nodes.filter(n => n.op === 'Transpose' && n.inputs.some(i => i !== null && (i.name === 'embed.weight' || i.name === TIED_HEAD_WEIGHT)))).toEqual([])
      const feeds: Record<string, T> = { [SHARD_IO.inputIds]: x, ...past }
      if (!bakeWeights) {
        const names = graph.inputs.map(i => i.name)
        expect(names).toContain(TIED_HEAD_WEIGHT)
        expect(names).not.toContain('embed.weight')
        for (const name of names) if (params[name] !== undefined) feeds[name] = params[name]
        feeds[TIED_HEAD_WEIGHT] = { data: t, dims: [config.dModel, config.vocabSize] }
      }
      const s = await Runner.create(graph.bytes)
      const logits = (await s.run(feeds))[SHARD_IO.logits].data
      await s.release()
      expect(maxAbsDiff(logits, ref) / maxAbs(ref), `bakeWeights ${String(bakeWeights)}`).toBeLessThan(1e-5)
    }
  })

  for (const quantization of ['int8', 'int4'] as const) {
    it(`${quantization}: the graph computes with exactly the dequantized weights (embedding rows and tied head included)`, async () => {
      const config: ModelConfig = { ...TINY_TEST, dModel: 64, nHeads: 4, nKvHeads: 2, ffnHidden: 96, tieEmbeddings: true }
      const params = allParams(config, 6, 'float32')
      const parameters = new Map(Object.entries(params).map(([k, v]) => [k, v.data as Float32Array]))
      // the fp32 model the quantized one stands for
      const deq = new Map(parameters)
      for (const [name, w] of parameters) {
        if (name.endsWith('norm.weight')) continue
        const bits = quantization === 'int8' ? 8 : 4
        if (name === 'embed.weight') {
          const [V, d] = [config.vocabSize, config.dModel]
          const t = dequantizeMatrix(quantizeMatrix(w, d, V, { bits, layout: 'NK' })) // [d, V]
          const back = new Float32Array(V * d)
          for (let k = 0; k < d; k++) for (let v = 0; v < V; v++) back[v * d + k] = t[k * V + v]
          deq.set(name, back)
        } else {
          const [K, N] = params[name].dims
          deq.set(name, dequantizeMatrix(quantizeMatrix(w, K, N, { bits })))
        }
      }
      const x = ids(rng(2), 1, 6, config.vocabSize)
      const run = async (bytes: Uint8Array): Promise<Float32Array> => {
        const s = await Runner.create(bytes)
        const hd = headDim(config)
        const feeds: Record<string, T> = { [SHARD_IO.inputIds]: x, [SHARD_IO.positionOffset]: { data: BigInt64Array.of(0n), dims: [] } }
        for (let k = 0; k < config.nLayers; k++) {
          feeds[SHARD_IO.pastKey(k)] = { data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
          feeds[SHARD_IO.pastValue(k)] = { data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
        }
        const out = (await s.run(feeds))[SHARD_IO.logits].data as Float32Array
        await s.release()
        return out
      }
      // accuracy level 0: float activations, so the only difference is float rounding
      const q = await run(buildInferenceGraph(config, { kind: 'model' }, { parameters, quantization, accuracyLevel: 0 }).bytes)
      const ref = await run(buildInferenceGraph(config, { kind: 'model' }, { parameters: deq }).bytes)
      const orig = await run(buildInferenceGraph(config, { kind: 'model' }, { parameters }).bytes)
      expect(maxAbsDiff(q, ref) / maxAbs(ref)).toBeLessThan(1e-4)
      expect(maxAbsDiff(orig, ref) / maxAbs(ref)).toBeGreaterThan(1e-3) // quantization did change the weights
    })
  }
})
