// specs/conformance/COVERAGE.md maps every group of MUST statements of the specs (specs/conformance/must.py) to the
// vectors or tests that check it: a spec that gains a MUST group without a line there fails here.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from './run.ts'

describe('MUST coverage map (specs/conformance/COVERAGE.md)', () => {
  it('names every MUST group of every spec, and nothing else', () => {
    const groups = execFileSync('python3', ['specs/conformance/must.py'], { cwd: ROOT }).toString().trim().split('\n').map(l => l.split('\t')[0])
    expect(groups.length).toBeGreaterThan(100)
    const rows = readFileSync(join(ROOT, 'specs', 'conformance', 'COVERAGE.md'), 'utf8').split('\n')
      .filter(l => l.startsWith('| ') && l.includes(' › ')).map(l => l.split(' | ')[0].slice(2))
    expect(groups.filter(g => !rows.includes(g)), 'MUST groups with no line in COVERAGE.md').toEqual([])
    expect(rows.filter(r => !groups.includes(r)), 'lines of COVERAGE.md that name no MUST group').toEqual([])
  })

  it('shows the current count of groups with vectors per spec file (its Summary table)', () => {
    const table = execFileSync('python3', ['specs/conformance/must.py', '--summary'], { cwd: ROOT }).toString().trim()
    const text = readFileSync(join(ROOT, 'specs', 'conformance', 'COVERAGE.md'), 'utf8')
    expect(text.includes(table), 'the Summary table of COVERAGE.md is stale: run python3 specs/conformance/must.py --summary --write').toBe(true)
  })
})
