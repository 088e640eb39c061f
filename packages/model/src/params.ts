import type { ModelConfig } from './config.js'

/**
 * Stable parameter names and shapes (specs/model/README.md, "Parameters"). Matrices are stored
 * `[in, out]` so a projection is `x @ W` with no transpose.
 */
export interface ParameterSpec {
  name: string
  shape: number[]
}

/** Which part of the model a shard holds */
export type ShardRole =
  | { kind: 'embed' }
  | { kind: 'blocks', start: number, end: number }
  | { kind: 'head' }

/** The parameters of block `i`, in canonical order */
export function blockParameters (config: ModelConfig, i: number): ParameterSpec[] {
  const d = config.dModel
  const hd = d / config.nHeads
  const p = `blocks.${i}`
  return [
    { name: `${p}.attn_norm.weight`, shape: [d] },
    { name: `${p}.attn.wq`, shape: [d, config.nHeads * hd] },
    { name: `${p}.attn.wk`, shape: [d, config.nKvHeads * hd] },
    { name: `${p}.attn.wv`, shape: [d, config.nKvHeads * hd] },
    { name: `${p}.attn.wo`, shape: [config.nHeads * hd, d] },
    { name: `${p}.mlp_norm.weight`, shape: [d] },
    { name: `${p}.mlp.w_gate`, shape: [d, config.ffnHidden] },
    { name: `${p}.mlp.w_up`, shape: [d, config.ffnHidden] },
    { name: `${p}.mlp.w_down`, shape: [config.ffnHidden, d] }
  ]
}

/**
 * The parameters a shard owns, in canonical order. With tied embeddings the head owns no LM head matrix:
 * it reads `embed.weight` (transposed), so that matrix is an input of both the embed and head shards.
 */
export function shardParameters (config: ModelConfig, role: ShardRole): ParameterSpec[] {
  switch (role.kind) {
    case 'embed':
      return [{ name: 'embed.weight', shape: [config.vocabSize, config.dModel] }]
    case 'blocks': {
      const out: ParameterSpec[] = []
      for (let i = role.start; i < role.end; i++) out.push(...blockParameters(config, i))
      return out
    }
    case 'head':
      return config.tieEmbeddings
        ? [{ name: 'final_norm.weight', shape: [config.dModel] }, { name: 'embed.weight', shape: [config.vocabSize, config.dModel] }]
        : [{ name: 'final_norm.weight', shape: [config.dModel] }, { name: 'lm_head.weight', shape: [config.dModel, config.vocabSize] }]
  }
}

/** Every parameter of the whole model, in canonical order (each name once) */
export function modelParameters (config: ModelConfig): ParameterSpec[] {
  const all = [
    ...shardParameters(config, { kind: 'embed' }),
    ...shardParameters(config, { kind: 'blocks', start: 0, end: config.nLayers }),
    ...shardParameters(config, { kind: 'head' })
  ]
  const seen = new Set<string>()
  return all.filter(p => !seen.has(p.name) && seen.add(p.name) !== undefined)
}

/** Number of scalar parameters of a list of specs */
export function countParameters (specs: ParameterSpec[]): number {
  return specs.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)
}
