/**
 * @packageDocumentation
 *
 * onnxruntime-node sessions off the main event loop: CPU/CUDA execution providers (CUDA falls back to
 * CPU with one clear warning), input validation with typed errors that name the tensor, a shard executor
 * (forward, backward, AdamW step) and KV-cache inference sessions.
 */

export * from './errors.js'
export * from './constants.js'
export * from './tensor.js'
export * from './validate.js'
export * from './optim.js'
export * from './runtime.js'
export * from './executor.js'
export type { AdamWResult, TiedReplicaStepResult } from './protocol.js'
export * from './inference.js'
