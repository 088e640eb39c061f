/** `inThread: true` runs the same graphs on the calling thread: same outputs, same errors, same caller-owned data */
import { describe, it, expect, afterAll, vi } from 'vitest'
import * as ort from 'onnxruntime-node'
import { initParameter, modelParameters, preset, shardParameters } from '@neuroshard/model'
import { buildShardGraph } from '@neuroshard/model'
import { InThreadRuntimeWorker, createInferenceEngine, createShardExecutor, int64 } from '../src/index.js'
import type { InferenceEngine, ShardExecutor, TensorData } from '../src/index.js'

const config = preset('tiny')
const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 7)]))
const open: Array<InferenceEngine | ShardExecutor> = []
afterAll(async () => { await Promise.all(open.map(async e => { await e.close() })) })

const ids = (xs: number[]): TensorData => int64(BigInt64Array.from(xs, BigInt), [1, xs.length])

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

describe('in-thread runtime', () => {
  it('decodes the same logits as the worker, step by step through the KV cache', async () => {
    const worker = await createInferenceEngine({ config, parameters: params })
    const inline = await createInferenceEngine({ config, parameters: params, inThread: true })
    open.push(worker, inline)
    expect(inline.runtime.worker).toBeInstanceOf(InThreadRuntimeWorker)
    const a = await worker.openInference()
    const b = await inline.openInference()
    for (const chunk of [[3, 14, 15, 92], [65], [35], [89]]) {
      const la = (await a.run({ input_ids: ids(chunk) })).logits.data as Float32Array
      const lb = (await b.run({ input_ids: ids(chunk) })).logits.data as Float32Array
      expect(Array.from(lb)).toEqual(Array.from(la))
    }
    expect(b.position).toBe(7)
  })

  it('keeps its own copy of the weights it was given (as a message to a worker would)', async () => {
    const role = { kind: 'blocks' as const, start: 0, end: 1 }
    const own = new Map([...shardParameters(config, role)].map(p => [p.name, params.get(p.name)!.slice()]))
    const graphs = { inference: buildShardGraph(config, role, 'inference').bytes }
    const e = await createShardExecutor({ config, role, parameters: own, graphs, inThread: true })
    open.push(e)
    const name = [...own.keys()][0]
    const before = (await e.getParameters()).get(name)!.slice()
    own.get(name)!.fill(123)
    expect(Array.from((await e.getParameters()).get(name)!)).toEqual(Array.from(before))
  })

  it('close releases every onnxruntime session of the runtime (native memory now, not when collected)', async () => {
    const role = { kind: 'blocks' as const, start: 0, end: 1 }
    const own = new Map([...shardParameters(config, role)].map(p => [p.name, params.get(p.name)!.slice()]))
    const graphs = { forward: buildShardGraph(config, role, 'forward').bytes, backward: buildShardGraph(config, role, 'backward').bytes, inference: buildShardGraph(config, role, 'inference').bytes }
    const e = await createShardExecutor({ config, role, parameters: own, graphs, inThread: true })
    // (the class behind onnxruntime's InferenceSession factory: every session's release goes through it)
    const release = vi.spyOn((ort.InferenceSession as unknown as { prototype: { release: () => Promise<void> } }).prototype, 'release')
    try {
      await e.close()
      // forward, backward and inference: one release each
      expect(release).toHaveBeenCalledTimes(3)
    } finally {
      release.mockRestore()
    }
  })

  it('refuses bad input with the same typed errors, and calls after close with RuntimeClosedError', async () => {
    const inline = await createInferenceEngine({ config, parameters: params, inThread: true })
    const s = await inline.openInference()
    expect((await rejection(s.run({ input_ids: ids([config.vocabSize]) }))).name).toBe('TokenIdOutOfRangeError')
    await inline.close()
    expect((await rejection(s.run({ input_ids: ids([1]) }))).name).toBe('RuntimeClosedError')
  })
})
