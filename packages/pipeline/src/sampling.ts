/**
 * Next-token sampling at the Validator (specs/pipeline/README.md, "Sampling"). Deterministic: the draw for
 * position p is `u = splitmix64(seed + p) / 2^64`, so a replacement Validator samples exactly what the old
 * one would have, without session state.
 */
import { InvalidParametersError } from '@neuroshard/interface'

export interface SamplingOptions {
  /** 0: greedy (argmax, the lowest id wins ties) @default 0 */
  temperature?: number
  /** Keep only the k most likely tokens (0: all) @default 0 */
  topK?: number
  /** Keep the smallest set of most likely tokens whose probability reaches p (0 or 1: all) @default 1 */
  topP?: number
  /** Seed of the draws @default 0 */
  seed?: number
}

const MASK64 = (1n << 64n) - 1n

/** splitmix64 of a 64-bit value (Steele, Lea, Flood 2014) */
export function splitmix64 (x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64
  return z ^ (z >> 31n)
}

/** The uniform draw in [0, 1) for `position` under `seed` (53 high bits of splitmix64(seed + position)) */
export function uniformDraw (seed: number, position: number): number {
  const r = splitmix64((BigInt(seed) + BigInt(position)) & MASK64)
  return Number(r >> 11n) / 2 ** 53
}

/** Checks sampling options; throws InvalidParametersError */
export function checkSampling (options: SamplingOptions): void {
  const t = options.temperature ?? 0
  if (!Number.isFinite(t) || t < 0) throw new InvalidParametersError(`temperature must be a finite number >= 0, got ${t}`)
  const k = options.topK ?? 0
  if (!Number.isSafeInteger(k) || k < 0) throw new InvalidParametersError(`topK must be an integer >= 0, got ${k}`)
  const p = options.topP ?? 1
  if (!Number.isFinite(p) || p < 0 || p > 1) throw new InvalidParametersError(`topP must be in [0, 1], got ${p}`)
  const s = options.seed ?? 0
  if (!Number.isSafeInteger(s) || s < 0) throw new InvalidParametersError(`seed must be a safe integer >= 0, got ${s}`)
}

/** The index of the largest logit (the lowest index on ties) */
export function argmax (logits: Float32Array): number {
  let best = 0
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i
  return best
}

/**
 * Pick a token from one position's logits. Greedy when temperature is 0; otherwise softmax(logits / T) cut
 * to the top k, then to the nucleus p (in descending probability, ties by lower id), renormalised, and
 * inverted at the draw for `position`.
 */
export function sampleToken (logits: Float32Array, options: SamplingOptions, position: number): number {
  const t = options.temperature ?? 0
  if (t === 0) return argmax(logits)
  const fast = sampleSorted(logits, options, position)
  if (fast >= 0) return fast
  // NaN logits: the comparator's order (see descendingOrder)
  return sampleInCandidateOrder(logits, options, position)
}

/**
 * `sampleToken` at temperature > 0 written straight from the spec: the candidates in descending order (`nucleus`),
 * then the draw over their weights. Slower than `sampleToken`'s own path (an id array and number arrays per call);
 * it is that path's reference in tests and benchmarks, and its fallback for logits with NaN.
 */
export function sampleInCandidateOrder (logits: Float32Array, options: SamplingOptions, position: number): number {
  const { order, weights, n, total } = nucleus(logits, options)
  return order[drawIndex(weights, n, uniformDraw(options.seed ?? 0, position) * total)]
}

/** The first of the `n` weights at which their running sum passes `u` (the last one if none: rounding) */
function drawIndex (weights: ArrayLike<number>, n: number, u: number): number {
  let acc = 0
  for (let i = 0; i < n; i++) {
    acc += weights[i]
    if (u < acc) return i
  }
  return n - 1
}

/**
 * The nucleus cut of `k` weights in descending order: how many are kept for `topP` (the fewest whose share reaches
 * it; all for 0 or 1) and the sum of the kept ones
 */
function nucleusCut (weights: ArrayLike<number>, k: number, sum: number, topP: number): { kept: number, total: number } {
  let kept = k
  if (topP > 0 && topP < 1) {
    let acc = 0
    for (let i = 0; i < k; i++) {
      acc += weights[i] / sum
      if (acc >= topP) { kept = i + 1; break }
    }
  }
  let total = 0
  for (let i = 0; i < kept; i++) total += weights[i]
  return { kept, total }
}

/** Scratch of `sampleSorted` (sampling is synchronous: one user at a time) */
let sorted = { n: 0, keys: new Uint32Array(0), keys2: new Uint32Array(0), weights: new Float64Array(0) }
const bitsOf = new Uint32Array(1)
const floatOf = new Float32Array(bitsOf.buffer)

/** The order key of a logit's float32 bits: ascending keys are descending logits (−0 as +0); see descendingOrder */
function orderKey (b: number): number {
  if (b === 0x80000000) b = 0
  return b >= 0x80000000 ? b : (0x7fffffff - b) >>> 0
}

/** The logit (as a double) whose order key is `k` */
function logitOf (k: number): number {
  bitsOf[0] = k >= 0x80000000 ? k : (0x7fffffff - k) >>> 0
  return floatOf[0]
}

/**
 * `sampleToken` at temperature > 0 with the same arithmetic as `nucleus` + the draw loop, in the same order, so the
 * same token bit for bit, but sorting only the logits' 32-bit order keys (no id array, no candidate or weight arrays
 * allocated per call): the weights depend on the logit alone, and the sum runs over the sorted values. The drawn
 * sorted position's key is then mapped to an id: ids of equal logits are in ascending id order (spec §6), so it is
 * the r-th id, in id order, whose logit has that key, r being the position's rank among the equal keys. Returns −1
 * for logits with NaN (the caller takes the comparator's order).
 */
function sampleSorted (logits: Float32Array, options: SamplingOptions, position: number): number {
  const t = options.temperature ?? 0
  const n = logits.length
  if (sorted.n < n) sorted = { n, keys: new Uint32Array(n), keys2: new Uint32Array(n), weights: new Float64Array(n) }
  let { keys, keys2 } = sorted
  const weights = sorted.weights
  const bits = new Uint32Array(logits.buffer, logits.byteOffset, n)
  counts.fill(0)
  for (let i = 0; i < n; i++) {
    const x = logits[i]
    if (x !== x) return -1 // NaN
    const k = orderKey(bits[i])
    keys[i] = k
    counts[k & 255]++
    counts[256 + ((k >>> 8) & 255)]++
    counts[512 + ((k >>> 16) & 255)]++
    counts[768 + (k >>> 24)]++
  }
  for (let pass = 0; pass < 4; pass++) {
    const base = pass * 256
    let sum = 0
    for (let b = 0; b < 256; b++) { const c = counts[base + b]; counts[base + b] = sum; sum += c }
    const shift = pass * 8
    for (let i = 0; i < n; i++) {
      const k = keys[i]
      keys2[counts[base + ((k >>> shift) & 255)]++] = k
    }
    const x = keys; keys = keys2; keys2 = x
  }
  // keys is now ascending: the candidates' logits in descending order; as nucleus():
  const k = options.topK != null && options.topK > 0 ? Math.min(options.topK, n) : n
  const max = logitOf(keys[0])
  let sum = 0
  for (let i = 0; i < k; i++) {
    const p = Math.exp((logitOf(keys[i]) - max) / t)
    weights[i] = p
    sum += p
  }
  const { kept, total } = nucleusCut(weights, k, sum, options.topP ?? 1)
  const at = drawIndex(weights, kept, uniformDraw(options.seed ?? 0, position) * total)
  // the sorted position → the id: its rank among equal keys, then that many equal logits in id order
  const key = keys[at]
  let rank = 0
  while (at - rank > 0 && keys[at - rank - 1] === key) rank++
  for (let i = 0; i < n; i++) {
    if (orderKey(bits[i]) === key && rank-- === 0) return i
  }
  throw new Error('unreachable: the drawn key is among the logits')
}

/**
 * The candidates of sampling at temperature T > 0: ids in descending logit order (ties by lower id), their
 * unnormalised weights exp((logit − max) / T) cut to the top k, `n` of them kept by the nucleus p, and the
 * weights' `total` over those n
 */
export function nucleus (logits: Float32Array, options: SamplingOptions): { order: number[], weights: number[], n: number, total: number } {
  const t = options.temperature ?? 0
  const order = descendingOrder(logits)
  const k = options.topK != null && options.topK > 0 ? Math.min(options.topK, order.length) : order.length
  const max = logits[order[0]]
  const weights = new Array<number>(k)
  let sum = 0
  for (let i = 0; i < k; i++) {
    const p = Math.exp((logits[order[i]] - max) / t)
    weights[i] = p
    sum += p
  }
  const { kept: n, total } = nucleusCut(weights, k, sum, options.topP ?? 1)
  return { order, weights, n, total }
}

/** Scratch arrays of `descendingOrder`, grown to the largest vocabulary seen (sampling is synchronous: one user at a time) */
let scratch = { n: 0, f: new Float32Array(0), keys: new Uint32Array(0), keys2: new Uint32Array(0), ids: new Uint32Array(0), ids2: new Uint32Array(0) }
const counts = new Uint32Array(4 * 256)

/**
 * Ids in descending logit order, ties by lower id: the order of `(a, b) => (logits[b] - logits[a]) || (a - b)`,
 * found by a stable LSD radix sort of the logits' order-preserving bits (the comparator sort costs about 1.5 ms
 * per token at a 4096-entry vocabulary, more than the tiny model's whole forward pass). The four byte histograms
 * are counted in one pass and the arrays reused between calls. Logits with NaN take the comparator (its order is
 * what it is there).
 */
export function descendingOrder (logits: Float32Array): number[] {
  const n = logits.length
  if (scratch.n < n) scratch = { n, f: new Float32Array(n), keys: new Uint32Array(n), keys2: new Uint32Array(n), ids: new Uint32Array(n), ids2: new Uint32Array(n) }
  let { keys, keys2, ids, ids2 } = scratch
  scratch.f.set(logits)
  const bits = new Uint32Array(scratch.f.buffer, 0, n)
  counts.fill(0)
  for (let i = 0; i < n; i++) {
    const x = logits[i]
    if (x !== x) return Array.from(logits.keys()).sort((a, b) => (logits[b] - logits[a]) || (a - b)) // NaN
    let b = bits[i]
    if (b === 0x80000000) b = 0 // -0 → +0: the comparator ties them
    // ascending float order as unsigned integers, flipped: ascending keys are descending logits
    const k = b >= 0x80000000 ? b : (0x7fffffff - b) >>> 0
    keys[i] = k
    ids[i] = i
    counts[k & 255]++
    counts[256 + ((k >>> 8) & 255)]++
    counts[512 + ((k >>> 16) & 255)]++
    counts[768 + (k >>> 24)]++
  }
  for (let pass = 0; pass < 4; pass++) {
    const base = pass * 256
    let sum = 0
    for (let b = 0; b < 256; b++) { const c = counts[base + b]; counts[base + b] = sum; sum += c }
    const shift = pass * 8
    // stable: equal keys keep their (ascending id) order
    for (let i = 0; i < n; i++) {
      const k = keys[i]
      const at = counts[base + ((k >>> shift) & 255)]++
      keys2[at] = k
      ids2[at] = ids[i]
    }
    const k = keys; keys = keys2; keys2 = k
    const d = ids; ids = ids2; ids2 = d
  }
  const order = new Array<number>(n)
  for (let i = 0; i < n; i++) order[i] = ids[i]
  return order
}
