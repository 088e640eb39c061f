/**
 * Pipeline benchmarks (numbers go to README.md with the command, date and load):
 *
 * - decode: `small`, greedy decode tokens/s over 3 libp2p hosts (Driver / Worker with all blocks / Validator)
 *   vs the same model as one local stage (embed → 12 blocks with KV cache → head) in one process, same run;
 *   per-token latency p50/p99 and the added latency per network hop.
 * - failover: `tiny`, kill the Worker in use mid-generation ≥ 50 times; time from the kill to the next token.
 * - train: `small` (tied), batch 2 × 256, pipeline step over 3 hosts vs the monolithic step, same run.
 * - compress: `tiny`, 200 steps with and without int8 activations/gradients: payload bytes per step and
 *   the validation-loss gap.
 *
 * Run: node_modules/.bin/tsc -b packages/pipeline && (cd packages/pipeline && ../../node_modules/.bin/node dist/bench/index.js [decode] [failover] [train] [compress])
 * The hosts run in one process (each shard executor in its own worker thread, libp2p on the main thread).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { createNeuroShardHost } from '@neuroshard/host'
import { buildModelGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { createShardExecutor, float32, int64, warmupCosine } from '@neuroshard/runtime'
import { createPipelineStage, pipeline, staticRouter } from '../src/index.js'
import type { Pipeline, PipelineStage, RouteHop, TrainBatch } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { ModelConfig } from '@neuroshard/model'
import type { AdamWOptions } from '@neuroshard/runtime'

type Host = NeuroShardHost & { services: { pipeline: Pipeline } }

async function startHost (stages: PipelineStage[], router?: ReturnType<typeof staticRouter>, compress = false): Promise<Host> {
  return await createNeuroShardHost<any>({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    services: { pipeline: pipeline({ stages, router, compress }) }
  }) as Host
}

async function mesh (hosts: Host[]): Promise<void> {
  for (const a of hosts) for (const b of hosts) if (a !== b && a.getConnections(b.peerId).length === 0) await a.dial(b.getMultiaddrs()[0])
}

function weights (config: ModelConfig, seed = 1): Map<string, Float32Array> {
  return new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, seed)]))
}

function pct (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))]
}

const median = (xs: number[]): number => pct(xs, 50)
const f = (x: number, d = 2): string => x.toFixed(d)

function table (title: string, rows: Array<[string, string]>): void {
  console.log(`\n### ${title}\n\n| measurement | result |\n|---|---|`)
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`)
}

const results: Record<string, unknown> = { date: new Date().toISOString(), loadavg: loadavg(), node: process.version }

/** Greedy decode on one local stage holding the whole model; returns the tokens and per-token latencies (ms) */
async function localDecode (stage: PipelineStage, prompt: number[], n: number): Promise<{ ids: number[], ms: number[] }> {
  const V = stage.config.vocabSize
  const d = stage.config.dModel
  const kv = await stage.blocks!.openInference()
  const head = await stage.head!.openInference()
  const ids: number[] = []
  const ms: number[] = []
  let chunk = prompt
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      const h0 = (await stage.embed!.forward({ input_ids: int64(BigInt64Array.from(chunk, BigInt), [1, chunk.length]) })).hidden
      const h = (await kv.run({ hidden_in: h0 })).hidden_out
      const s = chunk.length
      const last = float32((h.data as Float32Array).slice((s - 1) * d, s * d), [1, 1, d])
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

async function pipelineDecode (driver: Host, prompt: number[], n: number): Promise<{ ids: number[], ms: number[] }> {
  const ids: number[] = []
  const ms: number[] = []
  let t0 = performance.now()
  for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: n })) {
    const t1 = performance.now()
    ids.push(t.id)
    ms.push(t1 - t0)
    t0 = t1
  }
  return { ids, ms }
}

async function benchDecode (): Promise<void> {
  const config = preset('small')
  const L = config.nLayers
  const params = weights(config)
  const opts = { config, parameters: params, training: false, intraOpNumThreads: 2 }
  const local = await createPipelineStage({ ...opts, start: 0, end: L + 2 })
  const stages = await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([start, end]) => await createPipelineStage({ ...opts, start, end })))
  params.clear()
  const worker = await startHost([stages[1]])
  const validator = await startHost([stages[2]])
  const driver = await startHost([stages[0]], staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]))
  const hosts = [driver, worker, validator]
  await mesh(hosts)
  const prompt = Array.from({ length: 16 }, (_, i) => 100 + i * 7)
  const n = 48
  try {
    await localDecode(local, prompt, 4) // warm-up
    await pipelineDecode(driver, prompt, 4)
    const localMs: number[] = []
    const pipeMs: number[] = []
    let same = true
    for (let round = 0; round < 3; round++) {
      const a = await localDecode(local, prompt, n)
      const b = await pipelineDecode(driver, prompt, n)
      same &&= a.ids.join() === b.ids.join()
      localMs.push(...a.ms.slice(1)) // decode steps only (the first token includes the prefill)
      pipeMs.push(...b.ms.slice(1))
    }
    const tpsLocal = 1000 * localMs.length / localMs.reduce((s, x) => s + x, 0)
    const tpsPipe = 1000 * pipeMs.length / pipeMs.reduce((s, x) => s + x, 0)
    const r = {
      decodeSteps: localMs.length,
      sameTokens: same,
      localTokensPerSecond: tpsLocal,
      pipelineTokensPerSecond: tpsPipe,
      slowdown: 1 - tpsPipe / tpsLocal,
      localMs: { p50: median(localMs), p99: pct(localMs, 99) },
      pipelineMs: { p50: median(pipeMs), p99: pct(pipeMs, 99) },
      networkHops: 2,
      addedPerHopMs: { p50: (median(pipeMs) - median(localMs)) / 2, p99: (pct(pipeMs, 99) - pct(localMs, 99)) / 2 }
    }
    results.decode = r
    table('decode `small` (greedy, 16-token prompt, 3 × 47 decode steps)', [
      ['one process (local stage, KV cache)', `${f(tpsLocal)} tokens/s (p50 ${f(r.localMs.p50)} ms, p99 ${f(r.localMs.p99)} ms per token)`],
      ['3 hosts on loopback (Driver → Worker → Validator)', `${f(tpsPipe)} tokens/s (p50 ${f(r.pipelineMs.p50)} ms, p99 ${f(r.pipelineMs.p99)} ms per token)`],
      ['pipeline vs one process', `${f(100 * r.slowdown, 1)} % slower (goal ≤ 10 %); same tokens: ${same}`],
      ['added latency per hop (2 network hops)', `p50 ${f(r.addedPerHopMs.p50)} ms, p99 ${f(r.addedPerHopMs.p99)} ms`]
    ])
  } finally {
    await Promise.all(hosts.map(async h => { await h.stop() }))
    await Promise.all([local, ...stages].map(async s => { await s.close() }))
  }
}

async function benchFailover (): Promise<void> {
  const config = preset('tiny')
  const L = config.nLayers
  const params = weights(config)
  const [s0, s1, s2] = await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([start, end]) => await createPipelineStage({ config, start, end, parameters: params, training: false, intraOpNumThreads: 1 })))
  const candidates: RouteHop[] = []
  const router = staticRouter(candidates)
  const validator = await startHost([s2])
  const driver = await startHost([s0], router)
  // the Worker stage is shared by the Worker hosts (each host keeps its own sessions)
  const workers: Host[] = []
  const addWorker = async (): Promise<void> => {
    const w = await startHost([s1])
    await mesh([driver, validator, w])
    workers.push(w)
    candidates.splice(0, candidates.length, ...workers.filter(h => h.status === 'started').map(h => ({ peer: h.peerId, start: 1, end: L + 1 })), { peer: validator.peerId, start: L + 1, end: L + 2 })
  }
  await addWorker()
  await addWorker()
  const kills = 60
  const failoverMs: number[] = []
  const tokenMs: number[] = []
  let identical = 0
  const prompt = [...new TextEncoder().encode('failover bench ')]
  const want: number[] = []
  for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 12 })) want.push(t.id)
  try {
    for (let k = 0; k < kills; k++) {
      const inUse = candidates[0].peer.toString()
      const victim = workers.find(w => w.peerId.toString() === inUse)!
      const got: number[] = []
      let t0 = performance.now()
      let killedAt = 0
      for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 12 })) {
        const now = performance.now()
        got.push(t.id)
        if (killedAt > 0) {
          failoverMs.push(now - killedAt)
          killedAt = 0
        } else if (got.length > 1) tokenMs.push(now - t0)
        if (got.length === 5) {
          killedAt = performance.now()
          await victim.stop()
        }
        t0 = performance.now()
      }
      if (got.join() === want.join()) identical++
      await addWorker() // a new standby for the next round (not timed)
    }
    const r = {
      kills,
      identicalOutputs: identical,
      failoverMs: { p50: median(failoverMs), p99: pct(failoverMs, 99), max: Math.max(...failoverMs) },
      normalTokenMs: { p50: median(tokenMs), p99: pct(tokenMs, 99) }
    }
    results.failover = r
    table(`failover \`tiny\` (${kills} kills of the Worker in use after the 5th token; host stopped, standby switched in, the sequence replayed)`, [
      ['time from the kill to the next token', `p50 ${f(r.failoverMs.p50)} ms, p99 ${f(r.failoverMs.p99)} ms, max ${f(r.failoverMs.max)} ms (goal p99 ≤ 200 ms)`],
      ['normal token latency, same runs', `p50 ${f(r.normalTokenMs.p50)} ms, p99 ${f(r.normalTokenMs.p99)} ms`],
      ['generations identical to the undisturbed one', `${identical} / ${kills}`]
    ])
  } finally {
    await Promise.all([driver, validator, ...workers].map(async h => { await h.stop() }))
    await Promise.all([s0, s1, s2].map(async s => { await s.close() }))
  }
}

function randomBatches (config: ModelConfig, n: number, rows: number, seq: number, seed: number): TrainBatch[] {
  let s = seed
  const next = (): bigint => { s = (s * 1103515245 + 12345) % 2147483648; return BigInt(s % config.vocabSize) }
  return Array.from({ length: n }, () => ({ inputIds: BigInt64Array.from({ length: rows * seq }, next), targets: BigInt64Array.from({ length: rows * seq }, next), batch: rows, seq }))
}

async function benchTrain (tied: boolean): Promise<void> {
  const config = { ...preset('small'), tieEmbeddings: tied }
  const L = config.nLayers
  const params = weights(config)
  const optimizer: AdamWOptions = { schedule: warmupCosine({ peakLr: 3e-4, warmupSteps: 10, totalSteps: 1000 }) }
  const data = randomBatches(config, 4, 2, 256, 5)
  const mono = await createShardExecutor({
    config, role: { kind: 'blocks', start: 0, end: L }, parameterSpecs: modelParameters(config), parameters: params, optimizer,
    graphs: { backward: buildModelGraph(config, 'backward').bytes }
  })
  const monoStep = async (b: TrainBatch): Promise<number> => {
    const t0 = performance.now()
    await mono.backward({ input_ids: int64(b.inputIds, [b.batch, b.seq]), targets: int64(b.targets, [b.batch, b.seq]) })
    await mono.step()
    return performance.now() - t0
  }
  const stages = await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([start, end]) => await createPipelineStage({ config, start, end, parameters: params, optimizer })))
  params.clear()
  const worker = await startHost([stages[1]])
  const validator = await startHost([stages[2]])
  const driver = await startHost([stages[0]], staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]))
  const hosts = [driver, worker, validator]
  await mesh(hosts)
  const pipeStep = async (b: TrainBatch): Promise<number> => {
    const t0 = performance.now()
    await driver.services.pipeline.trainStep(b)
    return performance.now() - t0
  }
  try {
    await monoStep(data[0]) // warm-up
    await pipeStep(data[0])
    const m: number[] = []
    const p: number[] = []
    for (let i = 1; i < 4; i++) {
      m.push(await monoStep(data[i]))
      p.push(await pipeStep(data[i]))
    }
    const r = { monolithicMs: m, pipelineMs: p, ratio: median(p) / median(m) }
    results[tied ? 'trainTied' : 'trainUntied'] = r
    table(`training step \`small\` (${tied ? 'tied' : 'untied'}), batch 2 × 256, 3 steps each, alternating`, [
      ['monolithic step (one executor, model backward graph)', `${f(median(m), 0)} ms (median; ${m.map(x => f(x, 0)).join(', ')})`],
      [`pipeline step, 3 hosts${tied ? ' (incl. tied V × d gradient and weights on the wire)' : ''}`, `${f(median(p), 0)} ms (median; ${p.map(x => f(x, 0)).join(', ')})`],
      ['pipeline / monolithic', `${f(r.ratio)}× (goal ≤ 1.5×)`]
    ])
  } finally {
    await Promise.all(hosts.map(async h => { await h.stop() }))
    await Promise.all([mono.close(), ...stages.map(async s => { await s.close() })])
  }
}

/** Byte-level windows of the repository's own documentation, a deterministic English-ish corpus */
function corpus (): Uint8Array {
  const files = ['../../specs/pipeline/README.md', '../../specs/layer-pool/README.md', '../runtime/README.md', '../../specs/model/README.md']
  return new Uint8Array(Buffer.concat(files.map(p => readFileSync(new URL(p, new URL('../../', import.meta.url))))))
}

function windows (text: Uint8Array, n: number, rows: number, seq: number, seed: number, lo: number, hi: number): TrainBatch[] {
  let s = seed
  const next = (): number => { s = (s * 1103515245 + 12345) % 2147483648; return lo + (s % (hi - lo - seq - 1)) }
  return Array.from({ length: n }, () => {
    const ids = new BigInt64Array(rows * seq)
    const targets = new BigInt64Array(rows * seq)
    for (let r = 0; r < rows; r++) {
      const at = next()
      for (let t = 0; t < seq; t++) { ids[r * seq + t] = BigInt(text[at + t]); targets[r * seq + t] = BigInt(text[at + t + 1]) }
    }
    return { inputIds: ids, targets, batch: rows, seq }
  })
}

async function benchCompress (): Promise<void> {
  const config = preset('tiny')
  const L = config.nLayers
  const steps = 200
  const text = corpus()
  const split = Math.floor(text.length * 0.9)
  const train = windows(text, steps, 8, 64, 3, 0, split)
  const val = windows(text, 16, 8, 64, 4, split, text.length)
  const optimizer: AdamWOptions = { schedule: warmupCosine({ peakLr: 3e-3, warmupSteps: 20, totalSteps: steps }) }
  const out: Record<string, { bytesPerStep: number, valLoss: number, trainLoss: number }> = {}
  for (const compress of [false, true]) {
    const params = weights(config, 9)
    const stages = await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([start, end]) => await createPipelineStage({ config, start, end, parameters: params, optimizer, intraOpNumThreads: 1 })))
    const worker = await startHost([stages[1]])
    const validator = await startHost([stages[2]])
    const driver = await startHost([stages[0]], staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]), compress)
    const hosts = [driver, worker, validator]
    await mesh(hosts)
    let last = 0
    for (const b of train) last = (await driver.services.pipeline.trainStep(b)).loss
    const bytes = hosts.reduce((s, h) => { const t = h.services.pipeline.trafficStats(); return s + t.sent + t.received }, 0)
    // validation loss with the trained weights in one monolithic forward graph
    const trained = new Map<string, Float32Array>()
    for (const st of stages) for (const e of st.executors) for (const [k, v] of await e.getParameters()) trained.set(k, v)
    const evaluator = await createShardExecutor({ config, role: { kind: 'blocks', start: 0, end: L }, parameterSpecs: modelParameters(config), parameters: trained, graphs: { forward: buildModelGraph(config, 'forward').bytes } })
    let valLoss = 0
    for (const b of val) valLoss += ((await evaluator.forward({ input_ids: int64(b.inputIds, [b.batch, b.seq]), targets: int64(b.targets, [b.batch, b.seq]) })).loss.data as Float32Array)[0]
    valLoss /= val.length
    out[compress ? 'int8' : 'float32'] = { bytesPerStep: bytes / steps, valLoss, trainLoss: last }
    await evaluator.close()
    await Promise.all(hosts.map(async h => { await h.stop() }))
    await Promise.all(stages.map(async s => { await s.close() }))
  }
  const gap = (out.int8.valLoss - out.float32.valLoss) / out.float32.valLoss
  results.compress = { steps, batch: '8 × 64', ...out, reduction: out.float32.bytesPerStep / out.int8.bytesPerStep, valLossGap: gap }
  table(`activation compression, \`tiny\`, ${steps} steps of 8 × 64 bytes of this repo's docs, 3 hosts`, [
    ['float32 activations/gradients', `${f(out.float32.bytesPerStep / 1024, 1)} KiB per step; val loss ${f(out.float32.valLoss, 4)}`],
    ['blockwise int8 (block 64)', `${f(out.int8.bytesPerStep / 1024, 1)} KiB per step; val loss ${f(out.int8.valLoss, 4)}`],
    ['bytes reduction / val-loss gap', `${f(out.float32.bytesPerStep / out.int8.bytesPerStep)}× fewer bytes / ${f(100 * gap, 2)} % (goal ≥ 4× at ≤ 1 %)`]
  ])
}

const which = process.argv.slice(2)
const all = which.length === 0
console.log(`pipeline bench ${results.date as string}, node ${process.version}, load average ${loadavg().map(x => x.toFixed(2)).join(' ')}`)
if (all || which.includes('decode')) await benchDecode()
if (all || which.includes('failover')) await benchFailover()
if (all || which.includes('train')) await benchTrain(true)
if (all || which.includes('train') || which.includes('train-untied')) await benchTrain(false)
if (all || which.includes('compress')) await benchCompress()
mkdirSync(new URL('../../bench-results/', import.meta.url), { recursive: true })
const file = new URL(`../../bench-results/pipeline-${(results.date as string).replace(/[:.]/g, '-')}.json`, import.meta.url)
writeFileSync(file, JSON.stringify(results, null, 2))
console.log(`\nresults: ${file.pathname}`)
