import { InvalidParametersError } from '@neuroshard/interface'
import { remix, squaredNorms } from '../set.js'
import type { CommonInit, PreAggregator } from '../types.js'
import { labelsOf, makePreAggregator } from './common.js'

export interface NormClipInit extends CommonInit {
  /** Largest Euclidean norm an input keeps; longer inputs are scaled down to it. Required. */
  maxNorm: number
}

/**
 * Norm clipping: xᵢ ← xᵢ · min(1, maxNorm / ‖xᵢ‖). One blocked pass computes the norms; the scaling is applied
 * when the next stage reads each block. `clipped` lists the inputs scaled down, `scores` their norms before.
 */
export function normClip (init: NormClipInit): PreAggregator {
  const name = 'norm-clip'
  const maxNorm = init?.maxNorm
  if (typeof maxNorm !== 'number' || !Number.isFinite(maxNorm) || maxNorm <= 0) {
    throw new InvalidParametersError(`${name}: maxNorm must be a positive finite number, got ${String(maxNorm)}`)
  }
  return makePreAggregator(name, init, (set, context) => {
    const norms = Array.from(squaredNorms(set, context.blockSize), Math.sqrt)
    const labels = labelsOf(set)
    const clipped: number[] = []
    const rows = norms.map((norm, i) => {
      if (norm > maxNorm) clipped.push(labels[i])
      return { index: [i], coef: [norm > maxNorm ? maxNorm / norm : 1] }
    })
    return { set: remix(set, rows, set.weights, set.labels), diagnostics: { name, clipped, scores: norms } }
  })
}
