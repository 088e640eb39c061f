import { afterEach, describe, expect, it } from 'vitest'
import { connectAll, startHost, stopAll, TOY_SPAN, toyParams, until } from './helpers.js'
import type { DiLoCoHost } from './helpers.js'
import type { DiLoCo, RefusedDetail } from '../src/index.js'

const FAST = { minDeadlineMs: 1500, commitStaggerMs: 1000 }
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** An honest step: every weight moves by −0.01·(worker + 1) */
function honestStep (svc: DiLoCo, worker: number): Map<string, Float32Array> {
  const p = svc.parameters()
  for (const v of p.values()) for (let k = 0; k < v.length; k++) v[k] -= 0.01 * (worker + 1)
  return p
}

/** The Byzantine step: −20 × an honest one */
function poisonedStep (svc: DiLoCo): Map<string, Float32Array> {
  const p = svc.parameters()
  for (const v of p.values()) for (let k = 0; k < v.length; k++) v[k] += 20 * 0.01
  return p
}

// the group as the topic view has it, and (spec 1.2.0) as the assignment's replica set passed in by the caller
describe.each(['topic view', 'replica set'])('a deadline never commits a non-robust aggregate (real hosts, %s)', (mode) => {
  let hosts: DiLoCoHost[] = []
  afterEach(async () => { await stopAll(hosts); hosts = [] })

  it('a group of 4 (f = 1) with 2 contributions waits past every leader\'s deadline; with a third it commits and rejects the attacker', async () => {
    // hosts[3] is the attacker, and a hostile leader: it aggregates with the plain mean and commits at its deadline
    // with a quarter of the group (its own pseudo-gradient and one honest one)
    let ids: string[] = []
    hosts = await Promise.all([0, 1, 2, 3].map(async (i) => await startHost({
      span: TOY_SPAN, codec: 'fp32', ...FAST, ...(i === 3 ? { aggregator: 'mean' as const, quorum: 0.25 } : {}),
      ...(mode === 'replica set' ? { replicas: { members: () => ids } } : {})
    })))
    ids = hosts.map(h => h.peerId.toString())
    await connectAll(hosts)
    await until(() => hosts.every(h => (h.services.pubsub as any).getMeshPeers(h.services.diloco.topic).length >= 1), 20_000, () => 'gossipsub mesh')
    for (const h of hosts) h.services.diloco.initialize(toyParams([1, 1, 1], [1, 1, 1, 1]))
    const honest = hosts.slice(0, 3)
    const attacker = hosts[3]
    const applied: string[] = []
    const refused: RefusedDetail[] = []
    honest.forEach((h, i) => {
      h.services.diloco.addEventListener('diloco:round', () => applied.push(`host ${i}`))
      h.services.diloco.addEventListener('diloco:refused', (e) => refused.push(e.detail))
    })
    // every honest node but the sender itself (a node dispatches no announce event for its own) holds the announce
    const seenBy = async (sender: DiLoCoHost): Promise<unknown> => await Promise.all(honest.filter(h => h !== sender).map(async h => await new Promise<void>(resolve => {
      h.services.diloco.addEventListener('diloco:announce', (e) => { if (e.detail.sender === sender.peerId.toString()) resolve() })
    })))
    const bothSeen = Promise.all([seenBy(honest[0]), seenBy(attacker)])
    const first = honest[0].services.diloco.contribute(honestStep(honest[0].services.diloco, 0))
    const poisoned = attacker.services.diloco.contribute(poisonedStep(attacker.services.diloco)).catch((err: Error) => err)
    await bothSeen
    // every leader's turn (deadline 1.5 s + rank × 1 s stagger, ranks 0..3) passes with only these two in hand:
    // the previous code committed them at the first deadline (quorum ⌈0.5 × 4⌉ = 2) with the plain mean (f = 0)
    await new Promise(resolve => setTimeout(resolve, FAST.minDeadlineMs + 4 * FAST.commitStaggerMs + 3_000))
    expect(applied).toEqual([])
    expect(honest.map(h => h.services.diloco.round)).toEqual([0, 0, 0])
    // the attacker's own commit (2 of 4, plain mean) reached the honest nodes and was refused
    expect(refused.some(r => r.error.name === 'InvalidCommitError')).toBe(true)

    // a third honest contribution makes 2f + 1 = 3: the round commits, robustly
    const [o0, o1] = await Promise.all([first, honest[1].services.diloco.contribute(honestStep(honest[1].services.diloco, 1))])
    await until(() => honest[2].services.diloco.round === 1, 20_000, () => 'idle member applied round 0')
    const record = honest[2].services.diloco.record(0)
    expect(record?.contributions.length).toBe(3)
    const attackerEntry = record?.contributions.find(c => c.sender === attacker.peerId.toString())
    expect(attackerEntry?.accepted).toBe(false)
    expect(record?.contributions.filter(c => c.sender !== attacker.peerId.toString()).every(c => c.accepted)).toBe(true)
    expect(new Set([o0, o1].map(o => hex(o.baseHash)).concat(hex(honest[2].services.diloco.baseHash))).size).toBe(1)
    // the base moved the honest way (weights went down), not the attacker's way
    const a = honest[2].services.diloco.parameters().get('a') as Float32Array
    expect(Array.from(a).every(x => x < 1)).toBe(true)
    void poisoned
  })
})
