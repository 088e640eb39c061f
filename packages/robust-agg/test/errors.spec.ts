import { describe, expect, it } from 'vitest'
import {
  bucketing, centeredClip, compose, coordinateMedian, geometricMedian, krum, mean, multiKrum, nnm, normClip,
  trimmedMean
} from '../src/index.js'
import { thrown, vecs } from './helpers.js'

const five = vecs([1], [2], [3], [4], [5])
const four = vecs([1], [2], [3], [4])

describe('validity conditions', () => {
  it('Krum and Multi-Krum need n ≥ 2f + 3', () => {
    const err = thrown(() => krum({ f: 1 }).aggregate(four))
    expect(err.name).toBe('ValidityConditionError')
    expect(err.message).toContain('n ≥ 2f + 3')
    expect(err.message).toContain('n = 4, f = 1')
    expect(thrown(() => multiKrum({ f: 1 }).aggregate(four)).name).toBe('ValidityConditionError')
    expect(krum({ f: 1 }).aggregate(five).value[0]).toBe(2) // scores 5, 2, 2, 2, 5: tie → lowest index
  })
  it('Multi-Krum needs m ≤ n − f', () => {
    const err = thrown(() => multiKrum({ f: 1, m: 5 }).aggregate(five))
    expect(err.name).toBe('ValidityConditionError')
    expect(err.message).toContain('m ≤ n − f')
  })
  it('median, trimmed mean, NNM and the geometric median need f < n/2', () => {
    for (const agg of [coordinateMedian({ f: 2 }), trimmedMean({ f: 2 }), geometricMedian({ f: 2 }), compose(nnm({ f: 2 }), mean()), centeredClip({ tau: 1, f: 2 })]) {
      const err = thrown(() => agg.aggregate(four))
      expect(err.name).toBe('ValidityConditionError')
      expect(err.message).toContain('f < n/2')
    }
  })
  it('bucketing with f needs f < ⌈n/s⌉/2', () => {
    expect(thrown(() => compose(bucketing({ s: 2, f: 1 }), coordinateMedian()).aggregate(four)).name).toBe('ValidityConditionError')
    expect(compose(bucketing({ s: 2, f: 1 }), coordinateMedian()).aggregate(five).value.length).toBe(1)
  })
})

describe('invalid inputs', () => {
  it('rejects NaN and ±Infinity with the offending indices', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const err = thrown(() => mean().aggregate(vecs([1, 2], [3, bad], [5, 6], [bad, 0])))
      expect(err.name).toBe('NonFiniteInputError')
      expect((err as Error & { indices: number[] }).indices).toEqual([1, 3])
    }
  })
  it("drops them with nonFinite: 'drop' and counts them against f", () => {
    const r = trimmedMean({ f: 1, nonFinite: 'drop' }).aggregate(vecs([1], [NaN], [2], [3]))
    expect(r.dropped).toEqual([1])
    expect(r.value[0]).toBe(2) // f = 0 left: mean of 1, 2, 3
    const k = krum({ f: 2, nonFinite: 'drop' }).aggregate(vecs([0], [Infinity], [0.1], [0.2], [-Infinity], [5]))
    expect(k.dropped).toEqual([1, 4])
    expect(k.selected).toEqual([2]) // indices in the caller's numbering
    expect(k.scores?.length).toBe(4)
    expect(thrown(() => trimmedMean({ f: 1, nonFinite: 'drop' }).aggregate(vecs([1], [NaN], [NaN], [3]))).name).toBe('NonFiniteInputError')
    expect(thrown(() => mean({ nonFinite: 'drop' }).aggregate(vecs([NaN], [NaN]))).name).toBe('NonFiniteInputError')
    expect(mean({ nonFinite: 'drop' }).aggregate(vecs([NaN], [4])).value[0]).toBe(4)
  })
  it('length mismatches are typed errors', () => {
    expect(thrown(() => mean().aggregate(vecs([1, 2], [3]))).name).toBe('LengthMismatchError')
    expect(thrown(() => mean().aggregate(vecs([1], [3]), { weights: [1] })).name).toBe('LengthMismatchError')
    const cc = centeredClip({ tau: 1 })
    cc.aggregate(vecs([1, 2], [3, 4]))
    expect(thrown(() => cc.aggregate(vecs([1], [3]))).name).toBe('LengthMismatchError')
    expect(thrown(() => nnm({ f: 1 }).transform(vecs([1, 2], [3]))).name).toBe('LengthMismatchError')
  })
  it('bad arguments are InvalidParametersError', () => {
    const cases: Array<() => unknown> = [
      () => mean().aggregate([]),
      () => mean().aggregate([[1, 2]] as unknown as Float32Array[]),
      () => mean().aggregate(vecs([1], [2]), { weights: [1, -1] }),
      () => mean().aggregate(vecs([1], [2]), { weights: [0, 0] }),
      () => mean().aggregate(vecs([1], [2]), { blockSize: 0 }),
      () => coordinateMedian().aggregate(vecs([1], [2]), { weights: [1, 2] }),
      () => krum({ f: 0 }).aggregate(vecs([1], [2], [3]), { weights: [1, 2, 3] }),
      () => krum({ f: -1 }),
      () => krum({ f: 1, neighbours: 'n-f' as 'n-f-1' }),
      () => trimmedMean({} as { f: number }),
      () => multiKrum({ f: 1, m: 0 }),
      () => coordinateMedian({ evenMedian: 'middle' as 'lower' }),
      () => geometricMedian({ nu: 0 }),
      () => geometricMedian({ maxIterations: -1 }),
      () => centeredClip({ tau: 0 }),
      () => centeredClip({ tau: 1, start: 'other' as 'median' }),
      () => normClip({ maxNorm: Infinity }),
      () => bucketing({ s: 0 }),
      () => mean({ nonFinite: 'ignore' as 'drop' }),
      () => compose(nnm({ f: 1 }))
    ]
    for (const c of cases) expect(thrown(c).name).toBe('InvalidParametersError')
  })
})

describe('geometric median and CenteredClip skip the separate non-finite pass (their first pass proves finiteness)', () => {
  const base = (): Float32Array[] => Array.from({ length: 7 }, (_, i) => Float32Array.from({ length: 50 }, (_, j) => Math.sin(i * 7 + j) * (i + 1)))
  const makers = [
    () => geometricMedian({ maxIterations: 5 }),
    () => centeredClip({ tau: 1, start: 'median', maxIterations: 4 }),
    () => centeredClip({ tau: 1, start: 'mean', maxIterations: 4 }),
    () => centeredClip({ tau: 1, start: 'zero', maxIterations: 4 })
  ]
  function bytes (x: Float32Array): string {
    return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex')
  }
  it('finite inputs: the same bytes as the checked path (compose)', () => {
    for (const make of makers) {
      const xs = base()
      const fast = make().aggregate(xs, { weights: [1, 2, 3, 4, 5, 6, 0] })
      const checked = compose(make()).aggregate(xs, { weights: [1, 2, 3, 4, 5, 6, 0] })
      expect(bytes(fast.value)).toBe(bytes(checked.value))
      expect(fast.scores).toEqual(checked.scores)
    }
  })
  it('NaN / ±Inf anywhere (also in a zero-weight input) are still rejected with their indices, or dropped', () => {
    for (const make of makers) {
      for (const [i, j, v] of [[0, 0, NaN], [6, 49, Infinity], [3, 17, -Infinity]] as const) {
        const xs = base()
        xs[i][j] = v
        const err = thrown(() => make().aggregate(xs, { weights: [1, 1, 1, 1, 1, 1, 0] }))
        expect(err.name).toBe('NonFiniteInputError')
        expect((err as Error & { indices: number[] }).indices).toEqual([i])
      }
      const xs = base()
      xs[2][5] = NaN
      const kept = xs.filter((_, k) => k !== 2)
      const dropped = compose({ nonFinite: 'drop' }, make()).aggregate(xs)
      expect(dropped.dropped).toEqual([2])
      expect(bytes(dropped.value)).toBe(bytes(make().aggregate(kept).value))
    }
  })
  it('policy drop on the aggregator itself', () => {
    const xs = base()
    xs[5][0] = Infinity
    const kept = xs.filter((_, k) => k !== 5)
    const r = geometricMedian({ maxIterations: 5, nonFinite: 'drop' }).aggregate(xs)
    expect(r.dropped).toEqual([5])
    expect(bytes(r.value)).toBe(bytes(geometricMedian({ maxIterations: 5 }).aggregate(kept).value))
    const ok = centeredClip({ tau: 1, start: 'median', nonFinite: 'drop' }).aggregate(base())
    expect(ok.dropped).toEqual([])
  })
  it('CenteredClip keeps its stored centre when the inputs turn out non-finite', () => {
    const cc = centeredClip({ tau: 1 })
    cc.setCentre(new Float32Array(50).fill(0.5))
    const xs = base()
    xs[4][10] = NaN
    expect(thrown(() => cc.aggregate(xs)).name).toBe('NonFiniteInputError')
    expect(Array.from(cc.centre ?? [])).toEqual(new Array(50).fill(0.5))
  })
})
