import { peerIdFromMultihash, peerIdFromPublicKey } from '@libp2p/peer-id'
import { RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import * as Digest from 'multiformats/hashes/digest'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { fromString as uint8ArrayFromString } from 'uint8arrays/from-string'
import { toString as uint8ArrayToString } from 'uint8arrays/to-string'
import {
  LAYER_POOL_DHT_NAMESPACE,
  LAYER_RECORD_DOMAIN,
  LAYER_RECORD_PAYLOAD_TYPE,
  MAX_ADDRESSES_PER_RECORD,
  MAX_CLOCK_SKEW_MS,
  MAX_RECORD_SIZE,
  MAX_RECORD_TTL_MS,
  MAX_SPANS_PER_RECORD
} from './constants.js'
import { ExpiredLayerRecordError, ForgedLayerRecordError, InvalidLayerRecordError, OversizedLayerRecordError } from './errors.js'
import { LayerRecord as LayerRecordPb, SpanState, WeightFormat } from './pb/layer-pool.js'
import type { PeerId, PrivateKey, Record as Libp2pRecord } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** What a node does with a span */
export type SpanStateName = 'loading' | 'serving' | 'training' | 'leaving'

/** The weights a node's inference sessions of a span run with (spec §2.1, `weight_format`) */
export type SpanQuantization = 'fp32' | 'int8' | 'int4'

/**
 * Quantization group sizes a quantized span may declare besides the default 32 (spec 1.7.0,
 * `quant_block_size`): 32 is written by leaving the field out, so that it has one encoding
 */
export const SPAN_QUANT_BLOCK_SIZES: readonly number[] = Object.freeze([64, 128])

/** What a node holds in one slot of a span */
export interface SlotInfo {
  /** contentHash of the slot's weights (64 lowercase hex chars) */
  weightsHash: string
  /** chunks root of the slot's weight stream (64 lowercase hex chars) */
  chunksRoot: string
  /** chunks root of the slot's AdamW state, when the node trains the span */
  optimizerRoot?: string
  /**
   * Optimizer steps behind this slot's weights when fewer than its span's `weightsStep` (spec 1.6.0; absent: the
   * span's). A span's step is that of its most trained slot: slots trained in separate groups update one at a time
   */
  weightsStep?: number
}

/** One contiguous slot range a node holds */
export interface LayerSpan {
  start: number
  end: number
  state: SpanStateName
  /** Measured tokens/s of this span (0 when not measured yet); carried with 0.001 resolution */
  throughput: number
  /** One entry per slot of [start, end) */
  slots: SlotInfo[]
  /** Optimizer steps behind these weights (0 at genesis) */
  weightsStep: number
  /** When the holder first claimed the span, ms since the epoch: the earlier claim wins a race */
  claimedAt: number
  /**
   * The weights the holder serves inference with: blockwise int8 / 4-bit (32-value groups unless
   * `quantBlockSize` says otherwise) quantized from the slots' float32 weights (whose hashes the record lists), or
   * float32 when absent
   */
  quantization?: SpanQuantization
  /**
   * Values per quantization group of an int8 / int4 span when not 32: 64 or 128 (spec 1.7.0; absent: 32, the
   * only size before 1.7.0). Larger groups read fewer scale bytes per weight (faster decode) at some accuracy cost
   */
  quantBlockSize?: number
  /**
   * Tokens of one more inference session the holder can still keep in its KV cache on this span (spec 1.3.0,
   * absent: unknown): routers skip the span for a longer session and add a cost as it runs out
   */
  kvTokensLeft?: number
}

/** A decoded, checked layer record */
export interface LayerPoolRecord {
  modelId: string
  version: number
  peerId: PeerId
  sequence: bigint
  issuedAt: number
  expiresAt: number
  memoryBytes: number
  addresses: Multiaddr[]
  spans: LayerSpan[]
}

/** A record as published: the checked content and the signed envelope bytes that carry it */
export interface SignedLayerRecord {
  record: LayerPoolRecord
  bytes: Uint8Array
}

const MODEL_ID_RE = /^[a-z0-9][a-z0-9-]{0,63}$/
const HEX32_RE = /^[0-9a-f]{64}$/
const STATE_TO_PB: Record<SpanStateName, SpanState> = {
  loading: SpanState.LOADING, serving: SpanState.SERVING, training: SpanState.TRAINING, leaving: SpanState.LEAVING
}
const QUANT_TO_PB: Record<SpanQuantization, WeightFormat> = { fp32: WeightFormat.FP32, int8: WeightFormat.INT8, int4: WeightFormat.INT4 }
const PB_TO_QUANT = new Map<string, SpanQuantization>([[WeightFormat.FP32, 'fp32'], [WeightFormat.INT8, 'int8'], [WeightFormat.INT4, 'int4']])
const PB_TO_STATE = new Map<string, SpanStateName>([
  [SpanState.LOADING, 'loading'], [SpanState.SERVING, 'serving'], [SpanState.TRAINING, 'training'], [SpanState.LEAVING, 'leaving']
])

/** Encoded bytes as the payload of a libp2p signed envelope (RFC 0002) with a domain and payload type */
export class EnvelopePayload implements Libp2pRecord {
  constructor (readonly domain: string, readonly codec: Uint8Array, private readonly bytes: Uint8Array) {}
  marshal (): Uint8Array { return this.bytes }
  equals (other: Libp2pRecord): boolean { return uint8ArrayEquals(this.marshal(), other.marshal()) }
}

/** Options of the checks applied to a record */
export interface CheckRecordOptions {
  /** Current time, ms since the epoch @default Date.now() */
  now?: number
  /** Accept an expired record (e.g. to look at a leave announcement) @default false */
  allowExpired?: boolean
  /** Number of slots of the record's model version, when known: spans must lie inside it */
  slotCount?: number
}

/** Encodes the protobuf payload of a record (deterministic protons encoding) */
/** The optimizer steps behind the weights of slot `slot` of `span` (spec §2.1: the slot's own when listed, else the span's) */
export function slotWeightsStep (span: LayerSpan, slot: number): number {
  return span.slots[slot - span.start]?.weightsStep ?? span.weightsStep
}

export function encodeLayerRecord (record: LayerPoolRecord): Uint8Array {
  checkLayerRecord(record, { allowExpired: true, now: record.issuedAt })
  return encodeUnchecked(record)
}

function encodeUnchecked (record: LayerPoolRecord): Uint8Array {
  return LayerRecordPb.encode({
    modelId: record.modelId,
    version: record.version,
    peerId: record.peerId.toMultihash().bytes,
    sequence: record.sequence,
    issuedAtMs: BigInt(record.issuedAt),
    expiresAtMs: BigInt(record.expiresAt),
    memoryBytes: BigInt(record.memoryBytes),
    addresses: record.addresses.map(a => a.bytes),
    spans: record.spans.map(s => ({
      start: s.start,
      end: s.end,
      state: STATE_TO_PB[s.state],
      throughputMilli: BigInt(Math.round(s.throughput * 1000)),
      slots: s.slots.map(slot => ({
        weightsHash: uint8ArrayFromString(slot.weightsHash, 'base16'),
        chunksRoot: uint8ArrayFromString(slot.chunksRoot, 'base16'),
        optimizerRoot: slot.optimizerRoot != null ? uint8ArrayFromString(slot.optimizerRoot, 'base16') : new Uint8Array(0),
        ...(slot.weightsStep != null ? { weightsStep: BigInt(slot.weightsStep) } : {})
      })),
      weightsStep: BigInt(s.weightsStep),
      claimedAtMs: BigInt(s.claimedAt),
      weightFormat: QUANT_TO_PB[s.quantization ?? 'fp32'],
      ...(s.kvTokensLeft != null ? { kvTokensLeft: BigInt(s.kvTokensLeft) } : {}),
      ...(s.quantBlockSize != null ? { quantBlockSize: s.quantBlockSize } : {})
    }))
  })
}

/**
 * Signs a record with the holder's libp2p key into a signed envelope (RFC 0002, domain
 * `neuroshard-layer-pool`). The key must be the one of `record.peerId`.
 */
export async function signLayerRecord (record: LayerPoolRecord, privateKey: PrivateKey): Promise<SignedLayerRecord> {
  if (!peerIdFromPublicKey(privateKey.publicKey).equals(record.peerId)) {
    throw new ForgedLayerRecordError('a layer record can only be signed by the key of the peer it names')
  }
  const envelope = await RecordEnvelope.seal(new EnvelopePayload(LAYER_RECORD_DOMAIN, LAYER_RECORD_PAYLOAD_TYPE, encodeLayerRecord(record)), privateKey)
  const bytes = envelope.marshal()
  if (bytes.byteLength > MAX_RECORD_SIZE) {
    throw new OversizedLayerRecordError(`signed record is ${bytes.byteLength} bytes, the limit is ${MAX_RECORD_SIZE}`)
  }
  return { record, bytes }
}

/**
 * Opens a signed layer record from the network: size cap, envelope signature, signer = named peer,
 * field and time checks.
 *
 * @throws OversizedLayerRecordError, InvalidLayerRecordError, ForgedLayerRecordError, ExpiredLayerRecordError
 */
export async function openLayerRecord (bytes: Uint8Array, options: CheckRecordOptions = {}): Promise<SignedLayerRecord> {
  if (!(bytes instanceof Uint8Array)) throw new InvalidLayerRecordError('a layer record must be bytes')
  if (bytes.byteLength > MAX_RECORD_SIZE) {
    throw new OversizedLayerRecordError(`signed record is ${bytes.byteLength} bytes, the limit is ${MAX_RECORD_SIZE}`)
  }
  let envelope: RecordEnvelope
  try {
    envelope = RecordEnvelope.createFromProtobuf(bytes)
  } catch (err: any) {
    throw new InvalidLayerRecordError(`not a signed envelope: ${err.message}`)
  }
  // canonical bytes only: a re-encoding of the same content (protobuf wire-type or field-order tricks) is a
  // different message on gossip and in the DHT selector, so it is refused rather than deduplicated later
  const canonical = new RecordEnvelope({ publicKey: envelope.publicKey, payloadType: envelope.payloadType, payload: envelope.payload, signature: envelope.signature }).marshal()
  if (!uint8ArrayEquals(canonical, bytes)) {
    throw new InvalidLayerRecordError('the envelope is not canonically encoded')
  }
  if (!uint8ArrayEquals(envelope.payloadType, LAYER_RECORD_PAYLOAD_TYPE)) {
    throw new InvalidLayerRecordError('envelope payload type is not a layer record')
  }
  let valid = false
  try {
    valid = await envelope.validate(LAYER_RECORD_DOMAIN)
  } catch (err: any) {
    throw new ForgedLayerRecordError(`signature check failed: ${err.message}`)
  }
  if (!valid) throw new ForgedLayerRecordError('the envelope signature does not verify')
  const record = decodeLayerRecord(envelope.payload)
  if (!uint8ArrayEquals(encodeUnchecked(record), envelope.payload)) {
    throw new InvalidLayerRecordError('the record is not canonically encoded')
  }
  if (!peerIdFromPublicKey(envelope.publicKey).equals(record.peerId)) {
    throw new ForgedLayerRecordError(`record names peer ${record.peerId.toString()} but was signed by another key`)
  }
  checkLayerRecord(record, options)
  return { record, bytes }
}

/** Decodes the protobuf payload (no signature or time checks) */
export function decodeLayerRecord (payload: Uint8Array): LayerPoolRecord {
  let pb: LayerRecordPb
  try {
    pb = LayerRecordPb.decode(payload, {
      limits: { addresses: MAX_ADDRESSES_PER_RECORD, spans: MAX_SPANS_PER_RECORD }
    })
  } catch (err: any) {
    throw new InvalidLayerRecordError(`malformed layer record: ${err.message}`)
  }
  let peerId: PeerId
  try {
    peerId = peerIdFromMultihash(Digest.decode(pb.peerId))
  } catch (err: any) {
    throw new InvalidLayerRecordError(`bad peer id: ${err.message}`)
  }
  const addresses: Multiaddr[] = []
  for (const a of pb.addresses) {
    try {
      addresses.push(multiaddr(a))
    } catch (err: any) {
      throw new InvalidLayerRecordError(`bad address: ${err.message}`)
    }
  }
  const spans = pb.spans.map((s): LayerSpan => {
    const state = PB_TO_STATE.get(s.state)
    if (state == null) throw new InvalidLayerRecordError(`unknown span state ${String(s.state)}`)
    const quantization = PB_TO_QUANT.get(s.weightFormat)
    if (quantization == null) throw new InvalidLayerRecordError(`unknown weight format ${String(s.weightFormat)}`)
    return {
      start: s.start,
      end: s.end,
      state,
      throughput: safeNumber(s.throughputMilli, 'throughput_milli') / 1000,
      slots: s.slots.map(slot => {
        if (slot.weightsHash.byteLength !== 32 || slot.chunksRoot.byteLength !== 32) {
          throw new InvalidLayerRecordError('slot hashes must be 32 bytes')
        }
        if (slot.optimizerRoot.byteLength !== 0 && slot.optimizerRoot.byteLength !== 32) {
          throw new InvalidLayerRecordError('optimizer_root must be empty or 32 bytes')
        }
        return {
          weightsHash: uint8ArrayToString(slot.weightsHash, 'base16'),
          chunksRoot: uint8ArrayToString(slot.chunksRoot, 'base16'),
          ...(slot.optimizerRoot.byteLength === 32 ? { optimizerRoot: uint8ArrayToString(slot.optimizerRoot, 'base16') } : {}),
          ...(slot.weightsStep != null ? { weightsStep: safeNumber(slot.weightsStep, 'weights_step') } : {})
        }
      }),
      weightsStep: safeNumber(s.weightsStep, 'weights_step'),
      claimedAt: safeNumber(s.claimedAtMs, 'claimed_at_ms'),
      ...(quantization !== 'fp32' ? { quantization } : {}),
      ...(s.kvTokensLeft != null ? { kvTokensLeft: safeNumber(s.kvTokensLeft, 'kv_tokens_left') } : {}),
      ...(s.quantBlockSize != null ? { quantBlockSize: s.quantBlockSize } : {})
    }
  })
  return {
    modelId: pb.modelId,
    version: pb.version,
    peerId,
    sequence: pb.sequence,
    issuedAt: safeNumber(pb.issuedAtMs, 'issued_at_ms'),
    expiresAt: safeNumber(pb.expiresAtMs, 'expires_at_ms'),
    memoryBytes: safeNumber(pb.memoryBytes, 'memory_bytes'),
    addresses,
    spans
  }
}

function safeNumber (value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidLayerRecordError(`${field} is out of range`)
  return Number(value)
}

/**
 * The field and time rules of a record (specs/layer-pool/README.md, "Record rules").
 *
 * @throws InvalidLayerRecordError or ExpiredLayerRecordError
 */
export function checkLayerRecord (record: LayerPoolRecord, options: CheckRecordOptions = {}): void {
  const now = options.now ?? Date.now()
  if (!MODEL_ID_RE.test(record.modelId)) throw new InvalidLayerRecordError(`bad model id "${record.modelId}"`)
  if (!Number.isInteger(record.version) || record.version < 1 || record.version > 0xffffffff) {
    throw new InvalidLayerRecordError(`bad architecture version ${record.version}`)
  }
  if (record.sequence < 1n || record.sequence >= 1n << 64n) throw new InvalidLayerRecordError('sequence must be in [1, 2^64)')
  for (const [name, v] of [['issued_at_ms', record.issuedAt], ['expires_at_ms', record.expiresAt], ['memory_bytes', record.memoryBytes]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new InvalidLayerRecordError(`${name} must be a non-negative integer`)
  }
  if (record.expiresAt <= record.issuedAt) throw new InvalidLayerRecordError('a record must expire after it is issued')
  if (record.expiresAt - record.issuedAt > MAX_RECORD_TTL_MS) {
    throw new InvalidLayerRecordError(`a record may live at most ${MAX_RECORD_TTL_MS} ms`)
  }
  if (record.issuedAt > now + MAX_CLOCK_SKEW_MS) throw new InvalidLayerRecordError('record issued in the future')
  if (record.addresses.length > MAX_ADDRESSES_PER_RECORD) throw new InvalidLayerRecordError('too many addresses')
  if (record.spans.length > MAX_SPANS_PER_RECORD) throw new InvalidLayerRecordError('too many spans')
  let previousEnd = 0
  for (const span of record.spans) {
    if (!Number.isInteger(span.start) || !Number.isInteger(span.end) || span.start < previousEnd || span.end <= span.start) {
      throw new InvalidLayerRecordError(`spans must be non-empty, sorted and disjoint (got [${span.start}, ${span.end}))`)
    }
    if (options.slotCount != null && span.end > options.slotCount) {
      throw new InvalidLayerRecordError(`span [${span.start}, ${span.end}) is beyond the model's ${options.slotCount} slots`)
    }
    if (span.slots.length !== span.end - span.start) throw new InvalidLayerRecordError('a span must list one slot entry per slot')
    if (!Number.isFinite(span.throughput) || span.throughput < 0) throw new InvalidLayerRecordError('throughput must be finite and >= 0')
    if (!Number.isSafeInteger(span.weightsStep) || span.weightsStep < 0) throw new InvalidLayerRecordError('weights_step must be a non-negative integer')
    if (span.quantization != null && !Object.hasOwn(QUANT_TO_PB, span.quantization)) throw new InvalidLayerRecordError(`unknown weight format ${String(span.quantization)}`)
    if (span.quantBlockSize != null) {
      if (!SPAN_QUANT_BLOCK_SIZES.includes(span.quantBlockSize)) throw new InvalidLayerRecordError(`quant_block_size must be absent (32) or one of ${SPAN_QUANT_BLOCK_SIZES.join(', ')}, got ${String(span.quantBlockSize)}`)
      if ((span.quantization ?? 'fp32') === 'fp32') throw new InvalidLayerRecordError('quant_block_size on a float32 span')
    }
    if (span.kvTokensLeft != null && (!Number.isSafeInteger(span.kvTokensLeft) || span.kvTokensLeft < 0)) throw new InvalidLayerRecordError('kv_tokens_left must be a non-negative integer')
    if (!Number.isSafeInteger(span.claimedAt) || span.claimedAt < 0 || span.claimedAt > record.issuedAt) {
      throw new InvalidLayerRecordError('claimed_at_ms must be an integer no later than issued_at_ms')
    }
    for (const slot of span.slots) {
      if (!HEX32_RE.test(slot.weightsHash) || !HEX32_RE.test(slot.chunksRoot) || (slot.optimizerRoot != null && !HEX32_RE.test(slot.optimizerRoot))) {
        throw new InvalidLayerRecordError('slot hashes must be 64 lowercase hex characters')
      }
      if (slot.weightsStep != null && (!Number.isSafeInteger(slot.weightsStep) || slot.weightsStep < 0 || slot.weightsStep >= span.weightsStep)) {
        throw new InvalidLayerRecordError('a slot\'s weights_step must be an integer below its span\'s weights_step (absent when equal)')
      }
    }
    previousEnd = span.end
  }
  // last (spec §2.2 rule 7): a record that breaks a field rule is invalid whether or not it has expired
  if (options.allowExpired !== true && record.expiresAt <= now) {
    throw new ExpiredLayerRecordError(`record of ${record.peerId.toString()} expired ${now - record.expiresAt} ms ago`)
  }
}

/** The DHT record id (after `/neuroshard/layer-pool/`) of a peer's record: `1/<modelId>/<version>/<peerId>` (1: the protocol's major) */
export function layerRecordDhtId (modelId: string, version: number, peerId: PeerId): string {
  return `1/${modelId}/${version}/${peerId.toString()}`
}

/** The full DHT key of a peer's record */
export function layerRecordDhtKey (modelId: string, version: number, peerId: PeerId): Uint8Array {
  return new TextEncoder().encode(`/neuroshard/${LAYER_POOL_DHT_NAMESPACE}/${layerRecordDhtId(modelId, version, peerId)}`)
}

/**
 * The host's record validator for the `layer-pool` namespace (pass it as
 * `createNeuroShardHost({ recordValidators: { 'layer-pool': layerPoolRecordValidator() } })`): the payload must be a
 * valid, unexpired, correctly signed layer record of the model, version and peer its key names, and the DHT
 * sequence must equal the record's.
 */
export function layerPoolRecordValidator (options: { now?(): number } = {}): (id: string, record: { sequence: bigint, payload: Uint8Array }) => Promise<void> {
  return async (id, dhtRecord) => {
    const { record } = await openLayerRecord(dhtRecord.payload, { now: options.now?.() })
    const expected = layerRecordDhtId(record.modelId, record.version, record.peerId)
    if (id !== expected) throw new InvalidLayerRecordError(`record stored under ${id} belongs under ${expected}`)
    if (dhtRecord.sequence !== record.sequence) throw new InvalidLayerRecordError('DHT sequence differs from the record sequence')
  }
}
