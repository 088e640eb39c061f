import { describe, it, expect } from 'vitest'
import { onnx } from '@neuroshard/onnx-graph'
import { buildModelGraph, buildShardGraph, headDim, SHARD_IO } from '../../src/index.js'
import type { ShardRole } from '../../src/index.js'
import { Runner, TINY_TEST, allParams, ids, maxAbsDiff, rng, shardParams } from './helpers.js'
import type { T } from './helpers.js'

const BATCH = 2
const PROMPT = 3
const DECODE = 4

describe('KV-cache inference', () => {
  for (const fused of [false, true]) {
    it(`prefill then one-token decode gives the logits of recomputing the whole prefix (float32, ${fused ? 'fused opset-23 ops' : 'decomposed'})`, async () => {
      const config = TINY_TEST
      const params = allParams(config, 21, 'float32')
      const r = rng(4)
      const all = ids(r, BATCH, PROMPT + DECODE, config.vocabSize)
      const slice = (from: number, to: number): T => {
        const d = new BigInt64Array(BATCH * (to - from))
        for (let b = 0; b < BATCH; b++) for (let t = from; t < to; t++) d[b * (to - from) + t - from] = (all.data as BigInt64Array)[b * (PROMPT + DECODE) + t]
        return { data: d, dims: [BATCH, to - from] }
      }
      const roles: ShardRole[] = [{ kind: 'blocks', start: 0, end: 1 }, { kind: 'blocks', start: 1, end: 2 }]
      const embed = await Runner.create(buildShardGraph(config, { kind: 'embed' }, 'inference').bytes)
      const blocks = await Promise.all(roles.map(async role => Runner.create(buildShardGraph(config, role, 'inference', { fused }).bytes)))
      const head = await Runner.create(buildShardGraph(config, { kind: 'head' }, 'inference', { fused }).bytes)
      const mono = await Runner.create(buildModelGraph(config, 'inference').bytes)
      const hd = headDim(config)
      // the cache starts empty: past = 0
      const cache: Record<string, T> = {}
      for (let k = 0; k < config.nLayers; k++) {
        cache[SHARD_IO.pastKey(k)] = { data: new Float32Array(0), dims: [BATCH, config.nKvHeads, 0, hd] }
        cache[SHARD_IO.pastValue(k)] = { data: new Float32Array(0), dims: [BATCH, config.nKvHeads, 0, hd] }
      }
      const errors: number[] = []
      try {
        let pos = 0
        for (const [from, to] of [[0, PROMPT], ...Array.from({ length: DECODE }, (_, i) => [PROMPT + i, PROMPT + i + 1])]) {
          let h = (await embed.run({ [SHARD_IO.inputIds]: slice(from, to), ...shardParams(config, { kind: 'embed' }, params) }))[SHARD_IO.hidden]
          for (let i = 0; i < roles.length; i++) {
            const role = roles[i] as { kind: 'blocks', start: number, end: number }
            const out = await blocks[i].run({
              [SHARD_IO.hiddenIn]: h,
              [SHARD_IO.positionOffset]: { data: BigInt64Array.of(BigInt(pos)), dims: [] },
              ...cache,
              ...shardParams(config, role, params)
            })
            h = out[SHARD_IO.hiddenOut]
            for (let k = role.start; k < role.end; k++) {
              expect(out[SHARD_IO.presentKey(k)].dims).toEqual([BATCH, config.nKvHeads, to, hd])
              cache[SHARD_IO.pastKey(k)] = out[SHARD_IO.presentKey(k)]
              cache[SHARD_IO.pastValue(k)] = out[SHARD_IO.presentValue(k)]
            }
          }
          const logits = (await head.run({ [SHARD_IO.hidden]: h, ...shardParams(config, { kind: 'head' }, params) }))[SHARD_IO.logits]
          const ref = (await mono.run({ [SHARD_IO.inputIds]: slice(0, to), ...params }))[SHARD_IO.logits]
          // every new position of this call vs the same positions of the full recomputation
          const V = config.vocabSize
          const n = to - from
          const mine = new Float32Array(BATCH * n * V)
          const theirs = new Float32Array(BATCH * n * V)
          for (let b = 0; b < BATCH; b++) {
            mine.set((logits.data as Float32Array).subarray(b * n * V, (b + 1) * n * V), b * n * V)
            theirs.set((ref.data as Float32Array).subarray((b * to + from) * V, (b * to + to) * V), b * n * V)
          }
          const e = maxAbsDiff(mine, theirs)
          errors.push(e)
          expect(e).toBeLessThan(1e-4)
          pos = to
        }
        expect(errors).toHaveLength(1 + DECODE)
      } finally {
        for (const s of [embed, ...blocks, head, mono]) await s.release()
      }
    })
  }

  it('the fused inference graphs use the opset-23 ops and no decomposed attention', () => {
    const ops = (bytes: Uint8Array): string[] => onnx.ModelProto.decode(bytes).graph?.node.map(n => n.opType) ?? []
    const fused = ops(buildShardGraph(TINY_TEST, { kind: 'blocks', start: 0, end: 2 }, 'inference', { fused: true }).bytes)
    expect(fused.filter(o => o === 'Attention')).toHaveLength(2)
    expect(fused.filter(o => o === 'RotaryEmbedding')).toHaveLength(4)
    expect(fused.filter(o => o === 'RMSNormalization')).toHaveLength(4)
    expect(fused).not.toContain('Softmax')
    expect(ops(buildShardGraph(TINY_TEST, { kind: 'head' }, 'inference', { fused: true }).bytes)).toContain('RMSNormalization')
  })

  it('refuses fused float64 graphs with a clear error', () => {
    expect(() => buildShardGraph(TINY_TEST, { kind: 'head' }, 'inference', { dtype: 'float64', fused: true })).toThrow(expect.objectContaining({ name: 'GraphError' }))
    // the float64 default is the decomposed graph
    expect(buildShardGraph(TINY_TEST, { kind: 'head' }, 'inference', { dtype: 'float64' }).bytes.length).toBeGreaterThan(0)
  })

  it('without a cache the decode step would differ: the check is sensitive to the cache contents', async () => {
    const config = TINY_TEST
    const params = allParams(config, 21, 'float32')
    const role: ShardRole = { kind: 'blocks', start: 0, end: 2 }
    const s = await Runner.create(buildShardGraph(config, role, 'inference').bytes)
    const hd = headDim(config)
    try {
      const r = rng(2)
      const h: T = { data: Float32Array.from({ length: BATCH * config.dModel }, () => r() - 0.5), dims: [BATCH, 1, config.dModel] }
      const past = (v: number): Record<string, T> => {
        const c: Record<string, T> = {}
        for (let k = 0; k < 2; k++) {
          c[SHARD_IO.pastKey(k)] = { data: new Float32Array(BATCH * config.nKvHeads * 2 * hd).fill(v), dims: [BATCH, config.nKvHeads, 2, hd] }
          c[SHARD_IO.pastValue(k)] = { data: new Float32Array(BATCH * config.nKvHeads * 2 * hd).fill(v), dims: [BATCH, config.nKvHeads, 2, hd] }
        }
        return c
      }
      const feeds = { [SHARD_IO.hiddenIn]: h, [SHARD_IO.positionOffset]: { data: BigInt64Array.of(2n), dims: [] }, ...shardParams(config, role, params) }
      const a = await s.run({ ...feeds, ...past(0.1) })
      const b = await s.run({ ...feeds, ...past(0.7) })
      expect(maxAbsDiff(a[SHARD_IO.hiddenOut].data, b[SHARD_IO.hiddenOut].data)).toBeGreaterThan(1e-3)
    } finally {
      await s.release()
    }
  })
})
