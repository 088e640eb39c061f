/**
 * The router as a libp2p service driving real pipeline hosts: it routes from layer-pool-shaped records,
 * measures RTTs with libp2p ping, bans a killed Worker and switches to its standby, and the generation
 * completes with the single-process output.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { createNeuroShardHost } from '@neuroshard/host'
import { buildModelGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { createPipelineStage, pipeline } from '@neuroshard/pipeline'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import { swarmRouter } from '../src/index.js'
import type { RecordSource, SwarmRouter } from '../src/index.js'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Pipeline, PipelineStage } from '@neuroshard/pipeline'
import type { ShardExecutor } from '@neuroshard/runtime'

type Host = Libp2p<{ pipeline: Pipeline, swarmRouter: SwarmRouter }>
const config = preset('tiny')
const params = new Map<string, Float32Array>(modelParameters(config).map(p => [p.name, initParameter(config, p, 21)]))
const hosts: Host[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
const records = new Map<string, { record: { peerId: PeerId, spans: Array<{ start: number, end: number, state: string, throughput: number }> } }>()
const source: RecordSource = { records: () => records }

async function startHost (stage: PipelineStage | undefined, router: boolean): Promise<Host> {
  return await createNeuroShardHost<any>({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    services: {
      pipeline: pipeline({ stages: stage != null ? [stage] : [] }),
      ...(router ? { swarmRouter: swarmRouter({ records: source, probeIntervalMs: 0 }) } : {})
    }
  }) as Host
}

beforeAll(async () => {
  // Driver [0,1) · Workers A, B [1,3) · Validator [3,4)
  const spans = [[0, 1], [1, 3], [1, 3], [3, 4]]
  stages.push(...await Promise.all(spans.map(async ([start, end]) => await createPipelineStage({ config, start, end, parameters: params, intraOpNumThreads: 1 }))))
  reference = await createShardExecutor({ config, role: { kind: 'blocks', start: 0, end: 2 }, parameterSpecs: modelParameters(config), parameters: params, intraOpNumThreads: 1, graphs: { forward: buildModelGraph(config, 'inference').bytes } })
  const servers = await Promise.all(stages.slice(1).map(async s => await startHost(s, false)))
  const driver = await startHost(stages[0], true)
  hosts.push(driver, ...servers)
  servers.forEach((h, i) => { records.set(h.peerId.toString(), { record: { peerId: h.peerId, spans: [{ start: spans[i + 1][0], end: spans[i + 1][1], state: 'serving', throughput: 0 }] } }) })
  for (const h of servers) await driver.dial(h.getMultiaddrs()[0])
  for (const h of servers) for (const g of servers) if (h !== g) await h.dial(g.getMultiaddrs()[0])
}, 60_000)

afterAll(async () => {
  await Promise.all(hosts.map(async h => { await Promise.resolve(h.stop()).catch(() => {}) }))
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

async function greedy (prompt: number[], n: number): Promise<number[]> {
  const all = [...prompt]
  for (let i = 0; i < n; i++) {
    const logits = (await reference.forward({ input_ids: int64(BigInt64Array.from(all, BigInt), [1, all.length]) })).logits.data as Float32Array
    const row = logits.subarray((all.length - 1) * config.vocabSize, all.length * config.vocabSize)
    let best = 0
    for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k
    all.push(best)
  }
  return all.slice(prompt.length)
}

describe('swarm-router service', () => {
  it('leaves out the peers a chain request excludes (the Driver\'s session found their KV cache full), without banning them', async () => {
    const [driver, a, b, v] = hosts
    const router = driver.services.swarmRouter
    router.observeRtt(a.peerId, 1)
    router.observeRtt(b.peerId, 5)
    expect((await router.chain({ from: 1, to: 4, tokens: 8 })).map(h => h.peer.toString())).toEqual([a.peerId.toString(), v.peerId.toString()])
    expect((await router.chain({ from: 1, to: 4, tokens: 8, exclude: [a.peerId] })).map(h => h.peer.toString())).toEqual([b.peerId.toString(), v.peerId.toString()])
    for (let i = 0; i < 8; i++) {
      expect((await router.chain({ from: 1, to: 4, purpose: 'training', exclude: [a.peerId] }))[0].peer.equals(b.peerId)).toBe(true)
    }
    expect(() => router.chain({ from: 1, to: 4, exclude: [a.peerId, b.peerId] })).toThrow(expect.objectContaining({ name: 'NoRouteError' }))
    expect(router.isBanned(a.peerId)).toBe(false)
    expect((await router.chain({ from: 1, to: 4 }))[0].peer.equals(a.peerId)).toBe(true)
  })

  it('plans a chain with a standby, measures RTT by ping, fails over to the standby on a kill', async () => {
    const [driver, a, b, v] = hosts
    const router = driver.services.swarmRouter
    // equal costs: the tie goes to the lower peer id; make A the preferred one by measuring it faster
    router.observeRtt(a.peerId, 1)
    router.observeRtt(b.peerId, 5)
    const plan = router.plan(1, 4)!
    expect(plan.chain.hops.map(h => h.peer)).toEqual([a.peerId.toString(), v.peerId.toString()])
    expect(plan.standbys.map(s => s?.peer)).toEqual([b.peerId.toString(), undefined])
    // what the Driver warms (pipeline WARM): the standby of each hop of its chain
    expect(router.standbys([{ peer: a.peerId, start: 1, end: 3 }, { peer: v.peerId, start: 3, end: 4 }]).map(s => s?.peer.toString())).toEqual([b.peerId.toString(), undefined])
    expect(router.standbys([{ peer: b.peerId, start: 1, end: 3 }])[0]).toMatchObject({ start: 1, end: 3 })
    expect(router.standbys([{ peer: b.peerId, start: 1, end: 3 }])[0]?.peer.equals(a.peerId)).toBe(true)
    await router.probe() // real pings of the chain and the standby
    for (const h of [a, v, b]) expect(router.candidates().find(c => c.peer === h.peerId.toString())!.rttMs).toBeGreaterThan(0)
    router.observeRtt(a.peerId, 0) // keep A first whatever the pings said
    router.observeRtt(a.peerId, 0)
    router.observeRtt(a.peerId, 0)
    router.observeRtt(b.peerId, 50)

    const prompt = [...new TextEncoder().encode('routing')]
    const want = await greedy(prompt, 12)
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 12 })) {
      got.push(t.id)
      if (got.length === 4) await a.stop()
    }
    expect(got).toEqual(want)
    expect(router.isBanned(a.peerId)).toBe(true)
    expect((await router.chain({ from: 1, to: 4 })).map(h => h.peer.toString())).toEqual([b.peerId.toString(), v.peerId.toString()])
  })
})
