// RSS of one process holding a baked fp32 `bootstrap` InferenceEngine (issue 16): after creation and after a
// 32-token prefill + 8 decoded tokens, the main thread's heap collected, the script's own float32 weights dropped.
// Run: node packages/gguf/bench/baked-memory.mjs worker|in-thread   (after tsc -b packages/gguf; needs the weights
// file decode.js writes, $TMPDIR/neuroshard-gguf-bench/bootstrap.f32)
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { modelParameters, preset } from '@neuroshard/model'
import { createInferenceEngine, int64 } from '@neuroshard/runtime'

const mode = process.argv[2] ?? 'worker'
const config = preset('bootstrap')
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
// (V8 frees collected ArrayBuffers' memory on a background thread: collect, wait, collect again)
const mb = async () => { gc(); await new Promise(resolve => setTimeout(resolve, 500)); gc(); const m = process.memoryUsage(); return `rss ${(m.rss / 1e6).toFixed(0)} MB, arrayBuffers ${(m.arrayBuffers / 1e6).toFixed(0)} MB` }
function readWeights () {
  const out = new Map()
  const all = readFileSync(join(tmpdir(), 'neuroshard-gguf-bench', 'bootstrap.f32'))
  let o = 0
  for (const spec of modelParameters(config)) {
    const n = spec.shape.reduce((a, b) => a * b, 1)
    out.set(spec.name, new Float32Array(all.buffer.slice(all.byteOffset + o, all.byteOffset + o + 4 * n)))
    o += 4 * n
  }
  return out
}
let weights = readWeights()
console.log(`${mode}: weights read: ${await mb()}`)
const e = await createInferenceEngine({ config, parameters: weights, bakeWeights: true, intraOpNumThreads: 2, inThread: mode === 'in-thread' })
weights = undefined
console.log(`${mode}: baked engine created, weights dropped: ${await mb()}`)
const kv = await e.openInference()
let logits = (await kv.run({ input_ids: int64(Array.from({ length: 32 }, (_, i) => i + 1), [1, 32]) })).logits.data
for (let i = 0; i < 8; i++) logits = (await kv.run({ input_ids: int64([i + 5], [1, 1]) })).logits.data
console.log(`${mode}: after 32 + 8 tokens: ${await mb()}`)
await e.close()
