import type { ModelConfig } from './config.js'

/**
 * A few-hundred-kilobyte model for tests, the devnet and the spec's test vectors
 * (≈ 0.1M parameters: vocab 256 bytes, 2 blocks of width 64, 4 query heads sharing 2 KV heads).
 */
export const TINY: Readonly<ModelConfig> = Object.freeze({
  vocabSize: 256,
  dModel: 64,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  ffnHidden: 176,
  maxSeqLen: 128,
  ropeTheta: 10000,
  normEps: 1e-5,
  tieEmbeddings: false
})

/** ≈ 31M parameters: a model a laptop CPU trains in hours (12 blocks of width 384) */
export const SMALL: Readonly<ModelConfig> = Object.freeze({
  vocabSize: 32000,
  dModel: 384,
  nLayers: 12,
  nHeads: 6,
  nKvHeads: 2,
  ffnHidden: 1024,
  maxSeqLen: 1024,
  ropeTheta: 10000,
  normEps: 1e-5,
  tieEmbeddings: true
})

/** ≈ 125M parameters: seed 000's Phase 1 "bootstrap" model for the first ~10 nodes (12 blocks of width 768) */
export const BOOTSTRAP: Readonly<ModelConfig> = Object.freeze({
  vocabSize: 32000,
  dModel: 768,
  nLayers: 12,
  nHeads: 12,
  nKvHeads: 4,
  ffnHidden: 3072,
  maxSeqLen: 2048,
  ropeTheta: 10000,
  normEps: 1e-5,
  tieEmbeddings: true
})

/** The named presets */
export const PRESETS = Object.freeze({ tiny: TINY, small: SMALL, bootstrap: BOOTSTRAP })

export type PresetName = keyof typeof PRESETS

/** A mutable copy of a named preset */
export function preset (name: PresetName): ModelConfig {
  return { ...PRESETS[name] }
}
