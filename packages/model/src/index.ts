/**
 * @packageDocumentation
 *
 * NeuroLLM: architecture config, presets, scaling rule, parameter layout and init, shard graphs and
 * safetensors checkpoints.
 */

export * from './config.js'
export * from './params.js'
export * from './errors.js'
export * from './validate.js'
export * from './presets.js'
export * from './scaling.js'
export * from './init.js'
export * from './safetensors.js'
export * from './checkpoint.js'
export * from './quantize.js'
export * from './graphs/index.js'
