import { makeAggregator } from '../aggregator.js'
import { BlockReader } from '../set.js'
import type { Aggregator, CommonInit, VectorSet } from '../types.js'

export interface MeanInit extends CommonInit {}

/**
 * The (weighted) arithmetic mean Σ wᵢxᵢ / Σ wᵢ, accumulated in Float64. Not robust: one Byzantine input moves
 * it arbitrarily far. It is the baseline of the benchmarks.
 */
export function mean (init?: MeanInit): Aggregator {
  return makeAggregator('mean', init, (set, context) => ({ value: meanOfSet(set, context.blockSize) }))
}

/** Weighted mean of a set: per coordinate, Σ wᵢxᵢ (in input order) divided by Σ wᵢ */
export function meanOfSet (set: VectorSet, blockSize: number): Float32Array {
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
