/**
 * The genesis dataset as the ledger's data shards (specs/node/ponw.md §4): ledger shard i is the i-th train
 * shard of the genesis manifest; its samples are consecutive runs of {@link DATA_SAMPLE_TOKENS} token ids
 * (the last one shorter), each token a u32 little-endian; the shard's hash is the ledger's Merkle root of
 * those samples. A node proves it holds its assigned shards by opening leaves a validator picks.
 */
import { dataLeafHash, digest, shardManifestHash, toHex } from '@neuroshard/ponw-ledger'
import type { TokenArray } from '@neuroshard/genesis-data'
import type { DataChallengeAnswer, DataShard } from '@neuroshard/ponw-ledger'

export const DATA_SAMPLE_TOKENS = 256

export interface LedgerDataShard {
  root: Uint8Array
  samples: Uint8Array[]
  /**
   * The Merkle tree's levels, leaves first (the ledger's `dataMerkleRoot` tree), kept for the leaves' proofs: the
   * ledger's `dataMerkleProof` hashes the whole shard again for every opened leaf (a validator's challenge opens
   * several), which was 4.6 % of a training devnet's main thread (README, issue 12 profile); 64 bytes per sample
   */
  levels?: Uint8Array[][]
}

/** Every level of the data Merkle tree of `samples`, leaves first, root last (pairs hashed, an odd last node carried up) */
export function dataMerkleLevels (samples: Uint8Array[]): Uint8Array[][] {
  if (samples.length === 0) throw new RangeError('a shard has at least one sample')
  const levels = [samples.map(dataLeafHash)]
  while (levels[levels.length - 1].length > 1) {
    const level = levels[levels.length - 1]
    const next: Uint8Array[] = []
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? digest('neuroshard/ledger/v1/data-node', level[i], level[i + 1]) : level[i])
    levels.push(next)
  }
  return levels
}

/** The sibling hashes from leaf `index` up to the root, as the ledger's `dataMerkleProof` gives them, from the levels */
function proofFromLevels (levels: Uint8Array[][], index: number): Uint8Array[] {
  const path: Uint8Array[] = []
  let i = index
  for (let l = 0; l < levels.length - 1; l++) {
    const sib = i ^ 1
    if (sib < levels[l].length) path.push(levels[l][sib])
    i >>= 1
  }
  return path
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
    const levels = dataMerkleLevels(samples)
    return { root: levels[levels.length - 1][0], samples, levels }
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
  s.levels ??= dataMerkleLevels(s.samples)
  return { sample: s.samples[index], path: proofFromLevels(s.levels, index) }
}
