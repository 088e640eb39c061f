/**
 * A slot's DiLoCo group is the layer pool's replica set of the slot (specs/diloco 1.2.0 §1 "Member"), not the
 * gossipsub topic view. Four NetworkNodes (real libp2p hosts on loopback, layer pool, onnxruntime stages) each hold
 * the whole model, so every slot has four replicas: f = 1, a round needs 2f + 1 = 3 pseudo-gradients. D then leaves
 * slot 0's DiLoCo topic (how a member looks to the others while its group is still starting, or when they hear it only
 * through the mesh): it is still a training holder of the slot in every layer pool.
 *
 * In the topic view A, B and C saw a group of three (f = 0) and A and B committed round 0 with their own two
 * pseudo-gradients at the deadline; with the pool's replica set they wait for a third, and the round commits A, B and C
 * as a group of 4. (A partial mesh, D connected to C only, could not be held here: a node whose connection to a holder
 * drops probes it and takes it for dead while the redial fails, so D flapped in and out of A's and B's pool views.)
 * Then C (alive, on the topic) and D stay silent: the pool still lists both, so round 1 cannot reach 2f + 1; it stalls
 * (specs/diloco 1.3.0 §6 step 5a) and commits with A and B, half of the group, and a round with A alone is reported
 * with RoundStalledError instead of waiting for ever.
 * The nodes have no training data: no Driver trains, the test contributes each slot-0 pseudo-gradient itself.
 */
import { openCommit, Signed } from '@neuroshard/diloco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { localStep, startFourReplicas, until } from './four-replicas.js'
import type { NetworkNode } from '../../src/network/node.js'
import type { RefusedDetail, StalledDetail } from '@neuroshard/diloco'

/** A round stalls (specs/diloco §6 step 5a) 20 s after its first announce: after the first test's 12 s wait */
const STALL_MS = 20_000
const DILOCO = { minDeadlineMs: 1500, commitStaggerMs: 1000, codec: 'fp32' as const, stallMs: STALL_MS }

describe('a slot\'s DiLoCo group is the layer pool\'s replica set (real hosts)', () => {
  const nodes: NetworkNode[] = []
  let A: NetworkNode, B: NetworkNode, C: NetworkNode, D: NetworkNode

  beforeAll(async () => {
    [A, B, C, D] = await startFourReplicas(nodes, { diloco: DILOCO })
    const all = [A, B, C, D]
    // every node holds slot 0 with its group, and sees the three others as training holders of it
    await until(() => all.every(n => n.group(0)?.initialized === true && n.slotReplicas(0).length === 4), 240_000,
      () => all.map(n => `${n.group(0)?.initialized === true ? 'group' : 'no group'} ${n.slotReplicas(0).length} replicas`).join(', '))
    // D leaves the slot's topic (as a member that has not subscribed yet, or that the others hear only through the
    // mesh, looks to them): it still holds the slot in the layer pool
    const topic = A.group(0)!.topic
    const subscribers = (n: NetworkNode): string[] => n.host.services.pubsub.getSubscribers(topic).map(p => p.toString())
    await until(() => [A, B, C].every(n => subscribers(n).length === 3), 60_000, () => `subscribers ${[A, B, C].map(n => subscribers(n).length).join(', ')}`)
    D.host.services.pubsub.unsubscribe(topic)
    await until(() => [A, B, C].every(n => subscribers(n).length === 2 && !subscribers(n).includes(D.peerId.toString())), 60_000,
      () => `subscribers after D left the topic ${[A, B, C].map(n => subscribers(n).length).join(', ')}`)
  }, 300_000)

  afterAll(async () => {
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
  }, 120_000)

  it('A and B, who do not see D on the topic, do not commit round 0 for a group of 3; with C it commits as a group of 4', async () => {
    const all = [A, B, C, D]
    const live = [A, B, C]
    const names = new Map(all.map((n, i) => [n.peerId.toString(), 'ABCD'[i]]))
    // the topic view of A, B and C leaves D out: they cannot count it from the topic
    const topic = A.group(0)!.topic
    for (const n of live) expect(n.host.services.pubsub.getSubscribers(topic).map(p => p.toString())).not.toContain(D.peerId.toString())
    const rounds: string[] = []
    const refused: Array<RefusedDetail & { at: string }> = []
    for (const n of all) {
      n.group(0)!.addEventListener('diloco:round', (e) => rounds.push(`${names.get(n.peerId.toString())} applied ${e.detail.round}`))
      n.group(0)!.addEventListener('diloco:refused', (e) => refused.push({ ...e.detail, at: names.get(n.peerId.toString())! }))
    }
    const outs = [A, B].map(async (n, i) => await n.group(0)!.contribute(localStep(n.group(0)!, i)))
    // past the deadline and every leader candidate's turn (1.5 s + 3 × 1 s), with room for a loaded machine
    await new Promise(resolve => setTimeout(resolve, 12_000))
    expect(rounds).toEqual([])
    expect(all.every(n => n.group(0)!.round === 0)).toBe(true)
    outs.push(C.group(0)!.contribute(localStep(C.group(0)!, 2)))
    const done = await Promise.all(outs)
    expect(done.every(o => o.round === 0 && o.included && !o.resynced)).toBe(true)
    await until(() => live.every(n => n.group(0)!.round === 1), 60_000, () => `round 0 applied: ${live.map(n => n.group(0)!.round).join(', ')}`)
    const want = live.map(n => n.peerId.toString()).sort()
    for (const n of live) {
      const record = n.group(0)!.record(0)
      expect(record?.contributions.map(c => c.sender).sort(), `record of ${names.get(n.peerId.toString())}`).toEqual(want)
      const commit = await openCommit(Signed.decode(record!.commit))
      expect(commit.commit.members).toBe(4)
    }
    expect(new Set(live.map(n => Buffer.from(n.group(0)!.baseHash).toString('hex'))).size).toBe(1)
    expect(refused.filter(r => r.error.name === 'InvalidCommitError')).toEqual([])
  }, 180_000)

  it('C and D stay silent: round 1 stalls and commits with A and B (half of the group); round 2 with A alone is reported, not hung', async () => {
    const live = [A, B, C]
    const stalls = new Map<NetworkNode, StalledDetail[]>(live.map(n => [n, []]))
    for (const n of live) n.group(0)!.addEventListener('diloco:stalled', (e) => stalls.get(n)!.push(e.detail))
    expect(live.every(n => n.group(0)!.round === 1)).toBe(true)
    // C is alive and hears the round, D is off the topic: neither contributes. The pool still lists both (live records)
    const started = Date.now()
    const done = await Promise.all([A, B].map(async (n, i) => await n.group(0)!.contribute(localStep(n.group(0)!, i))))
    expect(Date.now() - started).toBeGreaterThanOrEqual(STALL_MS - 500)
    expect(done.every(o => o.round === 1 && o.included && !o.resynced)).toBe(true)
    // C, which did not contribute, applies the stalled round's commit too once its own round stalls
    await until(() => live.every(n => n.group(0)!.round === 2), 60_000, () => `round 1 applied: ${live.map(n => n.group(0)!.round).join(', ')}`)
    for (const n of live) {
      const record = n.group(0)!.record(1)!
      expect(record.contributions.map(c => c.sender).sort()).toEqual([A, B].map(x => x.peerId.toString()).sort())
      expect((await openCommit(Signed.decode(record.commit))).commit.members).toBe(2)
    }
    for (const n of [A, B]) {
      expect(stalls.get(n)![0]).toMatchObject({ round: 1, members: 4, announced: 2, needed: 2, committable: true })
      expect([...stalls.get(n)![0].silent].sort()).toEqual([C, D].map(x => x.peerId.toString()).sort())
    }
    expect(new Set(live.map(n => Buffer.from(n.group(0)!.baseHash).toString('hex'))).size).toBe(1)

    // round 2: only A. One of four is below half of the group: contribute() rejects once the round stalls
    const t2 = Date.now()
    const err = await A.group(0)!.contribute(localStep(A.group(0)!, 0)).then(() => undefined, (e: Error) => e)
    expect(err?.name).toBe('RoundStalledError')
    expect(Date.now() - t2).toBeGreaterThanOrEqual(STALL_MS - 500)
    expect(stalls.get(A)!.at(-1)).toMatchObject({ round: 2, members: 4, announced: 1, needed: 2, committable: false })
    expect(live.every(n => n.group(0)!.round === 2)).toBe(true)
  }, 180_000)
})
