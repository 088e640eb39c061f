/**
 * A round's timers stay bounded while it waits: a round below its quorum re-checks for a commit every 250 ms or more
 * (each check replaces the previous one), and those replaced timers were kept in the round's list until the round
 * ended, so a round that waited long (stalled, or a long deadline) grew by up to four Timeout objects a second
 * (the node's soak heap snapshots: 328 cleared Timeouts in one group's round).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startHost, stopAll, TOY_SPAN, toyParams, until } from './helpers.js'
import type { DiLoCoHost } from './helpers.js'

describe('round timers', () => {
  let hosts: Array<DiLoCoHost | undefined> = []
  afterEach(async () => { await stopAll(hosts); hosts = [] })

  it('a round waiting for its quorum keeps one commit check, not one per re-check', async () => {
    // a replica set of four in which only A is up: A's round waits (no stall within the test: stallMs 10 min)
    let members: string[] = []
    const all = await Promise.all([0, 1, 2, 3].map(async () => await startHost({ span: TOY_SPAN, minDeadlineMs: 300, commitStaggerMs: 200, codec: 'fp32', stallMs: 600_000, replicas: { members: () => members } })))
    hosts = all
    members = all.map(h => h.peerId.toString())
    const A = all[0]
    const svc = A.services.diloco as any
    A.services.diloco.initialize(toyParams([1, 1, 1], [1, 1, 1, 1]))
    let checks = 0
    const scheduleCommit = svc.scheduleCommit.bind(svc)
    svc.scheduleCommit = () => { checks++; scheduleCommit() }
    const p = A.services.diloco.contribute(toyParams([0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9])).catch(() => undefined)
    // at least 20 re-checks of the open round (one every 250 ms or more once the deadline passed)
    await until(() => checks >= 20, 60_000, () => `${checks} commit checks`)
    expect(svc.state.round).toBe(0)
    expect(svc.state.committed).toBeUndefined()
    // the stall clock, at most one commit check and the contribution's payload timer; before, one per check
    expect(svc.state.timers.length).toBeLessThanOrEqual(3)
    void p
  }, 120_000)
})
