// Every generator of the spec vectors (specs/regenerate.py) re-run in a temporary copy of specs/: what it writes must
// equal the committed files byte for byte (a failure names the file), and every vector file must be written by a
// generator or listed as written by hand (HAND_WRITTEN), so a vector cannot drift from the program that made it.
import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ROOT, run } from './run.ts'

const generators = execFileSync('python3', ['specs/regenerate.py', '--list'], { cwd: ROOT }).toString().trim().split('\n')

describe('vector generators (specs/regenerate.py)', () => {
  it('every vector file is written by a generator or listed as written by hand', async () => {
    const { code, out } = await run('python3', ['specs/regenerate.py', '--unowned'])
    expect(out.trim(), 'vector files with no generator').toBe('')
    expect(code).toBe(0)
  })

  // Node generators import packages/*/dist (tsc -b first); this process's Node runs them
  // (the slowest, the model's tiny-grads.json, took 100 s of wall time at loadavg 22 among the others)
  it.concurrent.each(generators)('%s writes the committed files byte for byte', async (name) => {
    const { code, out } = await run('python3', ['specs/regenerate.py', '--only', name, '--node', process.execPath])
    expect(code, out).toBe(0)
    expect(out).toContain(`PASS ${name}`)
  }, 300_000)
})
