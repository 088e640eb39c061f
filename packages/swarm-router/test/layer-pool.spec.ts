/**
 * The router over real layer-pool records: three hosts run `layerPool` (spans chosen by its assignment
 * rule, weights initialised from the genesis seed into their weight stores), `swarmRouter` and `pipeline`.
 * Each node serves its pool spans from its own weight store; the Driver routes the rest of the model over
 * the peers' records (using parts of their spans when needed), generates what the single-process model
 * generates, and survives the Worker in use stopping.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { createNeuroShardHost } from '@neuroshard/host'
import { MemoryWeightStore, layerPool, layerPoolRecordValidator } from '@neuroshard/layer-pool'
import { buildModelGraph, modelParameters, preset } from '@neuroshard/model'
import { createPipelineStage, pipeline } from '@neuroshard/pipeline'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import { swarmRouter } from '../src/index.js'
import type { SwarmRouter } from '../src/index.js'
import type { LayerPool } from '@neuroshard/layer-pool'
import type { Libp2p } from '@libp2p/interface'
import type { Pipeline, PipelineStage } from '@neuroshard/pipeline'
import type { ShardExecutor } from '@neuroshard/runtime'

type Host = Libp2p<{ pipeline: Pipeline, swarmRouter: SwarmRouter, layerPool: LayerPool }>
const config = preset('tiny')
const L = config.nLayers
const FAST = { heartbeatIntervalMs: 500, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300 }
const hosts: Host[] = []
const stores: MemoryWeightStore[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor

function spanWeights (store: MemoryWeightStore, start: number, end: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  for (let slot = start; slot < end; slot++) for (const [k, v] of store.get(slot) ?? []) out.set(k, v)
  return out
}

async function until (condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

beforeAll(async () => {
  for (let i = 0; i < 3; i++) {
    const store = new MemoryWeightStore()
    stores.push(store)
    const host = await createNeuroShardHost<any>({
      listen: ['/ip4/127.0.0.1/tcp/0'],
      transports: { quic: false, webrtcDirect: false, circuitRelay: false },
      recordValidators: { 'layer-pool': layerPoolRecordValidator() },
      services: {
        layerPool: layerPool({ ...FAST, config, memoryBytes: 4 * 1024 * 1024, weightStore: store }),
        swarmRouter: swarmRouter({ probeIntervalMs: 0 }),
        pipeline: pipeline({})
      }
    }) as Host
    if (hosts.length > 0) await host.dial(hosts[0].getMultiaddrs()[0])
    hosts.push(host)
  }
  await hosts[1].dial(hosts[2].getMultiaddrs()[0])
  await Promise.all(hosts.map(async h => { await h.services.layerPool.whenServing({ signal: AbortSignal.timeout(60_000) }) }))
  const sees = (h: Host, o: Host): boolean => h === o || h.services.layerPool.records().has(o.peerId.toString())
  await until(() => hosts.every(h => hosts.every(o => sees(h, o))), 30_000, `every node sees the others' records: ${hosts.map(h => [...h.services.layerPool.records().keys()].map(k => k.slice(-4)).join('+')).join(' ')}`)
  // every node serves its pool spans from its own weight store; the Driver (host 0) also runs slot 0 alone
  for (let i = 0; i < 3; i++) {
    for (const held of hosts[i].services.layerPool.ownSpans()) {
      // the Driver runs only the embedding itself and routes the rest over the swarm
      const span = i === 0 && held.start === 0 ? { start: 0, end: 1 } : held
      const s = await createPipelineStage({ config, start: span.start, end: span.end, parameters: spanWeights(stores[i], span.start, span.end), intraOpNumThreads: 1 })
      stages.push(s)
      hosts[i].services.pipeline.addStage(s)
    }
  }
  const driverHolds = hosts[0].services.layerPool.ownSpans()
  if (!driverHolds.some(s => s.start === 0)) {
    throw new Error(`host 0 should hold slot 0 to drive: ${JSON.stringify(driverHolds)}`)
  }
  const all = new Map<string, Float32Array>()
  for (const st of stores) for (let slot = 0; slot < L + 2; slot++) for (const [k, v] of st.get(slot) ?? []) all.set(k, v)
  reference = await createShardExecutor({ config, role: { kind: 'blocks', start: 0, end: L }, parameterSpecs: modelParameters(config), parameters: all, intraOpNumThreads: 1, graphs: { forward: buildModelGraph(config, 'inference').bytes } })
}, 120_000)

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

describe('swarm-router over layer-pool records', () => {
  it('routes over the peers\' pool spans, generates the single-process output, and fails over', async () => {
    const [driver] = hosts
    const driverStage = driver.services.pipeline.stages().find(s => s.start === 0)!
    const plan = driver.services.swarmRouter.plan(driverStage.end, L + 2)
    expect(plan).toBeDefined()
    const prompt = [...new TextEncoder().encode('pool routing')]
    const want = await greedy(prompt, 10)
    const got: number[] = []
    const inUse = plan!.chain.hops[0].peer
    const hasStandby = plan!.standbys[0] != null
    // with 4 MiB each node holds the whole model, so the chain uses part [1, 4) of a peer's [0, 4) and the other peer stands by
    expect(plan!.chain.hops.map(h => [h.start, h.end, h.spanStart, h.spanEnd])).toEqual([[1, L + 2, 0, L + 2]])
    expect(hasStandby).toBe(true)
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 10 })) {
      got.push(t.id)
      if (got.length === 4 && hasStandby) await hosts.find(h => h.peerId.toString() === inUse)!.stop()
    }
    expect(got).toEqual(want)
    if (hasStandby) expect(driver.services.swarmRouter.isBanned(hosts.find(h => h.peerId.toString() === inUse)!.peerId)).toBe(true)
  })
})
