import { InvalidConfigError } from './errors.js'
import type { ModelConfig } from './config.js'

const INTEGER_FIELDS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'ffnHidden', 'maxSeqLen'] as const

/**
 * Check that a config describes a buildable NeuroLLM, throwing `InvalidConfigError` naming the first
 * broken rule: positive integer sizes, `dModel % nHeads == 0`, `nHeads % nKvHeads == 0`, an even head
 * dimension (RoPE rotates pairs), positive finite `ropeTheta` and `normEps`.
 */
export function validateConfig (config: ModelConfig): ModelConfig {
  if (config == null || typeof config !== 'object') {
    throw new InvalidConfigError('config must be an object')
  }
  for (const field of INTEGER_FIELDS) {
    const v = config[field]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new InvalidConfigError(`${field} must be a positive integer, got ${String(v)}`)
    }
  }
  if (config.dModel % config.nHeads !== 0) {
    throw new InvalidConfigError(`dModel (${config.dModel}) must be divisible by nHeads (${config.nHeads})`)
  }
  if (config.nHeads % config.nKvHeads !== 0) {
    throw new InvalidConfigError(`nHeads (${config.nHeads}) must be divisible by nKvHeads (${config.nKvHeads})`)
  }
  const hd = config.dModel / config.nHeads
  if (hd % 2 !== 0) {
    throw new InvalidConfigError(`head dimension dModel/nHeads (${hd}) must be even for rotary embeddings`)
  }
  for (const field of ['ropeTheta', 'normEps'] as const) {
    const v = config[field]
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new InvalidConfigError(`${field} must be a positive finite number, got ${String(v)}`)
    }
  }
  if (typeof config.tieEmbeddings !== 'boolean') {
    throw new InvalidConfigError('tieEmbeddings must be a boolean')
  }
  return config
}
