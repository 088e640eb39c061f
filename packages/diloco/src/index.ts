/**
 * @packageDocumentation
 *
 * DiLoCo for NeuroShard (specs/diloco): inner AdamW steps on a replica's own data, pseudo-gradients
 * Δ = θ_start − θ_now compressed (int8 / fp16 / sparse top-k with error feedback), announced and carried on the
 * replica group's gossipsub topic or fetched over direct streams, committed by a round leader (quorum +
 * adaptive deadline), aggregated with `@neuroshard/robust-agg`, applied with outer Nesterov; elastic membership,
 * resync from the majority, optional differential privacy and round records for training proofs.
 */

export { diloco, DefaultDiLoCo } from './diloco.js'
export type { DiLoCo, DiLoCoInit, DiLoCoComponents, DiLoCoEvents, DiLoCoPubSub, RoundOutcome, ContributionMeta, RefusedDetail, ReplicaSet, StalledDetail } from './diloco.js'
export { spanLayout, flatten, unflatten, weightsHash } from './span.js'
export type { Span, SpanLayout } from './span.js'
export { resolveCodec, payloadSize, encodePayload, decodePayload, ErrorFeedback } from './compress.js'
export type { CodecName, CodecParams, ResolvedCodec } from './compress.js'
export { outerStep } from './outer.js'
export type { OuterOptions } from './outer.js'
export { aggregateRound, aggregatorFor, byzantineBound, minRoundInputs, AGGREGATOR_NAMES } from './aggregate.js'
export type { AggregatorChoice, AggregatorName, RoundAggregate } from './aggregate.js'
export { GaussianPrivatizer, privacyEpsilon } from './dp.js'
export type { PrivacyOptions } from './dp.js'
export { InnerLoop } from './inner.js'
export type { InnerLoopInit, InnerRunResult } from './inner.js'
export { verifyRoundRecord } from './record.js'
export type { RoundRecord, ContributionRecord, VerifyRoundRecordOptions } from './record.js'
export { encodeState, decodeState } from './state.js'
export { StateDownload } from './state-download.js'
export type { StateAnswer, DownloadedState } from './state-download.js'
export {
  openAnnounce, openCommit, checkAnnounce, signBody, leaderKey, codecToWire, sha256, toHex, ab,
  Announce, Commit, Signed, Chunk, GossipMessage, FetchRequest, FetchResponse, FetchKind, FetchStatus, PayloadCodec
} from './messages.js'
export type { OpenedAnnounce, OpenedCommit, RoundExpectation } from './messages.js'
export * from './constants.js'
export * from './errors.js'
