import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: host-gossip', () => {
  it('delivers a signed gossip message from A to B, reads A\'s DHT record from B, stops both hosts', async () => {
    const lines: string[] = []
    const r = await main(line => lines.push(line))
    expect(r.message).toBe('hello from A')
    expect(r.messageFrom).toBe(r.publisher)
    expect(r.record).toEqual({ sequence: 1n, payload: 'hello, DHT' })
    expect(r.storedBy).toBeGreaterThanOrEqual(1)
    expect(r.stopped).toBe(true)
    expect(lines.some(l => l.includes('B received "hello from A"'))).toBe(true)
  })
})
