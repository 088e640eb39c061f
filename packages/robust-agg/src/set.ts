/**
 * Blocked access to a `VectorSet` and the kernels shared by the aggregators. All sums run in Float64; every
 * per-coordinate result depends only on that coordinate, and every accumulation over d (norms, distances) runs
 * sequentially in coordinate order with its accumulator carried from block to block, so results are bit-for-bit
 * the same for any block size.
 */
import { InvalidParametersError } from '@neuroshard/interface'
import { DEFAULT_BLOCK_SIZE } from './constants.js'
import { LengthMismatchError, NonFiniteInputError } from './errors.js'
import type { AggregateOptions, AggregationContext, NonFinitePolicy, SparseRow, VectorSet } from './types.js'

/** A block of one virtual vector: a view of a Float32 input, or a Float64 scratch row of a mixed vector */
export type Row = Float32Array | Float64Array

/**
 * Reads blocks of every virtual vector of a set. For plain inputs the rows are views into the inputs (no
 * copy); for mixed sets they are Float64 scratch rows formed from the inputs' block.
 */
export class BlockReader {
  readonly set: VectorSet
  readonly blockSize: number
  /** one row per virtual vector; valid for `[0, e − s)` after `load(s, e)` */
  readonly rows: Row[]
  private readonly scratch: Float64Array[] | undefined
  private readonly baseRows: Row[]

  constructor (set: VectorSet, blockSize: number) {
    this.set = set
    this.blockSize = Math.max(1, Math.min(blockSize, Math.max(1, set.d)))
    this.baseRows = set.base.map(x => x.subarray(0, 0))
    this.scratch = set.mix == null ? undefined : Array.from({ length: set.count }, () => new Float64Array(this.blockSize))
    this.rows = this.scratch ?? this.baseRows
  }

  /** Make `rows[r][0 .. e − s)` hold coordinates `s .. e` of virtual vector r */
  load (s: number, e: number): void {
    const { set, baseRows } = this
    for (let i = 0; i < set.base.length; i++) baseRows[i] = set.base[i].subarray(s, e)
    if (this.scratch != null && set.mix != null) mixRows(set.mix, baseRows, this.scratch, e - s)
  }
}

function mixRows (mix: readonly SparseRow[], from: Row[], to: Float64Array[], len: number): void {
  for (let r = 0; r < mix.length; r++) {
    const { index, coef } = mix[r]
    const out = to[r]
    if (index.length === 1) {
      const src = from[index[0]]
      const c = coef[0]
      for (let t = 0; t < len; t++) out[t] = c * src[t]
      continue
    }
    // eight (then four) sources per sweep: fewer loads and stores of the accumulator row
    out.fill(0, 0, len)
    let k = 0
    for (; k + 7 < index.length; k += 8) {
      const s0 = from[index[k]]
      const s1 = from[index[k + 1]]
      const s2 = from[index[k + 2]]
      const s3 = from[index[k + 3]]
      const s4 = from[index[k + 4]]
      const s5 = from[index[k + 5]]
      const s6 = from[index[k + 6]]
      const s7 = from[index[k + 7]]
      const c0 = coef[k]
      const c1 = coef[k + 1]
      const c2 = coef[k + 2]
      const c3 = coef[k + 3]
      const c4 = coef[k + 4]
      const c5 = coef[k + 5]
      const c6 = coef[k + 6]
      const c7 = coef[k + 7]
      for (let t = 0; t < len; t++) {
        out[t] += (c0 * s0[t] + c1 * s1[t] + c2 * s2[t] + c3 * s3[t]) + (c4 * s4[t] + c5 * s5[t] + c6 * s6[t] + c7 * s7[t])
      }
    }
    for (; k + 3 < index.length; k += 4) {
      const s0 = from[index[k]]
      const s1 = from[index[k + 1]]
      const s2 = from[index[k + 2]]
      const s3 = from[index[k + 3]]
      const c0 = coef[k]
      const c1 = coef[k + 1]
      const c2 = coef[k + 2]
      const c3 = coef[k + 3]
      for (let t = 0; t < len; t++) out[t] += c0 * s0[t] + c1 * s1[t] + c2 * s2[t] + c3 * s3[t]
    }
    for (; k < index.length; k++) {
      const src = from[index[k]]
      const c = coef[k]
      for (let t = 0; t < len; t++) out[t] += c * src[t]
    }
  }
}

/**
 * Fold a linear combination of a set's virtual vectors onto its base inputs: returns b with
 * Σ_r coef_r · v_r = Σ_i b_i · base_i (exact algebra; the mixing matrix of the pre-aggregators is applied to
 * the n coefficients once instead of to n × d values). For a set without mixing rows b is `coef` itself.
 */
export function foldCoefficients (set: VectorSet, coef: ArrayLike<number>): Float64Array {
  const mix = set.mix
  if (mix == null) return Float64Array.from(coef)
  const b = new Float64Array(set.base.length)
  for (let r = 0; r < mix.length; r++) {
    const c = coef[r]
    if (c === 0) continue
    const { index, coef: k } = mix[r]
    for (let q = 0; q < index.length; q++) b[index[q]] += c * k[q]
  }
  return b
}

/**
 * Σ_i coef_i · xs_i / divisor in one blocked pass over the inputs with a non-zero coefficient, accumulated in
 * Float64 in input order per coordinate (four inputs per sweep over the block: a quarter of the accumulator
 * traffic), rounded to Float32. Per coordinate the result depends on that coordinate only, so the block size
 * never changes it.
 */
export function weightedSum (xs: readonly Float32Array[], coef: ArrayLike<number>, divisor: number, d: number, blockSize: number): Float32Array {
  const used: number[] = []
  for (let i = 0; i < xs.length; i++) if (coef[i] !== 0) used.push(i)
  const rows = used.map(i => xs[i])
  const c = used.map(i => coef[i])
  const m = rows.length
  const out = new Float32Array(d)
  const B = Math.max(1, Math.min(blockSize, Math.max(1, d)))
  const acc = new Float64Array(B)
  for (let s = 0; s < d; s += B) {
    const e = Math.min(d, s + B)
    const len = e - s
    acc.fill(0, 0, len)
    let q = 0
    for (; q + 3 < m; q += 4) {
      const r0 = rows[q]
      const r1 = rows[q + 1]
      const r2 = rows[q + 2]
      const r3 = rows[q + 3]
      const c0 = c[q]
      const c1 = c[q + 1]
      const c2 = c[q + 2]
      const c3 = c[q + 3]
      for (let t = 0; t < len; t++) acc[t] += c0 * r0[s + t] + c1 * r1[s + t] + c2 * r2[s + t] + c3 * r3[s + t]
    }
    for (; q < m; q++) {
      const r0 = rows[q]
      const c0 = c[q]
      for (let t = 0; t < len; t++) acc[t] += c0 * r0[s + t]
    }
    for (let t = 0; t < len; t++) out[s + t] = acc[t] / divisor
  }
  return out
}

/** Resolve the block size of a call */
export function resolveBlockSize (init?: number, options?: number): number {
  const b = options ?? init ?? DEFAULT_BLOCK_SIZE
  if (!Number.isInteger(b) || b < 1) {
    throw new InvalidParametersError(`blockSize must be a positive integer, got ${b}`)
  }
  return b
}

/** Whether every entry of `x` is finite. A Float64 sum of Float32 values overflows only through NaN/±Inf. */
export function isFiniteVector (x: Float32Array): boolean {
  let s0 = 0
  let s1 = 0
  const n = x.length
  let j = 0
  for (; j + 1 < n; j += 2) {
    s0 += x[j]
    s1 += x[j + 1]
  }
  if (j < n) s0 += x[j]
  return Number.isFinite(s0 + s1)
}

/**
 * Validate the inputs of a call and build the identity set over them. With `checkFinite` false the pass that
 * looks for NaN / ±Inf is skipped (the caller must then prove the inputs finite some other way, see
 * `makeAggregator`'s `optimistic`).
 */
export function prepareInputs (
  name: string,
  inputs: readonly Float32Array[],
  options: AggregateOptions | undefined,
  policy: NonFinitePolicy,
  blockSizeInit: number | undefined,
  checkFinite = true
): { set: VectorSet, context: AggregationContext, dropped: number[] } {
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new InvalidParametersError(`${name}: needs at least one input vector`)
  }
  for (let i = 0; i < inputs.length; i++) {
    if (!(inputs[i] instanceof Float32Array)) {
      throw new InvalidParametersError(`${name}: input ${i} is not a Float32Array`)
    }
  }
  const d = inputs[0].length
  for (let i = 1; i < inputs.length; i++) {
    if (inputs[i].length !== d) {
      throw new LengthMismatchError(`${name}: input ${i} has length ${inputs[i].length}, input 0 has length ${d}`)
    }
  }
  let weights: Float64Array | undefined
  if (options?.weights != null) {
    const w = options.weights
    if (w.length !== inputs.length) {
      throw new LengthMismatchError(`${name}: ${w.length} weights for ${inputs.length} inputs`)
    }
    weights = new Float64Array(w.length)
    for (let i = 0; i < w.length; i++) {
      const v = Number(w[i])
      if (!Number.isFinite(v) || v < 0) {
        throw new InvalidParametersError(`${name}: weight ${i} must be finite and non-negative, got ${w[i]}`)
      }
      weights[i] = v
    }
  }
  const blockSize = resolveBlockSize(blockSizeInit, options?.blockSize)
  const bad: number[] = []
  // skipped (checkFinite false) only by aggregators whose first pass proves every input finite itself
  if (checkFinite) {
    for (let i = 0; i < inputs.length; i++) {
      if (!isFiniteVector(inputs[i])) bad.push(i)
    }
  }
  if (bad.length > 0 && policy === 'reject') {
    throw new NonFiniteInputError(`${name}: inputs ${bad.join(', ')} contain NaN or ±Infinity (policy 'reject')`, bad)
  }
  if (bad.length === inputs.length) {
    throw new NonFiniteInputError(`${name}: every input contains NaN or ±Infinity`, bad)
  }
  let base = inputs
  let labels: number[] | undefined
  if (bad.length > 0) {
    const badSet = new Set(bad)
    labels = []
    for (let i = 0; i < inputs.length; i++) if (!badSet.has(i)) labels.push(i)
    base = labels.map(i => inputs[i])
    if (weights != null) {
      const w = weights
      weights = Float64Array.from(labels, i => w[i])
    }
  }
  if (weights != null) {
    let sum = 0
    for (const v of weights) sum += v
    if (!(sum > 0)) throw new InvalidParametersError(`${name}: the weights of the aggregated inputs sum to 0`)
  }
  const set: VectorSet = { base, d, count: base.length, weights, labels: labels ?? base.map((_, i) => i) }
  return { set, context: { blockSize, dropped: bad.length }, dropped: bad }
}

/** Whether a set carries non-uniform weights */
export function hasNonUniformWeights (set: VectorSet): boolean {
  const w = set.weights
  if (w == null) return false
  for (let i = 1; i < w.length; i++) if (w[i] !== w[0]) return true
  return false
}

/** Reject non-uniform weights for methods that have no weighted form */
export function requireUniformWeights (name: string, set: VectorSet): void {
  if (hasNonUniformWeights(set)) {
    throw new InvalidParametersError(`${name} has no weighted form; pass equal weights or none`)
  }
}

/** Normalised weights (sum 1) of a set */
export function normalisedWeights (set: VectorSet): Float64Array {
  const w = new Float64Array(set.count)
  if (set.weights == null) {
    w.fill(1 / set.count)
    return w
  }
  let sum = 0
  for (let i = 0; i < set.count; i++) sum += set.weights[i]
  for (let i = 0; i < set.count; i++) w[i] = set.weights[i] / sum
  return w
}

/** Map virtual indices to the caller's indices where the set has labels */
export function toLabels (set: VectorSet, indices: number[]): number[] {
  const labels = set.labels
  return labels == null ? indices : indices.map(i => labels[i])
}

/**
 * Squared Euclidean distances between every pair of virtual vectors, in one blocked pass over d
 * (m(m−1)/2 accumulations, tiled two by two so that each loaded value is used twice). Returns a symmetric
 * m × m Float64Array (row-major) with a zero diagonal.
 */
export function pairwiseSquaredDistances (set: VectorSet, blockSize: number): Float64Array {
  const m = set.count
  const D = new Float64Array(m * m)
  const reader = new BlockReader(set, blockSize)
  const rows = reader.rows
  for (let s = 0; s < set.d; s += reader.blockSize) {
    const e = Math.min(set.d, s + reader.blockSize)
    const len = e - s
    reader.load(s, e)
    for (let a = 0; a < m; a += 2) {
      if (a + 1 < m) {
        D[a * m + a + 1] = accumulate1(D[a * m + a + 1], rows[a], rows[a + 1], len)
        let b = a + 2
        for (; b + 1 < m; b += 2) accumulate2x2(D, m, a, b, rows, len)
        if (b < m) {
          D[a * m + b] = accumulate1(D[a * m + b], rows[a], rows[b], len)
          D[(a + 1) * m + b] = accumulate1(D[(a + 1) * m + b], rows[a + 1], rows[b], len)
        }
      }
    }
  }
  for (let a = 0; a < m; a++) {
    for (let b = a + 1; b < m; b++) D[b * m + a] = D[a * m + b]
  }
  return D
}

function accumulate1 (acc: number, x: Row, y: Row, len: number): number {
  for (let t = 0; t < len; t++) {
    const z = x[t] - y[t]
    acc += z * z
  }
  return acc
}

function accumulate2x2 (D: Float64Array, m: number, a: number, b: number, rows: Row[], len: number): void {
  const A0 = rows[a]
  const A1 = rows[a + 1]
  const B0 = rows[b]
  const B1 = rows[b + 1]
  let s00 = D[a * m + b]
  let s01 = D[a * m + b + 1]
  let s10 = D[(a + 1) * m + b]
  let s11 = D[(a + 1) * m + b + 1]
  for (let t = 0; t < len; t++) {
    const a0 = A0[t]
    const a1 = A1[t]
    const b0 = B0[t]
    const b1 = B1[t]
    const z00 = a0 - b0
    const z01 = a0 - b1
    const z10 = a1 - b0
    const z11 = a1 - b1
    s00 += z00 * z00
    s01 += z01 * z01
    s10 += z10 * z10
    s11 += z11 * z11
  }
  D[a * m + b] = s00
  D[a * m + b + 1] = s01
  D[(a + 1) * m + b] = s10
  D[(a + 1) * m + b + 1] = s11
}

/** Squared norms of every virtual vector, in one blocked pass */
export function squaredNorms (set: VectorSet, blockSize: number): Float64Array {
  const out = new Float64Array(set.count)
  const reader = new BlockReader(set, blockSize)
  for (let s = 0; s < set.d; s += reader.blockSize) {
    const e = Math.min(set.d, s + reader.blockSize)
    reader.load(s, e)
    for (let r = 0; r < set.count; r++) {
      const row = reader.rows[r]
      let acc = out[r]
      for (let t = 0; t < e - s; t++) acc += row[t] * row[t]
      out[r] = acc
    }
  }
  return out
}

/** Materialise every virtual vector (allocates count × d) */
export function materialise (set: VectorSet, blockSize: number): Float32Array[] {
  if (set.mix == null) return set.base.map(x => x.slice())
  const out = Array.from({ length: set.count }, () => new Float32Array(set.d))
  const reader = new BlockReader(set, blockSize)
  for (let s = 0; s < set.d; s += reader.blockSize) {
    const e = Math.min(set.d, s + reader.blockSize)
    reader.load(s, e)
    for (let r = 0; r < set.count; r++) {
      const row = reader.rows[r]
      const o = out[r]
      for (let t = 0; t < e - s; t++) o[s + t] = row[t]
    }
  }
  return out
}

/**
 * A new set whose virtual vector r is Σ_k rows[r][k] · (virtual vector k of `set`). Coefficients are composed
 * onto the base vectors, so chains of pre-aggregators stay one mixing step away from the inputs.
 */
export function remix (set: VectorSet, rows: ReadonlyArray<{ index: ArrayLike<number>, coef: ArrayLike<number> }>, weights: Float64Array | undefined, labels: readonly number[] | undefined): VectorSet {
  const nBase = set.base.length
  const dense = new Float64Array(nBase)
  const mix: SparseRow[] = rows.map(({ index, coef }) => {
    dense.fill(0)
    const used = new Uint8Array(nBase)
    for (let k = 0; k < index.length; k++) {
      const v = index[k]
      const c = coef[k]
      if (set.mix == null) {
        dense[v] += c
        used[v] = 1
      } else {
        const inner = set.mix[v]
        for (let q = 0; q < inner.index.length; q++) {
          dense[inner.index[q]] += c * inner.coef[q]
          used[inner.index[q]] = 1
        }
      }
    }
    const idx: number[] = []
    for (let i = 0; i < nBase; i++) if (used[i] === 1) idx.push(i)
    return { index: Int32Array.from(idx), coef: Float64Array.from(idx, i => dense[i]) }
  })
  return { base: set.base, d: set.d, count: rows.length, mix, weights, labels }
}
