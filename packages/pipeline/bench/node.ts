/**
 * One node of the multi-process pipeline benchmark (bench/multiprocess.ts forks one per role): a libp2p host
 * on 127.0.0.1 with the pipeline service and one stage, or (`local`) the whole model in this one process for
 * the single-process baselines. Commands arrive over the fork IPC channel; every reply echoes the command id.
 */
import { loadavg } from 'node:os'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createNeuroShardHost } from '@neuroshard/host'
import { buildModelGraph, initParameter, modelParameters, preset, shardParameters } from '@neuroshard/model'
import { createShardExecutor, float32, int64, warmupCosine } from '@neuroshard/runtime'
import { createPipelineStage, pipeline, spanRoles, staticRouter } from '../src/index.js'
import type { Pipeline, PipelineStage, RecoveryTiming, RouteHop, TrainBatch, TrainStepResult } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { ModelConfig, PresetName } from '@neuroshard/model'
import type { AdamWOptions, ShardExecutor } from '@neuroshard/runtime'

export interface NodeInit {
  preset: PresetName
  tied?: boolean
  seed: number
  /** Slot span; `local` holds the whole model */
  start: number
  end: number
  local?: boolean
  training: boolean
  threads?: number
  compress?: boolean
  /** AdamW schedule: peak lr, warmup, total */
  lr?: [number, number, number]
  /** Also build the monolithic model executor (local, training baseline) */
  monolithic?: boolean
  /** The pipeline's `directTokens` (tokens straight from the Validator) @default true */
  directTokens?: boolean
  /** The pipeline's `tiedRecompute` (the Driver recomputes the head's tied gradient) @default true */
  tiedRecompute?: boolean
  /** The pipeline's `tiedOwner` (the Validator owns the tied matrix, spec 1.8.0) @default false */
  tiedOwner?: boolean
  /** The pipeline's `quietInfer` (direct INFERs answered only on failure, spec 1.5.0) @default true */
  quietInfer?: boolean
  /**
   * The stage's `bakeWeights` (inference-only float32 stages: the blocks' and head's sessions with the weights baked
   * in, as generation defaults to since issue 16) @default false
   */
  bakeWeights?: boolean
}

export type Command =
  | { op: 'init', init: NodeInit }
  | { op: 'connect', hops: Array<{ peer: string, start: number, end: number }>, dial: string[] }
  | { op: 'decode', prompt: number[], n: number }
  | { op: 'localDecode', prompt: number[], n: number }
  | { op: 'train', batches: TrainBatch[], compress?: boolean, deflate?: boolean }
  | { op: 'monoTrain', batches: TrainBatch[] }
  | { op: 'traffic' }
  | { op: 'parameters' }
  | { op: 'evaluate', parameters: Map<string, Float32Array>, batches: TrainBatch[] }
  | { op: 'generate', prompt: number[], n: number, killAfter?: number, mirror?: boolean }
  | { op: 'stop' }
  | { op: 'trace' }
  | { op: 'cpu' }

type Host = NeuroShardHost & { services: { pipeline: Pipeline } }

let config: ModelConfig
let init: NodeInit
let stage: PipelineStage | undefined
let host: Host | undefined
let mono: ShardExecutor | undefined
let router: ReturnType<typeof staticRouter> | undefined
const candidates: RouteHop[] = []

function weights (names: Set<string> | undefined): Map<string, Float32Array> {
  return new Map(modelParameters(config).filter(p => names == null || names.has(p.name)).map(p => [p.name, initParameter(config, p, init.seed)]))
}

function optimizer (): AdamWOptions | undefined {
  if (init.lr == null) return undefined
  return { schedule: warmupCosine({ peakLr: init.lr[0], warmupSteps: init.lr[1], totalSteps: init.lr[2] }) }
}

async function start (i: NodeInit): Promise<unknown> {
  init = i
  config = { ...preset(i.preset), ...(i.tied != null ? { tieEmbeddings: i.tied } : {}) }
  const L = config.nLayers
  const names = i.local === true ? undefined : new Set(spanRoles(config, i.start, i.end).flatMap(r => shardParameters(config, r).map(p => p.name)))
  const params = weights(names)
  if (i.monolithic === true) {
    mono = await createShardExecutor({
      config, role: { kind: 'blocks', start: 0, end: L }, parameterSpecs: modelParameters(config), parameters: params, optimizer: optimizer(),
      intraOpNumThreads: i.threads, graphs: { backward: buildModelGraph(config, 'backward').bytes }
    })
  }
  if (i.monolithic !== true) stage = await createPipelineStage({ config, start: i.start, end: i.end, parameters: params, training: i.training, optimizer: optimizer(), intraOpNumThreads: i.threads, ...(i.bakeWeights === true ? { bakeWeights: true } : {}) })
  if (i.local === true) return { pid: process.pid }
  if (stage != null) await warmUp(stage)
  router = staticRouter(candidates)
  ;(globalThis as any).__nsTrace = []
  // the label of this process's events when trace points are added for TRACE=1 (README, run G2)
  ;(globalThis as any).__nsRole = i.start === 0 ? 'D' : i.end === L + 2 ? 'V' : 'W'
  host = await createNeuroShardHost<any>({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    services: { pipeline: pipeline({ stages: [stage!], router, compress: i.compress === true, directTokens: i.directTokens, tiedRecompute: i.tiedRecompute, tiedOwner: i.tiedOwner === true, ...(i.quietInfer != null ? { quietInfer: i.quietInfer } : {}) }) }
  }) as Host
  return { pid: process.pid, peer: host.peerId.toString(), addrs: host.getMultiaddrs().map(a => a.toString()) }
}

/**
 * Run the stage once (a prefill and a decode step) before answering init, as a node that has been up for a while
 * has: the failover benchmark adds each next standby just before the generation it stands by for, and a first
 * onnxruntime run still going on then would be timed as part of the switch.
 */
async function warmUp (s: PipelineStage): Promise<void> {
  const d = config.dModel
  const n = 16
  if (s.embed != null) await s.embed.forward({ input_ids: int64(new BigInt64Array(n), [1, n]) })
  if (s.blocks != null) {
    const kv = await s.blocks.openInference()
    try {
      await kv.run({ hidden_in: float32(new Float32Array(n * d), [1, n, d]) })
      await kv.run({ hidden_in: float32(new Float32Array(d), [1, 1, d]) })
    } finally {
      await kv.close()
    }
  }
  if (s.head != null) {
    const head = await s.head.openInference()
    try {
      await head.run({ hidden: float32(new Float32Array(d), [1, 1, d]) })
    } finally {
      await head.close()
    }
  }
}

async function localDecode (prompt: number[], n: number): Promise<{ ids: number[], ms: number[] }> {
  const s = stage!
  const V = config.vocabSize
  const d = config.dModel
  const kv = await s.blocks!.openInference()
  const head = await s.head!.openInference()
  const ids: number[] = []
  const ms: number[] = []
  let chunk = prompt
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      const h0 = (await s.embed!.forward({ input_ids: int64(BigInt64Array.from(chunk, BigInt), [1, chunk.length]) })).hidden
      const h = (await kv.run({ hidden_in: h0 })).hidden_out
      const len = chunk.length
      const last = float32((h.data as Float32Array).slice((len - 1) * d, len * d), [1, 1, d])
      const logits = (await head.run({ hidden: last })).logits.data as Float32Array
      let best = 0
      for (let k = 1; k < V; k++) if (logits[k] > logits[best]) best = k
      ids.push(best)
      ms.push(performance.now() - t0)
      chunk = [best]
    }
  } finally {
    await kv.close()
    await head.close()
  }
  return { ids, ms }
}

async function decode (prompt: number[], n: number, killAfter?: number, mirror?: boolean): Promise<{ ids: number[], ms: number[], failovers: number, switches: number, detectedMs?: number, recoveries: RecoveryTiming[] }> {
  const ids: number[] = []
  const ms: number[] = []
  let failovers = 0
  let switches = 0
  const onSwitch = (): void => { switches++ }
  // the Driver's phase times of each recovery (`pipeline:recovered`)
  const recoveries: RecoveryTiming[] = []
  const onRecovered = (e: CustomEvent<RecoveryTiming>): void => { recoveries.push(e.detail) }
  // failover bench: when the Driver saw the failure (its failover event), ms after the kill was confirmed
  let killedAt: number | undefined
  let detectedMs: number | undefined
  const onFailover = (): void => {
    failovers++
    if (killedAt != null && detectedMs == null) detectedMs = performance.now() - killedAt
  }
  host!.services.pipeline.addEventListener('pipeline:failover', onFailover)
  host!.services.pipeline.addEventListener('pipeline:switched', onSwitch)
  host!.services.pipeline.addEventListener('pipeline:recovered', onRecovered)
  try {
    let t0 = performance.now()
    for await (const t of host!.services.pipeline.generate(prompt, { maxNewTokens: n, ...(mirror != null ? { mirror } : {}) })) {
      const t1 = performance.now()
      ids.push(t.id)
      ms.push(t1 - t0)
      if (killAfter != null && ids.length === killAfter) {
        // ask the parent to kill the Worker in use, and time from its death (the parent's reply) to the next token
        await request({ op: 'kill' })
        killedAt = performance.now()
      }
      t0 = performance.now()
    }
  } finally {
    host!.services.pipeline.removeEventListener('pipeline:failover', onFailover)
    host!.services.pipeline.removeEventListener('pipeline:switched', onSwitch)
    host!.services.pipeline.removeEventListener('pipeline:recovered', onRecovered)
  }
  return { ids, ms, failovers, switches, recoveries, ...(detectedMs != null ? { detectedMs } : {}) }
}

/** Ask the parent something and wait for its answer (used by the failover benchmark to kill a Worker) */
let nextAsk = 1
const asks = new Map<number, (v: unknown) => void>()
async function request (msg: Record<string, unknown>): Promise<unknown> {
  const id = nextAsk++
  const p = new Promise(resolve => asks.set(id, resolve))
  process.send!({ ask: id, ...msg })
  return await p
}

async function train (batches: TrainBatch[], compress?: boolean, deflate?: boolean): Promise<{ ms: number[], losses: number[], phases: Array<TrainStepResult['ms']>, owned: number }> {
  const ms: number[] = []
  const losses: number[] = []
  const phases: Array<TrainStepResult['ms']> = []
  // steps that began with the tied matrix owned by the Validator (spec 1.8.0)
  let owned = 0
  for (const b of batches) {
    if (((host!.services.pipeline as any).owners?.size ?? 0) > 0) owned++
    const t0 = performance.now()
    const r = await host!.services.pipeline.trainStep(b, { compress, deflate })
    ms.push(performance.now() - t0)
    losses.push(r.loss)
    phases.push(r.ms)
  }
  return { ms, losses, phases, owned }
}

async function monoTrain (batches: TrainBatch[]): Promise<{ ms: number[], losses: number[] }> {
  const ms: number[] = []
  const losses: number[] = []
  for (const b of batches) {
    const t0 = performance.now()
    const out = await mono!.backward({ input_ids: int64(b.inputIds, [b.batch, b.seq]), targets: int64(b.targets, [b.batch, b.seq]) })
    await mono!.step()
    ms.push(performance.now() - t0)
    losses.push((out.loss?.data as Float32Array | undefined)?.[0] ?? NaN)
  }
  return { ms, losses }
}

async function evaluate (parameters: Map<string, Float32Array>, batches: TrainBatch[]): Promise<number> {
  const L = config.nLayers
  const evaluator = await createShardExecutor({ config, role: { kind: 'blocks', start: 0, end: L }, parameterSpecs: modelParameters(config), parameters, graphs: { forward: buildModelGraph(config, 'forward').bytes } })
  try {
    let loss = 0
    for (const b of batches) loss += ((await evaluator.forward({ input_ids: int64(b.inputIds, [b.batch, b.seq]), targets: int64(b.targets, [b.batch, b.seq]) })).loss.data as Float32Array)[0]
    return loss / batches.length
  } finally {
    await evaluator.close()
  }
}

async function handle (cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'init': return await start(cmd.init)
    case 'connect':
      candidates.splice(0, candidates.length, ...cmd.hops.map(h => ({ peer: peerIdFromString(h.peer), start: h.start, end: h.end })))
      router?.reset()
      for (const a of cmd.dial) await host!.dial(multiaddr(a))
      return null
    case 'decode': { (globalThis as any).__nsTrace = []; const r = await decode(cmd.prompt, cmd.n); return r }
    // CPU time so far of this process (all threads) and of its main thread, µs: the decode benchmark's CPU per token
    case 'cpu': { const u = process.cpuUsage(); const m = process.threadCpuUsage(); return [u.user + u.system, m.user + m.system] }
    case 'trace': { const t = (globalThis as any).__nsTrace ?? []; (globalThis as any).__nsTrace = []; return t }
    case 'generate': return await decode(cmd.prompt, cmd.n, cmd.killAfter, cmd.mirror)
    case 'localDecode': return await localDecode(cmd.prompt, cmd.n)
    case 'train': return await train(cmd.batches, cmd.compress, cmd.deflate)
    case 'monoTrain': return await monoTrain(cmd.batches)
    case 'traffic': return host!.services.pipeline.trafficStats()
    case 'parameters': {
      const out = new Map<string, Float32Array>()
      for (const e of stage!.executors) for (const [k, v] of await e.getParameters()) out.set(k, v)
      return out
    }
    case 'evaluate': return await evaluate(cmd.parameters, cmd.batches)
    case 'stop':
      await host?.stop()
      await stage?.close()
      await mono?.close()
      return { loadavg: loadavg() }
  }
}

process.on('message', (msg: { id?: number, answer?: number, value?: unknown, cmd?: Command }) => {
  if (msg.answer != null) {
    asks.get(msg.answer)?.(msg.value)
    asks.delete(msg.answer)
    return
  }
  const id = msg.id!
  handle(msg.cmd!).then(
    result => { process.send!({ id, ok: true, result }) },
    (err: any) => { process.send!({ id, ok: false, error: `${String(err?.name)}: ${String(err?.message)}\n${String(err?.stack)}` }) }
  ).finally(() => {
    if (msg.cmd!.op === 'stop') {
      process.disconnect()
      setTimeout(() => process.exit(0), 200).unref()
    }
  })
})
