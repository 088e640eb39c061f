import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  REDUCE_CHUNK, centeredClip, compose, coordinateMedian, createAggregationPool, geometricMedian, isShared, nnm,
  sharedFloat32Array, toSharedFloat32Array, trimmedMean
} from '../src/index.js'
import { createNormalRng, createRng } from '../src/rng.js'
import type { AggregationPool, Aggregator, CommonInit } from '../src/index.js'

// several chunks and a ragged tail, so ranges split unevenly and the last one is short
const d = 3 * REDUCE_CHUNK + 1237
let pools: AggregationPool[] = []
let two: AggregationPool
let three: AggregationPool

function inputs (n: number, seed: number, shared: boolean): Float32Array[] {
  const rnd = createNormalRng(createRng(seed))
  return Array.from({ length: n }, (_, i) => {
    const x = shared ? sharedFloat32Array(d) : new Float32Array(d)
    // a few far-away inputs, so clipping and the Weiszfeld weights matter
    const scale = i < 2 ? 50 : 1
    for (let t = 0; t < d; t++) x[t] = scale * rnd() + (t % 7)
    return x
  })
}

function sameBits (a: Float32Array, b: Float32Array): void {
  expect(a.length).toBe(b.length)
  expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true)
}

beforeAll(async () => {
  two = await createAggregationPool({ threads: 2, minLength: 0 })
  three = await createAggregationPool({ threads: 3, minLength: 0 })
  pools = [two, three]
})

afterAll(async () => {
  await Promise.all(pools.map(async p => p.close()))
})

const methods: Array<[string, (init: CommonInit) => Aggregator]> = [
  ['coordinate median (odd n)', init => coordinateMedian(init)],
  ['coordinate median (even n, mean of middle)', init => coordinateMedian(init)],
  ['trimmed mean', init => trimmedMean({ ...init, f: 2 })],
  ['geometric median, 3 iterations', init => geometricMedian({ ...init, maxIterations: 3, tolerance: 0 })],
  ['geometric median, to tolerance', init => geometricMedian({ ...init })],
  ['CenteredClip from the median, L = 3', init => centeredClip({ ...init, tau: 5, start: 'median', maxIterations: 3, tolerance: 0 })],
  ['nnm → trimmed mean (mixed vectors in the workers)', init => compose(init, nnm({ f: 2 }), trimmedMean({ f: 2 }))]
]

describe('worker-thread pool', () => {
  for (const [label, make] of methods) {
    it(`${label}: bit-for-bit the result of one thread, for 2 and 3 threads and any block size`, () => {
      const n = label.includes('even') ? 10 : 9
      const xs = inputs(n, 7, true)
      const single = make({}).aggregate(xs)
      for (const pool of [two, three]) {
        const before = pool.passes
        for (const blockSize of [2048, 777]) {
          const r = make({ pool, blockSize }).aggregate(xs)
          sameBits(r.value, single.value)
          expect(r.scores).toEqual(single.scores)
          expect(r.iterations).toEqual(single.iterations)
        }
        // the passes really ran split across the threads
        expect(pool.passes).toBeGreaterThan(before)
      }
    }, 60_000)
  }

  it('CenteredClip keeps its centre across rounds in shared memory, with the same results as one thread', () => {
    const plain = centeredClip({ tau: 5 })
    const pooled = centeredClip({ tau: 5, pool: two })
    for (let round = 0; round < 3; round++) {
      const xs = inputs(8, 100 + round, true)
      const a = plain.aggregate(xs)
      const b = pooled.aggregate(xs)
      sameBits(b.value, a.value)
      expect(b.clipped).toEqual(a.clipped)
    }
    // a centre restored from a checkpoint (ordinary memory) is moved to shared memory on the next round
    pooled.setCentre(plain.centre)
    const xs = inputs(8, 200, true)
    sameBits(pooled.aggregate(xs).value, plain.aggregate(xs).value)
  }, 60_000)

  it('inputs in ordinary memory, or shorter than minLength, run on the calling thread with the same result', async () => {
    const xs = inputs(9, 3, false)
    expect(xs.some(isShared)).toBe(false)
    const before = two.passes
    sameBits(coordinateMedian({ pool: two }).aggregate(xs).value, coordinateMedian().aggregate(xs).value)
    expect(two.passes).toBe(before)
    const strict = await createAggregationPool({ threads: 2 })
    pools.push(strict)
    expect(strict.minLength).toBe(2 * REDUCE_CHUNK)
    const short = Array.from({ length: 5 }, (_, i) => toSharedFloat32Array(Float32Array.from({ length: 1000 }, (_, t) => i * t)))
    sameBits(trimmedMean({ f: 1, pool: strict }).aggregate(short).value, trimmedMean({ f: 1 }).aggregate(short).value)
    expect(strict.passes).toBe(0)
  })

  it('an error in a worker is rethrown on the calling thread, and the pool keeps working', () => {
    expect(() => { two.run([{ op: 'pass' }], () => {}) }).toThrow(/aggregation worker failed/)
    const xs = inputs(9, 11, true)
    sameBits(coordinateMedian({ pool: two }).aggregate(xs).value, coordinateMedian().aggregate(xs).value)
  })

  it('a closed pool is not used; threads: 1 starts no worker; bad settings are typed errors', async () => {
    const p = await createAggregationPool({ threads: 2, minLength: 0 })
    await p.close()
    expect(p.closed).toBe(true)
    const xs = inputs(9, 12, true)
    sameBits(coordinateMedian({ pool: p }).aggregate(xs).value, coordinateMedian().aggregate(xs).value)
    expect(p.passes).toBe(0)
    const one = await createAggregationPool({ threads: 1, minLength: 0 })
    pools.push(one)
    sameBits(geometricMedian({ pool: one }).aggregate(xs).value, geometricMedian().aggregate(xs).value)
    await expect(createAggregationPool({ threads: 0 })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createAggregationPool({ minLength: -1 })).rejects.toHaveProperty('name', 'InvalidParametersError')
    expect(() => coordinateMedian({ pool: {} as any })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})
