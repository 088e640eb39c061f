/**
 * @packageDocumentation
 *
 * NeuroLLM across nodes (specs/pipeline/README.md): the Driver (embedding + tokenizer) sends activations to
 * the first Worker, each Worker runs its blocks (with the session's KV cache) and sends its output straight
 * to the next hop, the Validator (final norm + LM head) samples the token, and the answer comes back along
 * the route. Training runs the same chain: train-forward down, loss at the Validator, gradients back up,
 * each node accumulating and stepping AdamW on its own layers with the pipeline-global gradient norm.
 *
 * @example
 * ```ts
 * import { createNeuroShardHost } from '@neuroshard/host'
 * import { pipeline, createPipelineStage, staticRouter } from '@neuroshard/pipeline'
 *
 * const stage = await createPipelineStage({ config, start: 0, end: 1, parameters })
 * const host = await createNeuroShardHost({ services: { pipeline: pipeline({ stages: [stage], router }) } })
 * for await (const token of host.services.pipeline.generate('Hello', { maxNewTokens: 16 })) {
 *   process.stdout.write(token.text)
 * }
 * ```
 */
import { DefaultPipeline } from './pipeline.js'
import type { Pipeline, PipelineComponents, PipelineInit } from './pipeline.js'

export * from './constants.js'
export * from './errors.js'
export * from './codec.js'
export * from './sampling.js'
export * from './speculative.js'
export * from './tokenizer.js'
export * from './stage.js'
export * from './router.js'
export { SessionTable, kvBytesPerToken } from './sessions.js'
export type { SessionTableInit } from './sessions.js'
export { peerBytes, peerFromBytes } from './peer.js'
export { errorFromResponse, SLOW_HOP_MS } from './pipeline.js'
export { generateRemote } from './client.js'
export type { GenerateDialer, RemoteGenerateOptions } from './client.js'
export type { GenerateOptions, GeneratedToken, SpeculativeRound, Pipeline, PipelineComponents, PipelineEvents, PipelineInit, RecoveryTiming, SlowHop, TrainBatch, TrainStepOptions, TrainStepResult } from './pipeline.js'
export { Kind, Request as PipelineRequest, Response as PipelineResponse, Hop as PipelineHop, Sampling as PipelineSampling, GenerateRequest, GenerateEvent, DraftToken as PipelineDraftToken } from './pb/pipeline.js'

/**
 * The pipeline as a libp2p service (name it `pipeline` in the host's services). Every node that holds a
 * span serves it; the node holding slot 0 is a Driver and can `generate()` and `trainStep()`.
 */
export function pipeline (init: PipelineInit = {}): (components: PipelineComponents) => Pipeline {
  return (components) => new DefaultPipeline(components, init)
}
