/**
 * Defaults of `@neuroshard/trainer`.
 */

/**
 * Sequences per micro-batch
 *
 * @default 8
 */
export const DEFAULT_BATCH_SIZE = 8
/**
 * Micro-batches whose gradients are accumulated into one optimizer step
 *
 * @default 1
 */
export const DEFAULT_GRAD_ACCUMULATION = 1
/**
 * Peak learning rate (end of warmup)
 *
 * @default 3e-3
 */
export const DEFAULT_PEAK_LR = 3e-3
/**
 * Linear warmup steps (capped at a tenth of the run)
 *
 * @default 100
 */
export const DEFAULT_WARMUP_STEPS = 100
/**
 * Final learning rate as a fraction of the peak
 *
 * @default 0.1
 */
export const DEFAULT_MIN_LR_RATIO = 0.1
/**
 * AdamW decoupled weight decay
 *
 * @default 0.1
 */
export const DEFAULT_WEIGHT_DECAY = 0.1
/**
 * Gradient-norm clip (0 = off)
 *
 * @default 1
 */
export const DEFAULT_MAX_GRAD_NORM = 1
/**
 * Steps between validation-loss evaluations (0 = only at the end)
 *
 * @default 100
 */
export const DEFAULT_EVAL_EVERY = 100
/**
 * Validation micro-batches per evaluation
 *
 * @default 8
 */
export const DEFAULT_EVAL_BATCHES = 8
/**
 * Steps between checkpoints (0 = only at the end)
 *
 * @default 100
 */
export const DEFAULT_CHECKPOINT_EVERY = 100
/**
 * Checkpoints kept in the checkpoint directory (older ones are deleted)
 *
 * @default 2
 */
export const DEFAULT_KEEP_CHECKPOINTS = 2
/**
 * Steps timed before a time-budgeted run fixes its total step count (and so its cosine schedule)
 *
 * @default 5
 */
export const TIME_BUDGET_PROBE_STEPS = 5
/**
 * Steps between re-fits of a time-budgeted run's length to the measured speed (the machine's speed drifts)
 *
 * @default 50
 */
export const RESCHEDULE_EVERY = 50
/** `__metadata__.format` of a training-state checkpoint */
export const TRAIN_STATE_FORMAT = 'neuroshard-train-state/1'
/** File name pattern of training-state checkpoints: `step-<8 digits>.safetensors` */
export const CHECKPOINT_FILE_RE = /^step-(\d{8,})\.safetensors$/
