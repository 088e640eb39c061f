import { InvalidConfigError } from './errors.js'
import { countParameters, modelParameters, blockParameters } from './params.js'
import type { ModelConfig } from './config.js'

/** What the network offers: how many nodes, and their memory added up */
export interface NetworkCapacity {
  /** Number of nodes that hold layers */
  nodes: number
  /** Sum of the memory those nodes offer to the model, in bytes */
  totalMemoryBytes: number
}

export interface ScalingOptions {
  /**
   * Vocabulary of the tokenizer in use
   *
   * @default 32000
   */
  vocabSize?: number
  /**
   * Longest sequence
   *
   * @default 2048
   */
  maxSeqLen?: number
}

/**
 * Bytes of memory the network spends per model parameter: fp32 weight, gradient, Adam m and v, the
 * DiLoCo anchor θ_start and outer momentum (6 × 4 = 24 bytes), held by 2 replicas (MIN_REPLICAS), and
 * only 42 % of memory goes to that state — the rest holds activations, KV caches, the runtime and the OS.
 * 24 × 2 / 0.42 ≈ 114 bytes per parameter.
 */
export const BYTES_PER_PARAMETER = 24 * 2 / 0.42
/** Head dimension of every scaled model */
export const SCALED_HEAD_DIM = 128
/** Parameter budget at which the depth rule gives 16 blocks (seed 003's first row) */
const DEPTH_ANCHOR_PARAMS = 3.5e8
/** Depth grows as budget^0.27: about ×2 per ×10–×20 of parameters, like seed 003's table */
const DEPTH_EXPONENT = 0.27

function buildConfig (nLayers: number, dModel: number, vocabSize: number, maxSeqLen: number): ModelConfig {
  const nHeads = dModel / SCALED_HEAD_DIM
  // GQA: the largest divisor of nHeads that is at most a quarter of it (rounded up)
  let nKvHeads = 1
  for (let k = Math.ceil(nHeads / 4); k >= 1; k--) {
    if (nHeads % k === 0) { nKvHeads = k; break }
  }
  // SwiGLU keeps the MLP's parameters at 8·d² with hidden = 8/3·d, rounded up to a multiple of 256
  const ffnHidden = Math.ceil((8 / 3) * dModel / 256) * 256
  return { vocabSize, dModel, nLayers, nHeads, nKvHeads, ffnHidden, maxSeqLen, ropeTheta: 10000, normEps: 1e-5, tieEmbeddings: true }
}

/**
 * The scaling rule: the architecture the network can train, from its capacity.
 *
 * 1. Parameter budget `P = totalMemoryBytes / BYTES_PER_PARAMETER` (≈ 114 bytes per parameter).
 * 2. Depth `L = 4 · round(16 · (P / 3.5e8)^0.27 / 4)`, at least 2 (a multiple of 4 so layer ranges split evenly).
 * 3. Width `d`: the largest of 512, 1024, 1536, … (multiples of 512, head dim 128) such that the whole
 *    model has at most `P` parameters and one block's training state (24 bytes per parameter) fits in an
 *    average node's memory (layers are the unit of sharding, so a node must hold a whole block); 256 when
 *    even 512 does not fit.
 * 4. `nHeads = d / 128`, `nKvHeads` = largest divisor of nHeads ≤ ⌈nHeads/4⌉, `ffnHidden = ⌈8d/3⌉₂₅₆`,
 *    tied embeddings.
 *
 * Reproduces seed 003's table to within its orders of magnitude (see the package README).
 */
export function architectureForCapacity (capacity: NetworkCapacity, options: ScalingOptions = {}): ModelConfig {
  const { nodes, totalMemoryBytes } = capacity
  if (!Number.isSafeInteger(nodes) || nodes <= 0) {
    throw new InvalidConfigError(`nodes must be a positive integer, got ${String(nodes)}`)
  }
  if (typeof totalMemoryBytes !== 'number' || !Number.isFinite(totalMemoryBytes) || totalMemoryBytes <= 0) {
    throw new InvalidConfigError(`totalMemoryBytes must be a positive number, got ${String(totalMemoryBytes)}`)
  }
  const vocabSize = options.vocabSize ?? 32000
  const maxSeqLen = options.maxSeqLen ?? 2048
  const budget = totalMemoryBytes / BYTES_PER_PARAMETER
  const nLayers = Math.max(2, 4 * Math.round(16 * Math.pow(budget / DEPTH_ANCHOR_PARAMS, DEPTH_EXPONENT) / 4))
  const perNodeBytes = totalMemoryBytes / nodes
  let dModel = 2 * SCALED_HEAD_DIM
  // widths 256, 512, then multiples of 512 so nHeads is a multiple of 4 and GQA groups stay even
  for (let d = 4 * SCALED_HEAD_DIM; ; d += 4 * SCALED_HEAD_DIM) {
    const cfg = buildConfig(nLayers, d, vocabSize, maxSeqLen)
    const total = countParameters(modelParameters(cfg))
    const block = countParameters(blockParameters(cfg, 0))
    if (total > budget || block * 24 > perNodeBytes) break
    dModel = d
  }
  return buildConfig(nLayers, dModel, vocabSize, maxSeqLen)
}
