import { compareNames, contentHash, countParameters, float32AsBytes, initParameter, shardParameters } from '@neuroshard/model'
import { InvalidParametersError } from '@neuroshard/interface'
import { slotCount, spanRoles } from './transfer/span.js'
import type { ModelConfig, ParameterSpec, ShardRole } from '@neuroshard/model'

export { assertSpan, slotCount, spanRoles } from './transfer/span.js'

/**
 * Slots: the units the pool assigns. A model with L blocks has L + 2 slots: 0 = embed (the Driver's),
 * 1..L = block i - 1 (Workers'), L + 1 = head (final norm + LM head + loss, the Validator's). A span is a
 * half-open slot range [start, end), so one node can hold embed and the first blocks, or the last blocks
 * and the head, in one contiguous piece of the pipeline.
 */

/** The shard role of one slot */
export function slotRole (config: ModelConfig, slot: number): ShardRole {
  assertSlot(config, slot)
  if (slot === 0) return { kind: 'embed' }
  if (slot === config.nLayers + 1) return { kind: 'head' }
  return { kind: 'blocks', start: slot - 1, end: slot }
}

/** The parameters of one slot, in canonical (byte-wise name) order */
export function slotParameters (config: ModelConfig, slot: number): ParameterSpec[] {
  return [...shardParameters(config, slotRole(config, slot))].sort((a, b) => compareNames(a.name, b.name))
}

/** Number of scalar parameters of a slot (tied embeddings: the head counts the shared matrix too, it holds a copy) */
export function slotParameterCount (config: ModelConfig, slot: number): number {
  return countParameters(slotParameters(config, slot))
}

/** Memory a slot needs on a node at `bytesPerParameter` bytes per parameter */
export function slotMemory (config: ModelConfig, slot: number, bytesPerParameter: number): number {
  return slotParameterCount(config, slot) * bytesPerParameter
}

/** Throws unless `slot` is a slot of `config` */
export function assertSlot (config: ModelConfig, slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= slotCount(config)) {
    throw new InvalidParametersError(`slot ${slot} is out of range [0, ${slotCount(config)})`)
  }
}

/** A readable name of a span: `[0,3) embed+blocks[0,2)` */
export function describeSpan (config: ModelConfig, start: number, end: number): string {
  return `[${start},${end}) ` + spanRoles(config, start, end).map(r => r.kind === 'blocks' ? `blocks[${r.start},${r.end})` : r.kind).join('+')
}

/** The genesis weights of one slot: the model's deterministic init for `seed` (specs/model, "Init") */
export function genesisSlotParameters (config: ModelConfig, slot: number, seed: number | bigint): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  for (const spec of slotParameters(config, slot)) out.set(spec.name, initParameter(config, spec, seed))
  return out
}

/** contentHash (specs/model) of one slot's parameters, as lowercase hex */
export function slotWeightsHash (config: ModelConfig, slot: number, parameters: Map<string, Float32Array>): string {
  return contentHash(slotParameters(config, slot).map(spec => {
    const data = parameters.get(spec.name)
    if (data == null) throw new InvalidParametersError(`slot ${slot} is missing parameter ${spec.name}`)
    return { name: spec.name, dtype: 'F32', shape: spec.shape, data: float32AsBytes(data) }
  }))
}
