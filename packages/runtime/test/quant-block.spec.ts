/**
 * A quantized shard executor's group size (`quantBlockSize`, declared in layer-pool 1.7.0 records as
 * `quant_block_size`): its inference session is the `InferenceEngine` graph with the same `blockSize`.
 */
import { describe, it, expect } from 'vitest'
import { TINY, initParameter, shardParameters } from '@neuroshard/model'
import type { ShardRole } from '@neuroshard/model'
import { createInferenceEngine, createShardExecutor, float32 } from '../src/index.js'

const config = { ...TINY, nLayers: 2 }
const role: ShardRole = { kind: 'blocks', start: 0, end: 2 }
const parameters = new Map(shardParameters(config, role).map(s => [s.name, initParameter(config, s, 7)]))

function hidden (tokens: number): Float32Array {
  const x = new Float32Array(tokens * config.dModel)
  let s = 99
  for (let i = 0; i < x.length; i++) { s = (s * 1664525 + 1013904223) >>> 0; x[i] = s / 2 ** 32 - 0.5 }
  return x
}

describe('quantized executor block size', () => {
  it('quantBlockSize 64 / 128 runs the graph of that block size (equal to the engine\'s, unlike 32); bad sizes are refused', async () => {
    const x = hidden(5)
    const run = async (blockSize: 32 | 64 | 128, via: 'executor' | 'engine'): Promise<Float32Array> => {
      const e = via === 'executor'
        ? await createShardExecutor({ config, role, parameters, graphs: {}, quantization: 'int4', ...(blockSize !== 32 ? { quantBlockSize: blockSize } : {}) })
        : await createInferenceEngine({ config, span: role, parameters, quantization: 'int4', blockSize })
      try {
        if (via === 'executor') expect((e as Awaited<ReturnType<typeof createShardExecutor>>).quantBlockSize).toBe(blockSize)
        const kv = await e.openInference()
        const out = (await kv.run({ hidden_in: float32(x, [1, 5, config.dModel]) })).hidden_out.data as Float32Array
        await kv.close()
        return out
      } finally {
        await e.close()
      }
    }
    const e32 = await run(32, 'engine')
    for (const bs of [64, 128] as const) {
      const ex = await run(bs, 'executor')
      expect(ex).toEqual(await run(bs, 'engine'))
      expect(ex).not.toEqual(e32)
    }
    expect(await run(32, 'executor')).toEqual(e32)
    for (const quantBlockSize of [16, 96, 256]) {
      await expect(createShardExecutor({ config, role, parameters, graphs: {}, quantization: 'int4', quantBlockSize: quantBlockSize as any })).rejects.toMatchObject({ name: 'InvalidParametersError' })
    }
    await expect(createShardExecutor({ config, role, parameters, graphs: {}, quantBlockSize: 128 })).rejects.toMatchObject({ name: 'InvalidParametersError' })
  }, 120_000)
})
