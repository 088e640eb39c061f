/**
 * Shared plumbing: turns an `aggregateSet` implementation into a full `Aggregator` (validation of inputs,
 * non-finite policy, reporting of dropped inputs in the caller's indices).
 */
import { InvalidParametersError } from '@neuroshard/interface'
import { DEFAULT_NON_FINITE } from './constants.js'
import { NonFiniteInputError, ValidityConditionError } from './errors.js'
import { prepareInputs } from './set.js'
import type { AggregateOptions, AggregationContext, AggregationResult, Aggregator, CommonInit, NonFinitePolicy, VectorSet } from './types.js'

/** Validate the common init fields */
export function commonInit (name: string, init: CommonInit | undefined): { nonFinite: NonFinitePolicy, blockSize: number | undefined } {
  const nonFinite = init?.nonFinite ?? DEFAULT_NON_FINITE
  if (nonFinite !== 'reject' && nonFinite !== 'drop') {
    throw new InvalidParametersError(`${name}: nonFinite must be 'reject' or 'drop', got ${String(nonFinite)}`)
  }
  const blockSize = init?.blockSize
  if (blockSize != null && (!Number.isInteger(blockSize) || blockSize < 1)) {
    throw new InvalidParametersError(`${name}: blockSize must be a positive integer, got ${blockSize}`)
  }
  return { nonFinite, blockSize }
}

/** Build an aggregator from its set implementation */
export function makeAggregator (
  name: string,
  init: CommonInit | undefined,
  aggregateSet: (set: VectorSet, context: AggregationContext) => AggregationResult
): Aggregator {
  const { nonFinite, blockSize } = commonInit(name, init)
  return {
    name,
    aggregateSet,
    aggregate (inputs: readonly Float32Array[], options?: AggregateOptions): AggregationResult {
      const { set, context, dropped } = prepareInputs(name, inputs, options, nonFinite, blockSize)
      const result = aggregateSet(set, context)
      if (nonFinite === 'drop') result.dropped = dropped
      return result
    }
  }
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
