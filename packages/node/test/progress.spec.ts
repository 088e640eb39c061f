import { describe, expect, it } from 'vitest'
import { ProgressReporter, formatBar, formatCount, formatDuration, parseDuration } from '../src/progress.js'

function sink (isTTY: boolean): { io: { stdout: any, stderr: any }, out: () => string } {
  let text = ''
  const stdout = { isTTY, columns: 80, write: (s: string) => { text += s; return true } }
  return { io: { stdout, stderr: stdout }, out: () => text }
}

describe('progress helpers', () => {
  it('format durations, counts and bars', () => {
    expect(formatDuration(45_000)).toBe('45s')
    expect(formatDuration(192_000)).toBe('3m12s')
    expect(formatDuration(3_720_000)).toBe('1h02m')
    expect(formatCount(950)).toBe('950')
    expect(formatCount(12_345)).toBe('12.3k')
    expect(parseDuration('10m')).toBe(600_000)
    expect(parseDuration('90s')).toBe(90_000)
    expect(parseDuration('1.5h')).toBe(5_400_000)
    expect(parseDuration('30')).toBe(30_000)
    expect(() => parseDuration('ten minutes')).toThrow()
    const line = formatBar({ label: 'step', done: 25, total: 100, fields: ['loss 3.210', '12.3k tok/s'], etaMs: 192_000 }, 100)
    expect(line).toMatch(/^step 25\/100 \[=+> *\]  25%  loss 3\.210 \| 12\.3k tok\/s \| ETA 3m12s$/)
    expect(line.length).toBeLessThan(100)
  })

  it('writes JSON lines when not on a terminal, a redrawn bar on one', () => {
    const pipe = sink(false)
    const p = new ProgressReporter(pipe.io)
    expect(p.json).toBe(true)
    p.event('step', { type: 'step', step: 1, loss: 2 }, 'ignored')
    p.bar({ label: 'step', done: 1, fields: [] })
    expect(pipe.out().trim().split('\n').map(l => JSON.parse(l))).toEqual([{ event: 'step', step: 1, loss: 2 }])

    const tty = sink(true)
    const q = new ProgressReporter(tty.io)
    expect(q.json).toBe(false)
    q.bar({ label: 'step', done: 1, total: 10, fields: ['loss 2.000'] }, true)
    q.print('eval at step 1')
    q.bar({ label: 'step', done: 2, total: 10, fields: ['loss 1.900'] }, true)
    q.end()
    expect(tty.out()).toContain('\r\x1b[2Kstep 1/10')
    expect(tty.out()).toContain('eval at step 1\n')
    expect(tty.out().endsWith('\n')).toBe(true)
    // --json forces JSON lines on a terminal too
    expect(new ProgressReporter(tty.io, { json: true }).json).toBe(true)
  })
})
