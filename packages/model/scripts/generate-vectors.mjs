// Generates specs/model/vectors/: the `tiny` model as three shard checkpoints (safetensors) and the
// logits it must produce for a fixed prompt, plus init and content-hash vectors.
// Run after building: node_modules/.bin/tsc -b packages/model && node_modules/.bin/node packages/model/scripts/generate-vectors.mjs
import { writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ort from 'onnxruntime-node'
import {
  preset, modelParameters, shardParameters, initParameter, parameterRng, encodeCheckpoint, parametersHash,
  buildModelGraph, buildShardGraph, contentHash
} from '../dist/src/index.js'

// NEUROSHARD_SPECS_DIR: another specs/ tree (specs/regenerate.py writes into a temporary copy and compares)
const out = join(process.env.NEUROSHARD_SPECS_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs'), 'model', 'vectors')
mkdirSync(out, { recursive: true })
const config = preset('tiny')
const SEED = 2026

// Weights: the seeded init, with matrices scaled ×10 and norm weights 1 + 0.1·N(0,1) (from the same
// per-name generator), so every parameter visibly moves the logits.
const params = new Map()
for (const spec of modelParameters(config)) {
  let v
  if (spec.name.endsWith('norm.weight')) {
    const rng = parameterRng(SEED, spec.name)
    v = new Float32Array(spec.shape[0])
    for (let i = 0; i < v.length; i++) {
      const u1 = rng.nextOpenUnit(); const u2 = rng.nextOpenUnit()
      v[i] = 1 + 0.1 * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)
    }
  } else {
    v = initParameter(config, spec, SEED).map(x => x * 10)
  }
  params.set(spec.name, v)
}

const roles = [
  { file: 'tiny.embed.safetensors', role: { kind: 'embed' } },
  { file: 'tiny.blocks-0-2.safetensors', role: { kind: 'blocks', start: 0, end: 2 } },
  { file: 'tiny.head.safetensors', role: { kind: 'head' } }
]
const checkpoints = []
for (const { file, role } of roles) {
  const p = new Map(shardParameters(config, role).map(s => [s.name, params.get(s.name)]))
  writeFileSync(join(out, file), encodeCheckpoint({ config, role, parameters: p, step: 0, metadata: { note: 'test vector, not a trained model' } }))
  checkpoints.push({ file, role, contentHash: parametersHash(config, role, p) })
}

// prompt: the UTF-8 bytes of "NeuroShard!" (tiny's vocabulary is the 256 byte values)
const prompt = [...Buffer.from('NeuroShard!')]
const session = await ort.InferenceSession.create(buildModelGraph(config, 'inference').bytes)
const feeds = { input_ids: new ort.Tensor('int64', BigInt64Array.from(prompt.map(BigInt)), [1, prompt.length]) }
for (const spec of modelParameters(config)) feeds[spec.name] = new ort.Tensor('float32', params.get(spec.name), spec.shape)
const { logits } = await session.run(feeds)

// loss of the prompt predicting itself shifted by one (targets = next byte, last target = first byte)
const lossSession = await ort.InferenceSession.create(buildModelGraph(config, 'forward').bytes)
const targets = prompt.slice(1).concat(prompt[0])
const { loss } = await lossSession.run({ ...feeds, targets: new ort.Tensor('int64', BigInt64Array.from(targets.map(BigInt)), [1, prompt.length]) })

// init vectors: the first 8 values of a few parameters under seed 0
const init = ['embed.weight', 'blocks.0.attn.wq', 'blocks.1.mlp.w_down'].map(name => {
  const spec = modelParameters(config).find(s => s.name === name)
  return { seed: 0, name, shape: spec.shape, first: Array.from(initParameter(config, spec, 0).subarray(0, 8)) }
})

const hashVectors = [
  { tensors: [], contentHash: contentHash([]) },
  { tensors: [{ name: 'w', dtype: 'F32', shape: [2], dataHex: Buffer.from(new Float32Array([1, -2]).buffer).toString('hex') }], contentHash: contentHash([{ name: 'w', dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([1, -2]).buffer) }]) }
]

// four decimals more than the 1e-4 replay tolerance needs
const round = (x) => Number(x.toPrecision(9))
writeFileSync(join(out, 'tiny-logits.json'), JSON.stringify({
  description: 'tiny NeuroLLM: three shard checkpoints and the logits of the full model for a fixed prompt (fp32, tolerance 1e-4)',
  config,
  weightSeed: SEED,
  checkpoints,
  prompt,
  promptText: 'NeuroShard!',
  logitsShape: logits.dims,
  logits: Array.from(logits.data, round),
  targets,
  loss: round(loss.data[0]),
  init,
  contentHashes: hashVectors
}, null, 1) + '\n')
console.log(`wrote ${roles.length} checkpoints and tiny-logits.json to ${out}`)
