import { makeAggregator } from '../aggregator.js'
import { BlockReader, foldCoefficients, weightedSum } from '../set.js'
import type { Aggregator, CommonInit, VectorSet } from '../types.js'

export interface MeanInit extends CommonInit {}

/**
 * The (weighted) arithmetic mean Σ wᵢxᵢ / Σ wᵢ, accumulated in Float64. Not robust: one Byzantine input moves
 * it arbitrarily far. It is the baseline of the benchmarks.
 */
export function mean (init?: MeanInit): Aggregator {
  return makeAggregator('mean', init, (set, context) => ({ value: meanOfSet(set, context.blockSize) }))
}

/**
 * Weighted mean of a set: per coordinate, Σ wᵢxᵢ (in input order) divided by Σ wᵢ. After a pre-aggregator
 * (a mixed set: vᵣ = Σᵢ Mᵣᵢ xᵢ) the mean is the fixed linear combination Σᵢ (Σᵣ wᵣ Mᵣᵢ) xᵢ / Σ wᵣ of the inputs,
 * so the mixing matrix is folded into one coefficient per input and the inputs are read in a single pass
 * (n multiply-adds per coordinate instead of forming every mixed vector: count × (n − f) for NNM). Same
 * algebra; the Float64 summation order differs from forming the mixed vectors first (last-bit differences
 * before the Float32 rounding), and the result still does not depend on the block size.
 */
export function meanOfSet (set: VectorSet, blockSize: number): Float32Array {
  if (set.mix != null) {
    const w = set.weights
    let total = set.count
    if (w != null) {
      total = 0
      for (let i = 0; i < set.count; i++) total += w[i]
    }
    const coef = w == null ? new Float64Array(set.count).fill(1) : w
    return weightedSum(set.base, foldCoefficients(set, coef), total, set.d, blockSize)
  }
  const out = new Float32Array(set.d)
  const reader = new BlockReader(set, blockSize)
  const B = reader.blockSize
  const acc = new Float64Array(B)
  const w = set.weights
  let total = set.count
  if (w != null) {
    total = 0
    for (let i = 0; i < set.count; i++) total += w[i]
  }
  for (let s = 0; s < set.d; s += B) {
    const e = Math.min(set.d, s + B)
    const len = e - s
    reader.load(s, e)
    acc.fill(0)
    const rows = reader.rows
    let r = 0
    if (w == null) {
      // four inputs per sweep: a quarter of the accumulator traffic
      for (; r + 3 < set.count; r += 4) {
        const r0 = rows[r]
        const r1 = rows[r + 1]
        const r2 = rows[r + 2]
        const r3 = rows[r + 3]
        for (let t = 0; t < len; t++) acc[t] += r0[t] + r1[t] + r2[t] + r3[t]
      }
      for (; r < set.count; r++) {
        const row = rows[r]
        for (let t = 0; t < len; t++) acc[t] += row[t]
      }
    } else {
      for (; r < set.count; r++) {
        const row = rows[r]
        const c = w[r]
        if (c === 0) continue
        for (let t = 0; t < len; t++) acc[t] += c * row[t]
      }
    }
    for (let t = 0; t < len; t++) out[s + t] = acc[t] / total
  }
  return out
}
