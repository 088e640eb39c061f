import { describe, expect, it } from 'vitest'
import { centeredClip, coordinateMedian, geometricMedian, krum, mean, multiKrum, trimmedMean } from '../../src/index.js'
import { arr, vecs } from '../helpers.js'

describe('mean', () => {
  it('averages per coordinate', () => {
    expect(arr(mean().aggregate(vecs([1, 2], [3, 4], [5, 9])).value)).toEqual([3, 5])
  })
  it('weights inputs', () => {
    // (1 + 3 + 2·5) / 4, (2 + 4 + 2·9) / 4
    expect(arr(mean().aggregate(vecs([1, 2], [3, 4], [5, 9]), { weights: [1, 1, 2] }).value)).toEqual([3.5, 6])
  })
  it('is moved arbitrarily by one input', () => {
    expect(arr(mean().aggregate(vecs([1], [1], [1e6])).value)[0]).toBeGreaterThan(3e5)
  })
})

describe('coordinateMedian', () => {
  it('takes the middle value of an odd count per coordinate', () => {
    expect(arr(coordinateMedian().aggregate(vecs([1, 30], [5, 10], [3, 20])).value)).toEqual([3, 20])
  })
  it('follows the documented even-count convention', () => {
    const xs = vecs([1], [2], [10], [4])
    expect(arr(coordinateMedian().aggregate(xs).value)).toEqual([3])
    expect(arr(coordinateMedian({ evenMedian: 'mean-of-middle' }).aggregate(xs).value)).toEqual([3])
    expect(arr(coordinateMedian({ evenMedian: 'lower' }).aggregate(xs).value)).toEqual([2])
    expect(arr(coordinateMedian({ evenMedian: 'upper' }).aggregate(xs).value)).toEqual([4])
  })
  it('ignores a minority of outliers', () => {
    expect(arr(coordinateMedian().aggregate(vecs([1, 1], [2, 2], [3, 3], [1e30, -1e30], [-1e30, 1e30])).value)).toEqual([2, 2])
  })
  it('gives the same medians on both paths (compiled sorting networks up to 64 inputs, quickselect above)', () => {
    for (const n of [1, 2, 3, 5, 12, 13, 16, 20, 24, 25, 32, 40, 64, 65, 80]) {
      const xs = Array.from({ length: n }, (_, i) => Float32Array.from([Math.sin(i * 12.9898) * 43758.5453 % 1, -i, i % 3]))
      for (const even of ['mean-of-middle', 'lower', 'upper'] as const) {
        const out = coordinateMedian({ evenMedian: even }).aggregate(xs).value
        for (let j = 0; j < 3; j++) {
          const col = xs.map(x => x[j]).sort((a, b) => a - b)
          const lo = col[(n - 1) >> 1]
          const hi = col[n >> 1]
          const expected = n % 2 === 1 ? hi : even === 'lower' ? lo : even === 'upper' ? hi : (lo + hi) / 2
          expect(out[j]).toBe(Math.fround(expected))
        }
      }
      const f = Math.floor((n - 1) / 3)
      const tm = trimmedMean({ f }).aggregate(xs).value
      for (let j = 0; j < 3; j++) {
        const col = xs.map(x => x[j]).sort((a, b) => a - b).slice(f, n - f)
        expect(tm[j]).toBeCloseTo(col.reduce((a, b) => a + b, 0) / col.length, 5)
      }
    }
  })
  it('handles large n (the quickselect path) the same way', () => {
    const n = 71
    const xs = Array.from({ length: n }, (_, i) => Float32Array.from([(i * 37) % n, n - i]))
    expect(arr(coordinateMedian().aggregate(xs).value)).toEqual([35, 36])
    const even = xs.slice(0, 70)
    const lower = coordinateMedian({ evenMedian: 'lower' }).aggregate(even).value
    const sorted = even.map(x => x[0]).sort((a, b) => a - b)
    expect(lower[0]).toBe(sorted[34])
    expect(coordinateMedian({ evenMedian: 'upper' }).aggregate(even).value[0]).toBe(sorted[35])
    expect(coordinateMedian().aggregate(even).value[0]).toBe((sorted[34] + sorted[35]) / 2)
  })
})

describe('trimmedMean', () => {
  it('removes the f largest and f smallest values per coordinate', () => {
    // coordinate 0: drop 1 and 100 → (2 + 3 + 4) / 3; coordinate 1: drop -50 and 9 → (5 + 6 + 7) / 3
    const out = trimmedMean({ f: 1 }).aggregate(vecs([1, 9], [2, 5], [3, -50], [4, 6], [100, 7])).value
    expect(arr(out)).toEqual([3, 6])
  })
  it('is the mean for f = 0 and the median for f = (n − 1)/2', () => {
    const xs = vecs([1], [2], [4], [8], [16])
    expect(arr(trimmedMean({ f: 0 }).aggregate(xs).value)).toEqual([31 / 5].map(Math.fround))
    expect(arr(trimmedMean({ f: 2 }).aggregate(xs).value)).toEqual([4])
  })
  it('works for large n (the quickselect path)', () => {
    const xs = Array.from({ length: 70 }, (_, i) => Float32Array.from([i === 0 ? 1e9 : i === 1 ? -1e9 : i]))
    // drop ±1e9 and the 3 smallest / 3 largest others: values 2..69, keep 5..66
    const expected = (5 + 66) / 2
    expect(trimmedMean({ f: 4 }).aggregate(xs).value[0]).toBe(expected)
  })
})

describe('krum and multiKrum', () => {
  // squared-distance scores with f = 1, n = 5: k = n − f − 2 = 2 → x = 6 wins (score 2);
  // k = n − f − 1 = 3 → x = 5 wins (score 29.01) — the convention changes the result
  const xs = vecs([0], [0.1], [5], [6], [7])

  it('uses n − f − 2 neighbours by default (Blanchard et al. 2017)', () => {
    const r = krum({ f: 1 }).aggregate(xs)
    expect(arr(r.value)).toEqual([6])
    expect(r.selected).toEqual([3])
    const s = r.scores as number[]
    expect(s[3]).toBeCloseTo(2, 12)
    expect(s[2]).toBeCloseTo(5, 12)
    expect(s[4]).toBeCloseTo(5, 12)
    expect(s[0]).toBeCloseTo(25.01, 5)
  })
  it("uses n − f − 1 neighbours when asked", () => {
    const r = krum({ f: 1, neighbours: 'n-f-1' }).aggregate(xs)
    expect(arr(r.value)).toEqual([5])
    expect(r.selected).toEqual([2])
    expect((r.scores as number[])[2]).toBeCloseTo(29.01, 5)
  })
  it('returns an input unchanged, bit for bit', () => {
    const ys = vecs([0.1, 0.2], [0.11, 0.19], [0.12, 0.21], [9, 9], [0.1, 0.21])
    const r = krum({ f: 1 }).aggregate(ys)
    expect(r.value).toEqual(ys[(r.selected as number[])[0]])
  })
  it('multi-Krum averages the m best-scored inputs, ties by index', () => {
    expect(arr(multiKrum({ f: 1, m: 1 }).aggregate(xs).value)).toEqual(arr(krum({ f: 1 }).aggregate(xs).value))
    const two = multiKrum({ f: 1, m: 2 }).aggregate(xs)
    expect(two.selected).toEqual([2, 3]) // 6 (score 2), then 5 and 7 tie at 5 → 5 (lower index)
    expect(arr(two.value)).toEqual([5.5])
    const dflt = multiKrum({ f: 1 }).aggregate(xs) // m = n − f = 4
    expect(dflt.selected).toEqual([1, 2, 3, 4])
    expect(dflt.value[0]).toBe(Math.fround((0.1 + 5 + 6 + 7) / 4))
  })
  it('multi-Krum averages with weights', () => {
    const r = multiKrum({ f: 1, m: 2 }).aggregate(xs, { weights: [1, 1, 3, 1, 1] })
    expect(arr(r.value)).toEqual([(3 * 5 + 6) / 4])
  })
})

describe('geometricMedian (smoothed Weiszfeld)', () => {
  it('is the median for points on a line', () => {
    const r = geometricMedian({ tolerance: 0, maxIterations: 500 }).aggregate(vecs([0], [1], [10]))
    expect(r.value[0]).toBeCloseTo(1, 4)
  })
  it('is the centre of a symmetric configuration', () => {
    const r = geometricMedian().aggregate(vecs([1, 1], [-1, 1], [1, -1], [-1, -1], [0, 0]))
    expect(arr(r.value)).toEqual([0, 0])
    expect(r.converged).toBe(true)
  })
  it('does exactly one Weiszfeld step from the mean', () => {
    // mean 5, distances 5, 2, 7 → z = (0/5 + 3/2 + 12/7) / (1/5 + 1/2 + 1/7)
    const r = geometricMedian({ maxIterations: 1, tolerance: 0 }).aggregate(vecs([0], [3], [12]))
    expect(r.iterations).toBe(1)
    expect(r.value[0]).toBe(Math.fround((3 / 2 + 12 / 7) / (1 / 5 + 1 / 2 + 1 / 7)))
  })
  it('returns the weighted mean with 0 iterations or a ν above every distance', () => {
    const xs = vecs([0], [3], [12])
    expect(geometricMedian({ maxIterations: 0 }).aggregate(xs).value[0]).toBe(5)
    expect(geometricMedian({ nu: 1e6, maxIterations: 10, tolerance: 0 }).aggregate(xs).value[0]).toBe(5)
    expect(geometricMedian({ maxIterations: 0 }).aggregate(xs, { weights: [2, 1, 1] }).value[0]).toBe(15 / 4)
  })
  it('keeps iterating with default options when one input is 1e30 away', () => {
    const r = geometricMedian().aggregate(vecs([0, 0], [1, 0], [0, 1], [1, 1], [1e30, -1e30]))
    expect(Math.hypot(r.value[0] - 0.5, r.value[1] - 0.5)).toBeLessThan(1)
    expect(r.converged).toBe(true)
  })
  it('weights inputs (α in RFA)', () => {
    // with weight 3 on 0 and 1 on the others the weighted geometric median on a line is the weighted median, 0
    const r = geometricMedian({ maxIterations: 1000, tolerance: 0 }).aggregate(vecs([0], [1], [10]), { weights: [3, 1, 1] })
    expect(Math.abs(r.value[0])).toBeLessThan(1e-3)
  })
})

describe('centeredClip', () => {
  it('does one clipped step from the chosen start', () => {
    // from 0 with τ = 1: 0.5 stays, 3 → 1, −4 → −1 → v = 0.5 / 3
    const r = centeredClip({ tau: 1, start: 'zero', maxIterations: 1 }).aggregate(vecs([0.5], [3], [-4]))
    expect(r.value[0]).toBe(Math.fround(0.5 / 3))
    expect(r.clipped).toEqual([1, 2])
    expect(r.iterations).toBe(1)
  })
  it('is the mean after one step when τ exceeds every distance', () => {
    const r = centeredClip({ tau: 1e9, start: 'zero', maxIterations: 1 }).aggregate(vecs([1, 2], [3, 4], [5, 9]))
    expect(arr(r.value)).toEqual([3, 5])
    expect(r.clipped).toEqual([])
  })
  it('returns the start point with 0 iterations', () => {
    const xs = vecs([1], [2], [10])
    expect(centeredClip({ tau: 1, start: 'median', maxIterations: 0 }).aggregate(xs).value[0]).toBe(2)
    expect(centeredClip({ tau: 1, start: 'mean', maxIterations: 0 }).aggregate(xs).value[0]).toBe(Math.fround(13 / 3))
    expect(centeredClip({ tau: 1, start: 'zero', maxIterations: 0 }).aggregate(xs).value[0]).toBe(0)
  })
  it('keeps its centre across rounds with start "previous" (Karimireddy et al. 2021)', () => {
    const cc = centeredClip({ tau: 1, start: 'previous', firstStart: 'zero' }) // L = 1 by default
    expect(cc.centre).toBeUndefined()
    const round1 = cc.aggregate(vecs([0.5], [3], [-4]))
    expect(round1.value[0]).toBe(Math.fround(0.5 / 3))
    expect(arr(cc.centre as Float32Array)).toEqual(arr(round1.value))
    // round 2 starts at v = 1/6 (as stored, in float32): 2 → v + 1, 0 → v − v, 5 → v + 1
    const v = Math.fround(0.5 / 3)
    const round2 = cc.aggregate(vecs([2], [0], [5]))
    expect(round2.value[0]).toBe(Math.fround(v + (1 + (0 - v) + 1) / 3))
    cc.setCentre(Float32Array.from([10]))
    expect(cc.aggregate(vecs([10], [10.5], [20])).value[0]).toBe(Math.fround(10 + (0 + 0.5 + 1) / 3))
  })
  it('iterates to a fixed point of the clipped average from the median', () => {
    const xs = vecs([0, 0], [1, 0], [0, 1], [0.5, 0.5], [50, -80])
    const tau = 0.8
    const r = centeredClip({ tau, start: 'median', tolerance: 1e-9, maxIterations: 10_000 }).aggregate(xs)
    expect(r.converged).toBe(true)
    const v = arr(r.value)
    const g = [0, 0]
    for (const x of xs) {
      const dx = [x[0] - v[0], x[1] - v[1]]
      const norm = Math.hypot(dx[0], dx[1])
      const c = Math.min(1, tau / norm)
      g[0] += c * dx[0]
      g[1] += c * dx[1]
    }
    expect(Math.hypot(g[0], g[1])).toBeLessThan(1e-5)
    expect(r.clipped).toContain(4)
  })
})
