/**
 * @packageDocumentation
 *
 * The local NeuroLLM training loop over `@neuroshard/runtime`'s shard executor: warmup + cosine
 * schedule, gradient accumulation, periodic validation loss, atomic checkpoints of the full training
 * state and exact resume; plus sampling (temperature, top-k, top-p) and KV-cache generation.
 */

export { train, learningRate, tokensDigest, weightsHash } from './trainer.js'
export type { TrainOptions, TrainResult, TrainEvent } from './trainer.js'
export { TrainBatchStream, validationBatches, checkTokenRange, unigramEntropy, epochSeed } from './data.js'
export type { Tokens, TokenBatch, DataPosition } from './data.js'
export { encodeTrainState, decodeTrainState, saveTrainState, loadTrainState, loadLatestTrainState, listCheckpoints, checkpointFileName, writeFileAtomic } from './state.js'
export type { TrainState, TrainSettings, EvalPoint } from './state.js'
export { samplingDistribution, sampleFrom, sampleToken, samplingRng, argmax } from './sampling.js'
export type { SamplingOptions } from './sampling.js'
export { TextGenerator, GenerationSession } from './generate.js'
export type { TextGeneratorInit, GenerateOptions, TokenDrafter } from './generate.js'
export * from './constants.js'
export * from './errors.js'
