/**
 * Where the time of one `bootstrap` decode step goes: the whole model as one inference graph (weights fed as
 * inputs, as the InferenceEngine's fp32 default), onnxruntime's profiler on, kernel time per op type.
 *
 * Run: `node_modules/.bin/tsc -b packages/runtime && node_modules/.bin/node packages/runtime/dist/bench/profile-decode.js`
 */
import { readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { TIED_HEAD_WEIGHT, buildInferenceGraph, modelParameters, preset, transposeEmbedding } from '@neuroshard/model'

const config = preset('bootstrap')
const specs = modelParameters(config)
const dir = mkdtempSync(join(tmpdir(), 'ns-prof-'))
const graph = buildInferenceGraph(config, { kind: 'model' }, { bakeWeights: false })
const takes = new Set(graph.inputs.map(i => i.name))
const session = await ort.InferenceSession.create(graph.bytes, {
  graphOptimizationLevel: 'all', enableProfiling: true, profileFilePrefix: join(dir, 'prof'), extra: { session: { intra_op: { allow_spinning: '0' } } }
})
const weights: Record<string, ort.Tensor> = {}
for (const s of specs) {
  const n = s.shape.reduce((a, b) => a * b, 1)
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = ((i * 2654435761) % 1000 - 500) * 4e-5
  if (takes.has(s.name)) weights[s.name] = new ort.Tensor('float32', a, s.shape)
  // the tied head reads the table transposed
  if (s.name === 'embed.weight' && takes.has(TIED_HEAD_WEIGHT)) weights[TIED_HEAD_WEIGHT] = new ort.Tensor('float32', transposeEmbedding(config, a), [config.dModel, config.vocabSize])
}
const hd = config.dModel / config.nHeads
let past: Record<string, ort.Tensor> = {}
for (let k = 0; k < config.nLayers; k++) {
  past[`past_key.${k}`] = new ort.Tensor('float32', new Float32Array(0), [1, config.nKvHeads, 0, hd])
  past[`past_value.${k}`] = new ort.Tensor('float32', new Float32Array(0), [1, config.nKvHeads, 0, hd])
}
let pos = 0
const step = async (ids: BigInt64Array): Promise<void> => {
  const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [1, ids.length]), position_offset: new ort.Tensor('int64', BigInt64Array.of(BigInt(pos)), []), ...past, ...weights })
  past = {}
  for (const [k, v] of Object.entries(out)) if (k.startsWith('present_')) past['past_' + k.slice(8)] = v as ort.Tensor
  pos += ids.length
}
const load = loadavg()[0]
await step(BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i)))
const t = performance.now()
for (let i = 0; i < 32; i++) await step(BigInt64Array.of(BigInt(i)))
const tokS = 32 / ((performance.now() - t) / 1000)
session.endProfiling()
const file = join(dir, readdirSync(dir).filter(f => f.startsWith('prof')).sort().pop() as string)
const events = JSON.parse(readFileSync(file, 'utf8')) as Array<{ cat: string, name: string, dur: number, args?: { op_name?: string } }>
const byOp = new Map<string, number>()
let kernel = 0
for (const e of events) {
  if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
    const op = e.args?.op_name ?? '?'
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur)
    kernel += e.dur
  }
}
const runs = events.filter(e => e.name === 'model_run').reduce((a, e) => a + e.dur, 0)
console.log(`bootstrap, one graph, prefill 32 + 32 decode steps: ${tokS.toFixed(1)} tok/s during profiling (load ${load.toFixed(2)}); kernel time ${(100 * kernel / runs).toFixed(1)} % of model_run time`)
console.log('| op | share of kernel time |')
console.log('|---|---|')
for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 10)) console.log(`| ${op} | ${(100 * us / kernel).toFixed(1)} % |`)
rmSync(dir, { recursive: true, force: true })
