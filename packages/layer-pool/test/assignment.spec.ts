import { describe, expect, it } from 'vitest'
import { buildView, chooseSpan, rebalanceTarget, spanDeficit, underReplicated } from '../src/assignment.js'
import type { Holding } from '../src/assignment.js'

const h = (peer: string, start: number, end: number, state: Holding['state'] = 'serving', throughput = 10, claimedAt = 0): Holding =>
  ({ peer, start, end, state, throughput, claimedAt })
const opts = { now: 1000, loadingGraceMs: 500 }
const costs = [1, 1, 1, 1, 1, 1]
const rnd = (): number => 0.5

describe('assignment rule', () => {
  it('counts live, pending (within the grace) and throughput per slot', () => {
    const view = buildView([h('a', 0, 3), h('b', 2, 6, 'loading', 10, 900), h('c', 0, 6, 'loading', 10, 100), h('d', 0, 6, 'leaving')], 6, opts)
    expect(view.map(v => v.live)).toEqual([1, 1, 1, 0, 0, 0])
    expect(view.map(v => v.pending)).toEqual([0, 0, 1, 1, 1, 1]) // c's claim is older than the grace
    expect(view[0].throughput).toBe(10)
    expect(underReplicated(view, 2)).toEqual([0, 1, 3, 4, 5]) // slot 2: one live + one pending
  })

  it('takes the span with the most missing replicas', () => {
    const view = buildView([h('a', 0, 3), h('b', 0, 3)], 6, opts)
    expect(chooseSpan(view, costs, 3, { minReplicas: 2, random: rnd })).toEqual({ start: 3, end: 6, deficit: 6 })
  })

  it('then the fewest replicas, then the lowest throughput (Petals)', () => {
    const covered = [h('a', 0, 6), h('b', 0, 6)]
    const fewest = buildView([...covered, h('c', 0, 4)], 6, opts)
    expect(chooseSpan(fewest, costs, 2, { minReplicas: 2, random: rnd })).toMatchObject({ start: 4, end: 6 })
    const slow = buildView([...covered, h('c', 0, 2, 'serving', 1), h('d', 2, 4, 'serving', 100), h('e', 4, 6, 'serving', 50)], 6, opts)
    expect(chooseSpan(slow, costs, 2, { minReplicas: 2, random: rnd })).toMatchObject({ start: 0, end: 2 })
  })

  it('fits the budget with per-slot costs and skips blocked slots', () => {
    const view = buildView([], 6, opts)
    expect(chooseSpan(view, [5, 1, 1, 1, 1, 5], 4, { minReplicas: 2, random: rnd })).toEqual({ start: 1, end: 5, deficit: 8 })
    expect(chooseSpan(view, [5, 1, 1, 1, 1, 5], 0.5, { minReplicas: 2, random: rnd })).toBeUndefined()
    expect(chooseSpan(view, costs, 6, { minReplicas: 2, random: rnd, blocked: new Set([2]) })).toEqual({ start: 3, end: 6, deficit: 6 })
  })

  it('with requireDeficit, takes nothing when every slot has its replicas', () => {
    const view = buildView([h('a', 0, 6), h('b', 0, 6)], 6, opts)
    expect(chooseSpan(view, costs, 6, { minReplicas: 2, random: rnd, requireDeficit: true })).toBeUndefined()
    expect(spanDeficit(view, { start: 0, end: 6 }, 3)).toBe(6)
  })

  it('breaks ties at random, so concurrent joiners spread', () => {
    const view = buildView([], 6, opts)
    const starts = new Set<number>()
    for (let i = 0; i < 50; i++) starts.add(chooseSpan(view, costs, 2, { minReplicas: 2, random: Math.random })!.start)
    expect(starts.size).toBeGreaterThan(1)
  })

  it('rebalances only past the balance quality and never below the replica floor', () => {
    // slots 0-2 carry 3 fast holders, slots 3-5 two slow ones: moving a holder from 0-2 to 3-5 lifts the bottleneck
    const others = buildView([h('a', 0, 3, 'serving', 10), h('b', 0, 3, 'serving', 10), h('c', 3, 6, 'serving', 1), h('d', 3, 6, 'serving', 1)], 6, opts)
    expect(rebalanceTarget(others, { start: 0, end: 3 }, costs, 3, { minReplicas: 2, random: rnd, balanceQuality: 0.75, throughput: 10 }))
      .toMatchObject({ start: 3, end: 6 })
    // balanced enough: stay
    const even = buildView([h('a', 0, 3, 'serving', 10), h('b', 0, 3, 'serving', 10), h('c', 3, 6, 'serving', 10), h('d', 3, 6, 'serving', 10)], 6, opts)
    expect(rebalanceTarget(even, { start: 0, end: 3 }, costs, 3, { minReplicas: 2, random: rnd, balanceQuality: 0.75, throughput: 10 })).toBeUndefined()
    // leaving would drop slots 0-2 to one replica: stay
    const thin = buildView([h('a', 0, 3, 'serving', 10), h('c', 3, 6, 'serving', 1), h('d', 3, 6, 'serving', 1)], 6, opts)
    expect(rebalanceTarget(thin, { start: 0, end: 3 }, costs, 3, { minReplicas: 2, random: rnd, balanceQuality: 0.75, throughput: 10 })).toBeUndefined()
  })

  it('closes a gap the replica guard would keep open (two nodes on four slots)', () => {
    const four = [1, 1, 1, 1]
    const options = { minReplicas: 2, random: rnd, balanceQuality: 0.75, throughput: 10 }
    // a holds [0, 2), me [1, 3): slot 3 has no holder; slot 2 is mine alone, slot 1 is also a's
    const withoutMe = buildView([h('a', 0, 2)], 4, opts)
    expect(rebalanceTarget(withoutMe, { start: 1, end: 3 }, four, 2, options)).toMatchObject({ start: 2, end: 4 })
    // a's side: every move from [0, 2) to slot 3 leaves slot 0 unserved, so a stays
    expect(rebalanceTarget(buildView([h('me', 1, 3)], 4, opts), { start: 0, end: 2 }, four, 2, options)).toBeUndefined()
    // no gap: the guard holds as before
    expect(rebalanceTarget(buildView([h('a', 0, 2), h('b', 2, 4)], 4, opts), { start: 1, end: 3 }, four, 2, options)).toBeUndefined()
    // a gap it cannot close without opening another (its span is the only holder of both its slots): stay
    expect(rebalanceTarget(buildView([h('a', 0, 1)], 4, opts), { start: 1, end: 3 }, four, 2, options)).toBeUndefined()
    // six slots, a on [0, 3), me on [2, 5): the move to [3, 6) serves slot 5 and leaves slot 2 to a
    expect(rebalanceTarget(buildView([h('a', 0, 3)], 6, opts), { start: 2, end: 5 }, costs, 3, options)).toMatchObject({ start: 3, end: 6 })
    // more gaps than holders can close: the move that closes one (not both) is still taken
    expect(rebalanceTarget(buildView([h('a', 0, 2)], 6, opts), { start: 1, end: 4 }, costs, 3, options)).toMatchObject({ start: 2, end: 5 })
  })
})
