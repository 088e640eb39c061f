/**
 * Proof of data possession: a shard of the data manifest is a list of samples; the manifest names the root of
 * their Merkle tree. A validator checks a data proof by asking the prover, over the network and against a
 * deadline, to open leaves it picks with a fresh secret: a prover that holds only the public manifest (hash
 * and size) cannot answer, and one that holds a fraction f of the shard passes k challenges with
 * probability f^k.
 */
import { digest } from './keys.js'

/** Leaf hash of one sample: sha256("neuroshard/ledger/v1/data-leaf" || 0 || sample) */
export function dataLeafHash (sample: Uint8Array): Uint8Array {
  return digest('neuroshard/ledger/v1/data-leaf', sample)
}

function node (a: Uint8Array, b: Uint8Array): Uint8Array {
  return digest('neuroshard/ledger/v1/data-node', a, b)
}

/**
 * Merkle root of a shard's samples: leaves {@link dataLeafHash}, each level pairs (a, b) → sha256("…/data-node"
 * || 0 || a || b), an odd last node is carried up unchanged, until one node remains
 */
export function dataMerkleRoot (samples: Uint8Array[]): Uint8Array {
  if (samples.length === 0) {
    throw new RangeError('a shard has at least one sample')
  }
  let level = samples.map(dataLeafHash)
  while (level.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? node(level[i], level[i + 1]) : level[i])
    }
    level = next
  }
  return level[0]
}

/** The sibling hashes from leaf `index` up to the root (levels where the node has no sibling are skipped) */
export function dataMerkleProof (samples: Uint8Array[], index: number): Uint8Array[] {
  let level = samples.map(dataLeafHash)
  let i = index
  const path: Uint8Array[] = []
  while (level.length > 1) {
    const sib = i ^ 1
    if (sib < level.length) {
      path.push(level[sib])
    }
    const next: Uint8Array[] = []
    for (let j = 0; j < level.length; j += 2) {
      next.push(j + 1 < level.length ? node(level[j], level[j + 1]) : level[j])
    }
    level = next
    i >>= 1
  }
  return path
}

/** True when `sample` is leaf `index` of the `count`-leaf tree with root `root`, by `path` */
export function verifyDataMerkleProof (root: Uint8Array, count: number, index: number, sample: Uint8Array, path: Uint8Array[]): boolean {
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    return false
  }
  let h = dataLeafHash(sample)
  let i = index
  let width = count
  let used = 0
  while (width > 1) {
    const sib = i ^ 1
    if (sib < width) {
      const s = path[used++]
      if (s == null || s.byteLength !== 32) {
        return false
      }
      h = (i & 1) === 0 ? node(h, s) : node(s, h)
    }
    i >>= 1
    width = Math.ceil(width / 2)
  }
  if (used !== path.length || h.byteLength !== root.byteLength) {
    return false
  }
  for (let k = 0; k < h.byteLength; k++) {
    if (h[k] !== root[k]) return false
  }
  return true
}

/**
 * Leaf indexes of one challenge: u32be(h_j) mod count for h_j = sha256("neuroshard/ledger/v1/data-challenge" ||
 * 0 || utf8(proofId) || secret || u32be(j)), j = 0..k−1. The secret is fresh random bytes per challenge, so the
 * prover cannot know (or grind) the indexes before it is asked.
 */
export function challengeIndexes (proofId: string, secret: Uint8Array, count: number, k: number): number[] {
  const out: number[] = []
  const id = new TextEncoder().encode(proofId)
  for (let j = 0; j < k; j++) {
    const c = new Uint8Array(4)
    new DataView(c.buffer).setUint32(0, j)
    const h = digest('neuroshard/ledger/v1/data-challenge', id, secret, c)
    out.push(new DataView(h.buffer, h.byteOffset).getUint32(0) % count)
  }
  return out
}
