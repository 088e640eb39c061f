import { buildModelGraph, modelParameters } from '@neuroshard/model'
import { expect } from 'vitest'
import { Runtime, int64 } from '../src/index.js'
import type { InferenceEngine, TensorData } from '../src/index.js'
import type { ModelConfig } from '@neuroshard/model'

/**
 * The logits of every position of `tokens` from the monolithic model graph (decomposed ops, no cache): the
 * independent reference of the inference-engine tests. The runtime it opens is pushed to `open` for the caller to close.
 */
export async function modelGraphLogits (config: ModelConfig, params: Map<string, Float32Array>, tokens: number[], open: Array<{ close: () => Promise<void> }>): Promise<Float32Array> {
  const rt = new Runtime()
  open.push(rt)
  const session = await rt.createSession(buildModelGraph(config, 'inference').bytes)
  const feeds: Record<string, TensorData> = { input_ids: int64(tokens, [1, tokens.length]) }
  for (const s of modelParameters(config)) feeds[s.name] = { type: 'float32', dims: s.shape, data: params.get(s.name) as Float32Array }
  return (await session.run(feeds)).logits.data as Float32Array
}

/** An engine's logits for `tokens`: the first `prompt` of them in one run, then one token per run over its cache */
export async function decodeLogits (e: InferenceEngine, tokens: number[], prompt: number, vocabSize: number): Promise<Float32Array> {
  const kv = await e.openInference()
  const out = new Float32Array(tokens.length * vocabSize)
  out.set((await kv.run({ input_ids: int64(tokens.slice(0, prompt), [1, prompt]) })).logits.data as Float32Array)
  for (let i = prompt; i < tokens.length; i++) out.set((await kv.run({ input_ids: int64([tokens[i]], [1, 1]) })).logits.data as Float32Array, i * vocabSize)
  await kv.close()
  return out
}

/** The largest |a[i] − b[i]| (the lengths must agree) */
export function maxDiff (a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]))
  return worst
}
