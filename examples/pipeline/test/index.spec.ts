import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: pipeline', () => {
  it('generates across hosts, survives a Worker stopping with the same text, and trains', async () => {
    const lines: string[] = []
    const r = await main(line => lines.push(line))
    expect(r.text.length).toBeGreaterThan(0)
    expect(r.textWithFailover).toBe(r.text)
    expect(r.failovers).toBe(1)
    expect(r.losses.length).toBe(5)
    expect(r.losses[4]).toBeLessThan(r.losses[0])
    expect(lines.length).toBeGreaterThanOrEqual(8)
  })
})
