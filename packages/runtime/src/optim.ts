import { InvalidParametersError } from '@neuroshard/interface'

export { adamwKernel, sumOfSquares, missingCudaLibrary, ortLibraryDir } from './worker.js'
export type { AdamWKernelOptions } from './worker.js'

/** Learning rate as a function of the 0-based optimizer step */
export type LrSchedule = (step: number) => number

export interface WarmupCosineInit {
  /** Learning rate at the end of warmup */
  peakLr: number
  /** Linear warmup steps (lr = peak · (step + 1) / warmupSteps) */
  warmupSteps: number
  /** Step at which the cosine reaches `minLr` (and stays) */
  totalSteps: number
  /**
   * Final learning rate
   *
   * @default peakLr / 10
   */
  minLr?: number
}

/**
 * Linear warmup then cosine decay: for step < W, lr = peak·(step+1)/W; for W ≤ step < T,
 * lr = min + ½(peak − min)(1 + cos(π (step − W)/(T − W))); afterwards `minLr`.
 */
export function warmupCosine (init: WarmupCosineInit): LrSchedule {
  const { peakLr, warmupSteps, totalSteps } = init
  const minLr = init.minLr ?? peakLr / 10
  if (!(peakLr > 0) || !(minLr >= 0) || minLr > peakLr || !Number.isSafeInteger(warmupSteps) || warmupSteps < 0 || !Number.isSafeInteger(totalSteps) || totalSteps < warmupSteps) {
    throw new InvalidParametersError('warmupCosine needs peakLr > 0, 0 <= minLr <= peakLr and 0 <= warmupSteps <= totalSteps (integers)')
  }
  return (step: number): number => {
    if (step < warmupSteps) return peakLr * (step + 1) / warmupSteps
    if (step >= totalSteps) return minLr
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps)
    return minLr + 0.5 * (peakLr - minLr) * (1 + Math.cos(Math.PI * progress))
  }
}

/** A constant learning rate */
export function constantLr (lr: number): LrSchedule {
  return () => lr
}
