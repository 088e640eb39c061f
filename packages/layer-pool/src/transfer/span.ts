import { InvalidParametersError } from '@neuroshard/interface'
import { shardParameters } from '@neuroshard/model'
import { canonicalTensors } from './chunks.js'
import type { TensorLayout } from './chunks.js'
import type { SpanPart } from './types.js'
import type { ModelConfig, ParameterSpec, ShardRole } from '@neuroshard/model'

/** Number of slots of a model: embed, one per block, head */
export function slotCount (config: Pick<ModelConfig, 'nLayers'>): number {
  return config.nLayers + 2
}

/** Throws `InvalidParametersError` unless [start, end) is a non-empty slot span of the model */
export function assertSpan (config: Pick<ModelConfig, 'nLayers'>, start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start || end > slotCount(config)) {
    throw new InvalidParametersError(`span [${String(start)}, ${String(end)}) is not a non-empty slot range of a model with ${slotCount(config)} slots`)
  }
}

/** The shard roles a slot span covers: embed (slot 0), blocks[start - 1, end - 1) clipped, head (slot L + 1) */
export function spanRoles (config: Pick<ModelConfig, 'nLayers'>, start: number, end: number): ShardRole[] {
  assertSpan(config, start, end)
  const L = config.nLayers
  const roles: ShardRole[] = []

  if (start === 0) {
    roles.push({ kind: 'embed' })
  }

  const first = Math.max(start, 1) - 1
  const last = Math.min(end, L + 1) - 1

  if (first < last) {
    roles.push({ kind: 'blocks', start: first, end: last })
  }

  if (end === L + 2) {
    roles.push({ kind: 'head' })
  }

  return roles
}

/** The parameters of a slot span, each name once (tied embeddings: `embed.weight` once), in canonical order */
export function spanParameters (config: ModelConfig, start: number, end: number): ParameterSpec[] {
  const seen = new Set<string>()
  const out: ParameterSpec[] = []

  for (const role of spanRoles(config, start, end)) {
    for (const p of shardParameters(config, role)) {
      if (!seen.has(p.name)) {
        seen.add(p.name)
        out.push(p)
      }
    }
  }

  return canonicalTensors(out)
}

/** Name of the AdamW first-moment tensor of a parameter */
export function adamMName (param: string): string {
  return `adam.m.${param}`
}

/** Name of the AdamW second-moment tensor of a parameter */
export function adamVName (param: string): string {
  return `adam.v.${param}`
}

/** Tensor names and shapes of a span part in canonical order (OPTIMIZER: `adam.m.<p>` and `adam.v.<p>` per parameter) */
export function spanLayout (config: ModelConfig, start: number, end: number, part: SpanPart): TensorLayout[] {
  const params = spanParameters(config, start, end)

  if (part === 'weights') {
    return params
  }

  if (part !== 'optimizer') {
    throw new InvalidParametersError(`part must be 'weights' or 'optimizer', got ${String(part)}`)
  }

  return canonicalTensors(params.flatMap(p => [{ name: adamMName(p.name), shape: p.shape }, { name: adamVName(p.name), shape: p.shape }]))
}
