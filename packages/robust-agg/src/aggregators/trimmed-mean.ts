import { checkF, effectiveF, makeAggregator, requireCondition } from '../aggregator.js'
import { orderStatistic, trimmedMeanStatistic } from '../select.js'
import { requireUniformWeights } from '../set.js'
import type { Aggregator, CommonInit } from '../types.js'

export interface TrimmedMeanInit extends CommonInit {
  /**
   * How many values to remove at each end of every coordinate. Yin et al. 2018 trim a fraction β of the n
   * values at each end; here f = βn is given as a count. Requires f < n/2.
   */
  f: number
}

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, remove the f largest and f smallest values and
 * average the n − 2f left. Dropped non-finite inputs count against f, so the trim shrinks by the number dropped.
 */
export function trimmedMean (init: TrimmedMeanInit): Aggregator {
  const name = 'trimmed-mean'
  const f = checkF(name, init?.f, true) as number
  return makeAggregator(name, init, (set, context) => {
    requireUniformWeights(name, set)
    const fe = effectiveF(name, f, context)
    requireCondition(2 * fe < set.count, `${name} requires f < n/2 (Yin et al. 2018); got n = ${set.count}, f = ${fe}`)
    return { value: orderStatistic(set, context.blockSize, trimmedMeanStatistic(fe), context.pool) }
  })
}
