import type { SpanTensor, TensorLayout } from './chunks.js'
import type { AbortOptions, PeerId } from '@libp2p/interface'

/** Which part of a span's state: the parameters, or the AdamW optimizer state */
export type SpanPart = 'weights' | 'optimizer'

/** What a requester names: a slot span of a model version, and a part */
export interface SpanRequest {
  modelId: string
  version: number
  /** First slot (0 = embed, 1..L = blocks, L + 1 = head) */
  start: number
  /** One past the last slot */
  end: number
  part: SpanPart
}

/** What a server holds for a span part */
export interface SpanContent {
  /** The tensors (any order; they are served in canonical order), F32 */
  tensors: SpanTensor[]
  /** AdamW steps taken (OPTIMIZER part) @default 0 */
  optimizerStep?: number
}

/**
 * Looks up what this node holds for a request; `undefined` when it holds nothing for that span and
 * part. The returned tensors must not change while they are served: return new arrays when the
 * weights change (the server caches chunk hashes per content and checks the arrays are the same).
 */
export interface SpanContentProvider {
  (request: SpanRequest, options?: AbortOptions): SpanContent | undefined | Promise<SpanContent | undefined>
}

/** A manifest the requester checked against the expected chunks root and span layout */
export interface WeightsManifest {
  /** Tensor names and shapes in canonical order */
  tensors: TensorLayout[]
  totalBytes: number
  chunkSize: number
  chunkHashes: Uint8Array[]
  /** OPTIMIZER part: the step count the server reported (not covered by the chunks root) */
  optimizerStep: number
  /** Lowercase hex chunks root the manifest hashes to */
  chunksRoot: string
}

/**
 * What a fetch had verified when it stopped. Pass it back as `resume` (for the same chunks root) and
 * only the missing chunks are fetched.
 */
export interface PartialSpanWeights {
  /** Lowercase hex chunks root the chunks belong to */
  chunksRoot: string
  manifest: WeightsManifest
  /** The canonical stream being filled (`manifest.totalBytes` long); only `verified` chunks are meaningful */
  stream: Uint8Array
  /** Indices of the chunks in `stream` that matched their hash */
  verified: Set<number>
}

/** Why a replica was dropped from a fetch */
export type ReplicaFaultKind =
  | 'chunk-hash' // sent a chunk whose hash is not the manifest's
  | 'manifest' // sent a manifest that does not match the chunks root or the span layout
  | 'protocol' // broke the protocol (unrequested/duplicate/short chunks, malformed messages)
  | 'timeout' // a message did not arrive in time
  | 'not-found' // does not hold the content
  | 'rejected' // answered BAD_REQUEST, BUSY (after retries) or INTERNAL_ERROR
  | 'unreachable' // the stream could not be opened or closed early

/** A replica dropped from a fetch */
export interface ReplicaFault {
  peer: PeerId
  kind: ReplicaFaultKind
  /** `true` for faults an honest replica does not commit (chunk-hash, manifest, protocol, timeout): avoid it */
  misbehaved: boolean
  error: Error
}

/** Progress of a fetch */
export interface WeightsTransferProgress {
  /** `manifest`: a manifest was verified; `chunk`: a chunk was verified; `replica-dropped`: a replica left the fetch */
  type: 'manifest' | 'chunk' | 'replica-dropped'
  chunksDone: number
  chunksTotal: number
  bytesDone: number
  bytesTotal: number
  /** The replica concerned (chunk: who sent it) */
  peer?: PeerId
  /** `replica-dropped`: why */
  fault?: ReplicaFault
}

/** A completed fetch */
export interface SpanWeights {
  /** The tensors by name (views of one buffer, canonical order) */
  tensors: Map<string, Float32Array>
  manifest: WeightsManifest
  /** Lowercase hex contentHash of the tensors (equal to the expected weights hash) */
  weightsHash: string
  /** OPTIMIZER part: the step count the replicas reported */
  optimizerStep: number
  /** Chunks fetched by this call (resumed chunks excluded), per replica (peer id string) */
  chunksFetched: Map<string, number>
  /** Chunks that came from `resume` */
  chunksResumed: number
  /** Replicas dropped during the fetch, and why */
  faults: ReplicaFault[]
  /** Peers of the faults that an honest replica does not commit */
  misbehaving: PeerId[]
}
