import { describe, it, expect, afterAll } from 'vitest'
import { buildInferenceGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { createInferenceEngine } from '../src/index.js'
import { decodeLogits, maxDiff, modelGraphLogits } from './decode-check.js'
import type { InferenceEngine, Runtime } from '../src/index.js'

/**
 * Baked fp32 engines (append caches or GroupQueryAttention) run q/k/v as one MatMul and gate/up as one MatMul over
 * column-concatenated matrices (`fuseProjections`, fewer and bigger kernels per token). Their logits must equal
 * the monolithic model graph's (decomposed ops, no cache: an independent reference) and the resident engine's,
 * whose graph keeps the separate projections, through a prompt and single-token steps.
 */
const config = { ...preset('tiny'), maxSeqLen: 64 }
const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 17)]))
const V = config.vocabSize
const TOL = 1e-4
const open: Array<InferenceEngine | Runtime> = []
afterAll(async () => { await Promise.all(open.map(async e => { await e.close() })) })
const tokens = Array.from({ length: 16 }, (_, i) => (i * 53 + 7) % V)

const reference = async (): Promise<Float32Array> => await modelGraphLogits(config, params, tokens, open)
const decode = async (e: InferenceEngine): Promise<Float32Array> => await decodeLogits(e, tokens, 6, V)

/** The MatMul nodes of a graph by name */
const matmuls = (bytes: ReturnType<typeof buildInferenceGraph>): string[] => bytes.graph.nodes.filter(n => n.op === 'MatMul').map(n => n.name)

describe('fp32 fused projections (baked weights)', () => {
  it('the baked graph has one q/k/v and one gate/up MatMul per block; fuseProjections: false and resident weights keep them apart', () => {
    const L = config.nLayers
    for (const attention of ['opset', 'gqa'] as const) {
      const kvCache = attention === 'opset' ? 'append' : 'present'
      const fused = matmuls(buildInferenceGraph(config, { kind: 'model' }, { parameters: params, attention, kvCache }))
      expect(fused.length, attention).toBe(4 * L + 1)
      expect(fused).toContain('blocks.0.attn.qkv_proj')
      expect(fused).toContain(`blocks.${L - 1}.mlp.gate_up_proj`)
      expect(fused).not.toContain('blocks.0.attn.q_proj')
      expect(matmuls(buildInferenceGraph(config, { kind: 'model' }, { parameters: params, attention, kvCache, fuseProjections: false })).length).toBe(7 * L + 1)
      expect(matmuls(buildInferenceGraph(config, { kind: 'model' }, { bakeWeights: false, attention, kvCache })).length).toBe(7 * L + 1)
    }
    // the opset-23 Attention over whole caches takes q, k and v apart; resident fp32 weights have no concatenated matrix
    expect(matmuls(buildInferenceGraph(config, { kind: 'model' }, { parameters: params })).length).toBe(7 * L + 1)
    expect(() => buildInferenceGraph(config, { kind: 'model' }, { parameters: params, fuseProjections: true })).toThrow(/fuseProjections/)
    expect(() => buildInferenceGraph(config, { kind: 'model' }, { bakeWeights: false, kvCache: 'append', fuseProjections: true })).toThrow(/fuseProjections/)
  })

  it('baked (fused) and resident (separate) engines give the model graph\'s logits, with append caches and with GroupQueryAttention', async () => {
    const ref = await reference()
    for (const attention of ['opset', 'gqa'] as const) {
      const got: Float32Array[] = []
      for (const bakeWeights of [true, false]) {
        const e = await createInferenceEngine({ config, parameters: params, bakeWeights, attention, intraOpNumThreads: 1 })
        open.push(e)
        const out = await decode(e)
        expect(maxDiff(out, ref), `${attention} bakeWeights ${String(bakeWeights)}`).toBeLessThan(TOL)
        got.push(out)
      }
      expect(maxDiff(got[0], got[1]), `${attention}: fused vs separate`).toBeLessThan(TOL)
    }
  }, 120_000)
})
