/**
 * Weight transfer between peers, `/neuroshard/layer-pool/weights/1.0.0` (specs/layer-pool/transfer.md):
 * the canonical chunked stream of a span's weights or optimizer state, a server that streams chunks
 * from whatever holds them, and a client that fetches from several replicas at once and verifies
 * every byte against a signed record's chunks root and weights hash.
 */

export * from './constants.js'
export * from './errors.js'
export type * from './types.js'
export {
  assembleTensors, canonicalStream, canonicalTensors, chunkCount, chunkLength, computeChunksRoot, digestChunks, digestChunksAsync,
  elementCount, hashChunk, streamBytes, tensorsContentHash, ChunkReader
} from './chunks.js'
export type { ChunkDigest, DigestOptions, SpanTensor, StreamBytes, TensorLayout } from './chunks.js'
export { adamMName, adamVName, spanLayout, spanParameters } from './span.js'
export { weightsServer } from './server.js'
export type { WeightsServer, WeightsServerComponents, WeightsServerInit, WeightsServerStats } from './server.js'
export { fetchSpanWeights } from './client.js'
export type { ExpectedSpanWeights, FetchSpanWeightsOptions } from './client.js'
export { fromHex, toHex } from './hex.js'
export { hashThreadStats, prefaultedBuffer, stopHashThread, streamContentHash, THREADED_HASH_MIN_BYTES } from './hash-thread.js'
export type { StreamContentHash, StreamContentHashOptions } from './hash-thread.js'
