/**
 * Data shards' leaf openings from the kept Merkle levels (`LedgerDataShard.levels`) are the ledger's own: the same root
 * as `dataMerkleRoot`, the same path as `dataMerkleProof` for every leaf, and they verify.
 */
import { dataMerkleProof, dataMerkleRoot, verifyDataMerkleProof } from '@neuroshard/ponw-ledger'
import { describe, expect, it } from 'vitest'
import { DATA_SAMPLE_TOKENS, ledgerDataShards, openDataLeaf } from '../../src/ponw/data-shards.js'

describe('ledger data shards', () => {
  it('open every leaf with the ledger\'s root and proof (shards of 1, 2, 7 and 13 samples; levels built lazily too)', () => {
    const train = [1, 2, 7, 13].map((n, s) => Uint32Array.from({ length: n * DATA_SAMPLE_TOKENS - (n > 1 ? 17 : 0) }, (_, i) => (i * 31 + s * 7) % 4096))
    const shards = ledgerDataShards(train)
    // a shard without its levels (built elsewhere) gets them on first use
    const bare = { root: shards[3].root, samples: shards[3].samples }
    for (const [id, s] of shards.entries()) {
      expect(s.root).toEqual(dataMerkleRoot(s.samples))
      for (let i = 0; i < s.samples.length; i++) {
        const leaf = openDataLeaf(shards, id, i)!
        expect(leaf.path).toEqual(dataMerkleProof(s.samples, i))
        expect(verifyDataMerkleProof(s.root, s.samples.length, i, leaf.sample, leaf.path)).toBe(true)
      }
      expect(openDataLeaf(shards, id, s.samples.length)).toBeUndefined()
    }
    expect(openDataLeaf([bare], 0, 5)!.path).toEqual(dataMerkleProof(bare.samples, 5))
  })
})
