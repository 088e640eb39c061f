/**
 * The Driver's recomputation of the head's tied gradient (spec §4.4 point 5, 1.6.0) fed bad answers by a Validator:
 * `head_micro_batches` that do not name one distinct micro-batch of the step per input, inputs of the wrong shape or
 * dtype, non-finite inputs, a bad `head_norm` — typed errors, and the Driver's embedding gradient untouched. A good
 * answer after a refused one gives the same gradient as before it (nothing of the refused one is left accumulated).
 * The happy path against the single-process model is training.spec.ts (tied, 20 steps, replica bit for bit).
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { encodeTensorFrame } from '@neuroshard/tensor'
import { encodeActivation, encodeNamed } from '../src/index.js'
import { stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineResponse, PipelineStage, TrainBatch } from '../src/index.js'

const config = { ...preset('tiny'), tieEmbeddings: true }
const V = config.vocabSize
const d = config.dModel
const SEQ = 8
let embed: PipelineStage
let driver: PipelineHost

/** Two micro-batches of 1 × SEQ tokens */
const list: TrainBatch[] = [0, 1].map(k => ({
  inputIds: BigInt64Array.from({ length: SEQ }, (_, i) => BigInt((i * 7 + k * 3) % V)),
  targets: BigInt64Array.from({ length: SEQ }, (_, i) => BigInt((i * 5 + k + 1) % V)),
  batch: 1,
  seq: SEQ
}))

function activation (seed: number, dims = [1, SEQ, d]): Uint8Array<ArrayBuffer> {
  const n = dims.reduce((a, b) => a * b, 1)
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1.3 + i * 0.37))
  return new Uint8Array(encodeTensorFrame({ dtype: 'float32', shape: dims, data: x }))
}

function answer (fields: Partial<PipelineResponse>): PipelineResponse {
  return {
    error: '', message: '', failedHop: 0, token: 0, logits: new Uint8Array(0), grad: new Uint8Array(0), loss: 0, normSq: 0,
    tied: new Uint8Array(0), position: 0, replica: true, tiedHash: new Uint8Array(0), tokens: [], direct: false,
    headInputs: [activation(1), activation(2)], headMicroBatches: [0, 1],
    headNorm: encodeNamed('final_norm.weight', Float32Array.from({ length: d }, (_, i) => 1 + i / d), [d]),
    ...fields
  } as unknown as PipelineResponse
}

async function recompute (res: PipelineResponse): Promise<Float32Array> {
  return await (driver.services.pipeline as any).recomputeTied(embed, res, list, 0.5, 0)
}

beforeAll(async () => {
  embed = await stage(config, 0, 1, weights(config, 6))
  driver = await startHost({ stages: [embed] })
})

afterAll(async () => {
  await stopAll([driver])
  await embed?.close()
})

describe('the Driver recomputing the tied gradient', () => {
  it('refuses answers that do not name the step\'s micro-batches or carry bad inputs, and adds nothing', async () => {
    const good = await recompute(answer({}))
    expect(good.length).toBe(V * d)
    expect(good.some(x => x !== 0)).toBe(true)
    const nan = activation(2)
    const view = new DataView(nan.buffer, nan.byteOffset + nan.byteLength - 4)
    view.setFloat32(0, Number.NaN, true) // the last value of the second input
    const cases: Array<[string, Partial<PipelineResponse>, string]> = [
      ['fewer micro-batch numbers than inputs', { headMicroBatches: [0] }, 'PipelineRequestError'],
      ['a micro-batch named twice', { headMicroBatches: [1, 1] }, 'PipelineRequestError'],
      ['a micro-batch the step does not have', { headMicroBatches: [0, 2] }, 'PipelineRequestError'],
      ['an input shorter than its micro-batch', { headInputs: [activation(1), activation(2, [1, SEQ - 1, d])] }, 'InvalidActivationError'],
      ['an input of another width', { headInputs: [activation(1), activation(2, [1, SEQ, d / 2])] }, 'InvalidActivationError'],
      ['an int8 input', { headInputs: [activation(1), encodeActivation({ type: 'float32', dims: [1, SEQ, d], data: new Float32Array(SEQ * d).fill(0.5) }, true)] }, 'InvalidActivationError'],
      ['a NaN in an input (the first one already ran)', { headInputs: [activation(1), nan] }, 'NonFiniteTensorError'],
      ['a final norm of the wrong length', { headNorm: encodeNamed('final_norm.weight', new Float32Array(d - 1), [d - 1]) }, 'InvalidActivationError']
    ]
    for (const [what, fields, name] of cases) {
      await expect(recompute(answer(fields)), what).rejects.toMatchObject({ name })
    }
    // nothing reached the Driver's own gradient
    const g = (await embed.embed!.getGradients()).get('embed.weight')!
    expect(g.every(x => x === 0)).toBe(true)
    // and nothing of the refused answers stayed accumulated in the Driver's copy of the head
    const again = await recompute(answer({}))
    expect(Buffer.from(again.buffer, again.byteOffset, again.byteLength).equals(Buffer.from(good.buffer, good.byteOffset, good.byteLength))).toBe(true)
  })
})
