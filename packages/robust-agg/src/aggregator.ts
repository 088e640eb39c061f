/**
 * Shared plumbing: turns an `aggregateSet` implementation into a full `Aggregator` (validation of inputs,
 * non-finite policy, reporting of dropped inputs in the caller's indices).
 */
import { InvalidParametersError } from '@neuroshard/interface'
import { DEFAULT_NON_FINITE } from './constants.js'
import { NonFiniteInputError, ValidityConditionError } from './errors.js'
import { prepareInputs } from './set.js'
import type { AggregationPool } from './pool.js'
import type { AggregateOptions, AggregationContext, AggregationResult, Aggregator, CommonInit, NonFinitePolicy, VectorSet } from './types.js'

/** Validate the common init fields */
export function commonInit (name: string, init: CommonInit | undefined): { nonFinite: NonFinitePolicy, blockSize: number | undefined, pool: AggregationPool | undefined } {
  const nonFinite = init?.nonFinite ?? DEFAULT_NON_FINITE
  if (nonFinite !== 'reject' && nonFinite !== 'drop') {
    throw new InvalidParametersError(`${name}: nonFinite must be 'reject' or 'drop', got ${String(nonFinite)}`)
  }
  const blockSize = init?.blockSize
  if (blockSize != null && (!Number.isInteger(blockSize) || blockSize < 1)) {
    throw new InvalidParametersError(`${name}: blockSize must be a positive integer, got ${blockSize}`)
  }
  const pool = init?.pool
  if (pool != null && typeof (pool as Partial<AggregationPool>).usable !== 'function') {
    throw new InvalidParametersError(`${name}: pool must come from createAggregationPool()`)
  }
  return { nonFinite, blockSize, pool }
}

/**
 * Build an aggregator from its set implementation.
 *
 * `optimistic`, when given, is tried first on the inputs *without* the separate non-finite check pass: it must
 * run the same computation as `aggregateSet` and return its result only if its own first pass proved every
 * input finite (e.g. every per-input Float64 distance sum is finite, which holds iff every input and the
 * reference point are), else `undefined` without side effects. Then (or if it throws) the ordinary path runs:
 * check, drop or reject, aggregate. Results and errors are the same either way; the common all-finite call
 * saves one read of the n × d inputs.
 */
export function makeAggregator (
  name: string,
  init: CommonInit | undefined,
  aggregateSet: (set: VectorSet, context: AggregationContext) => AggregationResult,
  optimistic?: (set: VectorSet, context: AggregationContext) => AggregationResult | undefined
): Aggregator {
  const { nonFinite, blockSize, pool } = commonInit(name, init)
  return {
    name,
    aggregateSet,
    aggregate (inputs: readonly Float32Array[], options?: AggregateOptions): AggregationResult {
      if (optimistic != null) {
        let fast: AggregationResult | undefined
        try {
          const unchecked = prepareInputs(name, inputs, options, nonFinite, blockSize, false)
          fast = optimistic(unchecked.set, { ...unchecked.context, pool })
        } catch {
          // a validity condition or similar: let the ordinary path (check first) raise the error it raises
          fast = undefined
        }
        if (fast != null) {
          if (nonFinite === 'drop') fast.dropped = []
          return fast
        }
      }
      const { set, context, dropped } = prepareInputs(name, inputs, options, nonFinite, blockSize)
      const result = aggregateSet(set, { ...context, pool })
      if (nonFinite === 'drop') result.dropped = dropped
      return result
    }
  }
}

/** Whether every per-input Float64 sum is finite (so every input was, see `makeAggregator`'s `optimistic`) */
export function allFinite (sums: ArrayLike<number>): boolean {
  let acc = 0
  for (let i = 0; i < sums.length; i++) acc += sums[i] * 0
  return acc === 0
}

/** Validate a Byzantine count f given at construction */
export function checkF (name: string, f: number | undefined, required: boolean): number | undefined {
  if (f == null) {
    if (required) throw new InvalidParametersError(`${name}: f (the number of Byzantine inputs to tolerate) is required`)
    return undefined
  }
  if (!Number.isInteger(f) || f < 0) {
    throw new InvalidParametersError(`${name}: f must be a non-negative integer, got ${f}`)
  }
  return f
}

/**
 * The f that still applies after `dropped` inputs were removed as non-finite: they were Byzantine, so at most
 * f − dropped Byzantine inputs remain among the others. More dropped inputs than f breaks the method's
 * assumption.
 */
export function effectiveF (name: string, f: number, context: AggregationContext): number {
  if (context.dropped > f) {
    throw new NonFiniteInputError(`${name}: ${context.dropped} inputs were dropped as non-finite, more than f = ${f}`, [])
  }
  return f - context.dropped
}

/** Throw a ValidityConditionError unless `ok` */
export function requireCondition (ok: boolean, message: string): void {
  if (!ok) throw new ValidityConditionError(message)
}
