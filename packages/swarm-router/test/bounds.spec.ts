/**
 * specs/swarm-router §7 rule 4: a router bounds its state — the candidates it considers (default 4096) and the
 * peers it pings per probe round — however many records the layer pool holds.
 */
import { describe, it, expect } from 'vitest'
import { defaultLogger } from '@libp2p/logger'
import { swarmRouter } from '../src/index.js'
import type { RecordSource, SwarmRouter } from '../src/index.js'
import type { PeerId } from '@libp2p/interface'

// the router only stores a record's peer id and hands it to the pinger: a stand-in with toString is enough here
const fakePeer = (id: string): PeerId => ({ toString: () => id, equals: (o: any) => o?.toString() === id }) as any
type Entry = { record: { peerId: PeerId, spans: Array<{ start: number, end: number, state: string, throughput: number }> } }

function routerOver (records: Map<string, Entry>, init: Record<string, unknown> = {}): SwarmRouter {
  const source: RecordSource = { records: () => records as any }
  return swarmRouter({ records: source, probeIntervalMs: 0, ...init })({ peerId: fakePeer('self'), logger: defaultLogger() } as any)
}

describe('swarm-router state bounds (spec §7 rule 4)', () => {
  it('considers at most 4096 candidates by default, and at most maxCandidates when set, from many peers and from one peer with many spans', () => {
    const many = new Map<string, Entry>()
    for (let i = 0; i < 5000; i++) many.set(`p${i}`, { record: { peerId: fakePeer(`p${i}`), spans: [{ start: 1, end: 2, state: 'serving', throughput: 1 }] } })
    expect(routerOver(many).candidates()).toHaveLength(4096)
    expect(routerOver(many, { maxCandidates: 10 }).candidates()).toHaveLength(10)

    const one = new Map<string, Entry>([['big', { record: { peerId: fakePeer('big'), spans: Array.from({ length: 5000 }, () => ({ start: 0, end: 1, state: 'serving', throughput: 1 })) } }]])
    expect(routerOver(one, { maxCandidates: 7 }).candidates()).toHaveLength(7)
    // a bounded router still routes
    expect(routerOver(many, { maxCandidates: 10 }).plan(1, 2)?.chain.hops).toHaveLength(1)
  })

  it('pings at most maxProbesPerRound peers per probe round', async () => {
    // a chain of 4 hops with a standby each: 8 peers a round could ping
    const records = new Map<string, Entry>()
    for (let s = 0; s < 4; s++) {
      for (const r of ['a', 'b']) records.set(`${r}${s}`, { record: { peerId: fakePeer(`${r}${s}`), spans: [{ start: s, end: s + 1, state: 'serving', throughput: 1 }] } })
    }
    const pinged: string[] = []
    const ping = { ping: async (peer: PeerId) => { pinged.push(peer.toString()); return 1 } }
    const router = routerOver(records, { ping, maxProbesPerRound: 3 })
    const plan = router.plan(0, 4)
    expect(plan?.chain.hops).toHaveLength(4)
    expect(plan?.standbys.filter(s => s != null)).toHaveLength(4)
    await router.probe()
    expect(pinged).toHaveLength(3)
    pinged.length = 0
    await routerOver(records, { ping }).probe() // no plan yet: nothing to probe
    expect(pinged).toHaveLength(0)
    const all = routerOver(records, { ping })
    all.plan(0, 4)
    await all.probe()
    expect(new Set(pinged).size).toBe(8) // the default (16) lets every hop and standby be pinged
  })
})
