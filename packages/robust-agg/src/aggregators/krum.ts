import { InvalidParametersError } from '@neuroshard/interface'
import { checkF, effectiveF, makeAggregator, requireCondition } from '../aggregator.js'
import { DEFAULT_KRUM_NEIGHBOURS } from '../constants.js'
import { foldCoefficients, pairwiseSquaredDistances, requireUniformWeights, toLabels, weightedSum } from '../set.js'
import type { Aggregator, CommonInit, VectorSet } from '../types.js'

/**
 * Krum's neighbour count k: `'n-f-2'` is Blanchard et al. 2017 (Definition of Krum, Section 4); `'n-f-1'`
 * counts one more neighbour, as some libraries do (it equals the n − f − 2 closest *other* vectors plus one).
 */
export type KrumNeighbours = 'n-f-2' | 'n-f-1'

export interface KrumInit extends CommonInit {
  /** Number of Byzantine inputs to tolerate. Requires n ≥ 2f + 3 (Blanchard et al. 2017: n > 2f + 2). */
  f: number
  /** @default 'n-f-2' */
  neighbours?: KrumNeighbours
}

export interface MultiKrumInit extends KrumInit {
  /**
   * How many of the best-scored vectors to average; 1 ≤ m ≤ n − f (Blanchard et al. 2017, Section 5). Scores are
   * computed once, as in the paper (not re-scored after each pick). Defaults to n − f, counted on each call.
   */
  m?: number
}

/**
 * Krum scores: for each vector, the sum of its k smallest squared distances to the other vectors (ties by
 * index; the distance matrix comes from one blocked pass over d).
 */
export function krumScores (set: VectorSet, k: number, blockSize: number): number[] {
  const n = set.count
  const D = pairwiseSquaredDistances(set, blockSize)
  const scores: number[] = []
  const others = new Float64Array(n - 1)
  for (let i = 0; i < n; i++) {
    let q = 0
    for (let j = 0; j < n; j++) if (j !== i) others[q++] = D[i * n + j]
    others.sort()
    let s = 0
    for (let t = 0; t < k; t++) s += others[t]
    scores.push(s)
  }
  return scores
}

/** Indices ordered by score, ties broken by the lower index */
function byScore (scores: number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b] || a - b)
}

function neighbourCount (name: string, neighbours: KrumNeighbours, n: number, f: number): number {
  requireCondition(n >= 2 * f + 3, `${name} requires n ≥ 2f + 3 (Blanchard et al. 2017); got n = ${n}, f = ${f}`)
  return neighbours === 'n-f-2' ? n - f - 2 : n - f - 1
}

function checkNeighbours (name: string, neighbours: unknown): KrumNeighbours {
  if (neighbours !== 'n-f-2' && neighbours !== 'n-f-1') {
    throw new InvalidParametersError(`${name}: neighbours must be 'n-f-2' or 'n-f-1', got ${String(neighbours)}`)
  }
  return neighbours
}

/** Krum (Blanchard et al. 2017): output the input with the lowest score. */
export function krum (init: KrumInit): Aggregator {
  const name = 'krum'
  const f = checkF(name, init?.f, true) as number
  const neighbours = checkNeighbours(name, init.neighbours ?? DEFAULT_KRUM_NEIGHBOURS)
  return makeAggregator(name, init, (set, context) => {
    requireUniformWeights(name, set)
    const fe = effectiveF(name, f, context)
    const k = neighbourCount(name, neighbours, set.count, fe)
    const scores = krumScores(set, k, context.blockSize)
    const best = byScore(scores)[0]
    return { value: pick(set, best, context.blockSize), selected: toLabels(set, [best]), scores }
  })
}

/** Multi-Krum (Blanchard et al. 2017): average the m inputs with the lowest Krum scores (weighted if given). */
export function multiKrum (init: MultiKrumInit): Aggregator {
  const name = 'multi-krum'
  const f = checkF(name, init?.f, true) as number
  const neighbours = checkNeighbours(name, init.neighbours ?? DEFAULT_KRUM_NEIGHBOURS)
  const mInit = init.m
  if (mInit != null && (!Number.isInteger(mInit) || mInit < 1)) {
    throw new InvalidParametersError(`${name}: m must be a positive integer, got ${mInit}`)
  }
  return makeAggregator(name, init, (set, context) => {
    const fe = effectiveF(name, f, context)
    const n = set.count
    const k = neighbourCount(name, neighbours, n, fe)
    const m = mInit ?? n - fe
    requireCondition(m <= n - fe, `${name} requires 1 ≤ m ≤ n − f (Blanchard et al. 2017); got m = ${m}, n = ${n}, f = ${fe}`)
    const scores = krumScores(set, k, context.blockSize)
    const chosen = byScore(scores).slice(0, m).sort((a, b) => a - b)
    const coef = new Float64Array(n)
    let total = 0
    for (const i of chosen) {
      coef[i] = set.weights == null ? 1 : set.weights[i]
      total += coef[i]
    }
    if (!(total > 0)) throw new InvalidParametersError(`${name}: the selected inputs all have weight 0`)
    return { value: combination(set, coef, total, context.blockSize), selected: toLabels(set, chosen), scores }
  })
}

/** Virtual vector `i` of a set, as a new Float32Array */
export function pick (set: VectorSet, i: number, blockSize: number): Float32Array {
  if (set.mix == null) return set.base[i].slice()
  const coef = new Float64Array(set.count)
  coef[i] = 1
  return combination(set, coef, 1, blockSize)
}

/**
 * Σ coef_r v_r / divisor, accumulated in Float64 in input order per coordinate; reads only the inputs used.
 * Mixing rows (after a pre-aggregator) are folded into one coefficient per input first, so this is one pass
 * over the inputs whatever the mixing (the summation order differs from forming the mixed vectors first).
 */
export function combination (set: VectorSet, coef: Float64Array, divisor: number, blockSize: number): Float32Array {
  return weightedSum(set.base, foldCoefficients(set, coef), divisor, set.d, blockSize)
}
