import { describe, expect, it } from 'vitest'
import { batches, windowOrder } from '../src/index.js'

const shardA = Uint16Array.from({ length: 101 }, (_, i) => i)
const shardB = Uint16Array.from({ length: 57 }, (_, i) => 1000 + i)

describe('batches', () => {
  it('target is input shifted by one, windows stay inside a shard, int64 by default', () => {
    let rows = 0
    for (const b of batches([shardA, { tokens: shardB }], { seqLen: 10, batchSize: 3, seed: 1 })) {
      expect(b.input).toBeInstanceOf(BigInt64Array)
      expect(b.input.length).toBe(30)
      for (let r = 0; r < b.batchSize; r++) {
        for (let t = 0; t < 10; t++) {
          const x = Number(b.input[r * 10 + t])
          expect(Number(b.target[r * 10 + t])).toBe(x + 1) // consecutive ids in these shards
        }
        const first = Number(b.input[r * 10])
        expect(first < 1000 ? first % 10 : (first - 1000) % 10).toBe(0)
        rows++
      }
    }
    // 101 tokens → 10 windows, 57 → 5; 15 windows → 5 full batches of 3
    expect(rows).toBe(15)
  })

  it('each epoch visits every window exactly once, in an order fixed by the seed', () => {
    const order = windowOrder([101, 57], 10, 42n)
    expect(order).toHaveLength(15)
    expect(new Set(order.map(([s, p]) => `${s}:${p}`)).size).toBe(15)
    expect(windowOrder([101, 57], 10, 42n)).toEqual(order)
    expect(windowOrder([101, 57], 10, 43n)).not.toEqual(order)
    expect(windowOrder([101, 57], 10, 42n, false)).toEqual([...order].sort((a, b) => a[0] - b[0] || a[1] - b[1]))
    const firsts = (seed: number): Array<number | bigint> => [...batches([shardA, shardB], { seqLen: 10, batchSize: 2, seed, dtype: 'int32' })].map(b => b.input[0])
    expect(firsts(9)).toEqual(firsts(9))
  })

  it('int32 and int64 carry the same values; dropLast false keeps the short batch', () => {
    const a = [...batches([shardA], { seqLen: 7, batchSize: 4, seed: 3, dtype: 'int32', dropLast: false })]
    const b = [...batches([shardA], { seqLen: 7, batchSize: 4, seed: 3, dropLast: false })]
    expect(a.map(x => x.batchSize)).toEqual([4, 4, 4, 2])
    for (let i = 0; i < a.length; i++) {
      expect(a[i].input).toBeInstanceOf(Int32Array)
      expect([...a[i].input]).toEqual([...b[i].input].map(Number))
      expect([...a[i].target]).toEqual([...b[i].target].map(Number))
    }
    expect([...batches([shardA], { seqLen: 7, batchSize: 4, seed: 3 })]).toHaveLength(3)
  })

  it('rejects bad options', () => {
    expect(() => [...batches([shardA], { seqLen: 0, batchSize: 1 })]).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => [...batches([shardA], { seqLen: 4, batchSize: 0 })]).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => [...batches([shardA], { seqLen: 4, batchSize: 1, seed: -1 })]).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})
