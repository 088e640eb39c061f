import { describe, it, expect } from 'vitest'
import { buildModelGraph, buildShardGraph, modelParameters, SHARD_IO } from '../../src/index.js'
import type { ModelConfig, ShardRole } from '../../src/index.js'
import { Runner, TINY_TEST, allParams, ids, maxAbs, maxAbsDiff, rng, shardParams } from './helpers.js'
import type { T } from './helpers.js'

const BATCH = 2
const SEQ = 5
const ROLES: ShardRole[] = [{ kind: 'blocks', start: 0, end: 1 }, { kind: 'blocks', start: 1, end: 2 }]

async function run (config: ModelConfig, role: ShardRole | 'model', variant: 'forward' | 'backward' | 'inference', dtype: 'float32' | 'float64', feeds: Record<string, T>): Promise<Record<string, T>> {
  const sg = role === 'model' ? buildModelGraph(config, variant, { dtype }) : buildShardGraph(config, role, variant, { dtype })
  const r = await Runner.create(sg.bytes)
  try {
    const out = await r.run(feeds)
    // the declared outputs are exactly what the session returns
    expect(Object.keys(out).sort()).toEqual(sg.outputs.map(o => o.name).sort())
    return out
  } finally {
    await r.release()
  }
}

/** embed → blocks [0,1) → blocks [1,2) → head, forward and then backward in reverse, as a pipeline does */
async function pipeline (config: ModelConfig, dtype: 'float32' | 'float64', params: Record<string, T>, inputIds: T, targets: T): Promise<{ logits: T, loss: number, grads: Record<string, T> }> {
  const p = (role: ShardRole): Record<string, T> => shardParams(config, role, params)
  const embed: ShardRole = { kind: 'embed' }
  const head: ShardRole = { kind: 'head' }
  const h0 = (await run(config, embed, 'forward', dtype, { [SHARD_IO.inputIds]: inputIds, ...p(embed) }))[SHARD_IO.hidden]
  const hs = [h0]
  for (const role of ROLES) {
    hs.push((await run(config, role, 'forward', dtype, { [SHARD_IO.hiddenIn]: hs[hs.length - 1], ...p(role) }))[SHARD_IO.hiddenOut])
  }
  const last = hs[hs.length - 1]
  const logits = (await run(config, head, 'inference', dtype, { [SHARD_IO.hidden]: last, ...p(head) }))[SHARD_IO.logits]
  const one: T = { data: dtype === 'float32' ? Float32Array.of(1) : Float64Array.of(1), dims: [] }
  const hb = await run(config, head, 'backward', dtype, { [SHARD_IO.hidden]: last, [SHARD_IO.targets]: targets, [SHARD_IO.gradLoss]: one, ...p(head) })
  const grads: Record<string, T> = {}
  const collect = (out: Record<string, T>): void => {
    for (const [k, v] of Object.entries(out)) {
      if (!k.startsWith('grad.')) continue
      if (grads[k] == null) { grads[k] = v; continue }
      // tied embeddings: embed and head gradients of embed.weight add up
      const sum = grads[k].data.slice() as Float32Array
      for (let i = 0; i < sum.length; i++) sum[i] += Number(v.data[i])
      grads[k] = { data: sum, dims: v.dims }
    }
  }
  collect(hb)
  let g = hb[SHARD_IO.gradHidden]
  for (let i = ROLES.length - 1; i >= 0; i--) {
    const out = await run(config, ROLES[i], 'backward', dtype, { [SHARD_IO.hiddenIn]: hs[i], [SHARD_IO.gradHiddenOut]: g, ...p(ROLES[i]) })
    collect(out)
    g = out[SHARD_IO.gradHiddenIn]
  }
  collect(await run(config, embed, 'backward', dtype, { [SHARD_IO.inputIds]: inputIds, [SHARD_IO.gradHidden]: g, ...p(embed) }))
  return { logits, loss: Number(hb[SHARD_IO.loss].data[0]), grads }
}

describe('shards chained equal the monolithic graph', () => {
  for (const tied of [false, true]) {
    for (const dtype of ['float32', 'float64'] as const) {
      it(`${dtype}, ${tied ? 'tied' : 'untied'} embeddings: logits, loss and every parameter gradient`, async () => {
        const config = { ...TINY_TEST, tieEmbeddings: tied }
        const params = allParams(config, 5, dtype)
        const r = rng(9)
        const inputIds = ids(r, BATCH, SEQ, config.vocabSize)
        const targets = ids(r, BATCH, SEQ, config.vocabSize)
        const chained = await pipeline(config, dtype, params, inputIds, targets)
        const mono = await run(config, 'model', 'forward', dtype, { [SHARD_IO.inputIds]: inputIds, [SHARD_IO.targets]: targets, ...params })
        const monoInf = await run(config, 'model', 'inference', dtype, { [SHARD_IO.inputIds]: inputIds, ...params })
        const monoGrad = await run(config, 'model', 'backward', dtype, { [SHARD_IO.inputIds]: inputIds, [SHARD_IO.targets]: targets, ...params })

        expect(chained.logits.dims).toEqual([BATCH, SEQ, config.vocabSize])
        expect(maxAbsDiff(chained.logits.data, mono[SHARD_IO.logits].data)).toBeLessThan(dtype === 'float32' ? 1e-4 : 1e-12)
        expect(maxAbsDiff(monoInf[SHARD_IO.logits].data, mono[SHARD_IO.logits].data)).toBeLessThan(dtype === 'float32' ? 1e-4 : 1e-12)
        expect(Math.abs(chained.loss - Number(mono[SHARD_IO.loss].data[0]))).toBeLessThan(dtype === 'float32' ? 1e-5 : 1e-12)
        expect(Math.abs(chained.loss - Number(monoGrad[SHARD_IO.loss].data[0]))).toBeLessThan(dtype === 'float32' ? 1e-5 : 1e-12)

        const names = modelParameters(config).map(p => p.name)
        expect(Object.keys(chained.grads).sort()).toEqual(names.map(n => SHARD_IO.grad(n)).sort())
        for (const n of names) {
          const a = chained.grads[SHARD_IO.grad(n)]
          const b = monoGrad[SHARD_IO.grad(n)]
          expect(a.dims).toEqual(b.dims)
          const scale = Math.max(maxAbs(b.data), 1e-3)
          // relative to the largest entry of the gradient: float32 sums in another order, float64 is near-exact
          expect(maxAbsDiff(a.data, b.data) / scale, n).toBeLessThan(dtype === 'float32' ? 1e-5 : 1e-12)
          expect(maxAbs(b.data), `${n} has signal`).toBeGreaterThan(0)
        }
      })
    }
  }
})
