/**
 * Errors specific to `@neuroshard/robust-agg`. Bad options (negative f, empty input lists, unsupported weights)
 * raise `InvalidParametersError` from `@neuroshard/interface`; the errors below carry what went wrong with the
 * inputs themselves. Tests and callers branch on `err.name`.
 */

/**
 * A validity condition of the chosen method does not hold, e.g. Krum with n < 2f + 3. The message states the
 * condition, the paper it comes from and the values that broke it.
 */
export class ValidityConditionError extends Error {
  static override name = 'ValidityConditionError'
  override name = 'ValidityConditionError'
}

/**
 * One or more inputs contain NaN or ±Infinity and the aggregator's `nonFinite` policy is `'reject'` (or more
 * non-finite inputs were dropped than the `f` the method tolerates).
 */
export class NonFiniteInputError extends Error {
  static override name = 'NonFiniteInputError'
  override name = 'NonFiniteInputError'
  /** indices (into the caller's input list) of the offending inputs */
  readonly indices: number[]

  constructor (message: string, indices: number[]) {
    super(message)
    this.indices = indices
  }
}

/** Input vectors (or weights, or a stored centre) do not all have the same length */
export class LengthMismatchError extends Error {
  static override name = 'LengthMismatchError'
  override name = 'LengthMismatchError'
}
