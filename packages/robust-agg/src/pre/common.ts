import { commonInit } from '../aggregator.js'
import { materialise, prepareInputs } from '../set.js'
import type { AggregateOptions, AggregationContext, CommonInit, PreAggregator, StageDiagnostics, VectorSet } from '../types.js'

/** Build a pre-aggregator from its set transformation */
export function makePreAggregator (
  name: string,
  init: CommonInit | undefined,
  transformSet: (set: VectorSet, context: AggregationContext) => { set: VectorSet, diagnostics: StageDiagnostics }
): PreAggregator {
  const { nonFinite, blockSize } = commonInit(name, init)
  return {
    name,
    transformSet,
    transform (inputs: readonly Float32Array[], options?: AggregateOptions) {
      const { set, context, dropped } = prepareInputs(name, inputs, options, nonFinite, blockSize)
      const out = transformSet(set, context)
      return {
        vectors: materialise(out.set, context.blockSize),
        weights: out.set.weights == null ? undefined : Array.from(out.set.weights),
        dropped: nonFinite === 'drop' ? dropped : undefined,
        diagnostics: out.diagnostics
      }
    }
  }
}

/** Labels of a set's virtual vectors (identity when it has none) */
export function labelsOf (set: VectorSet): readonly number[] {
  return set.labels ?? Array.from({ length: set.count }, (_, i) => i)
}
