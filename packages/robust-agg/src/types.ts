/**
 * The uniform interface shared by every aggregator and pre-aggregator.
 */
import type { AggregationPool } from './pool.js'

/** What to do with inputs containing NaN or ±Infinity */
export type NonFinitePolicy = 'reject' | 'drop'

/** Per-call options */
export interface AggregateOptions {
  /**
   * Non-negative finite weight per input (for example the number of samples behind each pseudo-gradient).
   * Aggregators that have no weighted form (coordinate median, trimmed mean, Krum, NNM) reject non-uniform
   * weights with `InvalidParametersError`.
   */
  weights?: ArrayLike<number>
  /** Overrides the aggregator's block size for this call (results do not depend on it) */
  blockSize?: number
}

/** Options every aggregator factory accepts */
export interface CommonInit {
  /**
   * `'reject'` throws `NonFiniteInputError` naming the inputs; `'drop'` treats them as Byzantine, removes them
   * and reports them in `dropped` (each dropped input counts against the aggregator's `f`).
   *
   * @default 'reject'
   */
  nonFinite?: NonFinitePolicy
  /**
   * Coordinates per block for the passes over d.
   *
   * @default 2048
   */
  blockSize?: number
  /**
   * Worker threads for the passes over d (`createAggregationPool`). Used by the coordinate median, the trimmed
   * mean, the geometric median and CenteredClip when every input is in shared memory and d ≥ the pool's
   * `minLength`; otherwise, and by the other methods, ignored. Results are bit-for-bit the same either way.
   */
  pool?: AggregationPool
}

/** Diagnostics of one pre-aggregation stage inside `compose()` */
export interface StageDiagnostics {
  name: string
  /** inputs whose vector was scaled down (norm clipping) */
  clipped?: number[]
  /** one score per input (norm clipping: the norm before clipping) */
  scores?: number[]
  /** NNM: for every input, the (original) indices of the neighbours it was averaged with */
  neighbours?: number[][]
  /** bucketing: the (original) input indices in each bucket */
  buckets?: number[][]
}

/** What an aggregator returns */
export interface AggregationResult {
  /** the aggregate, as long as every input */
  value: Float32Array
  /**
   * Inputs that were selected (Krum, Multi-Krum). Indices are the caller's input indices; after bucketing inside
   * `compose()` they are bucket indices (see `stages`).
   */
  selected?: number[]
  /** Inputs clipped in the last iteration (CenteredClip) or by norm clipping */
  clipped?: number[]
  /**
   * One score per aggregated vector: Krum scores (sum of squared distances to the nearest neighbours),
   * distances to the output (geometric median, CenteredClip). Indexed like the vectors that were aggregated:
   * the inputs in order with the `dropped` ones left out (bucket order after bucketing).
   */
  scores?: number[]
  /** Inputs removed because they contained NaN or ±Infinity (policy `'drop'`) */
  dropped?: number[]
  /** Iterations run (geometric median, CenteredClip) */
  iterations?: number
  /** Whether an iterative method reached its tolerance before its iteration cap */
  converged?: boolean
  /** Diagnostics of the pre-aggregation stages, in order (only from `compose()`) */
  stages?: StageDiagnostics[]
}

/**
 * A set of virtual vectors: each is a sparse linear combination of the validated base inputs. Pre-aggregators
 * (NNM, bucketing, norm clipping) only build new combinations, so `compose(nnm, trimmedMean)` never
 * materialises n × d intermediate vectors: each block of a virtual vector is formed when it is needed.
 */
export interface VectorSet {
  /** validated base vectors, all of length `d` */
  readonly base: readonly Float32Array[]
  readonly d: number
  /** number of virtual vectors */
  readonly count: number
  /** mixing rows over `base`; absent means virtual vector i is `base[i]` */
  readonly mix?: readonly SparseRow[]
  /** per virtual vector weight; absent means uniform */
  readonly weights?: Float64Array
  /** the caller's input index each virtual vector stands for, when there is one */
  readonly labels?: readonly number[]
}

/** A sparse row of mixing coefficients */
export interface SparseRow {
  readonly index: Int32Array
  readonly coef: Float64Array
}

/** The state a composed pipeline passes down to each stage */
export interface AggregationContext {
  blockSize: number
  /** worker threads, when the aggregator was given a pool */
  pool?: AggregationPool
  /** number of inputs dropped as non-finite (they count against f) */
  dropped: number
}

/** An aggregator: n vectors in, one vector out */
export interface Aggregator {
  readonly name: string
  /** Validate `inputs` (lengths, non-finite values, weights) and aggregate them */
  aggregate(inputs: readonly Float32Array[], options?: AggregateOptions): AggregationResult
  /** Aggregate an already-validated set of virtual vectors (used by `compose()`) */
  aggregateSet(set: VectorSet, context: AggregationContext): AggregationResult
}

/** A pre-aggregator: n vectors in, a new set of vectors out */
export interface PreAggregator {
  readonly name: string
  /** Transform an already-validated set (used by `compose()`) */
  transformSet(set: VectorSet, context: AggregationContext): { set: VectorSet, diagnostics: StageDiagnostics }
  /**
   * Validate `inputs` and return the transformed vectors, materialised (this allocates the output vectors; inside
   * `compose()` nothing is materialised).
   */
  transform(inputs: readonly Float32Array[], options?: AggregateOptions): { vectors: Float32Array[], weights?: number[], dropped?: number[], diagnostics: StageDiagnostics }
}
