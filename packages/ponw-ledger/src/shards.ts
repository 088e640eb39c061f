import { digest, fromHex } from './keys.js'
import type { Chain } from './genesis.js'
import type { Address } from './keys.js'

/**
 * Deterministic data-shard assignment: the shards node `address` must train on in `round`.
 * Shard i of the assignment is the first index not already taken in the sequence
 * u32be(sha256("neuroshard/ledger/v1/shards" || 0 || chainId || address || u64be(round) || u32be(counter))) mod totalShards.
 * Anyone can recompute it, so a training proof cannot pick convenient shards.
 */
export function assignShards (chain: Chain, address: Address, round: bigint): number[] {
  const { totalShards, shardsPerAssignment } = chain.genesis.params
  const out: number[] = []
  const r = new Uint8Array(8)
  new DataView(r.buffer).setBigUint64(0, round)
  const addr = fromHex(address)
  for (let counter = 0; out.length < shardsPerAssignment; counter++) {
    const c = new Uint8Array(4)
    new DataView(c.buffer).setUint32(0, counter)
    const h = digest('neuroshard/ledger/v1/shards', chain.chainId, addr, r, c)
    const idx = new DataView(h.buffer, h.byteOffset, 4).getUint32(0) % totalShards
    if (!out.includes(idx)) {
      out.push(idx)
    }
  }
  return out
}
