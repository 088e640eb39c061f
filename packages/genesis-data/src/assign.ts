import { InvalidParametersError } from '@neuroshard/interface'
import { hexToBytes } from '@noble/hashes/utils.js'
import { ASSIGN_DOMAIN } from './constants.js'
import { isSha256Hex, sha256 } from './hash.js'
import type { GenesisManifest, Split } from './manifest.js'

export interface AssignOptions {
  /** Which split to draw from @default 'train' */
  split?: Split
}

function compareBytes (a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return 0
}

/**
 * The assignment score of a shard for (peer, round):
 * `sha256(utf8("neuroshard-genesis-assign/v1") ‖ 0x00 ‖ u32BE(len(utf8(peerId))) ‖ utf8(peerId) ‖ u64BE(round) ‖ shardHash (32 bytes))`.
 */
export function assignmentScore (peerId: string, round: number | bigint, shardHash: string): Uint8Array {
  const domain = new TextEncoder().encode(ASSIGN_DOMAIN)
  const peer = new TextEncoder().encode(peerId)
  const buf = new Uint8Array(domain.length + 1 + 4 + peer.length + 8 + 32)
  const view = new DataView(buf.buffer)
  let o = 0
  buf.set(domain, o); o += domain.length
  buf[o++] = 0
  view.setUint32(o, peer.length, false); o += 4
  buf.set(peer, o); o += peer.length
  view.setBigUint64(o, BigInt(round), false); o += 8
  buf.set(hexToBytes(shardHash), o)
  return sha256(buf)
}

/**
 * The shards peer `peerId` works on in `round`: rendezvous (highest-random-weight) hashing — the
 * `k` shards of the split with the lowest {@link assignmentScore}, lowest first. Any verifier can
 * recompute it from the manifest alone; every peer gets a different, uniformly spread subset, and
 * the subset changes every round. Returns shard hashes.
 */
export function assignShards (manifest: Pick<GenesisManifest, 'shards'>, peerId: string, round: number | bigint, k: number, options: AssignOptions = {}): string[] {
  if (typeof peerId !== 'string' || peerId === '') throw new InvalidParametersError('peerId must be a non-empty string')
  if (typeof round === 'number' ? !(Number.isSafeInteger(round) && round >= 0) : !(typeof round === 'bigint' && round >= 0n && round < 2n ** 64n)) {
    throw new InvalidParametersError('round must be an integer in [0, 2^64)')
  }
  if (!Number.isSafeInteger(k) || k < 1) throw new InvalidParametersError('k must be a positive integer')
  const split = options.split ?? 'train'
  const scored: Array<{ hash: string, score: Uint8Array }> = []
  for (const s of manifest.shards) {
    if (s.split !== split) continue
    if (!isSha256Hex(s.hash)) throw new InvalidParametersError(`bad shard hash ${String(s.hash)}`)
    scored.push({ hash: s.hash, score: assignmentScore(peerId, round, s.hash) })
  }
  scored.sort((a, b) => compareBytes(a.score, b.score) || (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0))
  return scored.slice(0, k).map(s => s.hash)
}
