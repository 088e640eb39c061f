/**
 * The genesis dataset as the ledger's data shards (specs/node/ponw.md §4): ledger shard i is the i-th train
 * shard of the genesis manifest; its samples are consecutive runs of {@link DATA_SAMPLE_TOKENS} token ids
 * (the last one shorter), each token a u32 little-endian; the shard's hash is the ledger's Merkle root of
 * those samples. A node proves it holds its assigned shards by opening leaves a validator picks.
 */
import { dataMerkleProof, dataMerkleRoot, shardManifestHash, toHex } from '@neuroshard/ponw-ledger'
import type { TokenArray } from '@neuroshard/genesis-data'
import type { DataChallengeAnswer, DataShard } from '@neuroshard/ponw-ledger'

export const DATA_SAMPLE_TOKENS = 256

export interface LedgerDataShard {
  root: Uint8Array
  samples: Uint8Array[]
}

export function dataSamples (tokens: TokenArray): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let at = 0; at < tokens.length; at += DATA_SAMPLE_TOKENS) {
    const n = Math.min(DATA_SAMPLE_TOKENS, tokens.length - at)
    const b = new Uint8Array(4 * n)
    const v = new DataView(b.buffer)
    for (let i = 0; i < n; i++) v.setUint32(4 * i, tokens[at + i], true)
    out.push(b)
  }
  return out
}

/** The ledger data shards of the train split (in manifest order) */
export function ledgerDataShards (train: readonly TokenArray[]): LedgerDataShard[] {
  return train.map(tokens => {
    const samples = dataSamples(tokens)
    return { root: dataMerkleRoot(samples), samples }
  })
}

/** The manifest entries (root, samples) the ledger's `ShardManifestVerifier` takes */
export function manifestEntries (shards: readonly LedgerDataShard[]): DataShard[] {
  return shards.map(s => ({ hash: s.root, samples: BigInt(s.samples.length) }))
}

/** The genesis `dataManifestHash` of these shards (hex) */
export function dataManifestHash (shards: readonly LedgerDataShard[]): string {
  return toHex(shardManifestHash(manifestEntries(shards)))
}

/** Opens leaf `index` of shard `shardId` (undefined when this node does not hold it) */
export function openDataLeaf (shards: readonly LedgerDataShard[], shardId: number, index: number): DataChallengeAnswer | undefined {
  const s = shards[shardId]
  if (s == null || !Number.isSafeInteger(index) || index < 0 || index >= s.samples.length) return undefined
  return { sample: s.samples[index], path: dataMerkleProof(s.samples, index) }
}
