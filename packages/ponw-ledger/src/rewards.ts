import { add, floor, min, mul, rational } from './rational.js'
import type { LedgerParams } from './genesis.js'
import type { Rational } from './rational.js'

/**
 * Staking multiplier min(cap, 1 + β · stake / stakingUnit) as an exact rational.
 * With the seed parameters: 1 + 0.1 · stake/1000 NEURO, capped at 2 (reached at 10,000 NEURO).
 */
export function stakingMultiplier (p: LedgerParams, stake: bigint): Rational {
  const bonus = mul(p.stakingBeta, rational(stake, p.stakingUnit))
  return min(p.stakingMultiplierCap, add(rational(1n), bonus))
}

/** Uptime: R_base · T/60 with T in seconds (R_base per minute) */
export function uptimeBase (p: LedgerParams, seconds: bigint): Rational {
  return mul(p.uptimeRewardPerMinute, rational(seconds, 60n))
}

/** Inference: R_inference · tokens / 1,000,000 */
export function inferenceBase (p: LedgerParams, tokens: bigint): Rational {
  return mul(p.inferenceRewardPerMillionTokens, rational(tokens, 1_000_000n))
}

/** Training: compute reward per batch, times the quality bonus when the loss is low and went down */
export function trainingBase (p: LedgerParams, batches: bigint, lossBeforeMicro: bigint, lossAfterMicro: bigint): Rational {
  const base = mul(p.computeRewardPerBatch, rational(batches))
  return qualifies(p, lossBeforeMicro, lossAfterMicro) ? mul(base, p.qualityBonus) : base
}

export function qualifies (p: LedgerParams, lossBeforeMicro: bigint, lossAfterMicro: bigint): boolean {
  return lossAfterMicro < lossBeforeMicro && lossAfterMicro <= p.qualityLossThresholdMicro
}

/** Data: reward per sample contributed */
export function dataBase (p: LedgerParams, samples: bigint): Rational {
  return mul(p.dataRewardPerSample, rational(samples))
}

/** R = floor(base · multiplier(stake)): the single rounding step (towards zero) */
export function reward (p: LedgerParams, base: Rational, stake: bigint): bigint {
  return floor(mul(base, stakingMultiplier(p, stake)))
}

/** floor(amount · fraction) */
export function share (amount: bigint, fraction: Rational): bigint {
  return floor(mul(rational(amount), fraction))
}
