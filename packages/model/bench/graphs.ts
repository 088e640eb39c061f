/**
 * Shard-graph benchmark: forward vs backward (activation recomputation) of a block range, head loss, and
 * KV-cache inference (prefill and one-token decode) with decomposed vs fused opset-23 ops.
 *
 * Build and run (from the repo root):
 *   node_modules/.bin/tsc -b packages/model && node_modules/.bin/node packages/model/dist/bench/graphs.js
 * (or `npx -y pnpm@10 --filter @neuroshard/model bench`)
 * Writes packages/model/bench-results/graphs.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as ort from 'onnxruntime-node'
import { buildShardGraph, headDim, shardParameters, SHARD_IO } from '../src/index.js'
import type { ModelConfig, ShardRole } from '../src/index.js'

const CONFIG: ModelConfig = {
  vocabSize: 8192,
  dModel: 384,
  nLayers: 2,
  nHeads: 6,
  nKvHeads: 2,
  ffnHidden: 1024,
  maxSeqLen: 512,
  ropeTheta: 10000,
  normEps: 1e-5,
  tieEmbeddings: false
}
const BATCH = 4
const SEQ = 128

function rand (n: number, scale = 0.02): Float32Array {
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * scale
  return a
}

function params (role: ShardRole): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {}
  for (const p of shardParameters(CONFIG, role)) {
    const n = p.shape.reduce((a, b) => a * b, 1)
    out[p.name] = new ort.Tensor('float32', p.name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : rand(n), p.shape)
  }
  return out
}

/**
 * Minimum over `iters` runs after 2 warm-ups: on a machine shared with other work the minimum is the
 * steadiest estimate of the graph's own cost.
 */
async function time (s: ort.InferenceSession, feeds: Record<string, ort.Tensor>, iters: number): Promise<number> {
  const t = await samples(s, feeds, iters)
  return t[0]
}

async function samples (s: ort.InferenceSession, feeds: Record<string, ort.Tensor>, iters: number): Promise<number[]> {
  for (let i = 0; i < 2; i++) await s.run(feeds)
  const t: number[] = []
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now()
    await s.run(feeds)
    t.push(performance.now() - t0)
  }
  return t.sort((a, b) => a - b)
}

interface Row { graph: string, variant: string, shape: string, ms: number, gflops?: number, bytes: number, buildMs: number }

async function main (): Promise<void> {
  const rows: Row[] = []
  const d = CONFIG.dModel
  const hd = headDim(CONFIG)
  const blocks: ShardRole = { kind: 'blocks', start: 0, end: 2 }
  const hidden = new ort.Tensor('float32', rand(BATCH * SEQ * d, 1), [BATCH, SEQ, d])
  // forward FLOPs of one block (matmuls only): projections + attention scores and values
  const kvDim = CONFIG.nKvHeads * hd
  const blockFlops = (s: number, t: number): number => 2 * BATCH * s * (d * d * 2 + d * kvDim * 2 + 3 * d * CONFIG.ffnHidden) + 2 * 2 * BATCH * CONFIG.nHeads * s * t * hd

  const build = (role: ShardRole, variant: 'forward' | 'backward' | 'inference', fused = false): { bytes: Uint8Array, ms: number } => {
    const t0 = performance.now()
    const g = buildShardGraph(CONFIG, role, variant, { fused })
    return { bytes: g.bytes, ms: performance.now() - t0 }
  }

  // block range: forward vs backward
  for (const variant of ['forward', 'backward'] as const) {
    const { bytes, ms } = build(blocks, variant)
    const s = await ort.InferenceSession.create(bytes)
    const feeds: Record<string, ort.Tensor> = { [SHARD_IO.hiddenIn]: hidden, ...params(blocks) }
    if (variant === 'backward') feeds[SHARD_IO.gradHiddenOut] = hidden
    const t = await time(s, feeds, 7)
    const flops = 2 * blockFlops(SEQ, SEQ) * (variant === 'forward' ? 1 : 4) // backward = recompute (1) + 2 grads per matmul (2x) ≈ 3-4x
    rows.push({ graph: 'blocks [0,2)', variant, shape: `${BATCH}x${SEQ}x${d}`, ms: t, gflops: flops / t / 1e6, bytes: bytes.length, buildMs: ms })
    await s.release()
  }

  // one training step of the block range: recompute vs saved activations, alternated
  {
    const p = params(blocks)
    const f = await ort.InferenceSession.create(build(blocks, 'forward').bytes)
    const b = await ort.InferenceSession.create(build(blocks, 'backward').bytes)
    const sf = await ort.InferenceSession.create(buildShardGraph(CONFIG, blocks, 'forward', { savedActivations: true }).bytes)
    const sbg = buildShardGraph(CONFIG, blocks, 'backward', { savedActivations: true })
    const sb = await ort.InferenceSession.create(sbg.bytes)
    const feeds: Record<string, ort.Tensor> = { [SHARD_IO.hiddenIn]: hidden, ...p }
    const bfeeds: Record<string, ort.Tensor> = { ...feeds, [SHARD_IO.gradHiddenOut]: hidden }
    let acts = await sf.run(feeds)
    const actBytes = sbg.inputs.filter(i => i.name.startsWith('act.')).reduce((n, i) => n + (acts[i.name] as ort.Tensor).data.length * 4, 0)
    const sfeeds = (): Record<string, ort.Tensor> => {
      const x: Record<string, ort.Tensor> = { ...bfeeds }
      for (const i of sbg.inputs) if (i.name.startsWith('act.')) x[i.name] = acts[i.name] as ort.Tensor
      return x
    }
    const m = { f: Infinity, b: Infinity, sf: Infinity, sb: Infinity }
    for (let round = 0; round < 4; round++) {
      m.f = Math.min(m.f, await time(f, feeds, 2))
      m.b = Math.min(m.b, await time(b, bfeeds, 2))
      const t0 = performance.now()
      acts = await sf.run(feeds)
      m.sf = Math.min(m.sf, performance.now() - t0)
      m.sb = Math.min(m.sb, await time(sb, sfeeds(), 2))
    }
    rows.push({ graph: 'blocks [0,2) step', variant: `recompute: fwd ${m.f.toFixed(1)} + bwd ${m.b.toFixed(1)}`, shape: `${BATCH}x${SEQ}x${d}`, ms: m.f + m.b, bytes: 0, buildMs: 0 })
    rows.push({ graph: 'blocks [0,2) step', variant: `saved (${(actBytes / 1e6).toFixed(1)} MB): fwd ${m.sf.toFixed(1)} + bwd ${m.sb.toFixed(1)}`, shape: `${BATCH}x${SEQ}x${d}`, ms: m.sf + m.sb, bytes: sbg.bytes.length, buildMs: 0 })
    for (const s of [f, b, sf, sb]) await s.release()
  }

  // head + loss
  const head: ShardRole = { kind: 'head' }
  const targets = new ort.Tensor('int64', BigInt64Array.from({ length: BATCH * SEQ }, () => BigInt(Math.floor(Math.random() * CONFIG.vocabSize))), [BATCH, SEQ])
  for (const variant of ['forward', 'backward'] as const) {
    const { bytes, ms } = build(head, variant)
    const s = await ort.InferenceSession.create(bytes)
    const feeds: Record<string, ort.Tensor> = { [SHARD_IO.hidden]: hidden, [SHARD_IO.targets]: targets, ...params(head) }
    if (variant === 'backward') feeds[SHARD_IO.gradLoss] = new ort.Tensor('float32', Float32Array.of(1), [])
    const t = await time(s, feeds, 7)
    rows.push({ graph: 'head + loss', variant, shape: `${BATCH}x${SEQ}x${CONFIG.vocabSize}`, ms: t, bytes: bytes.length, buildMs: ms })
    await s.release()
  }

  // KV-cache inference: prefill SEQ tokens, decode 1 token after SEQ - 1 cached; decomposed and fused
  // sessions are timed in alternation so background load hits both alike
  const cache = (past: number): Record<string, ort.Tensor> => {
    const c: Record<string, ort.Tensor> = {}
    for (let k = 0; k < 2; k++) {
      c[SHARD_IO.pastKey(k)] = new ort.Tensor('float32', rand(BATCH * CONFIG.nKvHeads * past * hd, 1), [BATCH, CONFIG.nKvHeads, past, hd])
      c[SHARD_IO.pastValue(k)] = new ort.Tensor('float32', rand(BATCH * CONFIG.nKvHeads * past * hd, 1), [BATCH, CONFIG.nKvHeads, past, hd])
    }
    return c
  }
  const p = params(blocks)
  const one = new ort.Tensor('float32', rand(BATCH * d, 1), [BATCH, 1, d])
  const prefillFeeds = { [SHARD_IO.hiddenIn]: hidden, [SHARD_IO.positionOffset]: new ort.Tensor('int64', BigInt64Array.of(0n), []), ...cache(0), ...p }
  const decodeFeeds = { [SHARD_IO.hiddenIn]: one, [SHARD_IO.positionOffset]: new ort.Tensor('int64', BigInt64Array.of(BigInt(SEQ - 1)), []), ...cache(SEQ - 1), ...p }
  const variants = [false, true].map(fused => ({ fused, ...build(blocks, 'inference', fused) }))
  const sessions = await Promise.all(variants.map(async v => ort.InferenceSession.create(v.bytes)))
  const best = new Map<string, number>()
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 2; i++) {
      const name = variants[i].fused ? 'fused' : 'decomposed'
      const pre = await samples(sessions[i], prefillFeeds, 3)
      const dec = await samples(sessions[i], decodeFeeds, 10)
      best.set(`prefill ${name}`, Math.min(best.get(`prefill ${name}`) ?? Infinity, pre[0]))
      best.set(`decode ${name}`, Math.min(best.get(`decode ${name}`) ?? Infinity, dec[0]))
    }
  }
  for (let i = 0; i < 2; i++) {
    const name = variants[i].fused ? 'fused' : 'decomposed'
    const pre = best.get(`prefill ${name}`) as number
    rows.push({ graph: 'blocks [0,2) inference', variant: `prefill ${name}`, shape: `${BATCH}x${SEQ}`, ms: pre, gflops: 2 * blockFlops(SEQ, SEQ) / pre / 1e6, bytes: variants[i].bytes.length, buildMs: variants[i].ms })
    rows.push({ graph: 'blocks [0,2) inference', variant: `decode ${name}`, shape: `${BATCH}x1, past ${SEQ - 1}`, ms: best.get(`decode ${name}`) as number, bytes: variants[i].bytes.length, buildMs: variants[i].ms })
    await sessions[i].release()
  }

  console.log(`config d=${d} heads=${CONFIG.nHeads}/${CONFIG.nKvHeads} ffn=${CONFIG.ffnHidden} vocab=${CONFIG.vocabSize}, batch ${BATCH}, seq ${SEQ}, float32, onnxruntime-node CPU`)
  console.log('| graph | variant | shape | min ms | matmul GFLOP/s | model bytes | build ms |')
  console.log('|---|---|---|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.graph} | ${r.variant} | ${r.shape} | ${r.ms.toFixed(2)} | ${r.gflops?.toFixed(0) ?? ''} | ${r.bytes} | ${r.buildMs.toFixed(1)} |`)
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench-results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'graphs.json'), JSON.stringify({ config: CONFIG, batch: BATCH, seq: SEQ, rows }, null, 2))
}

await main()
