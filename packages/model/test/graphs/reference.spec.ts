import { describe, it, expect } from 'vitest'
import { buildModelGraph, headDim, SHARD_IO } from '../../src/index.js'
import type { ModelConfig } from '../../src/index.js'
import { Runner, TINY_TEST, allParams, ids, maxAbs, maxAbsDiff, rng } from './helpers.js'
import type { T } from './helpers.js'

/**
 * An independent plain-JS NeuroLLM forward (loops, no ONNX), written from the architecture description:
 * pre-norm RMSNorm, rotate-half RoPE with inv_freq = theta^(-2i/hd), GQA where query head h reads KV head
 * ⌊h / (nHeads / nKvHeads)⌋, causal softmax attention, SwiGLU, final RMSNorm and LM head.
 */
function referenceLogits (c: ModelConfig, p: Record<string, T>, tokens: bigint[]): number[][] {
  const d = c.dModel
  const hd = headDim(c)
  const half = hd / 2
  const rep = c.nHeads / c.nKvHeads
  const W = (name: string): Float64Array => p[name].data as Float64Array
  const matvec = (x: number[], w: Float64Array, out: number): number[] => {
    const y = new Array<number>(out).fill(0)
    for (let i = 0; i < x.length; i++) for (let j = 0; j < out; j++) y[j] += x[i] * w[i * out + j]
    return y
  }
  const rms = (x: number[], w: Float64Array): number[] => {
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length
    const r = 1 / Math.sqrt(ms + c.normEps)
    return x.map((v, i) => v * r * w[i])
  }
  const rope = (x: number[], pos: number): number[] => {
    const out = new Array<number>(hd)
    for (let i = 0; i < hd; i++) {
      const f = pos * Math.pow(c.ropeTheta, -(2 * (i % half)) / hd)
      const rot = i < half ? -x[i + half] : x[i - half]
      out[i] = x[i] * Math.cos(f) + rot * Math.sin(f)
    }
    return out
  }
  const E = W('embed.weight')
  let xs = tokens.map(t => Array.from(E.subarray(Number(t) * d, (Number(t) + 1) * d)))
  for (let l = 0; l < c.nLayers; l++) {
    const pre = `blocks.${l}`
    const n = xs.map(x => rms(x, W(`${pre}.attn_norm.weight`)))
    const q = n.map(x => matvec(x, W(`${pre}.attn.wq`), c.nHeads * hd))
    const k = n.map(x => matvec(x, W(`${pre}.attn.wk`), c.nKvHeads * hd))
    const v = n.map(x => matvec(x, W(`${pre}.attn.wv`), c.nKvHeads * hd))
    const att = xs.map((_, t) => {
      const o: number[] = []
      for (let h = 0; h < c.nHeads; h++) {
        const kv = Math.floor(h / rep)
        const qh = rope(q[t].slice(h * hd, (h + 1) * hd), t)
        const scores: number[] = []
        for (let s = 0; s <= t; s++) {
          const ks = rope(k[s].slice(kv * hd, (kv + 1) * hd), s)
          scores.push(qh.reduce((a, qi, i) => a + qi * ks[i], 0) / Math.sqrt(hd))
        }
        const m = Math.max(...scores)
        const e = scores.map(s => Math.exp(s - m))
        const z = e.reduce((a, b) => a + b, 0)
        for (let i = 0; i < hd; i++) {
          let acc = 0
          for (let s = 0; s <= t; s++) acc += (e[s] / z) * v[s][kv * hd + i]
          o.push(acc)
        }
      }
      return matvec(o, W(`${pre}.attn.wo`), d)
    })
    const hs = xs.map((x, t) => x.map((xi, i) => xi + att[t][i]))
    xs = hs.map(h => {
      const m = rms(h, W(`${pre}.mlp_norm.weight`))
      const gate = matvec(m, W(`${pre}.mlp.w_gate`), c.ffnHidden).map(z => z / (1 + Math.exp(-z)))
      const up = matvec(m, W(`${pre}.mlp.w_up`), c.ffnHidden)
      const down = matvec(gate.map((gi, i) => gi * up[i]), W(`${pre}.mlp.w_down`), d)
      return h.map((hi, i) => hi + down[i])
    })
  }
  return xs.map(x => {
    const n = rms(x, W('final_norm.weight'))
    if (!c.tieEmbeddings) return matvec(n, W('lm_head.weight'), c.vocabSize)
    return Array.from({ length: c.vocabSize }, (_, j) => n.reduce((a, ni, i) => a + ni * E[j * d + i], 0))
  })
}

describe('NeuroLLM graph matches an independent plain-JS reference (float64)', () => {
  // onnxruntime's extended graph fusions move ~1e-8 of float64 error into the logits (a fused op keeps a
  // float32 attribute, e.g. the attention scale folded into FusedMatMul's alpha), so the exact comparison runs
  // at the 'basic' level and the default level gets a 1e-6 bound.
  for (const tied of [false, true]) {
    for (const [level, tol] of [['basic', 1e-10], ['all', 1e-6]] as const) {
      it(`logits, ${tied ? 'tied' : 'untied'} embeddings, graph optimization '${level}'`, async () => {
        const config = { ...TINY_TEST, tieEmbeddings: tied }
        const params = allParams(config, 13, 'float64')
        const r = rng(17)
        const seq = 6
        const input = ids(r, 2, seq, config.vocabSize)
        const s = await Runner.create(buildModelGraph(config, 'inference', { dtype: 'float64' }).bytes, { graphOptimizationLevel: level })
        try {
          const out = (await s.run({ [SHARD_IO.inputIds]: input, ...params }))[SHARD_IO.logits]
          for (let b = 0; b < 2; b++) {
            const ref = referenceLogits(config, params, [...(input.data as BigInt64Array).subarray(b * seq, (b + 1) * seq)]).flat()
            const mine = (out.data as Float64Array).subarray(b * seq * config.vocabSize, (b + 1) * seq * config.vocabSize)
            expect(maxAbs(Float64Array.from(ref))).toBeGreaterThan(0.1)
            expect(maxAbsDiff(mine, Float64Array.from(ref))).toBeLessThan(tol)
          }
        } finally {
          await s.release()
        }
      })
    }
  }

  it('is causal: changing a later token leaves earlier logits unchanged', async () => {
    const config = TINY_TEST
    const params = allParams(config, 13, 'float64')
    const s = await Runner.create(buildModelGraph(config, 'inference', { dtype: 'float64' }).bytes)
    try {
      const a: T = { data: BigInt64Array.from([3n, 1n, 4n, 1n, 5n]), dims: [1, 5] }
      const b: T = { data: BigInt64Array.from([3n, 1n, 4n, 9n, 5n]), dims: [1, 5] }
      const la = (await s.run({ [SHARD_IO.inputIds]: a, ...params }))[SHARD_IO.logits].data as Float64Array
      const lb = (await s.run({ [SHARD_IO.inputIds]: b, ...params }))[SHARD_IO.logits].data as Float64Array
      const V = config.vocabSize
      expect(maxAbsDiff(la.subarray(0, 3 * V), lb.subarray(0, 3 * V))).toBe(0)
      expect(maxAbsDiff(la.subarray(3 * V), lb.subarray(3 * V))).toBeGreaterThan(1e-3)
    } finally {
      await s.release()
    }
  })
})
