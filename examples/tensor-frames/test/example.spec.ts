import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: tensor-frames', () => {
  it('round-trips a float32 frame, keeps int8 within its bound, hashes consistently, rejects a corrupt frame', async () => {
    const lines: string[] = []
    const r = await main(line => lines.push(line))
    expect(r.roundTripExact).toBe(true)
    expect(r.float32FrameBytes).toBeGreaterThan(2 * 8 * 64 * 4)
    // int8 values + one float32 scale per 64 values: well under a third of the float32 frame
    expect(r.int8FrameBytes).toBeLessThan(r.float32FrameBytes / 3)
    expect(r.boundViolations).toBe(0)
    expect(r.maxInt8Error).toBeGreaterThan(0) // it is lossy…
    expect(r.maxInt8Error).toBeLessThan(7 / 254 + 1e-6) // …by at most absmax / 254 (absmax ≤ 7 here)
    expect(r.hashFromTensor).toMatch(/^[0-9a-f]{64}$/)
    expect(r.hashFromFrame).toBe(r.hashFromTensor)
    expect(r.corruptFrameError).toBe('InvalidMagicError')
    expect(lines.length).toBeGreaterThanOrEqual(5)
  })
})
