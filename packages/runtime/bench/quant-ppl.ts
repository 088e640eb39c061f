/**
 * Perplexity cost of int4 block sizes on a trained model (issue 16: 4-bit at ≤ 5 % perplexity cost). Trains a
 * preset with the 512-token BPE vocabulary on the small genesis dataset the quantization tests use
 * (`test/fixtures/trained-tiny.ts`: the real genesis build and loader over nlp-corpus), then measures next-token
 * perplexity on its validation split with the fp32 engine and the int8 / int4 engines (int4 with 32-, 64- and
 * 128-value blocks), the same way `test/quantized.spec.ts` does.
 *
 *   node_modules/.bin/tsc -b packages/runtime && node_modules/.bin/node packages/runtime/dist/bench/quant-ppl.js [preset] [steps] [peakLr] [windows]
 */
import { cpus } from 'node:os'
import { createInferenceEngine, int64 } from '../src/index.js'
import type { InferenceEngine, InferenceEngineInit } from '../src/index.js'
import type { PresetName } from '@neuroshard/model'
import { trainedTiny, validationWindows, windowPerplexity } from '../test/fixtures/trained-tiny.js'

const presetName = (process.argv[2] ?? 'bootstrap') as PresetName
const steps = Number(process.argv[3] ?? 150)
const peakLr = Number(process.argv[4] ?? 1e-3)
const nWindows = Number(process.argv[5] ?? 48)
const SEQ = 64

const started = Date.now()
console.log(`${presetName}: training ${steps} steps (batch 8 × 64 tokens, peak lr ${peakLr}); ${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}, loadavg ${(await import('node:os')).loadavg().map(l => l.toFixed(2)).join(' ')}`)
const model = await trainedTiny(steps, 3000, {
  preset: presetName,
  peakLr,
  onStep: (step, loss) => { if (step % 10 === 0 || step === steps - 1) console.log(`step ${step}: loss ${loss.toFixed(3)} (${((Date.now() - started) / 1000).toFixed(0)} s)`) }
})
const windows = validationWindows(model.validation, SEQ, nWindows)
console.log(`trained in ${((Date.now() - started) / 1000).toFixed(0)} s; final training loss (mean of the last 10 steps) ${model.finalLoss.toFixed(3)}; validation split ${model.validation.length} tokens, ${windows.length} windows of ${SEQ} predictions`)

async function engineLogits (engine: InferenceEngine, ids: BigInt64Array): Promise<Float32Array> {
  const kv = await engine.openInference()
  try {
    return (await kv.run({ input_ids: int64(ids, [1, ids.length]) })).logits.data as Float32Array
  } finally {
    await kv.close()
  }
}

async function measure (init: Partial<InferenceEngineInit>): Promise<number> {
  const e = await createInferenceEngine({ config: model.config, parameters: model.parameters, ...init })
  try {
    return await windowPerplexity(model.config.vocabSize, windows, async ids => await engineLogits(e, ids))
  } finally {
    await e.close()
  }
}

const ref = await measure({})
const rows: Array<[string, number]> = [['fp32', ref]]
rows.push(['int8, 32-value blocks', await measure({ quantization: 'int8' })])
for (const blockSize of [32, 64, 128]) rows.push([`int4, ${blockSize}-value blocks`, await measure({ quantization: 'int4', blockSize })])
console.log(`\n${presetName} (vocab ${model.config.vocabSize}, ${model.config.nLayers} × ${model.config.dModel}, FFN ${model.config.ffnHidden}), ${steps} training steps, final loss ${model.finalLoss.toFixed(3)}; validation perplexity over ${windows.length * SEQ} predictions\n`)
console.log('| weights | perplexity | vs fp32 |')
console.log('|---|---|---|')
for (const [name, ppl] of rows) console.log(`| ${name} | ${ppl.toFixed(3)} | ${name === 'fp32' ? '' : `${ppl / ref - 1 >= 0 ? '+' : ''}${(100 * (ppl / ref - 1)).toFixed(2)} %`} |`)
