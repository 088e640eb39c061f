/**
 * `neuroshard start --json`'s stall watch (issue 15: a slow failover's hop placed in time): a blocked event loop gives
 * one `stall` line with its length and wall time, an idle one none.
 */
import { describe, expect, it } from 'vitest'
import { STALL_LINE_MS, watchStalls } from '../../src/commands/network.js'

const wait = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

describe('watchStalls', () => {
  it('prints a stall line for a blocked event loop, with its length and time', async () => {
    const lines: Array<Record<string, any>> = []
    const stop = watchStalls(l => { lines.push(l) })
    try {
      await wait(50)
      const t0 = Date.now()
      while (Date.now() - t0 < 150) { /* blocks the event loop */ }
      await wait(50)
    } finally {
      stop()
    }
    const stalls = lines.filter(l => l.event === 'stall')
    const big = stalls.filter(l => l.ms >= 120)
    expect(big, JSON.stringify(lines)).toHaveLength(1)
    expect(big[0].ms).toBeLessThan(400)
    expect(Math.abs(big[0].at - Date.now())).toBeLessThan(2_000)
    for (const l of stalls) expect(l.ms).toBeGreaterThan(STALL_LINE_MS)
  })

  it('stops printing once stopped', async () => {
    const lines: unknown[] = []
    const stop = watchStalls(l => { lines.push(l) })
    stop()
    const t0 = Date.now()
    while (Date.now() - t0 < 100) { /* blocks */ }
    await wait(30)
    expect(lines).toEqual([])
  })
})
