/**
 * A round that cannot reach 2f + 1 (specs/diloco 1.3.0 §6 step 5a). Four replicas on real hosts, the replica set
 * given as the layer pool gives it (it still lists members that died until their records expire). Members are
 * killed until no quorum is left: with two of four alive the round stalls and commits with the two (the silent
 * members are out of the round's group); with one of four it stalls and `contribute()` rejects with
 * RoundStalledError (reported, no hang); once the replica set drops the dead members the round commits.
 * Before 1.3.0 the first of these rounds waited forever.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { connectAll, startHost, stopAll, TOY_SPAN, toyParams, until } from './helpers.js'
import { openCommit, Signed } from '../src/index.js'
import type { DiLoCoHost } from './helpers.js'
import type { DiLoCo, StalledDetail } from '../src/index.js'

const STALL_MS = 4000
const FAST = { minDeadlineMs: 1500, commitStaggerMs: 1000, codec: 'fp32' as const, stallMs: STALL_MS }
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function localStep (svc: DiLoCo, worker: number): Map<string, Float32Array> {
  const p = svc.parameters()
  for (const v of p.values()) for (let k = 0; k < v.length; k++) v[k] -= 0.01 * (worker + 1) + 0.001 * k + 0.0001 * svc.round
  return p
}

describe('a round that cannot reach 2f + 1 (real hosts)', () => {
  let hosts: Array<DiLoCoHost | undefined> = []
  afterEach(async () => { await stopAll(hosts); hosts = [] })

  it('killing members: two of four commit after the stall, one of four is reported (RoundStalledError), then commits when the replica set drops the dead', async () => {
    let replicas: string[] = []
    const all = await Promise.all([0, 1, 2, 3].map(async () => await startHost({ span: TOY_SPAN, ...FAST, replicas: { members: () => replicas } })))
    hosts = all
    replicas = all.map(h => h.peerId.toString())
    await connectAll(all)
    for (const h of all) h.services.diloco.initialize(toyParams([1, 1, 1], [1, 1, 1, 1]))
    const [A, B, C, D] = all
    const stalls = new Map<DiLoCoHost, StalledDetail[]>(all.map(h => [h, []]))
    for (const h of all) h.services.diloco.addEventListener('diloco:stalled', (e) => stalls.get(h)!.push(e.detail))

    // round 0: all four
    const r0 = await Promise.all(all.map(async (h, i) => await h.services.diloco.contribute(localStep(h.services.diloco, i))))
    expect(r0.every(o => o.round === 0 && o.included)).toBe(true)
    await until(() => all.every(h => h.services.diloco.round === 1), 30_000, () => 'round 0 applied everywhere')

    // C and D die; the replica set still lists them (their layer records have not expired yet): f = 1, 2f + 1 = 3
    await stopAll([C, D])
    const started = Date.now()
    const r1 = await Promise.race([
      Promise.all([A, B].map(async (h, i) => await h.services.diloco.contribute(localStep(h.services.diloco, i)))),
      new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error('round 1 did not commit within 60 s of the contributions')) }, 60_000))
    ])
    // not before the stall: a deadline commit of 2 of 4 is still refused
    expect(Date.now() - started).toBeGreaterThanOrEqual(STALL_MS - 200)
    expect(r1.every(o => o.round === 1 && o.included && !o.resynced)).toBe(true)
    const want = [A, B].map(h => h.peerId.toString()).sort()
    for (const h of [A, B]) {
      const record = h.services.diloco.record(1)!
      expect(record.contributions.map(c => c.sender).sort()).toEqual(want)
      // the commit declares the group of the round's announcers
      expect((await openCommit(Signed.decode(record.commit))).commit.members).toBe(2)
      const s = stalls.get(h)!
      expect(s).toHaveLength(1)
      expect(s[0]).toMatchObject({ round: 1, members: 4, announced: 2, needed: 2, committable: true })
      expect([...s[0].silent].sort()).toEqual([C, D].map(x => x.peerId.toString()).sort())
    }
    expect(hex(A.services.diloco.baseHash)).toBe(hex(B.services.diloco.baseHash))

    // B dies too: one of four cannot commit even after the stall (half of the group, 2, is needed)
    await stopAll([B])
    const t2 = Date.now()
    const err = await A.services.diloco.contribute(localStep(A.services.diloco, 0)).then(() => undefined, (e: Error) => e)
    expect(err?.name).toBe('RoundStalledError')
    expect(Date.now() - t2).toBeLessThan(STALL_MS + 30_000)
    expect(stalls.get(A)!.at(-1)).toMatchObject({ round: 2, members: 4, announced: 1, needed: 2, committable: false })
    expect(A.services.diloco.round).toBe(2)
    // asking again in the stalled round does not announce a second pseudo-gradient: the same error at once
    const again = await A.services.diloco.contribute(localStep(A.services.diloco, 0)).then(() => undefined, (e: Error) => e)
    expect(again?.name).toBe('RoundStalledError')

    // the assignment drops the dead members (their records expired): A's pseudo-gradient, already announced, commits
    const applied = new Promise<number>(resolve => { A.services.diloco.addEventListener('diloco:round', (e) => { resolve(e.detail.round) }, { once: true }) })
    replicas = [A.peerId.toString()]
    expect(await applied).toBe(2)
    expect(A.services.diloco.round).toBe(3)
    expect(A.services.diloco.record(2)!.contributions.map(c => c.sender)).toEqual([A.peerId.toString()])
  }, 120_000)

  it('topic view (no replica set), 1.4.0: after a round of 4, two members leave; the floor of 4 makes the next round stall once, then it commits as a group of 2 and the floor follows', async () => {
    const all = await Promise.all([0, 1, 2, 3].map(async () => await startHost({ span: TOY_SPAN, ...FAST })))
    hosts = all
    await connectAll(all)
    for (const h of all) h.services.diloco.initialize(toyParams([1, 1, 1], [1, 1, 1, 1]))
    const [A, B, C, D] = all
    const stalls = new Map<DiLoCoHost, StalledDetail[]>(all.map(h => [h, []]))
    for (const h of all) h.services.diloco.addEventListener('diloco:stalled', (e) => stalls.get(h)!.push(e.detail))
    // round 0: A, B and C (3 of the group of 4 on the topic); D is silent
    const r0 = await Promise.all([A, B, C].map(async (h, i) => await h.services.diloco.contribute(localStep(h.services.diloco, i))))
    expect(r0.every(o => o.round === 0 && o.included)).toBe(true)
    await until(() => all.every(h => h.services.diloco.round === 1), 30_000, () => 'round 0 applied everywhere')
    expect((await openCommit(Signed.decode(A.services.diloco.record(0)!.commit))).commit.members).toBe(4)
    // C and D leave: A and B see only each other on the topic and C as a sender of round 0 (D sent nothing). Without
    // the floor A and B would commit round 1 at once as a group of 3 (f = 0, 2 of 3 a quorum); with it they need 3
    // of 4, so the round stalls (C silent) and commits with the two, half of the group of 3 they see
    await stopAll([C, D])
    await until(() => [A, B].every(h => h.services.pubsub.getSubscribers(h.services.diloco.topic).length === 1), 20_000, () => 'C and D off the topic')
    const t1 = Date.now()
    const r1 = await Promise.race([
      Promise.all([A, B].map(async (h, i) => await h.services.diloco.contribute(localStep(h.services.diloco, i)))),
      new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error('round 1 did not commit within 60 s of the contributions')) }, 60_000))
    ])
    expect(Date.now() - t1).toBeGreaterThanOrEqual(STALL_MS - 200)
    expect(r1.every(o => o.round === 1 && o.included)).toBe(true)
    for (const h of [A, B]) {
      expect(stalls.get(h)).toHaveLength(1)
      expect(stalls.get(h)![0]).toMatchObject({ round: 1, announced: 2, committable: true })
      expect((await openCommit(Signed.decode(h.services.diloco.record(1)!.commit))).commit.members).toBe(2)
    }
    expect(hex(A.services.diloco.baseHash)).toBe(hex(B.services.diloco.baseHash))
    // round 2: the floor is now 2, the group A and B see: it commits without a stall
    const t2 = Date.now()
    const r2 = await Promise.all([A, B].map(async (h, i) => await h.services.diloco.contribute(localStep(h.services.diloco, i))))
    expect(r2.every(o => o.round === 2 && o.included)).toBe(true)
    expect(Date.now() - t2).toBeLessThan(STALL_MS)
    expect(stalls.get(A)).toHaveLength(1)
    expect(hex(A.services.diloco.baseHash)).toBe(hex(B.services.diloco.baseHash))
  }, 120_000)
})
