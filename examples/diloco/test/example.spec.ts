import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: diloco', () => {
  it('four hosts train together, the loss falls and the replicas stay identical', async () => {
    const lines: string[] = []
    const r = await main(line => lines.push(line))
    expect(r.rounds).toBe(5)
    expect(r.distinctHashes).toBe(1)
    expect(r.lossAfter).toBeLessThan(r.lossBefore / 10)
    expect(r.accepted.every(n => n >= 3)).toBe(true)
    expect(r.bytesSent).toBeGreaterThan(0)
    expect(lines.at(-1)).toContain('all replicas identical')
  })
})
