import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { assignShards } from '../src/index.js'
import type { ShardEntry } from '../src/index.js'

const hashOf = (s: string): string => createHash('sha256').update(s).digest('hex')
const N = 64
const manifest = {
  shards: [
    ...Array.from({ length: N }, (_, i): ShardEntry => ({ hash: hashOf(`train-${i}`), split: 'train', tokens: 10, bytes: 32 })),
    ...Array.from({ length: 4 }, (_, i): ShardEntry => ({ hash: hashOf(`val-${i}`), split: 'validation', tokens: 10, bytes: 32 }))
  ]
}
const trainHashes = new Set(manifest.shards.filter(s => s.split === 'train').map(s => s.hash))

describe('assignShards', () => {
  it('is deterministic and returns k distinct train shards', () => {
    const a = assignShards(manifest, 'peer-1', 5, 4)
    expect(assignShards(manifest, 'peer-1', 5, 4)).toEqual(a)
    expect(assignShards(manifest, 'peer-1', 5n, 4)).toEqual(a)
    expect(assignShards({ shards: [...manifest.shards].reverse() }, 'peer-1', 5, 4)).toEqual(a)
    expect(new Set(a).size).toBe(4)
    for (const h of a) expect(trainHashes.has(h)).toBe(true)
    // a prefix: asking for fewer gives the best ones of the same ranking
    expect(assignShards(manifest, 'peer-1', 5, 2)).toEqual(a.slice(0, 2))
    expect(assignShards(manifest, 'peer-1', 5, 1000)).toHaveLength(N)
    expect(assignShards(manifest, 'peer-1', 5, 2, { split: 'validation' }).every(h => !trainHashes.has(h))).toBe(true)
  })

  it('depends on the peer and the round', () => {
    const a = assignShards(manifest, 'peer-1', 5, 4)
    expect(assignShards(manifest, 'peer-2', 5, 4)).not.toEqual(a)
    expect(assignShards(manifest, 'peer-1', 6, 4)).not.toEqual(a)
    // over rounds, one peer visits every shard
    const seen = new Set<string>()
    for (let r = 0; r < 200; r++) for (const h of assignShards(manifest, 'peer-1', r, 4)) seen.add(h)
    expect(seen.size).toBe(N)
  })

  it('spreads shards evenly over peers (chi-square test on per-shard load)', () => {
    const peers = 1024
    const k = 4
    const load = new Map<string, number>([...trainHashes].map(h => [h, 0]))
    for (let p = 0; p < peers; p++) {
      for (const h of assignShards(manifest, `12D3KooWPeer${p}`, 7, k)) load.set(h, (load.get(h) as number) + 1)
    }
    const expected = (peers * k) / N // 64 per shard
    let chi2 = 0
    for (const c of load.values()) chi2 += (c - expected) ** 2 / expected
    // 63 degrees of freedom: P(chi2 > 110) < 1e-4 for a uniform assignment
    expect(chi2).toBeLessThan(110)
    const counts = [...load.values()]
    expect(Math.min(...counts)).toBeGreaterThan(expected * 0.5)
    expect(Math.max(...counts)).toBeLessThan(expected * 1.5)
  })

  it('rejects bad arguments with InvalidParametersError', () => {
    expect(() => assignShards(manifest, '', 0, 1)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => assignShards(manifest, 'p', -1, 1)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => assignShards(manifest, 'p', 1.5, 1)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => assignShards(manifest, 'p', 2n ** 64n, 1)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => assignShards(manifest, 'p', 0, 0)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})
