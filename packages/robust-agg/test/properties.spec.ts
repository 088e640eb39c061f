/**
 * Properties checked with fast-check: permutation invariance, translation equivariance, and the deterministic
 * bounds each method guarantees when at most f inputs are arbitrary.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  centeredClip, compose, coordinateMedian, geometricMedian, krum, mean, multiKrum, nnm, trimmedMean
} from '../src/index.js'
import type { Aggregator } from '../src/index.js'

const RUNS = 60

/** n vectors of length d with integer coordinates (distances are then exact, so ties behave identically) */
function intVectors (nMin: number, nMax: number): fc.Arbitrary<Float32Array[]> {
  return fc.integer({ min: 1, max: 5 }).chain(d =>
    fc.array(fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: d, maxLength: d }).map(a => Float32Array.from(a)), { minLength: nMin, maxLength: nMax }))
}

function maxAbsDiff (a: Float32Array, b: Float32Array): number {
  let m = 0
  for (let j = 0; j < a.length; j++) m = Math.max(m, Math.abs(a[j] - b[j]))
  return m
}

const dist = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0
  for (let j = 0; j < a.length; j++) s += (a[j] - b[j]) ** 2
  return Math.sqrt(s)
}

function honestMean (h: Float32Array[]): number[] {
  return Array.from(h[0], (_, j) => h.reduce((s, x) => s + x[j], 0) / h.length)
}

// aggregators keyed by a maker from (n) so that f fits the validity condition of each
const makers: Array<[string, (n: number) => Aggregator, 'exact' | number]> = [
  ['mean', () => mean(), 1e-3],
  ['coordinate median', () => coordinateMedian(), 'exact'],
  ['trimmed mean', n => trimmedMean({ f: Math.floor((n - 1) / 2) }), 1e-3],
  ['multi-krum (m = 1, no ties by construction of the check)', n => multiKrum({ f: Math.floor((n - 3) / 2) }), 1e-3],
  ['geometric median', () => geometricMedian({ maxIterations: 300, tolerance: 1e-12 }), 1e-2],
  ['centered clip (median start)', () => centeredClip({ tau: 50, start: 'median', maxIterations: 300, tolerance: 1e-9 }), 1e-2],
  ['nnm → trimmed mean', n => compose(nnm({ f: Math.floor((n - 1) / 2) }), trimmedMean({ f: Math.floor((n - 1) / 2) })), 1e-3]
]

describe('permutation invariance', () => {
  for (const [label, make, tol] of makers) {
    it(label, () => {
      fc.assert(fc.property(intVectors(5, 10), fc.integer({ min: 0, max: 1_000_000 }), (xs, seed) => {
        const perm = xs.map((_, i) => i)
        for (let i = perm.length - 1; i > 0; i--) {
          const j = (seed * (i + 7)) % (i + 1)
          ;[perm[i], perm[j]] = [perm[j], perm[i]]
        }
        const a = make(xs.length).aggregate(xs)
        const b = make(xs.length).aggregate(perm.map(i => xs[i]))
        if (a.selected != null && b.selected != null) {
          // same multiset of Krum scores, and each result selected inputs of the same scores
          const sa = (a.scores as number[]).slice().sort((p, q) => p - q)
          const sb = (b.scores as number[]).slice().sort((p, q) => p - q)
          expect(sb).toEqual(sa)
          // ties between different inputs may pick different (equally scored) ones: compare only without ties
          const cut = sa[a.selected.length - 1]
          if (sa.filter(s => s === cut).length > 1 && sa.indexOf(cut) + sa.filter(s => s === cut).length > a.selected.length) return
        }
        const scale = Math.max(1, ...xs.flatMap(x => Array.from(x, Math.abs)))
        if (tol === 'exact') expect(b.value).toEqual(a.value)
        else expect(maxAbsDiff(a.value, b.value)).toBeLessThanOrEqual(tol * scale)
      }), { numRuns: RUNS })
    })
  }
  it('krum returns an input of minimal score whatever the order', () => {
    fc.assert(fc.property(intVectors(5, 10), xs => {
      const f = Math.floor((xs.length - 3) / 2)
      const a = krum({ f }).aggregate(xs)
      const b = krum({ f }).aggregate(xs.slice().reverse())
      const min = Math.min(...(a.scores as number[]))
      expect(Math.min(...(b.scores as number[]))).toBe(min)
      const bi = (b.selected as number[])[0]
      expect((b.scores as number[])[bi]).toBe(min)
      expect(b.value).toEqual(xs[xs.length - 1 - bi])
    }), { numRuns: RUNS })
  })
})

describe('translation equivariance: F(x + t) = F(x) + t', () => {
  const cases: Array<[string, (n: number) => Aggregator, number]> = [
    ['mean', () => mean(), 1e-6],
    ['coordinate median', () => coordinateMedian(), 0],
    ['trimmed mean', n => trimmedMean({ f: Math.floor((n - 1) / 3) }), 1e-3],
    ['krum', n => krum({ f: Math.floor((n - 3) / 2) }), 0],
    ['multi-krum', n => multiKrum({ f: Math.floor((n - 3) / 2) }), 1e-3],
    ['geometric median', () => geometricMedian({ maxIterations: 300, tolerance: 1e-12 }), 1e-2],
    ['centered clip (median start)', () => centeredClip({ tau: 50, start: 'median', maxIterations: 300, tolerance: 1e-9 }), 1e-2],
    ['nnm → krum', n => compose(nnm({ f: Math.floor((n - 3) / 2) }), krum({ f: Math.floor((n - 3) / 2) })), 1e-3]
  ]
  for (const [label, make, tol] of cases) {
    it(label, () => {
      fc.assert(fc.property(intVectors(5, 10), fc.integer({ min: -5000, max: 5000 }), (xs, t) => {
        const shifted = xs.map(x => Float32Array.from(x, v => v + t))
        const a = make(xs.length).aggregate(xs)
        const b = make(xs.length).aggregate(shifted)
        const scale = Math.max(1, ...xs.flatMap(x => Array.from(x, Math.abs)), Math.abs(t))
        if (a.selected != null && b.selected != null && a.selected.join() !== b.selected.join()) {
          // after mixing (1/k coefficients) exact ties in the true scores can round either way: only then may
          // the choice differ, and it must be between equally scored candidates
          const sa = a.scores as number[]
          const sb = b.scores as number[]
          const ia = a.selected[0]
          const ib = b.selected[0]
          expect(Math.abs(sa[ia] - sa[ib])).toBeLessThanOrEqual(1e-9 * Math.max(1, sa[ia]))
          expect(Math.abs(sb[ia] - sb[ib])).toBeLessThanOrEqual(1e-9 * Math.max(1, sb[ib]))
          return
        }
        const moved = Float32Array.from(a.value, v => v + t)
        expect(maxAbsDiff(b.value, moved)).toBeLessThanOrEqual(tol * scale)
      }), { numRuns: RUNS })
    })
  }
  it('does not hold for norm-based rules such as CenteredClip from zero (documented)', () => {
    const xs = [Float32Array.from([1]), Float32Array.from([2]), Float32Array.from([3])]
    const cc = (): Aggregator => centeredClip({ tau: 0.5, start: 'zero', maxIterations: 1 })
    const a = cc().aggregate(xs).value[0]
    const b = cc().aggregate(xs.map(x => Float32Array.from(x, v => v + 100))).value[0]
    expect(b - 100).not.toBeCloseTo(a, 3)
  })
})

/** honest vectors around the origin and f' ≤ f arbitrary ones (possibly huge) */
function attacked (minN: number, maxN: number, fOf: (n: number) => number): fc.Arbitrary<{ honest: Float32Array[], byz: Float32Array[], f: number }> {
  return fc.record({
    n: fc.integer({ min: minN, max: maxN }),
    d: fc.integer({ min: 1, max: 4 }),
    seed: fc.nat()
  }).chain(({ n, d }) => {
    const f = fOf(n)
    const vec = (lim: number): fc.Arbitrary<Float32Array> => fc.array(fc.double({ min: -lim, max: lim, noNaN: true }), { minLength: d, maxLength: d }).map(a => Float32Array.from(a))
    return fc.integer({ min: 0, max: f }).chain(fb => fc.record({
      honest: fc.array(vec(10), { minLength: n - fb, maxLength: n - fb }),
      byz: fc.array(fc.oneof(vec(1e6), vec(1e30)), { minLength: fb, maxLength: fb }),
      f: fc.constant(f)
    }))
  })
}

describe('bounds under at most f arbitrary inputs', () => {
  it('median and trimmed mean stay inside the honest range on every coordinate (Yin et al. 2018)', () => {
    fc.assert(fc.property(attacked(3, 12, n => Math.floor((n - 1) / 2)), fc.boolean(), ({ honest, byz, f }, first) => {
      const inputs = first ? [...byz, ...honest] : [...honest, ...byz]
      for (const agg of [coordinateMedian({ f }), trimmedMean({ f })]) {
        const out = agg.aggregate(inputs).value
        for (let j = 0; j < out.length; j++) {
          const col = honest.map(x => x[j])
          expect(out[j]).toBeGreaterThanOrEqual(Math.fround(Math.min(...col)))
          expect(out[j]).toBeLessThanOrEqual(Math.fround(Math.max(...col)))
        }
      }
    }), { numRuns: RUNS * 2 })
  })

  it('Krum and Multi-Krum stay within (√k + 1)·Δ of the honest mean (Δ = honest diameter)', () => {
    // the selected vector's score is at most an honest one's (≤ kΔ²), and its k nearest include an honest input
    fc.assert(fc.property(attacked(5, 12, n => Math.floor((n - 3) / 2)), ({ honest, byz, f }) => {
      const inputs = [...byz, ...honest]
      const n = inputs.length
      let diameter = 0
      for (const a of honest) for (const b of honest) diameter = Math.max(diameter, dist(a, b))
      const mu = honestMean(honest)
      for (const neighbours of ['n-f-2', 'n-f-1'] as const) {
        const k = neighbours === 'n-f-2' ? n - f - 2 : n - f - 1
        const bound = (Math.sqrt(k) + 1) * diameter * (1 + 1e-6) + 1e-4
        expect(dist(krum({ f, neighbours }).aggregate(inputs).value, mu)).toBeLessThanOrEqual(bound)
        expect(dist(multiKrum({ f, neighbours }).aggregate(inputs).value, mu)).toBeLessThanOrEqual(bound)
      }
    }), { numRuns: RUNS * 2 })
  })

  it('the geometric median stays within 2h·r/(h − b) of the honest mean (h honest, b Byzantine, r honest radius)', () => {
    fc.assert(fc.property(attacked(3, 11, n => Math.floor((n - 1) / 2)), ({ honest, byz }) => {
      const h = honest.length
      const b = byz.length
      const mu = honestMean(honest)
      const r = Math.max(...honest.map(x => dist(x, mu)))
      const out = geometricMedian({ nu: 1e-9, maxIterations: 3000, tolerance: 1e-9 }).aggregate([...honest, ...byz]).value
      // the smoothed Weiszfeld iterate only approximates the minimiser: allow 5% and a small absolute slack
      expect(dist(out, mu)).toBeLessThanOrEqual(2 * h * r / (h - b) * 1.05 + 1e-2)
    }), { numRuns: RUNS })
  })

  it('one CenteredClip step: the f arbitrary inputs move the result by at most (b/n)·τ (each clipped term ≤ τ)', () => {
    fc.assert(fc.property(attacked(3, 12, n => Math.floor((n - 1) / 2)), fc.double({ min: 0.01, max: 20, noNaN: true }), ({ honest, byz }, tau) => {
      const n = honest.length + byz.length
      const start = Float32Array.from(honest[0], (_, j) => honest.reduce((s, x) => s + x[j], 0) / honest.length)
      const run = (inputs: Float32Array[]): Float32Array => {
        const cc = centeredClip({ tau, start: 'previous', maxIterations: 1 })
        cc.setCentre(start)
        return cc.aggregate(inputs).value
      }
      // the same round with the Byzantine inputs replaced by the centre itself (they then contribute nothing)
      const attackedOut = run([...honest, ...byz])
      const neutral = run([...honest, ...byz.map(() => start.slice())])
      expect(dist(attackedOut, neutral)).toBeLessThanOrEqual(byz.length * tau / n * (1 + 1e-6) + 1e-4)
    }), { numRuns: RUNS })
  })

  it('NNM → trimmed mean / median stays within 2Δ of the honest mean on every coordinate', () => {
    // an honest input's n − f nearest lie within Δ of it (the honest ones alone are n − f' ≥ n − f inputs within
    // Δ), so its mixed vector is within Δ of it and 2Δ of the honest mean; the order statistic then stays within
    // the range of the honest mixed vectors on every coordinate
    fc.assert(fc.property(attacked(3, 12, n => Math.floor((n - 1) / 2)), ({ honest, byz, f }) => {
      const inputs = [...byz, ...honest]
      let diameter = 0
      for (const a of honest) for (const b of honest) diameter = Math.max(diameter, dist(a, b))
      const mu = honestMean(honest)
      for (const agg of [compose(nnm({ f }), trimmedMean({ f })), compose(nnm({ f }), coordinateMedian())]) {
        const out = agg.aggregate(inputs).value
        for (let j = 0; j < out.length; j++) expect(Math.abs(out[j] - mu[j])).toBeLessThanOrEqual(2 * diameter * (1 + 1e-6) + 1e-4)
      }
    }), { numRuns: RUNS })
  })
})
