import { describe, expect, it } from 'vitest'
import { batcherNetwork, pruneNetwork, NETWORK_MAX } from '../src/select.js'
import { createRng } from '../src/rng.js'

function run (pairs: Array<[number, number]>, v: number[]): number[] {
  const x = v.slice()
  for (const [a, b] of pairs) if (x[a] > x[b]) { const t = x[a]; x[a] = x[b]; x[b] = t }
  return x
}

describe('sorting networks', () => {
  it('Batcher networks sort every 0/1 input for m ≤ 12 (so every input, by the 0-1 principle)', () => {
    for (let m = 1; m <= 12; m++) {
      const net = batcherNetwork(m)
      for (let bits = 0; bits < 1 << m; bits++) {
        const v = Array.from({ length: m }, (_, i) => (bits >> i) & 1)
        const out = run(net, v)
        for (let i = 1; i < m; i++) expect(out[i - 1]).toBeLessThanOrEqual(out[i])
      }
    }
  })
  it('sorts random inputs up to the network limit, and pruned networks give the ranks asked for', () => {
    const random = createRng(9)
    for (let m = 2; m <= NETWORK_MAX; m++) {
      const net = batcherNetwork(m)
      const ranks = m % 2 === 1 ? [m >> 1] : [(m >> 1) - 1, m >> 1]
      const pruned = pruneNetwork(net, ranks)
      expect(pruned.length).toBeLessThanOrEqual(net.length)
      for (let trial = 0; trial < 20; trial++) {
        const v = Array.from({ length: m }, () => Math.floor(random() * 10))
        const sorted = v.slice().sort((a, b) => a - b)
        expect(run(net, v)).toEqual(sorted)
        const p = run(pruned, v)
        for (const r of ranks) expect(p[r]).toBe(sorted[r])
      }
    }
    expect(batcherNetwork(32).length).toBe(191)
  })
})
