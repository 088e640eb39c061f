/**
 * NeuroLLM architecture configuration. The same config drives parameter layout, init, shard graphs and
 * checkpoints, so every field here is part of the model's identity (specs/model/README.md).
 */
export interface ModelConfig {
  /** Vocabulary size (rows of the embedding, columns of the LM head) */
  vocabSize: number
  /** Model width (hidden size) */
  dModel: number
  /** Number of transformer blocks */
  nLayers: number
  /** Number of query heads */
  nHeads: number
  /** Number of key/value heads (grouped-query attention); must divide nHeads */
  nKvHeads: number
  /** Hidden size of the SwiGLU feed-forward network */
  ffnHidden: number
  /** Longest sequence the rotary tables are built for */
  maxSeqLen: number
  /** Rotary embedding base frequency */
  ropeTheta: number
  /** RMSNorm epsilon */
  normEps: number
  /** Share the embedding matrix with the LM head */
  tieEmbeddings: boolean
}

/** Size of one attention head */
export function headDim (config: ModelConfig): number {
  return config.dModel / config.nHeads
}
