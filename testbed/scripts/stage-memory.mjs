// Native memory of a node's stage work in one process, without the network (issue #15): a whole-model training stage
// of the soak's model (TINY, vocab 320) stepped as a node steps it (batch 4, seq 32, localTrainStep); every round
// (5 steps) its weights are set again (or, with REBUILD_EVERY=n, the stage is rebuilt every n rounds, as
// NetworkNode.applyRound rebuilds a stage that missed rounds: new executors, worker threads, onnxruntime sessions) and
// a validation loss runs on a second stage; a greedy 8-token KV-cache generation every GEN_EVERY steps. Every 150
// steps: RSS, the main thread's V8 heap, and /proc/self/smaps' resident anonymous memory split into glibc's
// per-thread malloc arenas (64 MiB-aligned mappings), other mappings under 1 MiB (V8 pages) and larger ones.
//
//   ../node_modules/.bin/node scripts/stage-memory.mjs                      (after a build of packages/node)
//   REBUILD_EVERY=1 STEPS=1500 ../node_modules/.bin/node scripts/stage-memory.mjs
//   MALLOC_ARENA_MAX=2 REBUILD_EVERY=1 STEPS=1500 ../node_modules/.bin/node scripts/stage-memory.mjs
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
const P = fileURLToPath(new URL('../../packages', import.meta.url))
const { TINY, initShardParameters } = await import(`${P}/model/dist/src/index.js`)
const { createPipelineStage, spanRoles } = await import(`${P}/pipeline/dist/src/index.js`)
const { localTrainStep, modelLoss } = await import(`${P}/node/dist/src/index.js`)
const config = { ...TINY, vocabSize: 320 }
const slots = config.nLayers + 2
const params = new Map()
for (const role of spanRoles(config, 0, slots)) for (const [k, v] of initShardParameters(config, role, 1)) params.set(k, v)
const steps = Number(process.env.STEPS ?? 3000), H = 5, G = Number(process.env.GEN_EVERY ?? 15)
const rebuildEvery = Number(process.env.REBUILD_EVERY ?? 0)
let stage = await createPipelineStage({ config, start: 0, end: slots, parameters: params, step: 0, training: true, intraOpNumThreads: 1 })
const evalStage = await createPipelineStage({ config, start: 0, end: slots, parameters: params, intraOpNumThreads: 1 })
const b = 4, s = 32
const batch = () => { const ids = new BigInt64Array(b * s), t = new BigInt64Array(b * s); for (let i = 0; i < ids.length; i++) { ids[i] = BigInt((i * 7 + 3) % 320); t[i] = BigInt((i * 7 + 10) % 320) } return { inputIds: ids, targets: t, batch: b, seq: s } }
const smaps = () => {
  let anonSmall = 0, anonBig = 0, arena = 0
  const txt = readFileSync('/proc/self/smaps', 'utf8').split('\n')
  let cur
  for (const l of txt) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(l)
    if (m) { const st = BigInt('0x' + m[1]), size = Number(BigInt('0x' + m[2]) - st) / 1024; cur = m[3] === '' ? (st % (64n << 20n) === 0n && size <= 65536 ? 'arena' : size < 1024 ? 'small' : 'big') : undefined; continue }
    const r = /^Rss:\s+(\d+)/.exec(l)
    if (r && cur) { if (cur === 'arena') arena += +r[1]; else if (cur === 'small') anonSmall += +r[1]; else anonBig += +r[1] }
  }
  return `arenas ${(arena / 1024).toFixed(1)} anon<1M ${(anonSmall / 1024).toFixed(1)} anon>=1M ${(anonBig / 1024).toFixed(1)}`
}
const t0 = Date.now()
for (let i = 1; i <= steps; i++) {
  await localTrainStep(stage, batch())
  if (i % H === 0) {
    const w = new Map(); for (const e of stage.executors) for (const [k, v] of await e.getParameters()) w.set(k, v)
    if (rebuildEvery > 0 && (i / H) % rebuildEvery === 0) { const old = stage; stage = await createPipelineStage({ config, start: 0, end: slots, parameters: w, step: i, training: true, intraOpNumThreads: 1 }); await old.close() }
    else for (const e of stage.executors) { const own = new Map(); for (const k of (await e.getParameters()).keys()) own.set(k, w.get(k)); await e.setParameters(own, { partial: true }) }
    await modelLoss(w, [batch()], async () => evalStage)
  }
  if (G > 0 && i % G === 0) {
    // a greedy generation of 8 tokens over a prompt of 20 through the KV caches (embed → blocks → head)
    const kv = await stage.blocks.openInference()
    let ids = Array.from({ length: 20 }, (_, j) => (j * 11 + i) % 320)
    for (let tkn = 0; tkn < 8; tkn++) {
      const h = (await stage.embed.forward({ input_ids: { type: 'int64', dims: [1, ids.length], data: BigInt64Array.from(ids.map(BigInt)) } })).hidden
      const o = await kv.run({ hidden_in: h })
      const hid = o.hidden_out
      const last = { type: 'float32', dims: [1, 1, config.dModel], data: hid.data.slice((hid.dims[1] - 1) * config.dModel) }
      const lg = (await stage.head.infer({ hidden: last })).logits
      let best = 0; for (let k = 1; k < config.vocabSize; k++) if (lg.data[k] > lg.data[best]) best = k
      ids = [best]
    }
    await kv.close()
  }
  if (i % 150 === 0) {
    const m = process.memoryUsage()
    console.log(`step ${i} t=${((Date.now() - t0) / 1000).toFixed(0)}s rss ${(m.rss / 2 ** 20).toFixed(1)} heapUsed ${(m.heapUsed / 2 ** 20).toFixed(1)} heapTotal ${(m.heapTotal / 2 ** 20).toFixed(1)} ext ${(m.external / 2 ** 20).toFixed(1)} | ${smaps()}`)
  }
}
await stage.close(); await evalStage.close()
