import { describe, expect, it } from 'vitest'
import { batches } from '@neuroshard/genesis-data'
import { TrainBatchStream, checkTokenRange, epochSeed, unigramEntropy, validationBatches } from '../src/index.js'

const shard = (n: number, k: number): Uint16Array => Uint16Array.from({ length: n }, (_, i) => (i * 7 + k) % 50)
const shards = [shard(1000, 1), shard(777, 3), shard(64, 5)]

describe('TrainBatchStream', () => {
  it('epoch 0 yields exactly what genesis-data batches() yields with the epoch seed', () => {
    const s = new TrainBatchStream(shards, { seqLen: 16, batchSize: 4, seed: 9 })
    const ref = [...batches(shards, { seqLen: 16, batchSize: 4, seed: epochSeed(9, 0) })]
    expect(ref.length).toBe(s.batchesPerEpoch)
    for (const r of ref) {
      const b = s.next()
      expect(b.input).toEqual(r.input)
      expect(b.target).toEqual(r.target)
    }
    // then a new epoch in a new order
    expect(s.position).toEqual({ epoch: 0, batch: ref.length })
    const e1 = s.next()
    expect(s.position).toEqual({ epoch: 1, batch: 1 })
    const ref1 = batches(shards, { seqLen: 16, batchSize: 4, seed: epochSeed(9, 1) }).next().value
    expect(e1.input).toEqual(ref1?.input)
    expect(e1.input).not.toEqual(ref[0].input)
  })

  it('a stream started at a saved position continues identically', () => {
    const a = new TrainBatchStream(shards, { seqLen: 8, batchSize: 3, seed: 1 })
    for (let i = 0; i < 150; i++) a.next()
    const pos = a.position
    const b = new TrainBatchStream(shards, { seqLen: 8, batchSize: 3, seed: 1, position: pos })
    for (let i = 0; i < 200; i++) expect(b.next().input).toEqual(a.next().input)
  })

  it('targets are inputs shifted by one token', () => {
    const b = new TrainBatchStream([Uint16Array.from({ length: 100 }, (_, i) => i)], { seqLen: 10, batchSize: 2 }).next()
    for (let r = 0; r < 2; r++) for (let t = 0; t < 10; t++) expect(b.target[r * 10 + t]).toBe(b.input[r * 10 + t] + 1n)
  })

  it('refuses too little data, bad shapes and positions', () => {
    expect(() => new TrainBatchStream([shard(10, 0)], { seqLen: 16, batchSize: 1 })).toThrow(expect.objectContaining({ name: 'DataError' }))
    expect(() => new TrainBatchStream([], { seqLen: 16, batchSize: 1 })).toThrow(expect.objectContaining({ name: 'DataError' }))
    expect(() => new TrainBatchStream(shards, { seqLen: 0, batchSize: 1 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => new TrainBatchStream(shards, { seqLen: 8, batchSize: 1, position: { epoch: -1, batch: 0 } })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})

describe('validation data and token checks', () => {
  it('validationBatches is fixed, unshuffled and capped', () => {
    const v = validationBatches(shards, { seqLen: 16, batchSize: 4, maxBatches: 3 })
    expect(v.length).toBe(3)
    expect(Number(v[0].input[0])).toBe(shards[0][0])
    expect(validationBatches(shards, { seqLen: 16, batchSize: 4, maxBatches: 3 })).toEqual(v)
    expect(() => validationBatches([shard(5, 0)], { seqLen: 16, batchSize: 4, maxBatches: 3 })).toThrow(expect.objectContaining({ name: 'DataError' }))
  })

  it('checkTokenRange refuses ids outside the vocabulary', () => {
    expect(() => { checkTokenRange(shards, 50) }).not.toThrow()
    expect(() => { checkTokenRange(shards, 49) }).toThrow(expect.objectContaining({ name: 'DataError' }))
  })

  it('unigramEntropy: uniform over 4 symbols is ln 4; smoothed cross-entropy against a reference', () => {
    const u = unigramEntropy([Uint8Array.from([0, 1, 2, 3, 0, 1, 2, 3])], 4)
    expect(u.entropy).toBeCloseTo(Math.log(4), 12)
    const x = unigramEntropy([Uint8Array.from([0, 0])], 2, [Uint8Array.from([0, 0, 0, 1])])
    expect(x.entropy).toBe(0)
    // p(0) = (3 + 1) / (4 + 2)
    expect(x.crossEntropy).toBeCloseTo(-Math.log(4 / 6), 12)
  })
})
