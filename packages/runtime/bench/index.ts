/**
 * Runtime benchmarks (numbers go into the README). Run: `pnpm --filter @neuroshard/runtime bench`
 * or `node_modules/.bin/tsc -b packages/runtime && node_modules/.bin/node packages/runtime/dist/bench/index.js [small|bootstrap|...]`.
 *
 * The yardstick is the machine itself, measured in the same run: onnxruntime's fp32 MatMul GFLOP/s and
 * the memory copy bandwidth.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpus } from 'node:os'
import { buildModelGraph, buildShardGraph, initParameter, modelParameters, preset, shardParameters, initShardParameters, countParameters } from '@neuroshard/model'
import { Runtime, createShardExecutor, float32, int64, adamwKernel, constantLr } from '../src/index.js'
import { buildModel, FLOAT } from '../test/fixtures/onnx.js'
import type { ModelConfig, ShardRole } from '@neuroshard/model'
import type { TensorData } from '../src/index.js'

const spin = process.env.NEUROSHARD_BENCH_SPIN === '1'
const here = dirname(fileURLToPath(import.meta.url))
const resultsDir = join(here, '..', '..', 'bench-results')
const only = new Set(process.argv.slice(2))
const want = (k: string): boolean => only.size === 0 || only.has(k)
const results: Record<string, unknown> = { allowSpinning: process.env.NEUROSHARD_BENCH_SPIN === '1', date: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model }
const rows: Array<[string, string]> = []
const row = (k: string, v: string): void => { rows.push([k, v]); console.log(`${k.padEnd(58)} ${v}`) }

async function best (reps: number, fn: () => Promise<void> | void): Promise<number> {
  let b = Infinity
  for (let i = 0; i < reps; i++) {
    const t = performance.now()
    await fn()
    b = Math.min(b, performance.now() - t)
  }
  return b / 1000
}

async function median (reps: number, fn: () => Promise<void> | void): Promise<number> {
  const ts: number[] = []
  for (let i = 0; i < reps; i++) {
    const t = performance.now()
    await fn()
    ts.push(performance.now() - t)
  }
  ts.sort((a, b) => a - b)
  return ts[Math.floor(ts.length / 2)] / 1000
}

function ids (n: number, vocab: number, seed = 1): BigInt64Array {
  const out = new BigInt64Array(n)
  let s = seed
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; out[i] = BigInt(s % vocab) }
  return out
}

/** Matmul FLOPs per token of one forward pass: projections, MLP, LM head, and attention over `ctx` keys */
function forwardFlopsPerToken (c: ModelConfig, ctx: number): number {
  const hd = c.dModel / c.nHeads
  const perBlock = c.dModel * (c.nHeads * hd + 2 * c.nKvHeads * hd) + c.nHeads * hd * c.dModel + 3 * c.dModel * c.ffnHidden
  return 2 * (c.nLayers * perBlock + c.dModel * c.vocabSize) + c.nLayers * 4 * ctx * c.nHeads * hd
}

async function matmulPeak (): Promise<number> {
  const rt = new Runtime({ allowSpinning: spin })
  try {
    const n = 2048
    const s = await rt.createSession(buildModel({ nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }], inputs: [['a', FLOAT, [n, n]], ['b', FLOAT, [n, n]]], outputs: [['c', FLOAT, [n, n]]] }))
    const a = float32(new Float32Array(n * n).fill(0.5), [n, n])
    await rt.setResident({ a, b: float32(new Float32Array(n * n).fill(0.25), [n, n]) })
    await s.run({})
    const t = await best(5, async () => { await s.run({}) })
    return 2 * n ** 3 / t / 1e9
  } finally {
    await rt.close()
  }
}

function copyBandwidth (): number {
  const n = 64 * 1024 * 1024 // 256 MB
  const src = new Float32Array(n).fill(1)
  const dst = new Float32Array(n)
  dst.set(src)
  let b = Infinity
  for (let i = 0; i < 5; i++) {
    const t = performance.now()
    dst.set(src)
    b = Math.min(b, performance.now() - t)
  }
  return n * 4 / (b / 1000) / 1e9
}

async function adamwComparison (): Promise<void> {
  const n = 8 * 1024 * 1024
  const p = new Float32Array(n).fill(0.1); const g = new Float32Array(n).fill(0.01); const m = new Float32Array(n); const v = new Float32Array(n)
  const js = await best(3, () => { adamwKernel(p, g, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, t: 1, gradScale: 1 }) })
  // the same update as an ONNX graph: p, g, m, v in; p', m', v' out (onnxruntime copies each output)
  const c = (name: string, x: number): { name: string, elemType: number, dims: number[], data: Float32Array } => ({ name, elemType: FLOAT, dims: [], data: Float32Array.of(x) })
  const graph = buildModel({
    nodes: [
      { op: 'Mul', inputs: ['m', 'b1'], outputs: ['m1'] }, { op: 'Mul', inputs: ['g', 'omb1'], outputs: ['g1'] }, { op: 'Add', inputs: ['m1', 'g1'], outputs: ['m_out'] },
      { op: 'Mul', inputs: ['g', 'g'], outputs: ['gg'] }, { op: 'Mul', inputs: ['v', 'b2'], outputs: ['v1'] }, { op: 'Mul', inputs: ['gg', 'omb2'], outputs: ['g2'] }, { op: 'Add', inputs: ['v1', 'g2'], outputs: ['v_out'] },
      { op: 'Mul', inputs: ['v_out', 'c2'], outputs: ['vh'] }, { op: 'Sqrt', inputs: ['vh'], outputs: ['sv'] }, { op: 'Add', inputs: ['sv', 'eps'], outputs: ['den'] },
      { op: 'Mul', inputs: ['m_out', 'lrc1'], outputs: ['num'] }, { op: 'Div', inputs: ['num', 'den'], outputs: ['upd'] },
      { op: 'Mul', inputs: ['p', 'decay'], outputs: ['pd'] }, { op: 'Sub', inputs: ['pd', 'upd'], outputs: ['p_out'] }
    ],
    initializers: [c('b1', 0.9), c('omb1', 0.1), c('b2', 0.95), c('omb2', 0.05), c('c2', 20), c('eps', 1e-8), c('lrc1', 1e-2), c('decay', 0.9999)],
    inputs: [['p', FLOAT, ['n']], ['g', FLOAT, ['n']], ['m', FLOAT, ['n']], ['v', FLOAT, ['n']]],
    outputs: [['p_out', FLOAT, ['n']], ['m_out', FLOAT, ['n']], ['v_out', FLOAT, ['n']]]
  })
  const rt = new Runtime({ allowSpinning: spin })
  try {
    const s = await rt.createSession(graph)
    await rt.setResident({ p: float32(p, [n]), g: float32(g, [n]), m: float32(m, [n]), v: float32(v, [n]) })
    // inside the worker the outputs would replace the resident buffers; here they come back to main, so the
    // measured time includes one extra transfer (a move, not a copy)
    const onnx = await best(3, async () => { await s.run({}) })
    row('AdamW update, 8M params: fused JS loop (ms)', (js * 1000).toFixed(1))
    row('AdamW update, 8M params: ONNX graph (ms)', (onnx * 1000).toFixed(1))
    results.adamw = { params: n, jsMs: js * 1000, onnxMs: onnx * 1000 }
  } finally {
    await rt.close()
  }
}

async function trainStep (name: 'small' | 'bootstrap', peak: number, batch: number, seq: number): Promise<void> {
  const config = preset(name)
  const specs = modelParameters(config)
  const t0 = performance.now()
  const graph = buildModelGraph(config, 'backward').bytes
  const buildS = (performance.now() - t0) / 1000
  const ex = await createShardExecutor({
    config,
    role: { kind: 'blocks', start: 0, end: config.nLayers },
    parameterSpecs: specs,
    parameters: new Map(specs.map(s => [s.name, initParameter(config, s, 0)])),
    graphs: { backward: graph },
    optimizer: { schedule: constantLr(1e-4) },
    allowSpinning: spin
  })
  try {
    const feeds = (): Record<string, TensorData> => ({ input_ids: int64(ids(batch * seq, config.vocabSize), [batch, seq]), targets: int64(ids(batch * seq, config.vocabSize, 2), [batch, seq]) })
    await ex.backward(feeds()); await ex.step()
    // the yardstick again, right before: other jobs on a shared machine come and go
    peak = await matmulPeak()
    let bw = 0; let st = 0
    const reps = name === 'bootstrap' ? 3 : 5
    const total = await median(reps, async () => {
      const a = performance.now(); await ex.backward(feeds()); const b = performance.now(); await ex.step(); const c = performance.now()
      bw += b - a; st += c - b
    })
    const tokens = batch * seq
    const flops = 3 * forwardFlopsPerToken(config, seq) * tokens
    const gflops = flops / total / 1e9
    const p = countParameters(specs)
    row(`train step ${name} (${(p / 1e6).toFixed(1)}M) batch ${batch}×${seq}: step time (s)`, total.toFixed(3))
    row(`  forward+backward / AdamW share (mean s)`, `${(bw / reps / 1000).toFixed(3)} / ${(st / reps / 1000).toFixed(3)}`)
    row(`  tokens/s`, (tokens / total).toFixed(0))
    row(`  achieved GFLOP/s (6N+attn) / fraction of MatMul peak (${peak.toFixed(0)}, measured just before)`, `${gflops.toFixed(1)} / ${(100 * gflops / peak).toFixed(1)} %`)
    results[`train_${name}`] = { matmulGflopsBefore: peak, params: p, batch, seq, stepS: total, fwdBwdS: bw / reps / 1000, adamwS: st / reps / 1000, tokensPerS: tokens / total, gflops, fractionOfPeak: gflops / peak, graphBuildS: buildS }
  } finally {
    await ex.close()
  }
}

async function decode (name: 'small' | 'bootstrap', bandwidth: number, fused: boolean): Promise<void> {
  const config = preset(name)
  const rt = new Runtime({ allowSpinning: spin })
  try {
    const all = new Map<string, Float32Array>()
    for (const role of [{ kind: 'embed' }, { kind: 'blocks', start: 0, end: config.nLayers }, { kind: 'head' }] as ShardRole[]) {
      for (const [k, v] of initShardParameters(config, role, 0)) all.set(k, v)
    }
    const tensors: Record<string, TensorData> = {}
    for (const s of modelParameters(config)) tensors[s.name] = float32(all.get(s.name)!, s.shape)
    await rt.setResident(tensors)
    const embed = await rt.createSession(buildShardGraph(config, { kind: 'embed' }, 'forward').bytes)
    const blocks = await rt.createSession(buildShardGraph(config, { kind: 'blocks', start: 0, end: config.nLayers }, 'inference', { fused }).bytes)
    const head = await rt.createSession(buildShardGraph(config, { kind: 'head' }, 'inference', { fused }).bytes)
    const hd = config.dModel / config.nHeads
    const prompt = 32
    const steps = 32
    let past: Record<string, TensorData> = {}
    for (let k = 0; k < config.nLayers; k++) {
      past[`past_key.${k}`] = float32(new Float32Array(0), [1, config.nKvHeads, 0, hd])
      past[`past_value.${k}`] = float32(new Float32Array(0), [1, config.nKvHeads, 0, hd])
    }
    const run = async (tokens: BigInt64Array, pos: number): Promise<void> => {
      const h = (await embed.run({ input_ids: int64(tokens, [1, tokens.length]) })).hidden
      const out = await blocks.run({ hidden_in: h, ...past, position_offset: int64([pos], []) }, { transfer: true })
      await head.run({ hidden: out.hidden_out })
      past = {}
      for (const [k, v] of Object.entries(out)) if (k.startsWith('present_')) past['past_' + k.slice(8)] = v
    }
    await run(ids(prompt, config.vocabSize), 0)
    bandwidth = copyBandwidth()
    const t = performance.now()
    for (let i = 0; i < steps; i++) await run(ids(1, config.vocabSize, i + 7), prompt + i)
    const perTok = (performance.now() - t) / 1000 / steps
    const weightBytes = countParameters(modelParameters(config)) * 4
    const bound = bandwidth * 1e9 / weightBytes
    const label = `decode ${name} (${fused ? 'fused' : 'decomposed'} ops), KV cache, 1 token`
    row(`${label}: tokens/s`, (1 / perTok).toFixed(1))
    row(`  bound (weights ${(weightBytes / 1e6).toFixed(0)} MB ÷ copy BW ${bandwidth.toFixed(1)} GB/s just before) / fraction`, `${bound.toFixed(1)} tok/s / ${(100 / perTok / bound).toFixed(1)} %`)
    results[`decode_${name}_${fused ? 'fused' : 'decomposed'}`] = { tokensPerS: 1 / perTok, boundTokensPerS: bound, fraction: 1 / perTok / bound, weightBytes }
  } finally {
    await rt.close()
  }
}

async function chainOverhead (name: 'tiny' | 'small', batch: number, seq: number): Promise<void> {
  const config = preset(name)
  const all = new Map<string, Float32Array>()
  const roles: ShardRole[] = [{ kind: 'embed' }, { kind: 'blocks', start: 0, end: config.nLayers }, { kind: 'head' }]
  for (const role of roles) for (const [k, v] of initShardParameters(config, role, 0)) all.set(k, v)
  const input = (): TensorData => int64(ids(batch * seq, config.vocabSize), [batch, seq])
  const reps = 11
  const rt = new Runtime({ allowSpinning: spin })
  // three shard executors: three worker threads, activations hop between them through the main thread
  const shards = await Promise.all(roles.map(async role => await createShardExecutor({
    config,
    role,
    allowSpinning: spin,
    parameters: new Map(shardParameters(config, role).map(s => [s.name, all.get(s.name)!])),
    graphs: role.kind === 'head' ? { inference: buildShardGraph(config, role, 'inference').bytes } : { forward: buildShardGraph(config, role, 'forward').bytes }
  })))
  try {
    const tensors: Record<string, TensorData> = {}
    for (const s of modelParameters(config)) tensors[s.name] = float32(all.get(s.name)!, s.shape)
    await rt.setResident(tensors)
    const m = await rt.createSession(buildModelGraph(config, 'inference').bytes)
    const e = await rt.createSession(buildShardGraph(config, roles[0], 'forward').bytes)
    const b = await rt.createSession(buildShardGraph(config, roles[1], 'forward').bytes)
    const h = await rt.createSession(buildShardGraph(config, roles[2], 'inference').bytes)
    const kv = await shards[2].openInference()
    const monoRun = async (): Promise<void> => { await m.run({ input_ids: input() }) }
    const chainRun = async (): Promise<void> => {
      const x = (await e.run({ input_ids: input() })).hidden
      const y = (await b.run({ hidden_in: x }, { transfer: true })).hidden_out
      await h.run({ hidden: y }, { transfer: true })
    }
    const chain3Run = async (): Promise<void> => {
      const x = (await shards[0].forward({ input_ids: input() })).hidden
      const y = (await shards[1].forward({ hidden_in: x }, { transfer: true })).hidden_out
      await kv.run({ hidden: y }, { transfer: true })
    }
    await monoRun(); await chainRun(); await chain3Run()
    // interleaved, so the shared machine's noise hits all three alike
    const t: number[][] = [[], [], []]
    for (let i = 0; i < reps; i++) {
      t[0].push(await best(1, monoRun))
      t[1].push(await best(1, chainRun))
      t[2].push(await best(1, chain3Run))
    }
    const [mono, chained1, chained3] = t.map(x => x.sort((a, b) => a - b)[reps >> 1])
    row(`forward ${name} batch ${batch}×${seq}: monolithic session (ms, median)`, (mono * 1000).toFixed(1))
    row('  3 shard sessions chained, one worker (ms) / overhead', `${(chained1 * 1000).toFixed(1)} / ${(100 * (chained1 / mono - 1)).toFixed(1)} %`)
    row('  3 shard executors chained, three workers (ms) / overhead', `${(chained3 * 1000).toFixed(1)} / ${(100 * (chained3 / mono - 1)).toFixed(1)} %`)
    results[`chain_${name}`] = { batch, seq, monolithicMs: mono * 1000, chainedOneWorkerMs: chained1 * 1000, chainedThreeWorkersMs: chained3 * 1000 }
  } finally {
    await rt.close()
    await Promise.all(shards.map(async s => { await s.close() }))
  }
}

async function pipelineStep (name: 'small' | 'bootstrap', peak: number, batch: number, seq: number): Promise<void> {
  const config = preset(name)
  const roles: ShardRole[] = [{ kind: 'embed' }, { kind: 'blocks', start: 0, end: config.nLayers }, { kind: 'head' }]
  const shards = await Promise.all(roles.map(async role => await createShardExecutor({
    config,
    role,
    allowSpinning: spin,
    graphs: { forward: buildShardGraph(config, role, 'forward').bytes, backward: buildShardGraph(config, role, 'backward').bytes },
    optimizer: { schedule: constantLr(1e-4) }
  })))
  const [embed, blocks, head] = shards
  try {
    const step = async (): Promise<void> => {
      const tokens = ids(batch * seq, config.vocabSize)
      const h = (await embed.forward({ input_ids: int64(tokens, [batch, seq]) })).hidden
      const y = (await blocks.forward({ hidden_in: h })).hidden_out
      const hb = await head.backward({ hidden: y, targets: int64(ids(batch * seq, config.vocabSize, 3), [batch, seq]), grad_loss: float32([1], []) }, { transfer: true })
      const bb = await blocks.backward({ hidden_in: h, grad_hidden_out: hb.grad_hidden }, { transfer: true })
      await embed.backward({ input_ids: int64(tokens, [batch, seq]), grad_hidden: bb.grad_hidden_in }, { transfer: true })
      // tied embeddings: the embed shard steps the summed embed.weight gradient, the head gets the result
      await embed.addGradients(await head.takeTiedGradients())
      const sq = await Promise.all(shards.map(async s => await s.gradNormSquared()))
      const gradNorm = Math.sqrt(sq.reduce((a, b) => a + b, 0))
      await Promise.all(shards.map(async s => await s.step({ gradNorm })))
      if (head.tiedParameters.length > 0) await head.setParameters(await embed.getParameters(), { partial: true })
    }
    await step()
    peak = await matmulPeak()
    const total = await median(name === 'bootstrap' ? 3 : 5, step)
    const tokens = batch * seq
    const gflops = 3 * forwardFlopsPerToken(config, seq) * tokens / total / 1e9
    row(`pipeline train step ${name}, 3 shard executors, batch ${batch}×${seq} (s)`, total.toFixed(3))
    row(`  tokens/s / model GFLOP/s (6N+attn) / fraction of MatMul peak (${peak.toFixed(0)}, just before)`, `${(tokens / total).toFixed(0)} / ${gflops.toFixed(1)} / ${(100 * gflops / peak).toFixed(1)} %`)
    results[`pipeline_${name}`] = { matmulGflopsBefore: peak, batch, seq, stepS: total, tokensPerS: tokens / total, gflops, fractionOfPeak: gflops / peak }
  } finally {
    await Promise.all(shards.map(async s => { await s.close() }))
  }
}

const peak = await matmulPeak()
row('onnxruntime fp32 MatMul 2048³ (GFLOP/s)', peak.toFixed(1))
results.matmulGflops = peak
const bw = copyBandwidth()
row('memory copy bandwidth, 256 MB Float32Array.set (GB/s)', bw.toFixed(2))
results.copyBandwidthGBs = bw
if (want('adamw')) await adamwComparison()
if (want('chain')) await chainOverhead('small', 1, 256)
if (want('small')) await trainStep('small', peak, 2, 256)
if (want('pipeline')) await pipelineStep('small', peak, 2, 256)
if (want('bootstrap')) await trainStep('bootstrap', peak, 2, 256)
if (want('decode')) {
  await decode('bootstrap', bw, true)
  await decode('bootstrap', bw, false)
}

mkdirSync(resultsDir, { recursive: true })
const file = join(resultsDir, `runtime-${Date.now()}.json`)
writeFileSync(file, JSON.stringify({ ...results, rows }, null, 2))
console.log(`\nwrote ${file}`)
