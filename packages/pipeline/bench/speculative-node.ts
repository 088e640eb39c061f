/**
 * One node of the speculative-decoding benchmark (bench/speculative.ts starts one per role, each in its own
 * network namespace): a libp2p host on the namespace's address with the pipeline service and one stage. The
 * Driver also runs the generations. Commands arrive over the IPC channel; every reply echoes the command id.
 */
import { readFileSync } from 'node:fs'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createNeuroShardHost } from '@neuroshard/host'
import { modelParameters, shardParameters } from '@neuroshard/model'
import { createInferenceEngine } from '@neuroshard/runtime'
import { createPipelineStage, modelDrafter, ngramDrafter, pipeline, spanRoles, staticRouter } from '../src/index.js'
import type { Drafter, Pipeline, PipelineStage, SpeculativeRound } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { ModelConfig } from '@neuroshard/model'
import type { InferenceEngine } from '@neuroshard/runtime'

export type SpecCommand =
  | { op: 'init', config: ModelConfig, weights: string, start: number, end: number, ip: string, threads: number }
  | { op: 'connect', hops: Array<{ peer: string, start: number, end: number }>, dial: string[] }
  | { op: 'generate', prompt: number[], n: number, drafter: 'none' | 'ngram' | 'self-draft', gamma?: number }
  | { op: 'stop' }

type Host = NeuroShardHost & { services: { pipeline: Pipeline } }

let config: ModelConfig
let params: Map<string, Float32Array>
let stage: PipelineStage | undefined
let host: Host | undefined
let draftEngine: InferenceEngine | undefined

function loadWeights (file: string): Map<string, Float32Array> {
  const buf = readFileSync(file)
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength))
  const out = new Map<string, Float32Array>()
  let o = 0
  for (const s of modelParameters(config)) {
    const n = s.shape.reduce((a, b) => a * b, 1)
    out.set(s.name, all.slice(o, o + n))
    o += n
  }
  return out
}

/** The network model's first block, final norm and head as a one-block model: the self-draft */
async function selfDraft (): Promise<Drafter> {
  if (draftEngine == null) {
    const small: ModelConfig = { ...config, nLayers: 1 }
    draftEngine = await createInferenceEngine({ config: small, parameters: new Map(modelParameters(small).map(s => [s.name, params.get(s.name)!])), intraOpNumThreads: 1 })
  }
  const engine = draftEngine
  return modelDrafter({ open: async () => await engine.openInference(), vocabSize: config.vocabSize })
}

async function handle (cmd: SpecCommand): Promise<unknown> {
  switch (cmd.op) {
    case 'init': {
      config = cmd.config
      params = loadWeights(cmd.weights)
      const names = new Set(spanRoles(config, cmd.start, cmd.end).flatMap(r => shardParameters(config, r).map(p => p.name)))
      stage = await createPipelineStage({ config, start: cmd.start, end: cmd.end, parameters: new Map([...params].filter(([k]) => names.has(k))), training: false, intraOpNumThreads: cmd.threads })
      host = await createNeuroShardHost<{ pipeline: Pipeline }>({
        listen: [`/ip4/${cmd.ip}/tcp/0`],
        transports: { quic: false, webrtcDirect: false, circuitRelay: false },
        services: { pipeline: pipeline({ stages: [stage] }) }
      }) as Host
      return { peer: host.peerId.toString(), addrs: host.getMultiaddrs().map(a => a.toString()) }
    }
    case 'connect': {
      const router = staticRouter(cmd.hops.map(h => ({ peer: peerIdFromString(h.peer), start: h.start, end: h.end })))
      host!.services.pipeline.setRouter(router)
      for (const a of cmd.dial) await host!.dial(multiaddr(a))
      return true
    }
    case 'generate': {
      const draft = cmd.drafter === 'ngram' ? ngramDrafter() : cmd.drafter === 'self-draft' ? await selfDraft() : undefined
      const rounds: SpeculativeRound[] = []
      const ids: number[] = []
      const t0 = performance.now()
      let first = 0
      for await (const t of host!.services.pipeline.generate(cmd.prompt, {
        maxNewTokens: cmd.n,
        draft,
        gamma: cmd.gamma != null ? { initial: cmd.gamma, max: cmd.gamma, adaptive: false } : undefined,
        onRound: r => rounds.push(r)
      })) {
        if (ids.length === 0) first = performance.now() - t0
        ids.push(t.id)
      }
      const ms = performance.now() - t0
      await draft?.close?.()
      return { ids, ms, firstMs: first, rounds }
    }
    case 'stop':
      await host?.stop()
      await stage?.close()
      await draftEngine?.close()
      setTimeout(() => process.exit(0), 100)
      return true
  }
}

process.on('message', (msg: any) => {
  handle(msg.cmd).then(value => process.send!({ id: msg.id, value }), (err: any) => process.send!({ id: msg.id, error: String(err?.stack ?? err) }))
})
