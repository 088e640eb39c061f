/**
 * A quantized node with 128-value groups (`quantBlockSize: 128`, the CLI's `--quant-block-size 128`) over real hosts:
 * its stages are built with that group size, its layer record declares it (layer-pool 1.7.0 `quant_block_size`), a
 * Driver's router reports it on the hop, and the logits that come back over the wire stay within the 4-bit tolerance
 * of the float32 model's, and are the 128-value model's (closer to a local 4-bit stage with 128-value groups than to
 * one with 32-value groups, both local stages of the whole model built from the same genesis weights).
 */
import { createPipelineStage } from '@neuroshard/pipeline'
import { int64 } from '@neuroshard/runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { genesisWeights, greedyWithLogits, waitForCoverage } from './devnet-wait.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'

/** Worst |Δlogit| relative to the spread of the float32 logits, 4-bit (the runtime's and pipeline's stated bound) */
const INT4_TOLERANCE = 0.10

describe('a 4-bit node with 128-value quantization groups', () => {
  let dir: string
  let devnet: NetworkDevnet

  beforeAll(async () => {
    ({ dir, devnet } = await startTestDevnet('quant-block', 400, {
      nodes: 2,
      node: { training: false, quantization: 'int4', quantBlockSize: 128 }
    }))
    await waitForCoverage(devnet, { everyNodeServes: true })
  }, 300_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('builds its stages with 128-value groups, declares 128 in its record and on the route, and its logits are the 128-value model\'s, within the 4-bit tolerance of float32', async () => {
    const config = devnet.config
    const L = config.nLayers
    const driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
    const other = devnet.nodes.find(n => n !== driver && n.heldStages().some(h => h.end === L + 2 && h.start > 0))
    expect(other).toBeDefined()
    for (const n of devnet.nodes) {
      for (const { stage } of n.heldStages()) {
        expect([stage.quantization, stage.quantBlockSize]).toEqual(['int4', 128])
        for (const e of stage.executors) if (e.role.kind !== 'embed') expect([e.weightFormat, e.quantBlockSize]).toEqual(['int4', 128])
      }
    }
    // the other node's record as the Driver sees it, and the hop its router gives
    const from = other!.heldStages()[0].start
    const until = Date.now() + 60_000
    let hop: { quantization?: string, quantBlockSize?: number } | undefined
    for (;;) {
      const rec = driver.host.services.layerPool.records().get(other!.peerId.toString())?.record
      const span = rec?.spans.find(s => s.start === from && s.state === 'serving')
      if (span != null) {
        expect([span.quantization, span.quantBlockSize]).toEqual(['int4', 128])
        try {
          hop = (await driver.host.services.swarmRouter.chain({ from, to: L + 2, purpose: 'inference' }))[0]
          break
        } catch (err: any) {
          if (err.name !== 'NoRouteError') throw err
        }
      }
      if (Date.now() > until) throw new Error('the Driver saw no serving record of the other node')
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    expect([hop?.quantization, hop?.quantBlockSize]).toEqual(['int4', 128])

    // greedy tokens with their logits, through both nodes
    const prompt = [5, 17, 42, 99, 7, 3, 250, 11]
    const n = 10
    const served = await greedyWithLogits(driver, prompt, n)
    expect(served.length).toBe(n)

    // the same sequence scored here: float32, 4-bit with 128-value groups, 4-bit with 32-value groups
    const weights = genesisWeights(config)
    const V = config.vocabSize
    /**
     * the sequence through one local stage of the whole model (embed → blocks → head executors, no wire); the lookup
     * through `infer`, as the pipeline serves it (a quantized stage's reads the quantized table, layer-pool 1.7.1 §2.4)
     */
    const score = async (opts: { quantization?: 'int4', quantBlockSize?: 32 | 128 }): Promise<Float32Array[]> => {
      const stage = await createPipelineStage({ config, start: 0, end: L + 2, parameters: weights, training: false, intraOpNumThreads: 1, ...opts })
      try {
        const blocks = await stage.blocks!.openInference()
        const head = await stage.head!.openInference()
        const run = async (ids: number[]): Promise<Float32Array> => {
          const h = (await stage.embed!.infer({ input_ids: int64(ids, [1, ids.length]) })).hidden
          const y = (await blocks.run({ hidden_in: h })).hidden_out
          const logits = (await head.run({ hidden: y })).logits.data as Float32Array
          return logits.slice((ids.length - 1) * V, ids.length * V)
        }
        const out: Float32Array[] = [await run(prompt)]
        for (let i = 0; i < n - 1; i++) out.push(await run([served[i].id]))
        await blocks.close()
        await head.close()
        return out
      } finally {
        await stage.close()
      }
    }
    const fp32 = await score({})
    const q128 = await score({ quantization: 'int4', quantBlockSize: 128 })
    const q32 = await score({ quantization: 'int4', quantBlockSize: 32 })
    /** worst |served − ref| over the positions, relative to each position's float32 logit spread */
    const worst = (ref: Float32Array[]): number => {
      let w = 0
      for (let i = 0; i < n; i++) {
        let lo = Infinity
        let hi = -Infinity
        for (const v of fp32[i]) { lo = Math.min(lo, v); hi = Math.max(hi, v) }
        let d = 0
        for (let k = 0; k < V; k++) d = Math.max(d, Math.abs(served[i].logits[k] - ref[i][k]))
        w = Math.max(w, d / (hi - lo))
      }
      return w
    }
    const vsFp32 = worst(fp32)
    const vs128 = worst(q128)
    const vs32 = worst(q32)
    expect(vsFp32).toBeLessThan(INT4_TOLERANCE)
    expect(vsFp32).toBeGreaterThan(1e-6) // quantized, not float32
    // the 128-value model's logits (the same graphs, the hidden state crossing the wire as float32: equal to float
    // rounding), not the 32-value model's (the two differ by their rounding, as much as either differs from float32)
    expect(vs128).toBeLessThan(1e-4)
    expect(vs32).toBeGreaterThan(1e-3)
  }, 600_000)
})
