import { createNeuroShardHost } from '@neuroshard/host'
import { buildModelGraph, initParameter, modelParameters } from '@neuroshard/model'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import { createPipelineStage, pipeline, staticRouter } from '../src/index.js'
import type { Pipeline, PipelineInit, PipelineStage, TrainBatch } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { Libp2p } from '@libp2p/interface'
import type { ModelConfig } from '@neuroshard/model'
import type { AdamWOptions, ShardExecutor } from '@neuroshard/runtime'

export type PipelineHost = NeuroShardHost & Libp2p<{ pipeline: Pipeline }>

/** A real libp2p host (TCP on 127.0.0.1 only) running the pipeline service */
export async function startHost (init: PipelineInit): Promise<PipelineHost> {
  return await createNeuroShardHost<{ pipeline: Pipeline }>({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    services: { pipeline: pipeline(init) }
  }) as PipelineHost
}

/** Connect every pair of hosts */
export async function mesh (hosts: PipelineHost[]): Promise<void> {
  for (let i = 0; i < hosts.length; i++) {
    for (let j = i + 1; j < hosts.length; j++) await hosts[i].dial(hosts[j].getMultiaddrs()[0])
  }
}

/**
 * A pipeline on real hosts: one stage per span (the first is the Driver's), each on its own host, the Driver
 * routed by a static router over the others, every pair connected
 */
export async function startChain (config: ModelConfig, params: Map<string, Float32Array>, spans: Array<[number, number]>): Promise<{ hosts: PipelineHost[], stages: PipelineStage[], router: ReturnType<typeof staticRouter> }> {
  const stages = await Promise.all(spans.map(async ([a, b]) => await stage(config, a, b, params)))
  return { ...await hostChain(stages), stages }
}

/**
 * Built stages on real hosts: the first is the Driver's, each other on its own host, the Driver routed by a static
 * router over them, every pair connected; `hosts[0]` is the Driver
 */
export async function hostChain (stages: PipelineStage[]): Promise<{ hosts: PipelineHost[], router: ReturnType<typeof staticRouter> }> {
  const servers = await Promise.all(stages.slice(1).map(async s => await startHost({ stages: [s] })))
  const router = staticRouter(servers.map((h, i) => ({ peer: h.peerId, start: stages[i + 1].start, end: stages[i + 1].end })))
  const driver = await startHost({ stages: [stages[0]], router })
  const hosts = [driver, ...servers]
  await mesh(hosts)
  return { hosts, router }
}

/** Deterministic initial weights of the whole model */
export function weights (config: ModelConfig, seed = 7): Map<string, Float32Array> {
  return new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, seed)]))
}

export async function stage (config: ModelConfig, start: number, end: number, params: Map<string, Float32Array>, optimizer?: AdamWOptions): Promise<PipelineStage> {
  return await createPipelineStage({ config, start, end, parameters: params, intraOpNumThreads: 1, optimizer })
}

/** The whole model in one executor: the single-process reference */
export async function monolith (config: ModelConfig, params: Map<string, Float32Array>, optimizer?: AdamWOptions): Promise<ShardExecutor> {
  return await createShardExecutor({
    config,
    role: { kind: 'blocks', start: 0, end: config.nLayers },
    parameterSpecs: modelParameters(config),
    parameters: params,
    intraOpNumThreads: 1,
    graphs: { forward: buildModelGraph(config, 'inference').bytes, backward: buildModelGraph(config, 'backward').bytes },
    optimizer
  })
}

/** Greedy generation with the single-process model (recomputing the whole sequence each step) */
export async function referenceGreedy (model: ShardExecutor, prompt: number[], n: number): Promise<{ ids: number[], logits: Float32Array[] }> {
  const V = model.config.vocabSize
  const all = [...prompt]
  const logits: Float32Array[] = []
  for (let i = 0; i < n; i++) {
    const out = await model.forward({ input_ids: int64(BigInt64Array.from(all, BigInt), [1, all.length]) })
    const data = out.logits.data as Float32Array
    const row = data.slice((all.length - 1) * V, all.length * V)
    let best = 0
    for (let k = 1; k < V; k++) if (row[k] > row[best]) best = k
    logits.push(row)
    all.push(best)
  }
  return { ids: all.slice(prompt.length), logits }
}

export function maxAbsDiff (a: Float32Array, b: Float32Array): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

export async function stopAll (hosts: Array<{ stop(): Promise<void> | void } | undefined>): Promise<void> {
  await Promise.all(hosts.map(async h => { await Promise.resolve(h?.stop()).catch(() => {}) }))
}

/** Training micro-batch k of the tied tests: 2 rows of `seq` tokens, ids and targets spread over the vocabulary `v` */
export function tiedBatch (k: number, v: number, seq: number): TrainBatch {
  return {
    inputIds: BigInt64Array.from({ length: 2 * seq }, (_, i) => BigInt((i * 7 + k * 13) % v)),
    targets: BigInt64Array.from({ length: 2 * seq }, (_, i) => BigInt((i * 5 + k * 3 + 1) % v)),
    batch: 2,
    seq
  }
}
