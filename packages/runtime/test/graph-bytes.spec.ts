/**
 * Issue 16: a baked engine's graph carries its weights (≈ the model's size); once onnxruntime has the session,
 * nothing on the JS side keeps those bytes — not the runtime (worker or in-thread), not the engine's thread.
 */
import { describe, it, expect, vi, afterEach } from 'vitest'
import { buildInferenceGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { Runtime, createInferenceEngine, int64 } from '../src/index.js'
import { RuntimeWorkerState } from '../src/worker.js'

const config = preset('tiny')
const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 3)]))

describe('graph bytes after createSession', () => {
  afterEach(() => { vi.restoreAllMocks() })

  it("the runtime's state frees the bytes of a request once the session exists", async () => {
    const state = new RuntimeWorkerState()
    const bytes = buildInferenceGraph(config, { kind: 'model' }, { parameters: params }).bytes
    expect(bytes.byteLength).toBeGreaterThan(100_000)
    await state.handle({ op: 'createSession', bytes, device: 'cpu', cudaPrecheck: false, allowSpinning: false })
    expect(bytes.buffer.byteLength).toBe(0)
  })

  for (const inThread of [false, true]) {
    it(`a baked engine keeps no copy of its graph on this thread (${inThread ? 'in-thread' : 'worker'}), and serves`, async () => {
      const seen: Uint8Array[] = []
      const create = Runtime.prototype.createSession
      vi.spyOn(Runtime.prototype, 'createSession').mockImplementation(async function (this: Runtime, bytes, options) {
        seen.push(bytes)
        return await create.call(this, bytes, options)
      })
      const e = await createInferenceEngine({ config, parameters: params, bakeWeights: true, inThread })
      try {
        expect(seen.length).toBe(1)
        // detached: moved to the worker, or freed in-thread once onnxruntime parsed it
        expect(seen[0].buffer.byteLength).toBe(0)
        const kv = await e.openInference()
        const logits = (await kv.run({ input_ids: int64([1, 2, 3], [1, 3]) })).logits.data as Float32Array
        expect(logits.length).toBe(3 * config.vocabSize)
        expect(logits.every(Number.isFinite)).toBe(true)
      } finally {
        await e.close()
      }
    })
  }

  it("createSession without transfer leaves the caller's bytes as they were (a worker gets a copy)", async () => {
    const rt = new Runtime()
    const bytes = buildInferenceGraph(config, { kind: 'model' }, { parameters: params }).bytes
    const before = bytes.slice()
    try {
      await rt.createSession(bytes)
      expect(bytes.byteLength).toBe(before.byteLength)
      expect(Buffer.from(bytes).equals(Buffer.from(before))).toBe(true)
    } finally {
      await rt.close()
    }
  })
})
