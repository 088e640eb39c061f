import { describe, it, expect, beforeAll } from 'vitest'
import { buildInferenceGraph, buildShardGraph, dequantizeMatrix, quantizeMatrix, shardParameters } from '@neuroshard/model'
import type { ShardRole } from '@neuroshard/model'
import { Runtime, createInferenceEngine, createShardExecutor, int64, float32 } from '../src/index.js'
import type { InferenceEngine, TensorData } from '../src/index.js'
import { trainedTiny, validationWindows, windowPerplexity } from './fixtures/trained-tiny.js'
import type { TrainedTiny } from './fixtures/trained-tiny.js'

/**
 * Stated tolerances (checked below), relative to the spread of the fp32 logits (max − min over the window):
 * int8 ≤ 2 %, int4 ≤ 10 % worst-case per logit; perplexity on the genesis validation split within 2 % (int8)
 * and 5 % (int4) of fp32 (the bounds).
 */
const LOGIT_TOLERANCE = { int8: 0.02, int4: 0.10 }
const PPL_TOLERANCE = { int8: 0.02, int4: 0.05 }
const SEQ = 64
const WINDOWS = 24

let model: TrainedTiny

beforeAll(async () => {
  model = await trainedTiny()
}, 240_000)

function windows (): BigInt64Array[] {
  return validationWindows(model.validation, SEQ, WINDOWS)
}

/** Mean next-token NLL over the windows, in float64, from the logits a runner returns for `SEQ` tokens */
async function perplexity (logitsOf: (ids: BigInt64Array) => Promise<Float32Array>): Promise<number> {
  return await windowPerplexity(model.config.vocabSize, windows(), logitsOf)
}

async function engineLogits (engine: InferenceEngine, ids: BigInt64Array): Promise<Float32Array> {
  const kv = await engine.openInference()
  try {
    return (await kv.run({ input_ids: int64(ids, [1, ids.length]) })).logits.data as Float32Array
  } finally {
    await kv.close()
  }
}

function relError (a: Float32Array, ref: Float32Array): number {
  let lo = Infinity
  let hi = -Infinity
  let err = 0
  for (let i = 0; i < ref.length; i++) {
    lo = Math.min(lo, ref[i]); hi = Math.max(hi, ref[i])
    err = Math.max(err, Math.abs(a[i] - ref[i]))
  }
  return err / (hi - lo)
}

describe('quantized spans (int8 / int4, MatMulNBits with baked weights)', () => {
  it('the trained model has learned something (perplexity far below the vocabulary size)', async () => {
    const fp32 = await createInferenceEngine({ config: model.config, parameters: model.parameters })
    try {
      const ppl = await perplexity(async ids => await engineLogits(fp32, ids))
      expect(ppl).toBeLessThan(model.config.vocabSize / 4)
    } finally {
      await fp32.close()
    }
  })

  it('logits within the stated tolerance of fp32 and validation perplexity within 2 % (int8) / 5 % (int4)', async () => {
    const fp32 = await createInferenceEngine({ config: model.config, parameters: model.parameters })
    const engines = {
      int8: await createInferenceEngine({ config: model.config, parameters: model.parameters, quantization: 'int8' }),
      int4: await createInferenceEngine({ config: model.config, parameters: model.parameters, quantization: 'int4' })
    }
    try {
      const ids = windows()[0].slice(0, SEQ)
      const ref = await engineLogits(fp32, ids)
      const pplRef = await perplexity(async ids => await engineLogits(fp32, ids))
      for (const q of ['int8', 'int4'] as const) {
        const err = relError(await engineLogits(engines[q], ids), ref)
        expect(err, `${q} worst logit error / fp32 spread`).toBeLessThan(LOGIT_TOLERANCE[q])
        expect(err, `${q} is not a copy of fp32`).toBeGreaterThan(0)
        const ppl = await perplexity(async ids => await engineLogits(engines[q], ids))
        console.log(`${q}: worst logit error ${(100 * err).toFixed(2)} % of the fp32 spread; perplexity ${ppl.toFixed(3)} vs fp32 ${pplRef.toFixed(3)} (${(100 * (ppl / pplRef - 1)).toFixed(2)} %); final training loss ${model.finalLoss.toFixed(3)}`)
        expect(Math.abs(ppl / pplRef - 1), `${q} perplexity ${ppl} vs fp32 ${pplRef}`).toBeLessThan(PPL_TOLERANCE[q])
      }
    } finally {
      await Promise.all([fp32.close(), engines.int8.close(), engines.int4.close()])
    }
  }, 120_000)

  it('int4 with 64- and 128-value blocks: perplexity within 5 % too (tiny\'s matrices are only 64 to 176 wide)', async () => {
    // on `tiny` (dModel 64, FFN 176) a 128-value block covers a whole input column of most matrices (zero-padded),
    // so this bounds the coarsest case only for these narrow matrices; `bench/quant-ppl.ts` measures `bootstrap`
    // (K = 768 / 3072) trained the same way (README, "Perplexity cost of 4-bit group sizes")
    const fp32 = await createInferenceEngine({ config: model.config, parameters: model.parameters })
    try {
      const pplRef = await perplexity(async ids => await engineLogits(fp32, ids))
      for (const blockSize of [32, 64, 128]) {
        const e = await createInferenceEngine({ config: model.config, parameters: model.parameters, quantization: 'int4', blockSize })
        try {
          const ppl = await perplexity(async ids => await engineLogits(e, ids))
          console.log(`int4, ${blockSize}-value blocks: perplexity ${ppl.toFixed(3)} vs fp32 ${pplRef.toFixed(3)} (${(100 * (ppl / pplRef - 1)).toFixed(2)} %)`)
          expect(Math.abs(ppl / pplRef - 1), `int4 block ${blockSize}: perplexity ${ppl} vs fp32 ${pplRef}`).toBeLessThan(PPL_TOLERANCE.int4)
        } finally {
          await e.close()
        }
      }
    } finally {
      await fp32.close()
    }
  }, 120_000)

  it('the same checks fail for a graph with one corrupted block of scales', async () => {
    const graph = buildInferenceGraph(model.config, { kind: 'model' }, { parameters: model.parameters, quantization: 'int4' })
    // flip the sign of the scales of block 0's MLP down projection (the packed codes are left as they are)
    const g = graph.graph
    const scales = [...g.constants.keys()].find(v => v.name === 'blocks.0.mlp.w_down.scales')
    expect(scales).toBeDefined()
    const data = g.constants.get(scales!) as Float32Array
    for (let i = 0; i < data.length; i++) data[i] = -data[i]
    const bytes = g.toModelProto({ pruneInputs: true, domains: { 'com.microsoft': 1 } })
    const rt = new Runtime()
    const fp32 = await createInferenceEngine({ config: model.config, parameters: model.parameters })
    try {
      const session = await rt.createSession(bytes)
      const hd = model.config.dModel / model.config.nHeads
      const run = async (ids: BigInt64Array): Promise<Float32Array> => {
        const feeds: Record<string, TensorData> = { input_ids: int64(ids, [1, ids.length]), position_offset: int64([0], []) }
        for (let k = 0; k < model.config.nLayers; k++) {
          feeds[`past_key.${k}`] = float32(new Float32Array(0), [1, model.config.nKvHeads, 0, hd])
          feeds[`past_value.${k}`] = float32(new Float32Array(0), [1, model.config.nKvHeads, 0, hd])
        }
        return (await session.run(feeds)).logits.data as Float32Array
      }
      const ids = windows()[0].slice(0, SEQ)
      const err = relError(await run(ids), await engineLogits(fp32, ids))
      const pplRef = await perplexity(async ids => await engineLogits(fp32, ids))
      const ppl = await perplexity(run)
      console.log(`corrupted int4: worst logit error ${(100 * err).toFixed(2)} %; perplexity ${ppl.toFixed(3)} vs fp32 ${pplRef.toFixed(3)}`)
      expect(err).toBeGreaterThan(LOGIT_TOLERANCE.int4)
      expect(Math.abs(ppl / pplRef - 1)).toBeGreaterThan(PPL_TOLERANCE.int4)
    } finally {
      await rt.close()
      await fp32.close()
    }
  }, 120_000)

  it('a quantized shard executor serves a pipeline span, decodes token by token, and rebuilds when its weights change', async () => {
    const { config, parameters } = model
    const pick = (role: ShardRole, from: Map<string, Float32Array>): Map<string, Float32Array> => new Map(shardParameters(config, role).map(s => [s.name, from.get(s.name)!]))
    const embedRole: ShardRole = { kind: 'embed' }
    const blocksRole: ShardRole = { kind: 'blocks', start: 0, end: config.nLayers }
    const headRole: ShardRole = { kind: 'head' }
    const embed = await createShardExecutor({ config, role: embedRole, parameters: pick(embedRole, parameters), graphs: { forward: buildShardGraph(config, embedRole, 'forward').bytes } })
    const blocks = await createShardExecutor({ config, role: blocksRole, parameters: pick(blocksRole, parameters), graphs: {}, quantization: 'int4' })
    const head = await createShardExecutor({ config, role: headRole, parameters: pick(headRole, parameters), graphs: {}, quantization: 'int4' })
    const fp32 = await createInferenceEngine({ config, parameters })
    try {
      expect(blocks.weightFormat).toBe('int4')
      const ids = windows()[1].slice(0, 12)
      const decode = async (): Promise<Float32Array> => {
        const kvB = await blocks.openInference()
        const kvH = await head.openInference()
        const out: number[] = []
        for (const chunk of [ids.slice(0, 8), ...[8, 9, 10, 11].map(i => ids.slice(i, i + 1))]) {
          const h = (await embed.forward({ input_ids: int64(chunk, [1, chunk.length]) })).hidden
          const y = (await kvB.run({ hidden_in: h })).hidden_out
          out.push(...(await kvH.run({ hidden: y })).logits.data as Float32Array)
        }
        await kvB.close(); await kvH.close()
        return Float32Array.from(out)
      }
      const before = await decode()
      expect(relError(before, await engineLogits(fp32, ids))).toBeLessThan(LOGIT_TOLERANCE.int4)
      // new weights: the MLP down projections negated — the rebuilt session must follow them
      const changed = new Map([...pick(blocksRole, parameters)].map(([k, v]) => [k, k.includes('w_down') ? v.map(x => -x) : v]))
      await blocks.setParameters(changed)
      const all = new Map(parameters)
      for (const [k, v] of changed) all.set(k, v)
      await fp32.setParameters(all)
      const after = await decode()
      console.log(`executor int4: before/after change ${(100 * relError(after, before)).toFixed(2)} %, after vs fp32 ${(100 * relError(after, await engineLogits(fp32, ids))).toFixed(2)} %`)
      expect(relError(after, before)).toBeGreaterThan(LOGIT_TOLERANCE.int4)
      expect(relError(after, await engineLogits(fp32, ids))).toBeLessThan(LOGIT_TOLERANCE.int4)
      // the float32 weights stay available for checkpoints
      expect((await blocks.getParameters()).get('blocks.0.attn.wq')).toEqual(changed.get('blocks.0.attn.wq'))
    } finally {
      await Promise.all([embed.close(), blocks.close(), head.close(), fp32.close()])
    }
  }, 120_000)

  it('embed, blocks and head executors of one format and group size compute the whole-model engine\'s quantized model (logits within 1e-4; the embed lookup reads the quantized table)', async () => {
    const { config, parameters } = model
    const V = config.vocabSize
    const d = config.dModel
    const pick = (role: ShardRole): Map<string, Float32Array> => new Map(shardParameters(config, role).map(s => [s.name, parameters.get(s.name)!]))
    const embedRole: ShardRole = { kind: 'embed' }
    const blocksRole: ShardRole = { kind: 'blocks', start: 0, end: config.nLayers }
    const headRole: ShardRole = { kind: 'head' }
    const ids = windows()[2].slice(0, 24)
    const fp32 = await createInferenceEngine({ config, parameters })
    try {
      const ref32 = await engineLogits(fp32, ids)
      for (const [quantization, blockSize] of [['int8', 32], ['int4', 32], ['int4', 128]] as const) {
        const engine = await createInferenceEngine({ config, parameters, quantization, blockSize })
        const opts = { quantization, quantBlockSize: blockSize, intraOpNumThreads: 1 }
        const embed = await createShardExecutor({ config, role: embedRole, parameters: pick(embedRole), graphs: { forward: buildShardGraph(config, embedRole, 'forward').bytes }, ...opts })
        const blocks = await createShardExecutor({ config, role: blocksRole, parameters: pick(blocksRole), graphs: {}, ...opts })
        const head = await createShardExecutor({ config, role: headRole, parameters: pick(headRole), graphs: {}, ...opts })
        try {
          expect([embed.weightFormat, embed.quantBlockSize]).toEqual([quantization, blockSize])
          // the lookup gives the rows of the quantized table (quantizeMatrix's rule, rows of the [V, d] table as groups)
          const q = quantizeMatrix(parameters.get('embed.weight')!, d, V, { bits: quantization === 'int8' ? 8 : 4, blockSize, layout: 'NK' })
          const table = dequantizeMatrix(q) // [d, V]
          const hidden = (await embed.infer({ input_ids: int64(ids, [1, ids.length]) })).hidden
          const want = new Float32Array(ids.length * d)
          for (let t = 0; t < ids.length; t++) for (let k = 0; k < d; k++) want[t * d + k] = table[k * V + Number(ids[t])]
          expect(hidden.data).toEqual(want)
          // the training forward stays float32
          const rows = (await embed.forward({ input_ids: int64(ids, [1, ids.length]) })).hidden.data as Float32Array
          expect(rows.subarray(0, d)).toEqual(parameters.get('embed.weight')!.subarray(Number(ids[0]) * d, (Number(ids[0]) + 1) * d))
          const kv = await blocks.openInference()
          const y = (await kv.run({ hidden_in: hidden })).hidden_out
          await kv.close()
          const split = (await head.infer({ hidden: y })).logits.data as Float32Array
          const whole = await engineLogits(engine, ids)
          let worst = 0
          for (let i = 0; i < whole.length; i++) worst = Math.max(worst, Math.abs(split[i] - whole[i]))
          console.log(`${quantization}/${blockSize}: split executors vs whole-model engine max |Δlogit| ${worst.toExponential(2)}; vs fp32 ${(100 * relError(whole, ref32)).toFixed(2)} % of the spread`)
          expect(worst, `${quantization}/${blockSize} split vs whole`).toBeLessThan(1e-4)
          expect(relError(whole, ref32), `${quantization} is not float32`).toBeGreaterThan(1e-4)
        } finally {
          await Promise.all([engine.close(), embed.close(), blocks.close(), head.close()])
        }
      }
    } finally {
      await fp32.close()
    }
  }, 180_000)

  it('refuses unknown formats; infer() is for shards without a KV cache', async () => {
    await expect(createInferenceEngine({ config: model.config, parameters: model.parameters, quantization: 'int3' as any })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    const role: ShardRole = { kind: 'blocks', start: 0, end: 1 }
    const blocks = await createShardExecutor({ config: model.config, role, graphs: {}, quantization: 'int4', intraOpNumThreads: 1 })
    try {
      await expect(blocks.infer({ hidden_in: float32(new Float32Array(model.config.dModel), [1, 1, model.config.dModel]) })).rejects.toMatchObject({ name: 'SessionError' })
    } finally {
      await blocks.close()
    }
    // a quantized embed executor checks token ids like the float32 one
    const embed = await createShardExecutor({ config: model.config, role: { kind: 'embed' }, graphs: {}, quantization: 'int4', intraOpNumThreads: 1 })
    try {
      await expect(embed.infer({ input_ids: int64([BigInt(model.config.vocabSize)], [1, 1]) })).rejects.toMatchObject({ name: 'TokenIdOutOfRangeError' })
    } finally {
      await embed.close()
    }
  })
})
