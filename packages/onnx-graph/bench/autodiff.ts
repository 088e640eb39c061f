/**
 * onnx-graph benchmark: how long building, differentiating and serializing a graph takes, and what the
 * recomputing backward graph costs in onnxruntime relative to its forward, against saved activations.
 * Times are minima over alternated runs.
 *
 * Graph: an L-layer residual MLP, x ← x + silu(x W1) W2, width D, hidden 4D, loss = mean(x²), float32.
 * Run: pnpm --filter @neuroshard/onnx-graph bench  (writes packages/onnx-graph/bench-results/autodiff.json)
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as ort from 'onnxruntime-node'
import { GraphBuilder, gradients } from '../src/index.js'
import type { Value } from '../src/index.js'

const D = 512
const TOKENS = 512

function build (layers: number): { g: GraphBuilder, loss: Value, weights: Value[] } {
  const g = new GraphBuilder({ dtype: 'float32' })
  let x = g.input('x', 'float32', ['tokens', D])
  const weights: Value[] = []
  for (let l = 0; l < layers; l++) {
    const w1 = g.input(`l${l}.w1`, 'float32', [D, 4 * D])
    const w2 = g.input(`l${l}.w2`, 'float32', [4 * D, D])
    weights.push(w1, w2)
    x = g.add(x, g.matmul(g.silu(g.matmul(x, w1)), w2))
  }
  const loss = g.reduceMean(g.mul(x, x), [0, 1], false)
  g.output(loss, 'loss')
  return { g, loss, weights }
}

/** Minimum of n timed runs after a warm-up (the steadiest estimate on a shared machine) */
async function best (f: () => Promise<unknown>, n: number): Promise<number> {
  await f()
  let m = Infinity
  for (let i = 0; i < n; i++) { const t0 = performance.now(); await f(); m = Math.min(m, performance.now() - t0) }
  return m
}

const rows: Array<Record<string, number>> = []
for (const layers of [2, 8, 32]) {
  let t0 = performance.now()
  const { g, loss, weights } = build(layers)
  const buildMs = performance.now() - t0
  t0 = performance.now()
  const b = gradients(g, { of: loss, wrt: weights, alsoOutput: [{ value: loss, name: 'loss' }] })
  const gradMs = performance.now() - t0
  t0 = performance.now()
  const fwdBytes = g.toModelProto()
  const bwdBytes = b.toModelProto()
  const serializeMs = performance.now() - t0
  const row: Record<string, number> = { layers, buildMs, gradMs, serializeMs, fwdNodes: g.nodes.length, bwdNodes: b.nodes.length, bwdBytes: bwdBytes.length }
  if (layers <= 8) {
    const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', Float32Array.from({ length: TOKENS * D }, () => Math.random() - 0.5), [TOKENS, D]) }
    for (const w of weights) feeds[w.name] = new ort.Tensor('float32', Float32Array.from({ length: D * 4 * D }, () => (Math.random() - 0.5) * 0.05), w.shape as number[])
    const fs = await ort.InferenceSession.create(fwdBytes)
    const bs = await ort.InferenceSession.create(bwdBytes)
    // the alternative: the forward also outputs every activation and the backward reads them
    const s = build(layers)
    const acts = s.g.nodes.flatMap(n => n.outputs).filter(v => v.dtype === 'float32' && v !== s.loss).map((value, i) => ({ value, name: `act.${i}` }))
    for (const a of acts) s.g.output(a.value, a.name)
    const sb = gradients(s.g, { of: s.loss, wrt: s.weights, saved: acts })
    const sfs = await ort.InferenceSession.create(s.g.toModelProto())
    const sbs = await ort.InferenceSession.create(sb.toModelProto({ pruneInputs: true }))
    let saved: ort.InferenceSession.OnnxValueMapType = await sfs.run(feeds)
    const bfeeds: Record<string, ort.Tensor> = { ...feeds }
    for (const name of sbs.inputNames) if (bfeeds[name] == null) bfeeds[name] = saved[name] as ort.Tensor
    row.savedActivationsMB = acts.reduce((n, a) => n + (saved[a.name] as ort.Tensor).data.length * 4, 0) / 1e6
    // alternate the four graphs so background load hits them alike
    row.forwardMs = row.backwardMs = row.savedForwardMs = row.savedBackwardMs = Infinity
    for (let round = 0; round < 3; round++) {
      row.forwardMs = Math.min(row.forwardMs, await best(async () => fs.run(feeds), 2))
      row.backwardMs = Math.min(row.backwardMs, await best(async () => bs.run(feeds), 2))
      row.savedForwardMs = Math.min(row.savedForwardMs, await best(async () => { saved = await sfs.run(feeds) }, 2))
      row.savedBackwardMs = Math.min(row.savedBackwardMs, await best(async () => sbs.run(bfeeds), 2))
    }
    row.ratio = row.backwardMs / row.forwardMs
    await fs.release()
    await bs.release()
    await sfs.release()
    await sbs.release()
  }
  rows.push(row)
}

console.log(`residual MLP, width ${D}, hidden ${4 * D}, ${TOKENS} tokens, float32, onnxruntime-node CPU`)
console.log('| layers | build ms | gradients ms | serialize ms | fwd nodes | bwd nodes | bwd bytes | forward ms | backward ms | bwd/fwd |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const r of rows) {
  console.log(`| ${r.layers} | ${r.buildMs.toFixed(2)} | ${r.gradMs.toFixed(2)} | ${r.serializeMs.toFixed(2)} | ${r.fwdNodes} | ${r.bwdNodes} | ${r.bwdBytes} | ${r.forwardMs?.toFixed(1) ?? ''} | ${r.backwardMs?.toFixed(1) ?? ''} | ${r.ratio?.toFixed(2) ?? ''} |`)
}
console.log('\nrecompute vs saved activations (one training step = forward + backward)')
console.log('| layers | recompute: fwd + bwd ms | saved: fwd (+ activation outputs) + bwd ms | activations MB |')
console.log('|---|---|---|---|')
for (const r of rows) {
  if (r.forwardMs == null) continue
  console.log(`| ${r.layers} | ${r.forwardMs.toFixed(1)} + ${r.backwardMs.toFixed(1)} = ${(r.forwardMs + r.backwardMs).toFixed(1)} | ${r.savedForwardMs.toFixed(1)} + ${r.savedBackwardMs.toFixed(1)} = ${(r.savedForwardMs + r.savedBackwardMs).toFixed(1)} | ${r.savedActivationsMB.toFixed(1)} |`)
}
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench-results')
mkdirSync(dir, { recursive: true })
writeFileSync(join(dir, 'autodiff.json'), JSON.stringify(rows, null, 2))
