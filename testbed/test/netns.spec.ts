/**
 * The network-namespace testbed end to end: 4 node processes, each in its own namespace, 50 ms one-way
 * links (± 5 ms), converge, cut the network in two (each side must forget the other), heal (all must see
 * all again). Needs root, `ip netns` and either sch_netem or /dev/net/tun + python3; skips with the reason
 * otherwise.
 */
import { describe, it, expect } from 'vitest'
import { join } from 'node:path'
import { probeEnvironment } from '../src/netns/env.js'
import { runScenario } from '../src/netns/runner.js'
import { loadScenario } from '../src/netns/scenario.js'

const env = probeEnvironment()
if (env.missing != null) console.warn(`netns testbed test skipped: ${env.missing}`)

describe.skipIf(env.missing != null)('netns testbed', () => {
  it('4 namespaced nodes over 50 ms links converge, partition and heal', async () => {
    const s = loadScenario(join(import.meta.dirname, '..', 'scenarios', 'small.json'))
    const r = await runScenario(s, { log: () => {} })
    expect(r.failures).toEqual([])
    expect(r.nodes).toBe(4)
    expect(r.startConvergeS).toBeDefined()
    const [cut, heal] = r.events
    expect(cut.action).toBe('partition')
    expect(cut.forgottenS, 'each side forgot the other while cut').toBeDefined()
    expect(heal.action).toBe('heal')
    expect(heal.reconvergeS, 'all saw all again after the heal').toBeDefined()
    // the emulator really carried the traffic and really cut it
    if (r.backend === 'userspace') {
      expect(r.link.framesIn).toBeGreaterThan(100)
      expect(r.link.cut).toBeGreaterThan(0)
    }
  }, 180_000)
})
