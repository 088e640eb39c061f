import { InvalidParametersError } from '@neuroshard/interface'
import { checkF, effectiveF, makeAggregator, requireCondition } from '../aggregator.js'
import { DEFAULT_EVEN_MEDIAN } from '../constants.js'
import { medianStatistic, orderStatistic } from '../select.js'
import type { EvenMedian } from '../select.js'
import { requireUniformWeights } from '../set.js'
import type { Aggregator, CommonInit } from '../types.js'

export type { EvenMedian }

export interface CoordinateMedianInit extends CommonInit {
  /**
   * The median of an even count m: `'mean-of-middle'` averages the two middle values (Yin et al. 2018,
   * "Byzantine-robust distributed learning: towards optimal statistical rates", ICML, use the usual statistical
   * median); `'lower'` / `'upper'` return the lower / upper middle value (a value some input actually sent).
   *
   * @default 'mean-of-middle'
   */
  evenMedian?: EvenMedian
  /**
   * The number of Byzantine inputs to tolerate. Optional: when given, the validity condition f < n/2 (Yin et al.
   * 2018) is enforced on every call.
   */
  f?: number
}

/**
 * Coordinate-wise median (Yin et al. 2018). Per coordinate the output lies between the smallest and the largest
 * honest value whenever fewer than half of the inputs are Byzantine.
 */
export function coordinateMedian (init?: CoordinateMedianInit): Aggregator {
  const name = 'coordinate-median'
  const even = init?.evenMedian ?? DEFAULT_EVEN_MEDIAN
  if (even !== 'mean-of-middle' && even !== 'lower' && even !== 'upper') {
    throw new InvalidParametersError(`${name}: evenMedian must be 'mean-of-middle', 'lower' or 'upper', got ${String(even)}`)
  }
  const f = checkF(name, init?.f, false)
  const stat = medianStatistic(even)
  return makeAggregator(name, init, (set, context) => {
    requireUniformWeights(name, set)
    if (f != null) {
      const fe = effectiveF(name, f, context)
      requireCondition(2 * fe < set.count, `${name} requires f < n/2 (Yin et al. 2018); got n = ${set.count}, f = ${fe}`)
    }
    return { value: orderStatistic(set, context.blockSize, stat, context.pool) }
  })
}
