/**
 * A Driver that cannot route a completion hands it to another Driver that can. Found by the testbed's
 * node-failover run 6 (4 nodes, `tiny`: slots [0, 4)): home-0 (the API's Driver) held [0, 1) and [2, 4),
 * home-2 held [0, 2) and [3, 4), home-3 [0, 2), and the only other holder of slot 2, home-1, had just been
 * killed. A Driver never routes through itself (it is hop 0 of its route; its router's candidates are other
 * peers' spans), so home-0 found no chain for [1, 4) ("3 candidates") for the whole 30 s route wait and the
 * completion failed, while home-3 could have served it through home-0's own [2, 4).
 *
 * The host here is a stand-in (pure logic): a router with that layout's candidates and no chain from slot 1,
 * a pipeline whose generate asks the router (as the real one does), a dialer that records whom it dials.
 */
import { preset } from '@neuroshard/model'
import { NoRouteError } from '@neuroshard/pipeline'
import { describe, expect, it } from 'vitest'
import { relayDriver } from '../../src/network/chains.js'
import { NetworkNode, NodeRouter } from '../../src/network/node.js'

const [H0, H1, H2, H3] = ['12D3KooW-home-0', '12D3KooW-home-1', '12D3KooW-home-2', '12D3KooW-home-3']
const peerId = (id: string): any => ({ toString: () => id, equals: (o: any) => o?.toString() === id })

/** Run 6's layout as home-0's router saw it: home-1 gone, home-0's own spans not candidates */
const others = [
  { peer: H2, start: 0, end: 2 },
  { peer: H2, start: 3, end: 4 },
  { peer: H3, start: 0, end: 2 }
]
const own = [{ start: 0, end: 1 }, { start: 2, end: 4 }]

describe('relayDriver', () => {
  it('run 6: home-0 ([0, 1) + [2, 4)) has no chain, home-2 and home-3 ([0, 2)) can go on through home-0', () => {
    expect(relayDriver(H0, others, own, 4)).toBe(H2) // both can: the lower peer id
    expect(relayDriver(H0, others.filter(s => s.peer !== H2), own, 4)).toBe(H3)
  })

  it('a Driver whose chain would need its own later spans cannot relay', () => {
    // home-3 holds [0, 2) and [2, 4) is only on home-3 itself: no chain from 2 without it
    expect(relayDriver(H0, [{ peer: H3, start: 0, end: 2 }, { peer: H3, start: 2, end: 4 }], [{ start: 0, end: 1 }], 4)).toBeUndefined()
    // with home-0's [2, 4) it can
    expect(relayDriver(H0, [{ peer: H3, start: 0, end: 2 }, { peer: H3, start: 2, end: 4 }], [{ start: 0, end: 1 }, { start: 2, end: 4 }], 4)).toBe(H3)
  })

  it('no other Driver, a gap nobody covers, or malformed spans: none', () => {
    expect(relayDriver(H0, [{ peer: H2, start: 1, end: 4 }], own, 4)).toBeUndefined()
    expect(relayDriver(H0, [{ peer: H3, start: 0, end: 2 }, { peer: H2, start: 3, end: 4 }], [{ start: 0, end: 1 }], 4)).toBeUndefined()
    expect(relayDriver(H0, [{ peer: H3, start: 0, end: 9 }, { peer: H2, start: 0, end: -1 }], own, 4)).toBeUndefined()
    // a record of this node among the others is not another Driver
    expect(relayDriver(H0, [{ peer: H0, start: 0, end: 2 }], own, 4)).toBeUndefined()
  })

  it('inference hops may run part of a span', () => {
    // home-3's chain from 2 runs the second half of home-2's [1, 4)
    expect(relayDriver(H0, [{ peer: H3, start: 0, end: 2 }, { peer: H2, start: 1, end: 4 }], [{ start: 0, end: 1 }], 4)).toBe(H3)
  })
})

/** A NetworkNode on a stand-in host: run 6's layout, a router that never has a chain from slot 1 */
function standInNode (routeWaitMs: number): { node: NetworkNode, dialled: string[], chainCalls: () => number } {
  const node = new NetworkNode({ config: preset('tiny'), routeWaitMs } as any)
  const dialled: string[] = []
  let calls = 0
  const router = {
    chain (o: { from: number, to: number }) {
      calls++
      if (o.from === 1) throw new NoRouteError(`no chain of live, unbanned spans covers slots [${o.from}, ${o.to}) (3 candidates)`)
      return []
    },
    candidates: () => others.map(s => ({ ...s, throughput: 0 })),
    reportFailure () {}
  }
  const records = new Map([H1, H2, H3].map(id => [id, { record: { peerId: peerId(id), spans: [] } }]))
  node.host = {
    peerId: peerId(H0),
    dialProtocol: async (peer: any) => { dialled.push(peer.toString()); throw new Error(`stand-in: dialled ${peer.toString()}`) },
    services: {
      swarmRouter: router,
      layerPool: { records: () => records },
      pipeline: Object.assign(new EventTarget(), {
        async * generate () {
          router.chain({ from: 1, to: 4 }) // the real pipeline routes from the end of its first stage
          yield { id: 1, text: 'x', position: 1 }
        }
      })
    }
  } as any
  for (const s of own) (node as any).stages.set(`${s.start}-${s.end}`, { start: s.start, end: s.end, stage: {} })
  return { node, dialled, chainCalls: () => calls }
}

describe('NetworkNode.generate on a Driver with no chain', () => {
  it('hands the completion to a Driver that has one (was: NoRouteError after the route wait)', async () => {
    const { node, dialled } = standInNode(1_000)
    const run = async (): Promise<void> => { for await (const t of node.generate([1, 2, 3], { maxNewTokens: 4 })) void t }
    // the stand-in dialer refuses: what matters is whom the Driver dialled
    await expect(run()).rejects.toThrow(`stand-in: dialled ${H2}`)
    expect(dialled).toEqual([H2])
  })

  it('with no Driver to hand it to, waits routeWaitMs and fails with the NoRouteError', async () => {
    const { node, dialled, chainCalls } = standInNode(600)
    ;(node.host.services.swarmRouter as any).candidates = () => []
    const t0 = Date.now()
    const run = async (): Promise<void> => { for await (const t of node.generate([1, 2, 3], { maxNewTokens: 4 })) void t }
    await expect(run()).rejects.toThrow(NoRouteError)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550)
    expect(chainCalls()).toBeGreaterThan(1)
    expect(dialled).toEqual([])
  })
})

describe('NetworkNode.generate relaying to a Driver that is gone', () => {
  it('bans the unreachable relay and goes on through another Driver (testbed node-failover run 17: HTTP 500 with ECONNREFUSED)', async () => {
    const { node, dialled } = standInNode(1_000)
    const router = node.host.services.swarmRouter as any
    // a router that honours its bans, as the swarm router's candidates do
    const banned = new Set<string>()
    router.reportFailure = (peer: any) => { banned.add(peer.toString()) }
    router.candidates = () => others.filter(s => !banned.has(s.peer)).map(s => ({ ...s, throughput: 0 }))
    // home-2 was just killed: its dial is refused (a socket error, as from libp2p's TCP transport); home-3 answers
    ;(node.host as any).dialProtocol = async (peer: any) => {
      dialled.push(peer.toString())
      if (peer.toString() === H2) throw Object.assign(new Error('connect ECONNREFUSED 10.77.0.3:4001'), { code: 'ECONNREFUSED' })
      throw new Error(`stand-in: dialled ${peer.toString()}`)
    }
    const run = async (): Promise<void> => { for await (const t of node.generate([1, 2, 3], { maxNewTokens: 4 })) void t }
    // the stand-in's home-3 refuses too, with an error that is not about reaching it: what matters is that it was tried
    await expect(run()).rejects.toThrow(`stand-in: dialled ${H3}`)
    expect(dialled).toEqual([H2, H3])
    expect([...banned]).toEqual([H2])
  })

  it('an error that is not about reaching the relay is not retried elsewhere', async () => {
    const { node, dialled } = standInNode(1_000)
    const run = async (): Promise<void> => { for await (const t of node.generate([1, 2, 3], { maxNewTokens: 4 })) void t }
    await expect(run()).rejects.toThrow(`stand-in: dialled ${H2}`)
    expect(dialled).toEqual([H2])
  })
})

describe('NetworkNode: failover timing of a generation', () => {
  it('times its own failovers to the next token, not a training micro-batch\'s', async () => {
    const node = new NetworkNode({ config: preset('tiny'), draftGreedy: false } as any)
    const pipeline = new EventTarget()
    const failover = (): void => { pipeline.dispatchEvent(new CustomEvent('pipeline:failover', { detail: {} })) }
    ;(pipeline as any).generate = async function * () {
      yield { id: 1, text: 'a', position: 3 }
      await new Promise(resolve => setTimeout(resolve, 50))
      failover() // this generation's hop failed (dispatched in its own async context, as the pipeline does)
      await new Promise(resolve => setTimeout(resolve, 300))
      yield { id: 2, text: 'b', position: 4 }
      await new Promise(resolve => setTimeout(resolve, 20))
      yield { id: 3, text: 'c', position: 5 }
    }
    node.host = { peerId: peerId(H0), services: { pipeline, swarmRouter: { chain: () => [], candidates: () => [] } } } as any
    ;(node as any).stages.set('0-4', { start: 0, end: 4, stage: {} })
    const timed: number[] = []
    node.addEventListener('node:failover', (e) => { timed.push(e.detail.ms) })
    const ids: number[] = []
    for await (const t of node.generate([1, 2, 3], { maxNewTokens: 3 })) {
      ids.push(t.id)
      // a training micro-batch's failover (this test's async context, not the generation's) between two tokens
      if (t.id === 2) failover()
    }
    expect(ids).toEqual([1, 2, 3])
    expect(timed).toHaveLength(1)
    expect(timed[0]).toBeGreaterThanOrEqual(250)
  })
})

describe('a generation whose chain is lost mid-way', () => {
  it('goes on through a Driver that can, from the tokens it has (was: NoRouteError to the client)', async () => {
    const { node, dialled } = standInNode(1_000)
    const router = node.host.services.swarmRouter as any
    let lost = false
    ;(node.host.services.pipeline as any).generate = async function * () {
      yield { id: 7, text: 'a', position: 3 }
      yield { id: 8, text: 'b', position: 4 }
      lost = true // the Worker after slot 1 died: the re-route from slot 1 finds nothing (run 7's second failure)
      router.chain({ from: 1, to: 4 })
    }
    // before the loss this Driver had a chain from slot 1
    const chain = router.chain.bind(router)
    router.chain = (o: { from: number, to: number }) => lost ? chain(o) : []
    const ids: number[] = []
    const run = async (): Promise<void> => { for await (const t of node.generate([1, 2, 3], { maxNewTokens: 4 })) ids.push(t.id) }
    await expect(run()).rejects.toThrow(`stand-in: dialled ${H2}`)
    expect(ids).toEqual([7, 8])
    expect(dialled).toEqual([H2])
  })

  it('NodeRouter stops waiting for a chain as soon as another Driver can take the request (giveUp)', async () => {
    const inner = { chain () { throw new NoRouteError('no chain of live, unbanned spans covers slots [1, 4) (3 candidates)') }, reportFailure () {} }
    const router = new NodeRouter(() => inner as any, 60_000)
    let relay = false
    router.giveUp = () => relay
    setTimeout(() => { relay = true }, 300)
    const t0 = Date.now()
    await expect(Promise.resolve().then(() => router.chain({ from: 1, to: 4, purpose: 'inference' }))).rejects.toThrow(NoRouteError)
    expect(Date.now() - t0).toBeLessThan(30_000) // not the 60 s wait
  })
})

describe('a Driver whose pipeline finds no chain where its quick check saw one', () => {
  it('goes to the relay Driver on the next attempt (run 8: three own attempts all failed)', async () => {
    const { node, dialled } = standInNode(1_000)
    const router = node.host.services.swarmRouter as any
    router.chain = () => [] // the check sees a chain (e.g. through a hop the pipeline then cannot use)
    let own = 0
    ;(node.host.services.pipeline as any).generate = async function * () {
      own++
      yield * [] // eslint-disable-line
      throw new NoRouteError('no chain of live, unbanned spans covers slots [1, 4) (2 candidates)')
    }
    const run = async (): Promise<void> => { for await (const t of node.generate([1, 2, 3], { maxNewTokens: 4 })) void t }
    await expect(run()).rejects.toThrow(`stand-in: dialled ${H2}`)
    expect(own).toBe(1)
    expect(dialled).toEqual([H2])
  })
})
