/**
 * The short fuzz run: every protocol handler gets generated malformed and adversarial inputs (the long run
 * of 10^5 per target is `npx -y pnpm@10 run fuzz`, results in README.md). Each target must show no crash,
 * no hang, no junk accepted, bounded heap, a handler still serving afterwards — and the same inputs against
 * an accept-everything handler must be caught, so a run that cannot fail does not pass.
 */
import { describe, it, expect } from 'vitest'
import { failures, fuzz } from '../src/fuzz/engine.js'
import { TARGETS } from '../src/fuzz/targets/index.js'

// message targets are cheap; stream targets open a libp2p stream per input on a loaded 2-core machine
const INPUTS = { message: 1000, stream: 200 }

describe('fuzz (short run)', () => {
  for (const t of TARGETS) {
    it(t.name, async () => {
      const target = t.make()
      const r = await fuzz(target, { inputs: INPUTS[target.mode], seed: 7 })
      expect(failures(r), JSON.stringify({ crashes: r.crashSamples, hangs: r.hangSamples, junk: r.junkSamples })).toEqual([])
      expect(r.aliveAfter).toBe(true)
      // the generators must produce inputs that are invalid by construction, and the run must see them refused
      expect(r.mustReject).toBeGreaterThan(0)
      expect(r.rejected).toBeGreaterThan(0)
      const v = await fuzz(t.vulnerable(), { inputs: target.mode === 'stream' ? 100 : 200, seed: 7 })
      expect(v.junkAccepted, 'the accept-all variant was not caught').toBeGreaterThan(0)
    }, 120_000)
  }
})
