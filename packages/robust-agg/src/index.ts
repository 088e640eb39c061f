/**
 * @packageDocumentation
 *
 * Byzantine-robust aggregation of pseudo-gradients (mean, coordinate-wise median, trimmed mean, Krum,
 * Multi-Krum, geometric median, CenteredClip; pre-aggregators NNM, bucketing, norm clipping; `compose()`),
 * with an attack suite. Pure TypeScript over Float32Array, blocked passes over d, Float64 accumulators.
 */

export * from './types.js'
export * from './errors.js'
export * from './constants.js'
export { mean, type MeanInit } from './aggregators/mean.js'
export { coordinateMedian, type CoordinateMedianInit, type EvenMedian } from './aggregators/median.js'
export { trimmedMean, type TrimmedMeanInit } from './aggregators/trimmed-mean.js'
export { krum, multiKrum, type KrumInit, type MultiKrumInit, type KrumNeighbours } from './aggregators/krum.js'
export { geometricMedian, type GeometricMedianInit } from './aggregators/geometric-median.js'
export { centeredClip, type CenteredClipInit, type CenteredClipAggregator, type CenteredClipStart } from './aggregators/centered-clip.js'
export { nnm, type NnmInit } from './pre/nnm.js'
export { bucketing, type BucketingInit } from './pre/bucketing.js'
export { normClip, type NormClipInit } from './pre/norm-clip.js'
export { compose } from './compose.js'
export { AggregationPool, createAggregationPool, isShared, sharedFloat32Array, toSharedFloat32Array, type AggregationPoolInit } from './pool.js'
export * from './attacks.js'
export { normalQuantile } from './stats.js'
export { createRng, createNormalRng } from './rng.js'
