/**
 * Defaults of `@neuroshard/runtime`.
 */

/**
 * AdamW β1
 *
 * @default 0.9
 */
export const DEFAULT_BETA1 = 0.9
/**
 * AdamW β2
 *
 * @default 0.95
 */
export const DEFAULT_BETA2 = 0.95
/**
 * AdamW ε
 *
 * @default 1e-8
 */
export const DEFAULT_EPS = 1e-8
/**
 * Decoupled weight decay λ (not applied to norm weights)
 *
 * @default 0.1
 */
export const DEFAULT_WEIGHT_DECAY = 0.1
/**
 * Gradient-norm clipping threshold (0 disables clipping)
 *
 * @default 1.0
 */
export const DEFAULT_MAX_GRAD_NORM = 1.0
/**
 * Learning rate when no schedule is given
 *
 * @default 3e-4
 */
export const DEFAULT_LR = 3e-4
