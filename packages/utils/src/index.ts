/**
 * @packageDocumentation
 *
 * Stream helpers every NeuroShard protocol uses: length-prefixed (unsigned-varint) protobuf messages
 * over libp2p 3 streams with a per-message timeout and a size cap, one-shot request/response on top
 * of them, and abort/timeout helpers. Every failure surfaces as a typed error from
 * `@neuroshard/interface`. The framing is specified in `specs/README.md`.
 */

export { timeoutSignal, withTimeout, raceSignal } from './abort.js'
export type { TimeoutSignal, TimeoutSignalOptions } from './abort.js'
export { DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MESSAGE_TIMEOUT_MS, DEFAULT_READ_HIGH_WATER_MARK } from './constants.js'
export { toStreamError } from './framing.js'
export { messageStream } from './message-stream.js'
export type { FramedStream, MessageCodec, MessageDecoder, MessageEncoder, MessageOptions, MessageStreamOptions } from './message-stream.js'
export { handleRequests, openStream, releaseWhenRemoteCloses, sendRequest } from './request.js'
export type { Dialer, HandleRequestsOptions, HandlerRegistrar, ProtocolDialer, RequestContext, RequestHandler, SendRequestOptions, StreamOpener } from './request.js'
