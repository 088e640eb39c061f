import { InvalidParametersError } from '@neuroshard/interface'
import { allFinite, checkF, effectiveF, makeAggregator, requireCondition } from '../aggregator.js'
import { DEFAULT_WEISZFELD_MAX_ITERATIONS, DEFAULT_WEISZFELD_NU, DEFAULT_WEISZFELD_TOLERANCE } from '../constants.js'
import { REDUCE_CHUNK } from '../constants.js'
import { float64Array, isShared, runRanges, wireSet } from '../pool.js'
import type { AggregationPool, WireSet } from '../pool.js'
import { BlockReader, normalisedWeights } from '../set.js'
import type { Row } from '../set.js'
import type { AggregationContext, AggregationResult, Aggregator, CommonInit, VectorSet } from '../types.js'

export interface GeometricMedianInit extends CommonInit {
  /**
   * Smoothing ν (Pillutla et al. 2019, Algorithm 3): the weight of input i is αᵢ / max(ν, ‖z − xᵢ‖), which
   * keeps the iteration defined when z lands on an input. A large ν (above every distance) turns the
   * iteration into the weighted mean.
   *
   * @default 1e-6
   */
  nu?: number
  /** Iteration cap; 0 returns the start point (the weighted mean). @default 100 */
  maxIterations?: number
  /**
   * Stop when a step moves z by at most `tolerance × max(ν, median ‖z − xᵢ‖)`. The scale is the median distance
   * so that one huge Byzantine input cannot make the test pass early (a test on the relative decrease of the
   * objective stops after one step when an input is 1e30 away: the honest part of
   * the objective is below its rounding error). 0 runs every iteration. @default 1e-6
   */
  tolerance?: number
  /** Optional number of Byzantine inputs; when given, f < n/2 (the breakdown point) is enforced. */
  f?: number
}

function positiveFinite (name: string, key: string, v: number, allowZero: boolean): number {
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidParametersError(`${name}: ${key} must be a ${allowZero ? 'non-negative' : 'positive'} finite number, got ${v}`)
  }
  return v
}

/**
 * Geometric median by the smoothed Weiszfeld algorithm (RFA, Pillutla, Kakade & Harchaoui 2019): start from
 * the weighted mean, then repeat z ← Σ βᵢxᵢ / Σ βᵢ with βᵢ = αᵢ / max(ν, ‖z − xᵢ‖). Each iteration is a single
 * blocked pass over d that forms the new z and, in the same pass, its distances to every input; so k iterations
 * cost k + 1 passes. `scores` are the final distances ‖z − xᵢ‖.
 */
export function geometricMedian (init?: GeometricMedianInit): Aggregator {
  const name = 'geometric-median'
  const nu = positiveFinite(name, 'nu', init?.nu ?? DEFAULT_WEISZFELD_NU, false)
  const maxIterations = init?.maxIterations ?? DEFAULT_WEISZFELD_MAX_ITERATIONS
  if (!Number.isInteger(maxIterations) || maxIterations < 0) {
    throw new InvalidParametersError(`${name}: maxIterations must be a non-negative integer, got ${maxIterations}`)
  }
  const tolerance = positiveFinite(name, 'tolerance', init?.tolerance ?? DEFAULT_WEISZFELD_TOLERANCE, true)
  const f = checkF(name, init?.f, false)
  const run = (set: VectorSet, context: AggregationContext, verify: boolean): AggregationResult | undefined => {
    if (f != null) {
      const fe = effectiveF(name, f, context)
      requireCondition(2 * fe < set.count, `${name} requires f < n/2 (breakdown point 1/2, Pillutla et al. 2019); got n = ${set.count}, f = ${fe}`)
    }
    const alpha = normalisedWeights(set)
    const n = set.count
    const pool = context.pool
    const z = float64Array(set.d, pool?.usable(set) === true)
    const dist2 = new Float64Array(n)
    // pass 0: the weighted mean and the distances to it
    fusedPass(set, context.blockSize, z, alpha, 1, dist2, 'absolute', pool)
    // unchecked inputs: every ‖xᵢ − z‖² is finite iff every input (and so z) is
    if (verify && !allFinite(dist2)) return undefined
    let iterations = 0
    let converged = maxIterations === 0
    const beta = new Float64Array(n)
    while (iterations < maxIterations) {
      let total = 0
      for (let i = 0; i < n; i++) {
        beta[i] = alpha[i] / Math.max(nu, Math.sqrt(dist2[i]))
        total += beta[i]
      }
      dist2.fill(0)
      const step2 = fusedPass(set, context.blockSize, z, beta, total, dist2, 'absolute', pool)
      iterations++
      if (tolerance > 0 && Math.sqrt(step2) <= tolerance * Math.max(nu, medianDistance(dist2))) {
        converged = true
        break
      }
    }
    return {
      value: Float32Array.from(z),
      scores: Array.from(dist2, Math.sqrt),
      iterations,
      converged
    }
  }
  // the first pass proves the inputs finite, so the separate non-finite check pass is skipped when they are
  return makeAggregator(name, init, (set, context) => run(set, context, false) as AggregationResult, (set, context) => run(set, context, true))
}

/** The median of the distances ‖z − xᵢ‖: a scale that a Byzantine minority cannot inflate */
function medianDistance (dist2: Float64Array): number {
  const sorted = Float64Array.from(dist2).sort()
  const n = sorted.length
  return Math.sqrt((n & 1) === 1 ? sorted[n >> 1] : (sorted[(n >> 1) - 1] + sorted[n >> 1]) / 2)
}

/** What a pass over d does: form z from the inputs (`absolute`), move z towards them (`relative`), or neither */
export type PassMode = 'absolute' | 'relative' | 'distances'

/** A worker job: {@link passRange} over [lo, hi) */
export interface PassJob {
  op: 'pass'
  set: WireSet
  blockSize: number
  z: Float64Array
  c: Float64Array
  total: number
  mode: PassMode
  lo: number
  hi: number
  partials: Float64Array
}

/**
 * One pass over d: z ← Σ cᵢ xᵢ / total per coordinate (`absolute`; with `relative` z ← z + Σ cᵢ (xᵢ − z) / total;
 * with `distances` z stays), then dist2ᵢ += ‖xᵢ − z‖² over the block just formed. Returns ‖z_new − z_old‖².
 * With a usable `pool` the coordinates are split across its threads (z must then be in shared memory, see
 * `float64Array`); the sums are formed per `REDUCE_CHUNK` and added in chunk order, so the result is the same.
 */
export function fusedPass (set: VectorSet, blockSize: number, z: Float64Array, c: Float64Array, total: number, dist2: Float64Array, mode: PassMode, pool?: AggregationPool): number {
  const n = set.count
  const chunks = Math.ceil(set.d / REDUCE_CHUNK)
  const parallel = pool?.usable(set) === true && isShared(z)
  const partials = float64Array(chunks * (n + 1), parallel)
  runRanges(parallel ? pool : undefined, set,
    (lo, hi): PassJob => ({ op: 'pass', set: wireSet(set), blockSize, z, c, total, mode, lo, hi, partials }),
    (lo, hi) => { passRange(set, blockSize, z, c, total, mode, lo, hi, partials) })
  let step2 = 0
  for (let k = 0; k < chunks; k++) {
    const o = k * (n + 1)
    for (let i = 0; i < n; i++) dist2[i] += partials[o + i]
    step2 += partials[o + n]
  }
  return step2
}

/**
 * {@link fusedPass} over coordinates [lo, hi) (lo a multiple of `REDUCE_CHUNK`): writes each chunk k's n distance
 * sums and its step sum to `partials[k(n + 1) ..]`.
 */
export function passRange (set: VectorSet, blockSize: number, z: Float64Array, c: Float64Array, total: number, mode: PassMode, lo: number, hi: number, partials: Float64Array): void {
  const reader = new BlockReader(set, blockSize)
  const B = reader.blockSize
  const n = set.count
  const rows = reader.rows
  const acc = new Float64Array(B)
  const relative = mode === 'relative'
  const dist2 = new Float64Array(n)
  for (let cs = lo; cs < hi; cs += REDUCE_CHUNK) {
    const ce = Math.min(hi, cs + REDUCE_CHUNK)
    dist2.fill(0)
    let step2 = 0
    for (let s = cs; s < ce; s += B) {
      const e = Math.min(ce, s + B)
      const len = e - s
      reader.load(s, e)
      if (mode !== 'distances') step2 += updateBlock(rows, n, c, total, relative, z, s, len, acc)
      accumulateDistances(rows, n, z, s, len, dist2)
    }
    const o = (cs / REDUCE_CHUNK) * (n + 1)
    partials.set(dist2, o)
    partials[o + n] = step2
  }
}

/** The z update of one block; returns its Σ (z_new − z_old)² */
function updateBlock (rows: Row[], n: number, c: Float64Array, total: number, relative: boolean, z: Float64Array, s: number, len: number, acc: Float64Array): number {
  let step2 = 0
  acc.fill(0, 0, len)
  // four inputs per sweep over the block: a quarter of the accumulator traffic
  let i = 0
  for (; i + 3 < n; i += 4) {
    const r0 = rows[i]
    const r1 = rows[i + 1]
    const r2 = rows[i + 2]
    const r3 = rows[i + 3]
    const c0 = c[i]
    const c1 = c[i + 1]
    const c2 = c[i + 2]
    const c3 = c[i + 3]
    if (relative) {
      for (let t = 0; t < len; t++) {
        const zt = z[s + t]
        acc[t] += c0 * (r0[t] - zt) + c1 * (r1[t] - zt) + c2 * (r2[t] - zt) + c3 * (r3[t] - zt)
      }
    } else {
      for (let t = 0; t < len; t++) acc[t] += c0 * r0[t] + c1 * r1[t] + c2 * r2[t] + c3 * r3[t]
    }
  }
  for (; i < n; i++) {
    const ci = c[i]
    const row = rows[i]
    if (relative) {
      for (let t = 0; t < len; t++) acc[t] += ci * (row[t] - z[s + t])
    } else {
      for (let t = 0; t < len; t++) acc[t] += ci * row[t]
    }
  }
  if (relative) {
    for (let t = 0; t < len; t++) {
      const delta = acc[t] / total
      step2 += delta * delta
      z[s + t] += delta
    }
  } else {
    for (let t = 0; t < len; t++) {
      const v = acc[t] / total
      const delta = v - z[s + t]
      step2 += delta * delta
      z[s + t] = v
    }
  }
  return step2
}

/**
 * dist2ᵢ += Σ_t (rowᵢ[t] − z[s + t])² over one block, four inputs per sweep (each input's sum still runs in
 * coordinate order, so the result does not depend on the block size)
 */
function accumulateDistances (rows: Row[], n: number, z: Float64Array, s: number, len: number, dist2: Float64Array): void {
  let i = 0
  for (; i + 3 < n; i += 4) {
    const r0 = rows[i]
    const r1 = rows[i + 1]
    const r2 = rows[i + 2]
    const r3 = rows[i + 3]
    let a0 = dist2[i]
    let a1 = dist2[i + 1]
    let a2 = dist2[i + 2]
    let a3 = dist2[i + 3]
    for (let t = 0; t < len; t++) {
      const zt = z[s + t]
      const q0 = r0[t] - zt
      const q1 = r1[t] - zt
      const q2 = r2[t] - zt
      const q3 = r3[t] - zt
      a0 += q0 * q0
      a1 += q1 * q1
      a2 += q2 * q2
      a3 += q3 * q3
    }
    dist2[i] = a0
    dist2[i + 1] = a1
    dist2[i + 2] = a2
    dist2[i + 3] = a3
  }
  for (; i < n; i++) {
    const row = rows[i]
    let a = dist2[i]
    for (let t = 0; t < len; t++) {
      const q = row[t] - z[s + t]
      a += q * q
    }
    dist2[i] = a
  }
}

/** dist2ᵢ = ‖xᵢ − z‖² for a given z, one pass (split across `pool` like {@link fusedPass}) */
export function distancesTo (set: VectorSet, blockSize: number, z: Float64Array, pool?: AggregationPool): Float64Array {
  const dist2 = new Float64Array(set.count)
  fusedPass(set, blockSize, z, new Float64Array(set.count), 1, dist2, 'distances', pool)
  return dist2
}
