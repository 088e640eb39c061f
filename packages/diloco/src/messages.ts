/**
 * Signed announces and commits (specs/diloco §2–§3): encoding, signing, opening (signature, signer = named
 * peer, format rules) and the per-round checks that refuse wrong-round, wrong-base-hash, wrong-span and
 * oversized pseudo-gradients with typed errors.
 */

import { createHash } from 'node:crypto'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { ANNOUNCE_DOMAIN, COMMIT_DOMAIN, MAX_ANNOUNCE_BYTES, MAX_COMMIT_BYTES, MAX_COMMIT_SENDERS, MAX_DATA_SHARDS } from './constants.js'
import { payloadSize, resolveCodec } from './compress.js'
import {
  BaseHashMismatchError, InvalidCommitError, InvalidSignatureError, MalformedPseudoGradientError, OversizedPseudoGradientError,
  WrongRoundError, WrongSpanError
} from './errors.js'
import { Announce, PayloadCodec, Commit, Signed } from './pb/diloco.js'
import type { CodecName, ResolvedCodec } from './compress.js'
import type { PrivateKey } from '@libp2p/interface'

export { Announce, PayloadCodec, Commit, Signed, Chunk, GossipMessage, FetchRequest, FetchResponse, FetchKind, FetchStatus } from './pb/diloco.js'

const CODEC_NAMES: Record<string, CodecName> = { [PayloadCodec.FP32]: 'fp32', [PayloadCodec.FP16]: 'fp16', [PayloadCodec.INT8]: 'int8', [PayloadCodec.SPARSE]: 'sparse' }
const CODEC_ENUM: Record<CodecName, PayloadCodec> = { fp32: PayloadCodec.FP32, fp16: PayloadCodec.FP16, int8: PayloadCodec.INT8, sparse: PayloadCodec.SPARSE }

export function codecToWire (c: ResolvedCodec): Pick<Announce, 'codec' | 'blockSize' | 'chunk' | 'topK' | 'bits'> {
  return { codec: CODEC_ENUM[c.codec], blockSize: c.blockSize, chunk: c.chunk, topK: c.topK, bits: c.bits }
}

export function sha256 (data: Uint8Array): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(createHash('sha256').update(data).digest())
}

export function toHex (b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

function signedData (domain: string, body: Uint8Array): Uint8Array {
  const d = Buffer.from(domain, 'utf8')
  const out = new Uint8Array(d.length + 1 + body.length)
  out.set(d, 0)
  out.set(body, d.length + 1)
  return out
}

/** The bytes as a `Uint8Array<ArrayBuffer>` (what the generated protobuf types want); copies only shared memory */
export function ab (x: Uint8Array): Uint8Array<ArrayBuffer> {
  return x.buffer instanceof ArrayBuffer ? x as Uint8Array<ArrayBuffer> : new Uint8Array(x)
}

export async function signBody (domain: string, body: Uint8Array, privateKey: PrivateKey): Promise<Signed> {
  return { body: ab(body), publicKey: ab(publicKeyToProtobuf(privateKey.publicKey)), signature: ab(await privateKey.sign(signedData(domain, body))) }
}

/** Verifies a signed body; returns the signer's peer id bytes (multihash) and string */
async function openSigned (domain: string, s: Signed): Promise<{ signer: Uint8Array, signerId: string }> {
  let key
  try {
    key = publicKeyFromProtobuf(s.publicKey)
  } catch (err: any) {
    throw new InvalidSignatureError(`bad public key: ${String(err?.message ?? err)}`)
  }
  let ok = false
  try {
    ok = await key.verify(signedData(domain, s.body), s.signature)
  } catch {
    ok = false
  }
  if (!ok) throw new InvalidSignatureError('signature does not verify')
  const id = peerIdFromPublicKey(key)
  return { signer: id.toMultihash().bytes, signerId: id.toString() }
}

/** An announce whose signature and format were checked */
export interface OpenedAnnounce {
  announce: Announce
  signed: Signed
  /** Sender peer id string */
  sender: string
  codec: ResolvedCodec
  payloadHashHex: string
}

function checkString (what: string, s: string, max = 128): void {
  if (Buffer.byteLength(s, 'utf8') > max) throw new MalformedPseudoGradientError(`${what} is over ${max} bytes`)
}

/**
 * Opens a signed announce: size cap, signature, signer = `sender`, field rules (32-byte hashes, a known codec
 * with valid parameters, `payload_size` = the codec's exact size for `elements`, at most 64 data shards).
 */
export async function openAnnounce (signed: Signed): Promise<OpenedAnnounce> {
  if (signed.body.byteLength > MAX_ANNOUNCE_BYTES) throw new OversizedPseudoGradientError(`announce of ${signed.body.byteLength} bytes is over ${MAX_ANNOUNCE_BYTES}`)
  let a: Announce
  try {
    a = Announce.decode(signed.body, { limits: { dataShards: MAX_DATA_SHARDS } })
  } catch (err: any) {
    throw new MalformedPseudoGradientError(`announce does not decode: ${String(err?.message ?? err)}`)
  }
  const { signer, signerId } = await openSigned(ANNOUNCE_DOMAIN, signed)
  if (!uint8ArrayEquals(signer, a.sender)) throw new InvalidSignatureError('announce names another sender than its signer')
  checkString('group', a.group)
  checkString('span', a.span)
  if (a.baseHash.byteLength !== 32 || a.payloadHash.byteLength !== 32) throw new MalformedPseudoGradientError('base_hash and payload_hash must be 32 bytes')
  const name = CODEC_NAMES[a.codec]
  if (name === undefined) throw new MalformedPseudoGradientError(`unknown codec ${a.codec}`)
  let codec: ResolvedCodec
  try {
    codec = resolveCodec({ codec: name, blockSize: a.blockSize, chunk: a.chunk, topK: a.topK, bits: a.bits })
  } catch (err: any) {
    throw new MalformedPseudoGradientError(`codec parameters: ${String(err?.message ?? err)}`)
  }
  if (!Number.isSafeInteger(a.elements) || a.elements < 1 || !Number.isSafeInteger(a.round) || a.round < 0) throw new MalformedPseudoGradientError('elements and round must be safe integers')
  if (a.payloadSize !== payloadSize(a.elements, codec)) throw new MalformedPseudoGradientError(`payload_size ${a.payloadSize} is not the ${name} size of ${a.elements} elements`)
  for (const s of a.dataShards) checkString('data shard id', s)
  return { announce: a, signed, sender: signerId, codec, payloadHashHex: toHex(a.payloadHash) }
}

/** What a node's current round expects of an announce */
export interface RoundExpectation {
  group: string
  span: string
  elements: number
  round: number
  baseHash: Uint8Array
  maxPayloadBytes: number
}

/** The per-round checks, in this order: span/group, size, round, base hash (specs/diloco §8) */
export function checkAnnounce (a: Announce, e: RoundExpectation): void {
  if (a.group !== e.group || a.span !== e.span) throw new WrongSpanError(`pseudo-gradient for group ${a.group} span ${a.span}, this node holds ${e.group} span ${e.span}`)
  if (a.elements !== e.elements) throw new WrongSpanError(`pseudo-gradient of ${a.elements} elements, span ${e.span} has ${e.elements}`)
  if (a.payloadSize > e.maxPayloadBytes) throw new OversizedPseudoGradientError(`payload of ${a.payloadSize} bytes is over ${e.maxPayloadBytes}`)
  if (a.round !== e.round) throw new WrongRoundError(`pseudo-gradient for round ${a.round}, this node collects round ${e.round}`)
  if (!uint8ArrayEquals(a.baseHash, e.baseHash)) throw new BaseHashMismatchError(`pseudo-gradient from base ${toHex(a.baseHash).slice(0, 16)}…, round ${e.round}'s base is ${toHex(e.baseHash).slice(0, 16)}…`)
}

export interface OpenedCommit {
  commit: Commit
  signed: Signed
  leader: string
  announces: OpenedAnnounce[]
}

/**
 * Opens a signed commit: size, signature, signer = `leader`, every announce opened and of the commit's group,
 * span, round and base hash, senders distinct and in byte-wise order, at most MAX_COMMIT_SENDERS.
 */
export async function openCommit (signed: Signed): Promise<OpenedCommit> {
  if (signed.body.byteLength > MAX_COMMIT_BYTES) throw new OversizedPseudoGradientError(`commit of ${signed.body.byteLength} bytes is over ${MAX_COMMIT_BYTES}`)
  let c: Commit
  try {
    c = Commit.decode(signed.body, { limits: { announces: MAX_COMMIT_SENDERS } })
  } catch (err: any) {
    throw new InvalidCommitError(`commit does not decode: ${String(err?.message ?? err)}`)
  }
  const { signer, signerId } = await openSigned(COMMIT_DOMAIN, signed)
  if (!uint8ArrayEquals(signer, c.leader)) throw new InvalidSignatureError('commit names another leader than its signer')
  if (c.announces.length === 0) throw new InvalidCommitError('commit without pseudo-gradients')
  const announces: OpenedAnnounce[] = []
  for (const s of c.announces) {
    const o = await openAnnounce(s)
    const a = o.announce
    if (a.group !== c.group || a.span !== c.span || a.round !== c.round || !uint8ArrayEquals(a.baseHash, c.baseHash)) {
      throw new InvalidCommitError(`commit of round ${c.round} holds an announce of another round, span or base`)
    }
    const prev = announces.at(-1)
    if (prev !== undefined && Buffer.compare(prev.announce.sender, a.sender) >= 0) throw new InvalidCommitError('commit senders must be distinct and in byte-wise order')
    announces.push(o)
  }
  return { commit: c, signed, leader: signerId, announces }
}

/** Leader rank key of a peer for a round: sha256(utf8("neuroshard/diloco/leader/v1") ‖ 0x00 ‖ u64be(round) ‖ peer id bytes) */
export function leaderKey (round: number, peer: Uint8Array): string {
  const r = Buffer.alloc(8)
  r.writeBigUInt64BE(BigInt(round))
  return createHash('sha256').update('neuroshard/diloco/leader/v1').update(Buffer.of(0)).update(r).update(peer).digest('hex')
}
