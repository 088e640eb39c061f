import { InvalidParametersError } from '@neuroshard/interface'
import { checkF, effectiveF, requireCondition } from '../aggregator.js'
import { DEFAULT_BUCKETING_SEED } from '../constants.js'
import { createRng } from '../rng.js'
import { remix } from '../set.js'
import type { CommonInit, PreAggregator } from '../types.js'
import { labelsOf, makePreAggregator } from './common.js'

export interface BucketingInit extends CommonInit {
  /** Bucket size s (Karimireddy, He & Jaggi 2022, Algorithm 1). */
  s: number
  /**
   * Seed of the permutation generator. The generator is created once and advances on every call, so each
   * round gets a fresh permutation and a run is reproducible. @default 0
   */
  seed?: number
  /**
   * Optional number of Byzantine inputs: when given, at most f buckets can hold a Byzantine input, so
   * f < ⌈n/s⌉ / 2 is enforced (the downstream robust aggregator sees at most f bad buckets out of ⌈n/s⌉).
   */
  f?: number
  /** Replace the seeded generator (uniform in [0, 1)) */
  random?: () => number
}

/**
 * Bucketing (Karimireddy, He & Jaggi 2022, "Byzantine-robust learning on heterogeneous datasets via
 * bucketing", ICLR): shuffle the inputs with a random permutation, split them into ⌈n/s⌉ buckets of s (the
 * last may be smaller) and average each bucket. With weights, each bucket is the weighted average of its
 * members and carries their total weight. Indices after bucketing are bucket indices; `buckets` in the
 * diagnostics maps them to inputs.
 */
export function bucketing (init: BucketingInit): PreAggregator {
  const name = 'bucketing'
  const s = init?.s
  if (!Number.isInteger(s) || s < 1) {
    throw new InvalidParametersError(`${name}: s must be a positive integer, got ${String(s)}`)
  }
  const f = checkF(name, init.f, false)
  const random = init.random ?? createRng(init.seed ?? DEFAULT_BUCKETING_SEED)
  return makePreAggregator(name, init, (set, context) => {
    const n = set.count
    const nb = Math.ceil(n / s)
    if (f != null) {
      const fe = effectiveF(name, f, context)
      requireCondition(2 * fe < nb, `${name} requires f < ⌈n/s⌉/2 (Karimireddy et al. 2022); got n = ${n}, s = ${s}, f = ${fe}`)
    }
    const perm = Array.from({ length: n }, (_, i) => i)
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      const t = perm[i]
      perm[i] = perm[j]
      perm[j] = t
    }
    const labels = labelsOf(set)
    const rows = []
    const buckets: number[][] = []
    const weights = set.weights == null ? undefined : new Float64Array(nb)
    for (let b = 0; b < nb; b++) {
      const members = perm.slice(b * s, Math.min(n, (b + 1) * s)).sort((x, y) => x - y)
      buckets.push(members.map(i => labels[i]))
      if (set.weights == null || weights == null) {
        rows.push({ index: members, coef: members.map(() => 1 / members.length) })
      } else {
        const w = set.weights
        let total = 0
        for (const i of members) total += w[i]
        weights[b] = total
        rows.push({ index: members, coef: members.map(i => total > 0 ? w[i] / total : 1 / members.length) })
      }
    }
    return { set: remix(set, rows, weights, undefined), diagnostics: { name, buckets } }
  })
}
