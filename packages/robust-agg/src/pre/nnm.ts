import { checkF, effectiveF, requireCondition } from '../aggregator.js'
import { pairwiseSquaredDistances, remix, requireUniformWeights } from '../set.js'
import type { CommonInit, PreAggregator } from '../types.js'
import { labelsOf, makePreAggregator } from './common.js'

export interface NnmInit extends CommonInit {
  /** Number of Byzantine inputs to tolerate; requires f < n/2 (Allouah et al. 2023). */
  f: number
}

/**
 * Nearest-neighbour mixing (Allouah et al. 2023, "Fixing by mixing: a recipe for optimal Byzantine ML under
 * heterogeneity", AISTATS): every input is replaced by the average of its n − f nearest inputs (itself
 * included, ties by index). The n × n distance matrix comes from one blocked pass over d; the mixed vectors are
 * never materialised inside `compose()`, each block is mixed when the next stage reads it. `neighbours` in the
 * diagnostics lists, per input, the inputs it was averaged with.
 */
export function nnm (init: NnmInit): PreAggregator {
  const name = 'nnm'
  const f = checkF(name, init?.f, true) as number
  return makePreAggregator(name, init, (set, context) => {
    requireUniformWeights(name, set)
    const fe = effectiveF(name, f, context)
    const n = set.count
    requireCondition(2 * fe < n, `${name} requires f < n/2 (Allouah et al. 2023); got n = ${n}, f = ${fe}`)
    const D = pairwiseSquaredDistances(set, context.blockSize)
    const k = n - fe
    const labels = labelsOf(set)
    const neighbours: number[][] = []
    const rows = []
    for (let i = 0; i < n; i++) {
      const order = Array.from({ length: n }, (_, j) => j)
      // itself first (distance 0), then by distance, ties by index
      order.sort((a, b) => (a === i ? -1 : b === i ? 1 : D[i * n + a] - D[i * n + b] || a - b))
      const chosen = order.slice(0, k).sort((a, b) => a - b)
      neighbours.push(chosen.map(j => labels[j]))
      rows.push({ index: chosen, coef: chosen.map(() => 1 / k) })
    }
    return { set: remix(set, rows, undefined, set.labels), diagnostics: { name, neighbours } }
  })
}
