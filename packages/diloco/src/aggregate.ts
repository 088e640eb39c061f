/**
 * Robust aggregation of a round's pseudo-gradients through `@neuroshard/robust-agg`, and the accept/reject
 * outcome per sender that the round record keeps (specs/diloco §7).
 */

import { InvalidParametersError } from '@neuroshard/interface'
import { compose, coordinateMedian, geometricMedian, mean, multiKrum, nnm, trimmedMean } from '@neuroshard/robust-agg'
import { DEFAULT_REJECT_FACTOR } from './constants.js'
import type { Aggregator } from '@neuroshard/robust-agg'

/** Named aggregators; each is built for a round of n inputs from a group of m ≥ n members with f = ⌊(m − 1)/3⌋ assumed Byzantine */
export type AggregatorName = 'mean' | 'median' | 'trimmed-mean' | 'geometric-median' | 'nnm-trimmed-mean' | 'multi-krum'

/** A named aggregator or a factory `(n) => Aggregator` for a round with n inputs */
export type AggregatorChoice = AggregatorName | ((n: number) => Aggregator)

export const AGGREGATOR_NAMES: readonly AggregatorName[] = ['mean', 'median', 'trimmed-mean', 'geometric-median', 'nnm-trimmed-mean', 'multi-krum']

/** Byzantine inputs a round of n tolerates by default: ⌊(n − 1)/3⌋ */
export function byzantineBound (n: number): number {
  return Math.max(0, Math.floor((n - 1) / 3))
}

/**
 * Fewest inputs a round may aggregate when the group must survive f Byzantine members (specs/diloco §7): 2f + 1,
 * so that honest inputs are a majority and the aggregate stays robust; the plain mean claims no robustness: 1
 */
export function minRoundInputs (choice: AggregatorChoice, f: number): number {
  return choice === 'mean' ? 1 : 2 * f + 1
}

/**
 * The aggregator of a choice for n inputs of a group of `members` (default n): f = ⌊(members − 1)/3⌋, so a
 * round that aggregates fewer inputs than the group has still trims as many as the group may hold Byzantine.
 *
 * @throws InvalidParametersError when n < minRoundInputs(choice, f)
 */
export function aggregatorFor (choice: AggregatorChoice, n: number, members = n): Aggregator {
  if (typeof choice === 'function') return choice(n)
  const f = byzantineBound(Math.max(n, members))
  if (n < minRoundInputs(choice, f)) throw new InvalidParametersError(`${n} inputs cannot be aggregated robustly with f = ${f} (at least ${minRoundInputs(choice, f)})`)
  switch (choice) {
    case 'mean': return mean()
    case 'median': return coordinateMedian()
    case 'trimmed-mean': return f === 0 ? mean() : trimmedMean({ f })
    case 'geometric-median': return geometricMedian({ maxIterations: 50 })
    case 'nnm-trimmed-mean': return f === 0 ? mean() : compose(nnm({ f }), trimmedMean({ f }))
    case 'multi-krum': {
      // Multi-Krum needs n ≥ 2f + 3; below that the trimmed mean with the same f (the mean when f = 0)
      if (n < 2 * f + 3) return f === 0 ? mean() : trimmedMean({ f })
      return multiKrum({ f })
    }
    default: throw new InvalidParametersError(`unknown aggregator ${String(choice)}`)
  }
}

export interface RoundAggregate {
  value: Float32Array
  /** Per input (same order): did the aggregation accept it */
  accepted: boolean[]
  /** ‖xᵢ − value‖ per input */
  distances: number[]
  aggregator: string
}

/**
 * Aggregates and decides acceptance per input: inputs an aggregator selects (Krum family) are accepted and
 * the rest rejected; with the plain mean every input is accepted (it used them all); otherwise an input is
 * rejected when its distance to the aggregate is over `rejectFactor` × the median distance.
 */
export function aggregateRound (inputs: Float32Array[], choice: AggregatorChoice, rejectFactor = DEFAULT_REJECT_FACTOR, members = inputs.length): RoundAggregate {
  if (inputs.length === 0) throw new InvalidParametersError('no pseudo-gradients to aggregate')
  const agg = aggregatorFor(choice, inputs.length, members)
  const result = agg.aggregate(inputs)
  const value = result.value
  const distances = inputs.map(x => {
    let s = 0
    for (let i = 0; i < x.length; i++) { const d = x[i] - value[i]; s += d * d }
    return Math.sqrt(s)
  })
  let accepted: boolean[]
  if (result.selected !== undefined) {
    const sel = new Set(result.selected)
    accepted = inputs.map((_, i) => sel.has(i))
  } else if (agg.name === 'mean') {
    accepted = inputs.map(() => true)
  } else {
    const sorted = [...distances].sort((a, b) => a - b)
    const mid = sorted.length >> 1
    const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    accepted = distances.map(d => d <= rejectFactor * median)
  }
  return { value: value instanceof Float32Array ? Float32Array.from(value) : value, accepted, distances, aggregator: agg.name }
}
