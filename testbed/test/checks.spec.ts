/**
 * The scenario checks (runner.ts evaluateCheck) on hand-made node states: each must pass on what a healthy
 * run prints and fail on the fault it exists for (so no scenario check is one that cannot fail).
 */
import { writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, expect } from 'vitest'
import { compareLoopback, evaluateCheck, loopbackCheck, lossByTokens, memoryAfterWarmup, memoryTable, newTraining, percentiles, trainingLine } from '../src/netns/runner.js'
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

  // node lines as `neuroshard start --json` prints them: round lines with the round's record (slot 0: Drivers), validations
  const roundLine = (round: number, accepted: number, slot = 0): any => ({ event: 'round', node: 0, slot, round, contributions: 2, accepted, innerSteps: accepted * 5, tokens: accepted * 5 * 128 })
  const val = (round: number, loss: number, exact = true): any => ({ event: 'validation', node: 0, round, loss, slotRounds: [round, round, round, round], exact })
  const linesOf = (lines: any[]): ReturnType<typeof newTraining> => { const t = newTraining(); for (const l of lines) trainingLine(l, t); return t }
  // the loopback run: both replicas in every round (1280 tokens a round), loss 5, 4, 3, 2.5, 2.2 after rounds 0-4
  const loopbackLines = [val(0, 5), ...[1, 2, 3, 4].flatMap((r, i) => [roundLine(r, 2), roundLine(r, 2), val(r, [4, 3, 2.5, 2.2][i])])]
  const writeLoopback = (dir: string, lines: any[]): void => {
    const t = linesOf(lines)
    writeFileSync(join(dir, 'lo.json'), JSON.stringify([{ scenario: 'lo', valLossByRound: Object.fromEntries(t.valByRound), tokensByRound: Object.fromEntries(t.tokensByRound) }]))
  }

  it('trainingLine / lossByTokens: slot 0 round lines give the tokens, exact validations the losses; cumulative tokens per point', () => {
    const t = linesOf([val(0, 5), roundLine(1, 2), roundLine(1, 2, 2), roundLine(1, 1), val(1, 4.1), val(1, 9), roundLine(2, 1), val(2, 3.9, false), roundLine(4, 2), val(4, 2)])
    // the first slot-0 line of a round counts (another Driver's, a Worker's slot 2 line do not); served points apart
    expect(Object.fromEntries(t.tokensByRound)).toEqual({ 1: 1280, 2: 640, 4: 1280 })
    expect(Object.fromEntries(t.valByRound)).toEqual({ 0: 5, 1: 4.1, 4: 2 })
    expect(t.valServed).toEqual([{ round: 2, loss: 3.9, slotRounds: [2, 2, 2, 2] }])
    // round 3's tokens unknown: the points after it are left out
    expect(lossByTokens(t.valByRound, t.tokensByRound)).toEqual([{ round: 0, tokens: 0, loss: 5 }, { round: 1, tokens: 1280, loss: 4.1 }])
  })

  it('compareLoopback: at equal tokens (a loopback round with those tokens, else linear between two), not at equal rounds', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'testbed-loopback-'))
    try {
      writeLoopback(dir, loopbackLines)
      // a kill took one replica out of rounds 2 and 3: round 3 is at 1280 + 640 + 640 = 2560 tokens = the loopback's round 2
      const killed = linesOf([val(0, 5), roundLine(1, 2), val(1, 4.05), roundLine(2, 1), val(2, 3.5), roundLine(3, 1), val(3, 3.06)])
      const c = compareLoopback('lo', killed.valByRound, killed.tokensByRound, dir)
      expect(c).toMatchObject({ scenario: 'lo', round: 3, tokens: 2560, loss: 3.06, loopbackLoss: 3, loopbackRounds: [2, 2], how: 'equal' })
      expect(c.diffPct).toBeCloseTo(2, 10)
      // the means over the second half of its tokens (1280-2560): rounds 1-3 against the loopback at 1280, 1920, 2560 tokens
      expect(c.window).toMatchObject({ fromTokens: 1280, toTokens: 2560, points: 3 })
      expect(c.window?.loss).toBeCloseTo((4.05 + 3.5 + 3.06) / 3, 10)
      expect(c.window?.loopbackLoss).toBeCloseTo((4 + 3.5 + 3) / 3, 10)
      // one replica out of round 2 only: round 3 at 3200 tokens, between the loopback's rounds 2 (2560, 3.0) and 3 (3840, 2.5)
      const once = linesOf([val(0, 5), roundLine(1, 2), roundLine(2, 1), roundLine(3, 2), val(3, 2.8)])
      const d = compareLoopback('lo', once.valByRound, once.tokensByRound, dir)
      expect(d).toMatchObject({ round: 3, tokens: 3200, loopbackRounds: [2, 3], how: 'interpolated' })
      expect(d.loopbackLoss).toBeCloseTo(2.75, 10)
      // a run past the loopback's tokens: its last point within them
      const longer = linesOf([...loopbackLines.slice(0, 7), roundLine(3, 2), val(3, 2.5), roundLine(4, 2), roundLine(5, 2), val(5, 1.9)])
      expect(compareLoopback('lo', longer.valByRound, longer.tokensByRound, dir)).toMatchObject({ round: 3, tokens: 3840, loopbackLoss: 2.5, diffPct: 0 })
      expect(compareLoopback('lo', new Map(), new Map(), dir).missing).toMatch(/no validation loss/)
      expect(compareLoopback('absent', killed.valByRound, killed.tokensByRound, dir).missing).toMatch(/absent\.json/)
      // a loopback result from before the tokens lines: no comparison (not a fall-back to equal rounds)
      writeFileSync(join(dir, 'old.json'), JSON.stringify({ scenario: 'old', valLossByRound: { 0: 5, 1: 4 } }))
      expect(compareLoopback('old', killed.valByRound, killed.tokensByRound, dir).missing).toMatch(/old\.json with tokens per round/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('val-loss-vs-loopback check: passes within ±3 % at equal tokens, fails on a larger gap or without a comparison', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'testbed-loopback-'))
    const c = { check: 'val-loss-vs-loopback' as const, maxPct: 3 }
    const check = (lines: any[]): string[] => { const t = linesOf(lines); return loopbackCheck(c, compareLoopback('lo', t.valByRound, t.tokensByRound, dir)) }
    try {
      writeLoopback(dir, loopbackLines)
      // healthy: every round both replicas, losses within 2 % of the loopback's
      expect(check([val(0, 5), roundLine(1, 2), val(1, 4.04), roundLine(2, 2), val(2, 3.05), roundLine(3, 2), val(3, 2.45)])).toEqual([])
      // at equal rounds this run (round 3: 3.06 vs 2.5, +22 %) would fail; at equal tokens (2560 = loopback round 2) it holds
      expect(check([val(0, 5), roundLine(1, 2), roundLine(2, 1), roundLine(3, 1), val(3, 3.06)])).toEqual([])
      // a 5 % gap at equal tokens fails, either way
      expect(check([val(0, 5), roundLine(1, 2), roundLine(2, 2), val(2, 3.15)]).join()).toMatch(/mean over 1 points at 2560-2560 tokens 3\.150 vs 3\.000, 5\.0 %/)
      expect(check([val(0, 5), roundLine(1, 2), roundLine(2, 2), val(2, 2.85)]).join()).toMatch(/-5\.0 %/)
      // the last point alone within 3 % (0 %), the second half (rounds 2-4) 10 % above: fails (a point is as noisy as the curve)
      const noisy = [val(0, 5), ...[1, 2, 3, 4].flatMap(r => [roundLine(r, 2), val(r, [4.4, 3.3, 2.75, 2.2][r - 1])])]
      expect(check(noisy).join()).toMatch(/mean over 3 points at 2560-5120 tokens 2\.750 vs 2\.567, 7\.1 %/)
      // no tokens lines (an old node): no comparison, fails
      expect(check([val(0, 5), { event: 'round', node: 0, slot: 0, round: 1 }, val(1, 4)]).join()).toMatch(/no comparison/)
      expect(loopbackCheck(c, undefined).join()).toMatch(/no loopback run/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
