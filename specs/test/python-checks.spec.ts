// Every Python check of the spec vectors (specs/check_all.py: independent implementations written from the spec
// texts, the ledger's Python client and its tests), one test each, so CI counts and names them.
import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ROOT, run } from './run.ts'

const checks = execFileSync('python3', ['specs/check_all.py', '--list'], { cwd: ROOT }).toString().trim().split('\n')

describe('Python checks of the spec vectors (specs/check_all.py)', () => {
  it('lists the checks of every spec with Python vectors', () => {
    // the generators that write vectors with their own checks (model, tokenizer, tensor-frame conversions, ponw-ledger,
    // diloco, pipeline, swarm-router, genesis-data rejections) run in test/regenerate.spec.ts
    // the model's forward, KV cache and backward: the conformance check's model-compute suite (specs/model/python/neurollm.py)
    for (const spec of ['host', 'genesis-data', 'ponw-ledger python client tests', 'conformance (python adapter: every suite)']) {
      expect(checks).toContain(spec)
    }
  })

  // independent programs: run side by side (the project's time on a loaded machine)
  it.concurrent.each(checks)('%s', async (name) => {
    const { code, out } = await run('python3', ['specs/check_all.py', '--only', name])
    expect(code, out).toBe(0)
    expect(out).toContain(`PASS ${name}`)
  })
})
