/**
 * Raw fp32 matrix-vector products in onnxruntime-node (issue 16: where does fp32 decode lose against llama.cpp?).
 * One graph of distinct [1, K] × [K, N] products, weights fed as inputs (`fed`: MLAS's M = 1 path over the
 * caller's [K, N] matrix) or baked as initializers (`bake`: onnxruntime prepacks them); the time of one run of the
 * whole graph, min and median over the runs, and the weight bytes read per run over that time.
 *
 * Run: `node_modules/.bin/tsc -b packages/model && node_modules/.bin/node packages/model/dist/bench/matvec.js <mode> <threads> <spin 0|1> <fed|bake> [runs]`
 *
 * Modes: `head` one [768, 32000] product (bootstrap's tied LM head); `chain` bootstrap's 12 blocks as their
 * 7 projections each (q, k, v, o, gate, up, down; joined by a Mul, k and v as outputs) + the head: 514 MB, the
 * fp32 weights of one decode step; `fused` the same with q/k/v as one [768, 1280] and gate/up as one
 * [768, 6144] product (4 per block); `sq:K:N:count[:T]` a chain of `count` products alternating [K, N] and [N, K]
 * (`T`: weights stored [N, K], a `Gemm` with transB). Every matrix has its own contents (identical initializers
 * could be shared by onnxruntime).
 */
import { loadavg } from 'node:os'
import ort from 'onnxruntime-node'
import { GraphBuilder } from '@neuroshard/onnx-graph'
import type { Value } from '@neuroshard/onnx-graph'

const [mode, threadsArg, spin, how, runsArg] = process.argv.slice(2)
const threads = Number(threadsArg)
const bake = how === 'bake'
const runs = Number(runsArg ?? 40)
if (mode === undefined || !(threads >= 1) || (spin !== '0' && spin !== '1') || (how !== 'fed' && how !== 'bake')) {
  console.error('usage: matvec.js <head|chain|fused|sq:K:N:count[:T]> <threads> <spin 0|1> <fed|bake> [runs]')
  process.exit(2)
}
let seed = 1
function fill (n: number): Float32Array {
  const a = new Float32Array(n)
  let s = (seed++ * 2654435761) >>> 0
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; a[i] = (s / 4294967296 - 0.5) * 0.04 }
  return a
}
const g = new GraphBuilder({ dtype: 'float32', name: 'matvec' })
const feeds: Record<string, ort.Tensor> = {}
let bytes = 0
function W (name: string, K: number, N: number): Value {
  bytes += K * N * 4
  const d = fill(K * N)
  if (bake) return g.constant(d, 'float32', [K, N], name)
  feeds[name] = new ort.Tensor('float32', d, [K, N])
  return g.input(name, 'float32', [K, N])
}
let x = g.input('x', 'float32', [1, 768])
if (mode === 'head') {
  g.output(g.matmul(x, W('h', 768, 32000)), 'y')
} else if (mode.startsWith('sq:')) {
  const [, K, N, count, T] = mode.split(':')
  let d = [Number(K), Number(N)]
  for (let i = 0; i < Number(count); i++) {
    x = T === 'T' ? g.gemm(x, W(`w${i}`, d[1], d[0]), null, { transB: true }) : g.matmul(x, W(`w${i}`, d[0], d[1]))
    d = [d[1], d[0]]
  }
  g.output(x, 'y')
} else if (mode === 'chain' || mode === 'fused') {
  for (let l = 0; l < 12; l++) {
    let q: Value, k: Value, v: Value, gate: Value, up: Value
    if (mode === 'fused') [q, k, v] = g.split(g.matmul(x, W(`qkv${l}`, 768, 1280)), [768, 256, 256], -1) as [Value, Value, Value]
    else [q, k, v] = [g.matmul(x, W(`q${l}`, 768, 768)), g.matmul(x, W(`k${l}`, 768, 256)), g.matmul(x, W(`v${l}`, 768, 256))]
    g.output(k, `kout${l}`)
    g.output(v, `vout${l}`)
    const o = g.matmul(q, W(`o${l}`, 768, 768))
    if (mode === 'fused') [gate, up] = g.split(g.matmul(o, W(`gu${l}`, 768, 6144)), [3072, 3072], -1) as [Value, Value]
    else [gate, up] = [g.matmul(o, W(`g${l}`, 768, 3072)), g.matmul(o, W(`u${l}`, 768, 3072))]
    x = g.matmul(g.mul(gate, up), W(`d${l}`, 3072, 768))
  }
  g.output(g.matmul(x, W('h', 768, 32000)), 'y')
} else {
  console.error(`unknown mode ${mode}`)
  process.exit(2)
}
const session = await ort.InferenceSession.create(g.toModelProto({ pruneInputs: true }), {
  graphOptimizationLevel: 'all', intraOpNumThreads: threads, extra: { session: { intra_op: { allow_spinning: spin } } }
})
const xin = new ort.Tensor('float32', fill(768), [1, 768])
for (let i = 0; i < 5; i++) await session.run({ x: xin, ...feeds })
const times: number[] = []
for (let i = 0; i < runs; i++) {
  const t = performance.now()
  await session.run({ x: xin, ...feeds })
  times.push(performance.now() - t)
}
times.sort((a, b) => a - b)
const [min, med] = [times[0], times[times.length >> 1]]
console.log(`${mode} thr=${threads} spin=${spin} ${bake ? 'baked' : 'fed'}: ${(bytes / 1e6).toFixed(0)} MB, min ${min.toFixed(2)} ms (${(bytes / min / 1e6).toFixed(1)} GB/s), median ${med.toFixed(2)} ms (${(bytes / med / 1e6).toFixed(1)} GB/s) load ${loadavg()[0].toFixed(2)}`)
await session.release()
