/**
 * The scenario checks (runner.ts evaluateCheck) on hand-made node states: each must pass on what a healthy
 * run prints and fail on the fault it exists for (so no scenario check is one that cannot fail).
 */
import { writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, expect } from 'vitest'
import { compareLoopback, evaluateCheck, memoryAfterWarmup, memoryTable, percentiles } from '../src/netns/runner.js'
import type { InferenceStats, NodeState } from '../src/netns/runner.js'

function node (name: string, peerId: string, events: any[] = [], extra: Partial<NodeState> = {}): NodeState {
  return { name, group: 'g', ip: '', ns: '', dataDir: '', alive: true, peerId, rss: [], heap: [], heapTotal: [], maxRss: 0, starts: 1, events: events.map(e => ({ t: 0, e })), exits: [], stderr: '', tmpfs: false, ...extra }
}
const noInference: InferenceStats = { requests: 0, ok: 0, errors: [] }

describe('scenario checks', () => {
  const ids = ['A', 'B', 'C', 'Z']
  const round = (r: number, byzAccepted: boolean, distance: number, withByz = true): any => ({
    event: 'diloco-round',
    round: r,
    distance,
    contributions: [...ids.slice(0, 3).map(peer => ({ peer, accepted: true })), ...(withByz ? [{ peer: 'Z', accepted: byzAccepted }] : [])]
  })
  const byzantine = { check: 'diloco-byzantine' as const, byzantine: ['z'], minRounds: 2, maxDistance: 0.6 }

  it('diloco-byzantine: holds when the attacker is rejected every round and the base is near the target', () => {
    const nodes = [node('a', 'A', [round(0, false, 0.5), round(1, false, 0.3)]), node('z', 'Z')]
    expect(evaluateCheck(byzantine, nodes, noInference)).toEqual([])
  })

  it('diloco-byzantine: fails on an accepted attacker, a far base, a round without the attacker, too few rounds', () => {
    expect(evaluateCheck(byzantine, [node('a', 'A', [round(0, false, 0.5), round(1, true, 0.3)]), node('z', 'Z')], noInference).join()).toMatch(/round 1: Z accepted/)
    expect(evaluateCheck(byzantine, [node('a', 'A', [round(0, false, 0.5), round(1, false, 3.1)]), node('z', 'Z')], noInference).join()).toMatch(/base ends 3.1/)
    expect(evaluateCheck(byzantine, [node('a', 'A', [round(0, false, 0.5), round(1, false, 0.3, false)]), node('z', 'Z')], noInference).join()).toMatch(/no Byzantine contribution/)
    expect(evaluateCheck(byzantine, [node('a', 'A', [round(0, false, 0.5)]), node('z', 'Z')], noInference).join()).toMatch(/1 DiLoCo rounds, expected at least 2/)
  })

  it('inference: success rate and request count', () => {
    const c = { check: 'inference' as const, minRequests: 10, minSuccessRate: 1 }
    expect(evaluateCheck(c, [], { requests: 10, ok: 10, errors: [] })).toEqual([])
    expect(evaluateCheck(c, [], { requests: 12, ok: 11, errors: ['HTTP 500'] }).join()).toMatch(/11\/12 succeeded/)
    expect(evaluateCheck(c, [], { requests: 3, ok: 3, errors: [] }).join()).toMatch(/3 requests sent/)
  })

  it('rounds: distinct rounds per node', () => {
    const c = { check: 'rounds' as const, min: 2 }
    expect(evaluateCheck(c, [node('a', 'A', [{ event: 'round', round: 1 }, { event: 'round', round: 2 }])], noInference)).toEqual([])
    expect(evaluateCheck(c, [node('a', 'A', [{ event: 'round', round: 1 }, { event: 'round', round: 1 }])], noInference).join()).toMatch(/1 DiLoCo rounds/)
  })

  it('exited: own non-zero exit with a matching stderr; a kill by the runner or exit 0 does not count', () => {
    const c = { check: 'exited' as const, node: 'f', stderr: 'ENOSPC' }
    expect(evaluateCheck(c, [node('f', 'F', [], { exits: [{ t: 0, code: 1, signal: null, killed: false }], stderr: 'node failed to start: ENOSPC: no space left on device' })], noInference)).toEqual([])
    expect(evaluateCheck(c, [node('f', 'F', [], { exits: [{ t: 0, code: null, signal: 'SIGKILL', killed: true }] })], noInference).join()).toMatch(/did not exit on its own/)
    expect(evaluateCheck(c, [node('f', 'F', [], { exits: [{ t: 0, code: 0, signal: null, killed: false }] })], noInference).join()).toMatch(/code 0/)
    expect(evaluateCheck(c, [node('f', 'F', [], { exits: [{ t: 0, code: 1, signal: null, killed: false }], stderr: 'TypeError: x' })], noInference).join()).toMatch(/does not match/)
  })
  it('relayed: every from node pinged every to node through a relay; failed tries alone or no relayed address fail', () => {
    const c = { check: 'relayed' as const, from: ['a'], to: ['b', 'c'] }
    const ok = (peer: string): any => ({ event: 'relayed-ping', peer, ok: true, rttMs: 200 })
    const failed = (peer: string): any => ({ event: 'relayed-ping', peer, ok: false, error: 'EncryptionFailedError: timeout' })
    expect(evaluateCheck(c, [node('a', 'A', [failed('B'), ok('B'), ok('C')]), node('b', 'B'), node('c', 'C')], noInference)).toEqual([])
    const out = evaluateCheck(c, [node('a', 'A', [failed('B'), ok('C')]), node('b', 'B'), node('c', 'C')], noInference)
    expect(out.join()).toMatch(/a never reached b through a relay \(1 tries, last: EncryptionFailedError/)
    expect(evaluateCheck(c, [node('a', 'A', [ok('C')]), node('b', 'B'), node('c', 'C')], noInference).join()).toMatch(/no relayed address in its record/)
  })
})

describe('results columns', () => {
  it('percentiles: nearest rank over the samples', () => {
    const ms = Array.from({ length: 100 }, (_, i) => i + 1).reverse()
    expect(percentiles(ms)).toEqual({ n: 100, p50Ms: 50, p99Ms: 99, maxMs: 100 })
    expect(percentiles([7])).toEqual({ n: 1, p50Ms: 7, p99Ms: 7, maxMs: 7 })
  })

  it('memoryAfterWarmup: RSS and heap slopes and first/last-minute means after the warm-up, counted from the first RSS sample', () => {
    const MB = 2 ** 20
    const t0 = 1_000_000
    // every 10 s for 30 minutes; RSS grows 200 MB in the first 5 minutes, then stays flat
    const rss: Array<[number, number]> = Array.from({ length: 181 }, (_, i) => [t0 + i * 10_000, (100 + Math.min(i * 10, 300) / 300 * 200) * MB])
    // heap lines start 30 s later (API opened) and grow 2 MB/min throughout
    const heap: Array<[number, number]> = Array.from({ length: 178 }, (_, i) => [t0 + 30_000 + i * 10_000, (50 + 2 * (30 + i * 10) / 60) * MB])
    const m = memoryAfterWarmup('a', rss, heap, 300_000)
    expect(m.node).toBe('a')
    expect(m.rssSlope).toBeCloseTo(0, 10)
    expect(m.rssWarmMB).toBeCloseTo(300, 10)
    expect(m.rssEndMB).toBeCloseTo(300, 10)
    expect(m.heapSlope).toBeCloseTo(2, 10)
    // samples at 300..350 s and 1750..1800 s after the first RSS sample: 50 + 2 * 325 / 60 and 50 + 2 * 1775 / 60
    expect(m.heapWarmMB).toBeCloseTo(50 + 2 * 325 / 60, 10)
    expect(m.heapEndMB).toBeCloseTo(50 + 2 * 1775 / 60, 10)
    // with no warm-up the RSS ramp counts
    expect(memoryAfterWarmup('a', rss, heap, 0).rssSlope).toBeGreaterThan(1)
    // too few samples after the warm-up: no numbers
    expect(memoryAfterWarmup('b', rss.slice(0, 35), [], 300_000)).toEqual({ node: 'b', rssSlope: undefined, rssWarmMB: undefined, rssEndMB: undefined, heapSlope: undefined, heapWarmMB: undefined, heapEndMB: undefined })
    const table = memoryTable([{ scenario: 's', memory: [m] } as any])
    expect(table.split('\n')[2]).toBe('| s | a | 300.0 → 300.0 | 0.00 | 60.8 → 109.2 | 2.00 |')
    expect(memoryTable([{ scenario: 's' } as any])).toBe('')
  })

  it('compareLoopback: the last round both runs reached, or why there is none', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'testbed-loopback-'))
    try {
      writeFileSync(join(dir, 'lo.json'), JSON.stringify([{ scenario: 'lo', valLossByRound: { 0: 5.0, 1: 4.0, 2: 3.0, 3: 2.5 } }]))
      const run = new Map([['0', 5.0], ['1', 4.2], ['2', 3.3]])
      const c = compareLoopback('lo', run, dir)
      expect(c).toMatchObject({ scenario: 'lo', round: 2, loss: 3.3, loopbackLoss: 3.0 })
      expect(c.diffPct).toBeCloseTo(10, 10)
      expect(compareLoopback('lo', new Map([['9', 1]]), dir).missing).toMatch(/no round/)
      expect(compareLoopback('absent', run, dir).missing).toMatch(/absent\.json/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
