/**
 * Inputs a peer can send (token ids, targets, activations, gradients) are checked before they reach
 * onnxruntime: every bad one is refused with a typed error naming the tensor.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { buildModelGraph, buildShardGraph, modelParameters, preset } from '@neuroshard/model'
import { createShardExecutor, float32, int64, validateFeeds } from '../src/index.js'
import { kvModel } from './fixtures/onnx.js'
import type { ShardExecutor, TensorData } from '../src/index.js'
import type { ShardRole } from '@neuroshard/model'

const config = preset('tiny')
const V = config.vocabSize
const d = config.dModel
const blocksRole: ShardRole = { kind: 'blocks', start: 0, end: config.nLayers }

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

const ids = (values: number[], dims = [1, values.length]): TensorData => int64(values, dims)
const hiddenOf = (batch: number, seq: number, fill = 0.1): TensorData => float32(new Float32Array(batch * seq * d).fill(fill), [batch, seq, d])

let embed: ShardExecutor
let blocks: ShardExecutor
let head: ShardExecutor
let mono: ShardExecutor

beforeAll(async () => {
  const mk = async (role: ShardRole, inference = false): Promise<ShardExecutor> => await createShardExecutor({
    config,
    role,
    seed: 5,
    intraOpNumThreads: 1,
    graphs: {
      forward: buildShardGraph(config, role, 'forward').bytes,
      backward: buildShardGraph(config, role, 'backward').bytes,
      ...(inference ? { inference: buildShardGraph(config, role, 'inference').bytes } : {})
    }
  })
  ;[embed, blocks, head] = await Promise.all([mk({ kind: 'embed' }, true), mk(blocksRole, true), mk({ kind: 'head' })])
  // the trainer's shape: the monolithic graphs in one executor (nominal role, every parameter)
  mono = await createShardExecutor({
    config,
    role: blocksRole,
    parameterSpecs: modelParameters(config),
    seed: 5,
    intraOpNumThreads: 1,
    graphs: { forward: buildModelGraph(config, 'forward').bytes, backward: buildModelGraph(config, 'backward').bytes }
  })
})

afterAll(async () => {
  await Promise.all([embed, blocks, head, mono].filter(e => e !== undefined).map(async e => { await e.close() }))
})

describe('token ids and targets must lie in [0, vocabSize)', () => {
  it('the embed shard refuses a negative or too large token id (forward, backward, inference)', async () => {
    for (const bad of [-1, V, 2 ** 40, -(2 ** 40)]) {
      let err = await rejection(embed.forward({ input_ids: ids([3, bad, 7]) }))
      expect([err.name, err.tensorName]).toEqual(['TokenIdOutOfRangeError', 'input_ids'])
      expect(err.message).toContain(String(bad))
      err = await rejection(embed.backward({ input_ids: ids([3, bad, 7]), grad_hidden: hiddenOf(1, 3) }))
      expect([err.name, err.tensorName]).toEqual(['TokenIdOutOfRangeError', 'input_ids'])
    }
    const gen = await embed.openInference()
    const err = await rejection(gen.run({ input_ids: ids([-1]) }))
    expect([err.name, err.tensorName]).toEqual(['TokenIdOutOfRangeError', 'input_ids'])
    await gen.close()
    // the edges of the range are fine
    const ok = await embed.forward({ input_ids: ids([0, V - 1]) })
    expect(ok.hidden.dims).toEqual([1, 2, d])
  })

  it('the head refuses a negative or too large target (forward and backward)', async () => {
    const hidden = hiddenOf(1, 3)
    for (const bad of [-1, V, -100]) {
      let err = await rejection(head.forward({ hidden, targets: ids([1, 2, bad]) }))
      expect([err.name, err.tensorName]).toEqual(['TokenIdOutOfRangeError', 'targets'])
      err = await rejection(head.backward({ hidden, targets: ids([bad, 2, 3]), grad_loss: float32([1], []) }))
      expect([err.name, err.tensorName]).toEqual(['TokenIdOutOfRangeError', 'targets'])
    }
    const ok = await head.forward({ hidden, targets: ids([0, V - 1, 5]) })
    expect(Number.isFinite((ok.loss.data as Float32Array)[0])).toBe(true)
  })

  it('the monolithic graphs in one executor check both input_ids and targets', async () => {
    let err = await rejection(mono.backward({ input_ids: ids([1, -1]), targets: ids([1, 2]) }))
    expect([err.name, err.tensorName]).toEqual(['TokenIdOutOfRangeError', 'input_ids'])
    err = await rejection(mono.forward({ input_ids: ids([1, 2]), targets: ids([V, 2]) }))
    expect([err.name, err.tensorName]).toEqual(['TokenIdOutOfRangeError', 'targets'])
    await mono.zeroGradients()
  })
})

describe('shapes a peer can get wrong', () => {
  it('a scalar input (grad_loss) must be a scalar', async () => {
    const hidden = hiddenOf(1, 3)
    const targets = ids([1, 2, 3])
    for (const dims of [[1], [2], [1, 1]]) {
      const n = dims.reduce((a, b) => a * b, 1)
      const err = await rejection(head.backward({ hidden, targets, grad_loss: float32(new Float32Array(n).fill(1), dims) }))
      expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'grad_loss'])
    }
    await head.zeroGradients()
    // and validateFeeds says so on its own
    expect(() => validateFeeds([{ name: 's', type: 'float32', shape: [] }], { s: float32([1, 2], [2]) }))
      .toThrow(expect.objectContaining({ name: 'ShapeMismatchError', tensorName: 's' }))
  })

  it('training graphs refuse sequences over maxSeqLen', async () => {
    const seq = config.maxSeqLen + 1
    const tooLong = Array.from({ length: seq }, (_, i) => i % V)
    let err = await rejection(embed.forward({ input_ids: ids(tooLong) }))
    expect([err.name, err.tensorName]).toEqual(['SequenceTooLongError', 'input_ids'])
    err = await rejection(blocks.forward({ hidden_in: hiddenOf(1, seq) }))
    expect([err.name, err.tensorName]).toEqual(['SequenceTooLongError', 'hidden_in'])
    err = await rejection(blocks.backward({ hidden_in: hiddenOf(1, seq), grad_hidden_out: hiddenOf(1, seq) }))
    expect([err.name, err.tensorName]).toEqual(['SequenceTooLongError', 'hidden_in'])
    err = await rejection(head.backward({ hidden: hiddenOf(1, seq), targets: ids(tooLong), grad_loss: float32([1], []) }))
    expect([err.name, err.tensorName]).toEqual(['SequenceTooLongError', 'hidden'])
    err = await rejection(mono.backward({ input_ids: ids(tooLong), targets: ids(tooLong) }))
    expect([err.name, err.tensorName]).toEqual(['SequenceTooLongError', 'input_ids'])
    // exactly maxSeqLen is fine
    expect((await blocks.forward({ hidden_in: hiddenOf(1, config.maxSeqLen) })).hidden_out.dims).toEqual([1, config.maxSeqLen, d])
  })

  it('training graphs refuse an empty batch or an empty sequence', async () => {
    for (const [batch, seq] of [[0, 3], [2, 0], [0, 0]]) {
      let err = await rejection(embed.forward({ input_ids: int64(new BigInt64Array(batch * seq), [batch, seq]) }))
      expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'input_ids'])
      err = await rejection(blocks.forward({ hidden_in: hiddenOf(batch, seq) }))
      expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'hidden_in'])
      err = await rejection(head.forward({ hidden: hiddenOf(batch, seq), targets: int64(new BigInt64Array(batch * seq), [batch, seq]) }))
      expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'hidden'])
      err = await rejection(head.backward({ hidden: hiddenOf(batch, seq), targets: int64(new BigInt64Array(batch * seq), [batch, seq]), grad_loss: float32([1], []) }))
      expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'hidden'])
    }
  })
})

describe('KV-cache sessions own their position', () => {
  it('a caller-supplied position_offset or past_* tensor is refused; the cache position is used', async () => {
    const ex = await createShardExecutor({ config, role: { kind: 'head' }, graphs: { inference: kvModel() }, parameterSpecs: [], parameters: new Map() })
    try {
      const kv = await ex.openInference()
      // hidden_out = hidden_in + position_offset: the prefill runs at position 0
      expect(Array.from((await kv.run({ hidden_in: float32([1, 2, 3, 4], [1, 2, 2]) })).hidden_out.data as Float32Array)).toEqual([1, 2, 3, 4])
      let err = await rejection(kv.run({ hidden_in: float32([0, 0], [1, 1, 2]), position_offset: int64([0], []) }))
      expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'position_offset'])
      err = await rejection(kv.run({ position_offset: int64([100], []), hidden_in: float32([0, 0], [1, 1, 2]) }))
      expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'position_offset'])
      err = await rejection(kv.run({ hidden_in: float32([0, 0], [1, 1, 2]), 'past_key.0': float32(new Float32Array(2), [1, 1, 1, 2]) }))
      expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'past_key.0'])
      // nothing ran: the next token is at position 2
      expect(kv.position).toBe(2)
      expect(Array.from((await kv.run({ hidden_in: float32([0, 0], [1, 1, 2]) })).hidden_out.data as Float32Array)).toEqual([2, 2])
      expect(kv.position).toBe(3)
      // an empty chunk, another batch size, or a chunk past maxSeqLen are refused too
      err = await rejection(kv.run({ hidden_in: float32([], [1, 0, 2]) }))
      expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'hidden_in'])
      err = await rejection(kv.run({ hidden_in: float32([0, 0, 0, 0], [2, 1, 2]) }))
      expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'hidden_in'])
      err = await rejection(kv.run({ hidden_in: float32(new Float32Array(2 * (config.maxSeqLen - 2)), [1, config.maxSeqLen - 2, 2]) }))
      expect([err.name, err.tensorName]).toEqual(['SequenceTooLongError', 'hidden_in'])
      expect(kv.position).toBe(3)
      await kv.close()
    } finally {
      await ex.close()
    }
  })

  it('the blocks KV session refuses a caller-supplied position_offset (real shard graph)', async () => {
    const kv = await blocks.openInference()
    await kv.run({ hidden_in: hiddenOf(1, 4) })
    const err = await rejection(kv.run({ hidden_in: hiddenOf(1, 1), position_offset: int64([0], []) }))
    expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'position_offset'])
    expect(kv.position).toBe(4)
    await kv.close()
  })
})

describe('NaN/Inf from a peer', () => {
  it('activations and gradients holding NaN or Inf are refused, naming the tensor', async () => {
    const nan = (batch: number, seq: number, at: number, v: number): TensorData => {
      const t = hiddenOf(batch, seq); (t.data as Float32Array)[at] = v; return t
    }
    let err = await rejection(blocks.forward({ hidden_in: nan(1, 3, 5, Number.NaN) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'hidden_in'])
    err = await rejection(blocks.backward({ hidden_in: hiddenOf(1, 3), grad_hidden_out: nan(1, 3, 7, Number.POSITIVE_INFINITY) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'grad_hidden_out'])
    err = await rejection(embed.backward({ input_ids: ids([1, 2, 3]), grad_hidden: nan(1, 3, 0, Number.NEGATIVE_INFINITY) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'grad_hidden'])
    err = await rejection(head.backward({ hidden: nan(1, 3, 2, Number.NaN), targets: ids([1, 2, 3]), grad_loss: float32([1], []) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'hidden'])
    err = await rejection(head.backward({ hidden: hiddenOf(1, 3), targets: ids([1, 2, 3]), grad_loss: float32([Number.NaN], []) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'grad_loss'])
    const kv = await blocks.openInference()
    err = await rejection(kv.run({ hidden_in: nan(1, 2, 1, Number.NaN) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'hidden_in'])
    expect(kv.position).toBe(0)
    await kv.close()
    // gradients and optimizer state handed over whole
    const g = new Float32Array(V * d); g[10] = Number.NaN
    err = await rejection(embed.addGradients(new Map([['embed.weight', g]])))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'grad.embed.weight'])
    const m = new Float32Array(V * d); const v = new Float32Array(V * d); v[3] = Number.POSITIVE_INFINITY
    err = await rejection(embed.setOptimizerState({ m: new Map([['embed.weight', m]]), v: new Map([['embed.weight', v]]) }))
    expect(err.name).toBe('NonFiniteTensorError')
    err = await rejection(embed.setOptimizerState({ m: new Map([['embed.weight', new Float32Array(3)]]), v: new Map([['embed.weight', new Float32Array(V * d)]]) }))
    expect(err.name).toBe('InvalidParametersError')
    v[3] = -1
    err = await rejection(embed.setOptimizerState({ m: new Map([['embed.weight', m]]), v: new Map([['embed.weight', v]]) }))
    expect(err.name).toBe('InvalidParametersError')
    // nothing was accumulated from the refused calls
    expect(await embed.gradNormSquared()).toBe(0)
  })
})

describe('a pipeline-global norm built from peer reports', () => {
  it('step() refuses a gradNorm that is NaN, infinite or negative, and takes no step', async () => {
    await blocks.backward({ hidden_in: hiddenOf(1, 3), grad_hidden_out: hiddenOf(1, 3, 0.01) })
    const before = await blocks.getParameters()
    for (const gradNorm of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      const err = await rejection(blocks.step({ gradNorm }))
      expect(err.name).toBe('InvalidParametersError')
    }
    expect(blocks.stepCount).toBe(0)
    expect(await blocks.getParameters()).toEqual(before)
    // the accumulated gradient is still there for a step with a valid norm
    expect(await blocks.gradNormSquared()).toBeGreaterThan(0)
    const r = await blocks.step({ gradNorm: 2 })
    expect(r.gradNorm).toBe(2)
    expect(blocks.stepCount).toBe(1)
  })
})
