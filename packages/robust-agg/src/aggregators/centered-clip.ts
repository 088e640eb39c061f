import { InvalidParametersError } from '@neuroshard/interface'
import { allFinite, checkF, effectiveF, makeAggregator, requireCondition } from '../aggregator.js'
import {
  DEFAULT_CENTERED_CLIP_ITERATIONS_PREVIOUS,
  DEFAULT_CENTERED_CLIP_MAX_ITERATIONS,
  DEFAULT_CENTERED_CLIP_TOLERANCE
} from '../constants.js'
import { LengthMismatchError, NonFiniteInputError } from '../errors.js'
import { medianStatistic, orderStatistic } from '../select.js'
import { normalisedWeights, isFiniteVector } from '../set.js'
import type { AggregationContext, AggregationResult, Aggregator, CommonInit, VectorSet } from '../types.js'
import { distancesTo, fusedPass } from './geometric-median.js'
import { float64Array, isShared } from '../pool.js'

/**
 * Where CenteredClip starts: `'previous'` is the centre this aggregator returned last round (Karimireddy, He &
 * Jaggi 2021 start from the previous momentum/aggregate); `'median'` the coordinate-wise median of this
 * round's inputs; `'mean'` their mean (not robust, for experiments); `'zero'` the origin.
 */
export type CenteredClipStart = 'previous' | 'median' | 'mean' | 'zero'

export interface CenteredClipInit extends CommonInit {
  /** Clipping radius τ (Karimireddy, He & Jaggi 2021, eq. CC); in the units of the inputs. Required. */
  tau: number
  /** @default 'previous' */
  start?: CenteredClipStart
  /** Start of the first round when `start` is `'previous'` (there is no previous centre yet). @default 'median' */
  firstStart?: Exclude<CenteredClipStart, 'previous'>
  /**
   * Iteration cap L. Defaults to 1 with start `'previous'` (the paper's setting, Section 5) and 100 otherwise.
   */
  maxIterations?: number
  /** Stop when one step moves the centre by at most `tolerance × τ`. 0 runs every iteration. @default 1e-6 */
  tolerance?: number
  /** Optional number of Byzantine inputs; when given, f < n/2 is enforced. */
  f?: number
}

/** CenteredClip with its cross-round state */
export interface CenteredClipAggregator extends Aggregator {
  /** The centre the next `'previous'` start will use (a copy), or undefined before the first round */
  readonly centre: Float32Array | undefined
  /** Set the centre the next `'previous'` start uses (e.g. restored from a checkpoint) */
  setCentre(centre: Float32Array | undefined): void
}

/**
 * CenteredClip (Karimireddy, He & Jaggi 2021, "Learning from history for Byzantine robust optimization", ICML):
 * v ← v + Σ αᵢ (xᵢ − v) · min(1, τ / ‖xᵢ − v‖), repeated up to `maxIterations` times or until a step is below
 * `tolerance × τ`. Each iteration is one blocked pass over d (the new centre and its distances to every input
 * are formed together). `clipped` lists the inputs clipped in the last iteration; `scores` are the final
 * distances ‖xᵢ − v‖.
 */
export function centeredClip (init: CenteredClipInit): CenteredClipAggregator {
  const name = 'centered-clip'
  const tau = init?.tau
  if (typeof tau !== 'number' || !Number.isFinite(tau) || tau <= 0) {
    throw new InvalidParametersError(`${name}: tau must be a positive finite number, got ${String(tau)}`)
  }
  const start = init.start ?? 'previous'
  const firstStart = init.firstStart ?? 'median'
  const starts = ['previous', 'median', 'mean', 'zero']
  if (!starts.includes(start) || (firstStart as string) === 'previous' || !starts.includes(firstStart)) {
    throw new InvalidParametersError(`${name}: start must be one of ${starts.join(', ')} (firstStart not 'previous')`)
  }
  const maxIterations = init.maxIterations ?? (start === 'previous' ? DEFAULT_CENTERED_CLIP_ITERATIONS_PREVIOUS : DEFAULT_CENTERED_CLIP_MAX_ITERATIONS)
  if (!Number.isInteger(maxIterations) || maxIterations < 0) {
    throw new InvalidParametersError(`${name}: maxIterations must be a non-negative integer, got ${maxIterations}`)
  }
  const tolerance = init.tolerance ?? DEFAULT_CENTERED_CLIP_TOLERANCE
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new InvalidParametersError(`${name}: tolerance must be a non-negative finite number, got ${tolerance}`)
  }
  const f = checkF(name, init.f, false)
  // the stored centre, Float32-exact values kept in the Float64 buffer the next 'previous' round iterates in
  // place (no allocation, no copy of d values per round)
  let previous: Float64Array | undefined
  const median = medianStatistic('mean-of-middle')

  const run = (set: VectorSet, context: AggregationContext, verify: boolean): AggregationResult | undefined => {
    if (f != null) {
      const fe = effectiveF(name, f, context)
      requireCondition(2 * fe < set.count, `${name} requires f < n/2; got n = ${set.count}, f = ${fe}`)
    }
    const n = set.count
    const alpha = normalisedWeights(set)
    let from: CenteredClipStart = start
    if (from === 'previous') {
      if (previous == null) from = firstStart
      else if (previous.length !== set.d) {
        throw new LengthMismatchError(`${name}: the previous centre has length ${previous.length}, the inputs ${set.d}`)
      }
    }
    const pool = context.pool
    const shared = pool?.usable(set) === true
    let v: Float64Array
    if (from === 'previous') {
      v = previous as Float64Array
      // worker threads update the centre in place: move it to shared memory once (later rounds reuse it)
      if (shared && !isShared(v)) {
        v = float64Array(set.d, true)
        v.set(previous as Float64Array)
      }
    } else {
      v = float64Array(set.d, shared)
    }
    let dist2: Float64Array
    if (from === 'mean') {
      dist2 = new Float64Array(n)
      fusedPass(set, context.blockSize, v, alpha, 1, dist2, 'absolute', pool)
    } else {
      if (from === 'median') v.set(orderStatistic(set, context.blockSize, median, pool))
      dist2 = distancesTo(set, context.blockSize, v, pool)
    }
    // unchecked inputs: every ‖xᵢ − v‖² is finite iff every input and the start v are (no state touched yet)
    if (verify && !allFinite(dist2)) return undefined
    let iterations = 0
    let converged = maxIterations === 0
    let clipped: number[] = []
    const c = new Float64Array(n)
    while (iterations < maxIterations) {
      clipped = []
      for (let i = 0; i < n; i++) {
        const di = Math.sqrt(dist2[i])
        if (di > tau) clipped.push(i)
        c[i] = alpha[i] * (di > tau ? tau / di : 1)
      }
      dist2.fill(0)
      const step2 = fusedPass(set, context.blockSize, v, c, 1, dist2, 'relative', pool)
      iterations++
      if (tolerance > 0 && Math.sqrt(step2) <= tolerance * tau) {
        converged = true
        break
      }
    }
    // the output, and v rounded to it in place: the next 'previous' round starts from exactly these values
    const value = new Float32Array(set.d)
    for (let t = 0; t < value.length; t++) {
      value[t] = v[t]
      v[t] = value[t]
    }
    previous = v
    const labels = set.labels
    return {
      value,
      clipped: labels == null ? clipped : clipped.map(i => labels[i]),
      scores: Array.from(dist2, Math.sqrt),
      iterations,
      converged
    }
  }
  // the first pass proves the inputs finite, so the separate non-finite check pass is skipped when they are
  const agg = makeAggregator(name, init, (set, context) => run(set, context, false) as AggregationResult, (set, context) => run(set, context, true))
  return {
    ...agg,
    get centre () { return previous == null ? undefined : Float32Array.from(previous) },
    setCentre (centre: Float32Array | undefined): void {
      if (centre != null && (!(centre instanceof Float32Array) || !isFiniteVector(centre))) {
        throw new NonFiniteInputError(`${name}: the centre must be a finite Float32Array`, [])
      }
      if (centre == null) {
        previous = undefined
      } else {
        // straight into shared memory when a pool may run the next round
        previous = float64Array(centre.length, init.pool != null)
        previous.set(centre)
      }
    }
  }
}
