/**
 * @packageDocumentation
 *
 * NeuroLLM: architecture config, presets, scaling rule, parameter layout and init, shard graphs and
 * safetensors checkpoints.
 */

export * from './config.js'
export * from './params.js'
