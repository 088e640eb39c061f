/**
 * The outer optimizer: SGD with Nesterov momentum on the aggregated pseudo-gradient, as PyTorch's
 * `SGD(nesterov=True)` that DiLoCo uses (specs/diloco §6), in float32 with every operation rounded:
 *
 *   b ← fround(fround(μ·b) + g)
 *   u ← fround(g + fround(μ·b))
 *   θ ← fround(θ − fround(lr·u))
 *
 * with the momentum buffer b starting at zero (so the first step has b = g). Replicas that start from the
 * same θ and b and aggregate the same g end bit-identical.
 */

import { InvalidParametersError } from '@neuroshard/interface'
import { DEFAULT_OUTER_LR, DEFAULT_OUTER_MOMENTUM } from './constants.js'

export interface OuterOptions {
  /** @default 0.7 */
  lr?: number
  /** @default 0.9 */
  momentum?: number
  /** false: plain momentum (θ ← θ − lr·b) @default true */
  nesterov?: boolean
}

/** Applies one outer step in place to `theta` (the round's base weights) and `momentum` */
export function outerStep (theta: Float32Array, momentum: Float32Array, g: Float32Array, options: OuterOptions = {}): void {
  const lr = options.lr ?? DEFAULT_OUTER_LR
  const mu = options.momentum ?? DEFAULT_OUTER_MOMENTUM
  const nesterov = options.nesterov ?? true
  if (!(lr > 0) || !Number.isFinite(lr)) throw new InvalidParametersError(`outer lr must be positive, got ${lr}`)
  if (!(mu >= 0 && mu < 1)) throw new InvalidParametersError(`outer momentum must be in [0, 1), got ${mu}`)
  if (theta.length !== momentum.length || theta.length !== g.length) throw new InvalidParametersError('outer step: lengths differ')
  for (let i = 0; i < theta.length; i++) {
    const b = Math.fround(Math.fround(mu * momentum[i]) + g[i])
    momentum[i] = b
    const u = nesterov ? Math.fround(g[i] + Math.fround(mu * b)) : b
    theta[i] = Math.fround(theta[i] - Math.fround(lr * u))
  }
}
