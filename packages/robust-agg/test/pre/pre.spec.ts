import { describe, expect, it } from 'vitest'
import { bucketing, compose, coordinateMedian, krum, mean, nnm, normClip, trimmedMean } from '../../src/index.js'
import { arr, vecs } from '../helpers.js'

describe('nnm (Allouah et al. 2023)', () => {
  // n = 4, f = 1: every input is replaced by the mean of its n − f = 3 nearest (itself included)
  const xs = vecs([0], [1], [2], [10])

  it('averages each input with its n − f nearest neighbours', () => {
    const out = nnm({ f: 1 }).transform(xs)
    expect(out.vectors.map(v => v[0])).toEqual([1, 1, 1, Math.fround(13 / 3)])
    expect(out.diagnostics.neighbours).toEqual([[0, 1, 2], [0, 1, 2], [0, 1, 2], [1, 2, 3]])
  })
  it('composes without materialising: nnm → mean', () => {
    const r = compose(nnm({ f: 1 }), mean()).aggregate(xs)
    expect(r.value[0]).toBe(Math.fround((1 + 1 + 1 + 13 / 3) / 4))
    expect(r.stages?.[0].name).toBe('nnm')
  })
  it('nnm → mean folds the mixing into one weight per input: same value as materialising the mixed vectors', () => {
    // folding changes only the Float64 summation order, so the two paths agree to a few ulps of Float64
    // before the Float32 rounding; compare with the materialised path at a tolerance far below one Float32 ulp
    let seed = 7
    const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 - 0.5 }
    const ys = Array.from({ length: 11 }, (_, i) => Float32Array.from({ length: 257 }, () => rand() * (i === 3 ? 1e4 : 1)))
    const folded = compose(nnm({ f: 3 }), mean()).aggregate(ys).value
    const mixed = nnm({ f: 3 }).transform(ys).vectors
    for (let j = 0; j < 257; j++) {
      let sum = 0
      for (const v of mixed) sum += v[j]
      // the materialised vectors were rounded to Float32: allow that rounding (relative 2^-24 of each term)
      let bound = 0
      for (const v of mixed) bound += Math.abs(v[j]) * 2 ** -23
      expect(Math.abs(folded[j] - sum / mixed.length)).toBeLessThanOrEqual(bound / mixed.length + Math.abs(sum / mixed.length) * 2 ** -23)
    }
  })
  it('composes: nnm → trimmed mean and nnm → Krum', () => {
    const tm = compose(nnm({ f: 1 }), trimmedMean({ f: 1 })).aggregate(xs)
    expect(tm.value[0]).toBe(1) // mixed values 1, 1, 1, 13/3 → drop one 1 and 13/3
    const ys = vecs([0], [1], [2], [10], [11])
    const k = compose(nnm({ f: 1 }), krum({ f: 1 })).aggregate(ys)
    // mixed: 0→(0+1+2+10)/4=3.25, 1→3.25, 2→3.25, 10→(1+2+10+11)/4=6, 11→6
    expect(k.value[0]).toBe(3.25)
    expect(k.selected).toEqual([0])
  })
})

describe('bucketing (Karimireddy, He & Jaggi 2022)', () => {
  it('averages random buckets of s inputs', () => {
    const xs = vecs([0], [2], [4], [6], [8])
    const out = bucketing({ s: 2, seed: 7 }).transform(xs)
    const buckets = out.diagnostics.buckets as number[][]
    expect(buckets.map(b => b.length).sort()).toEqual([1, 2, 2])
    expect(buckets.flat().sort()).toEqual([0, 1, 2, 3, 4])
    out.vectors.forEach((v, b) => {
      expect(v[0]).toBe(buckets[b].reduce((s, i) => s + xs[i][0], 0) / buckets[b].length)
    })
  })
  it('follows the permutation of the generator (Fisher–Yates)', () => {
    // random() = 0 always swaps with position 0: [0,1,2,3] → [3,1,2,0] → [2,1,3,0] → [1,2,3,0]
    const out = bucketing({ s: 2, random: () => 0 }).transform(vecs([0], [2], [4], [6]))
    expect(out.diagnostics.buckets).toEqual([[1, 2], [0, 3]])
    expect(out.vectors.map(v => v[0])).toEqual([3, 3])
  })
  it('is reproducible from its seed and draws a new permutation each round', () => {
    const xs = Array.from({ length: 12 }, (_, i) => Float32Array.from([i]))
    const a = bucketing({ s: 3, seed: 1 })
    const b = bucketing({ s: 3, seed: 1 })
    const a1 = a.transform(xs).diagnostics.buckets
    expect(b.transform(xs).diagnostics.buckets).toEqual(a1)
    expect(a.transform(xs).diagnostics.buckets).not.toEqual(a1)
  })
  it('carries weights: weighted bucket means, bucket weight = sum', () => {
    const out = bucketing({ s: 2, random: () => 0 }).transform(vecs([0], [2], [4], [6]), { weights: [1, 1, 3, 1] })
    // buckets [1, 2] and [0, 3]: (2 + 3·4)/4 = 3.5, (0 + 6)/2 = 3
    expect(out.vectors.map(v => v[0])).toEqual([3.5, 3])
    expect(out.weights).toEqual([4, 2])
  })
  it('composes: bucketing → median reports bucket indices', () => {
    const r = compose(bucketing({ s: 2, random: () => 0 }), coordinateMedian()).aggregate(vecs([0], [2], [4], [6]))
    expect(arr(r.value)).toEqual([3])
    expect(r.stages?.[0].buckets).toEqual([[1, 2], [0, 3]])
  })
})

describe('normClip', () => {
  it('scales inputs longer than maxNorm down to it', () => {
    const out = normClip({ maxNorm: 1 }).transform(vecs([3, 4], [0.3, 0.4]))
    expect(arr(out.vectors[0])).toEqual([0.6, 0.8].map(Math.fround))
    expect(arr(out.vectors[1])).toEqual([0.3, 0.4].map(Math.fround))
    expect(out.diagnostics.clipped).toEqual([0])
    expect(out.diagnostics.scores?.[0]).toBe(5)
  })
  it('composes: normClip → mean, and chains with nnm', () => {
    const r = compose(normClip({ maxNorm: 1 }), mean()).aggregate(vecs([3, 4], [0, -0.5]))
    expect(arr(r.value)).toEqual([0.3, 0.15].map(Math.fround))
    const chain = compose(normClip({ maxNorm: 2 }), nnm({ f: 1 }), mean()).aggregate(vecs([0], [1], [2], [100]))
    // clip: 0, 1, 2, 2 → nnm (3 nearest): 1, 1, 5/3, 5/3 → mean 4/3
    expect(chain.value[0]).toBeCloseTo(4 / 3, 6)
    expect(chain.stages?.map(s => s.name)).toEqual(['norm-clip', 'nnm'])
  })
})

describe('compose', () => {
  it('drops non-finite inputs once, with the policy given first', () => {
    const r = compose({ nonFinite: 'drop' }, nnm({ f: 1 }), trimmedMean({ f: 1 })).aggregate(vecs([0], [NaN], [1], [2]))
    expect(r.dropped).toEqual([1])
    // one Byzantine input already dropped → f = 0 left: nnm over 3 averages all 3; trimmed mean keeps all
    expect(r.value[0]).toBe(1)
    expect(r.stages?.[0].neighbours).toEqual([[0, 2, 3], [0, 2, 3], [0, 2, 3]])
  })
})
