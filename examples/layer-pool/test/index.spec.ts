import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: layer-pool', () => {
  it('four nodes cover every slot of tiny twice, and still do after one leaves', async () => {
    const lines: string[] = []
    const r = await main(line => lines.push(line))
    expect(r.replicasBefore).toHaveLength(4)
    expect(Math.min(...r.replicasBefore)).toBeGreaterThanOrEqual(2)
    expect(Math.min(...r.replicasAfter)).toBeGreaterThanOrEqual(2)
    expect(r.spans.every(s => s.length > 0)).toBe(true)
    expect(lines.some(l => l.includes('leaves'))).toBe(true)
  })
})
