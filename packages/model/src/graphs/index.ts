export { buildShardGraph, buildModelGraph, SHARD_IO, SHARD_DIMS } from './shards.js'
export type { IOSpec, ModelVariant, ShardGraph, ShardGraphOptions, ShardVariant } from './shards.js'
export { MASK_VALUE, applyRope, attention, block, crossEntropy, fusedBlock, fusedLmHead, fusedTables, lmHead, mlp, rmsNorm, ropeTables } from './layers.js'
export type { BlockWeights, FusedTables, KvCache, RopeTables } from './layers.js'
