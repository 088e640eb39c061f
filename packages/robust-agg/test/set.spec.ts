import { describe, expect, it } from 'vitest'
import {
  bucketing, centeredClip, compose, coordinateMedian, geometricMedian, krum, mean, multiKrum, nnm, normClip,
  trimmedMean
} from '../src/index.js'
import type { Aggregator } from '../src/index.js'
import { createNormalRng, createRng } from '../src/rng.js'

function inputs (n: number, d: number, seed: number): Float32Array[] {
  const normal = createNormalRng(createRng(seed))
  return Array.from({ length: n }, (_, i) => {
    const x = new Float32Array(d)
    for (let j = 0; j < d; j++) x[j] = 1 + normal() * (i === 0 ? 1e6 : 1) // input 0 is an outlier
    return x
  })
}

function bytes (x: Float32Array): Buffer {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength)
}

describe('block size independence', () => {
  const d = 1013
  const blockSizes = [1, 3, 7, 64, 1000, 5000]
  const makers: Array<[string, (n: number) => Aggregator]> = [
    ['mean', () => mean()],
    ['median', () => coordinateMedian()],
    ['trimmed mean', n => trimmedMean({ f: Math.floor((n - 1) / 4) })],
    ['krum', n => krum({ f: Math.floor((n - 3) / 2) })],
    ['multi-krum', n => multiKrum({ f: Math.floor((n - 3) / 2) })],
    ['geometric median', () => geometricMedian({ maxIterations: 20 })],
    ['centered clip', () => centeredClip({ tau: 2, start: 'median', maxIterations: 20 })],
    ['nnm → mean (folded)', () => compose(nnm({ f: 2 }), mean())],
    ['bucketing → nnm → multi-krum (folded)', n => compose(bucketing({ s: 2, seed: 1 }), nnm({ f: 1 }), multiKrum({ f: Math.floor((Math.ceil(n / 2) - 3) / 2) }))],
    ['nnm → trimmed mean', n => compose(nnm({ f: 2 }), trimmedMean({ f: Math.floor((n - 1) / 4) }))],
    ['norm clip → nnm → krum', n => compose(normClip({ maxNorm: 40 }), nnm({ f: 1 }), krum({ f: Math.floor((n - 3) / 2) }))],
    ['bucketing → median', () => compose(bucketing({ s: 2, seed: 3 }), coordinateMedian())]
  ]
  // order statistics: n = 9 and 17 compiled sorting networks, n = 70 per-coordinate quickselect
  for (const n of [9, 17, 70]) {
    const xs = inputs(n, d, n)
    for (const [label, make] of makers) {
      it(`${label}, n = ${n}: identical output bytes and diagnostics for block sizes ${blockSizes.join(', ')}`, () => {
        const results = blockSizes.map(b => make(n).aggregate(xs, { blockSize: b }))
        const ref = results[0]
        for (const r of results.slice(1)) {
          expect(bytes(r.value).equals(bytes(ref.value))).toBe(true)
          expect(r.scores).toEqual(ref.scores)
          expect(r.selected).toEqual(ref.selected)
          expect(r.iterations).toEqual(ref.iterations)
        }
      })
    }
  }
})
