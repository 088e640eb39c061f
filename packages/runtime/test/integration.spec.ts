import { describe, it, expect, afterEach } from 'vitest'
import { buildShardGraph, buildModelGraph, preset, decodeCheckpoint, initShardParameters, modelParameters } from '@neuroshard/model'
import { createShardExecutor, createRuntime, float32, int64, warmupCosine, missingCudaLibrary } from '../src/index.js'
import type { ShardExecutor } from '../src/index.js'
import type { ShardRole } from '@neuroshard/model'

const config = preset('tiny')
const executors: ShardExecutor[] = []
afterEach(async () => { await Promise.all(executors.splice(0).map(async e => { await e.close() })) })

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

/** Each row cycles through its own 8 tokens: the next token is a fixed function of the current one */
function batch (rows: number, seq: number): { ids: BigInt64Array, targets: BigInt64Array } {
  const ids = new BigInt64Array(rows * seq)
  const targets = new BigInt64Array(rows * seq)
  const tok = (r: number, i: number): bigint => BigInt((r * 37 + 11 * (i % 8) + 5) % config.vocabSize)
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < seq; i++) {
      ids[r * seq + i] = tok(r, i)
      targets[r * seq + i] = tok(r, i + 1)
    }
  }
  return { ids, targets }
}

async function shard (role: ShardRole, schedule: ReturnType<typeof warmupCosine>, device: 'cpu' | 'cuda' = 'cpu', onWarning?: (m: string) => void): Promise<ShardExecutor> {
  const ex = await createShardExecutor({
    config,
    role,
    device,
    ...(onWarning !== undefined ? { onWarning } : {}),
    intraOpNumThreads: 1,
    seed: 1234,
    graphs: {
      forward: buildShardGraph(config, role, 'forward').bytes,
      backward: buildShardGraph(config, role, 'backward').bytes
    },
    optimizer: { schedule, weightDecay: 0.01, maxGradNorm: 1 }
  })
  executors.push(ex)
  return ex
}

describe('tiny NeuroLLM, end to end on the runtime', () => {
  it('three chained shards trained for a few hundred steps drive the loss near zero', async () => {
    const steps = 200
    const schedule = warmupCosine({ peakLr: 1e-2, warmupSteps: 20, totalSteps: steps, minLr: 1e-3 })
    const [embed, blocks, head] = await Promise.all([
      shard({ kind: 'embed' }, schedule),
      shard({ kind: 'blocks', start: 0, end: config.nLayers }, schedule),
      shard({ kind: 'head' }, schedule)
    ])
    const rows = 4
    const seq = 32
    const { ids, targets } = batch(rows, seq)
    const losses: number[] = []
    for (let s = 0; s < steps; s++) {
      const inputIds = int64(ids, [rows, seq])
      const hidden = (await embed.forward({ input_ids: inputIds })).hidden
      const hiddenOut = (await blocks.forward({ hidden_in: hidden })).hidden_out
      const hb = await head.backward({ hidden: hiddenOut, targets: int64(targets.slice(), [rows, seq]), grad_loss: float32([1], []) }, { transfer: true })
      losses.push((hb.loss.data as Float32Array)[0])
      const bb = await blocks.backward({ hidden_in: hidden, grad_hidden_out: hb.grad_hidden }, { transfer: true })
      await embed.backward({ input_ids: int64(ids.slice(), [rows, seq]), grad_hidden: bb.grad_hidden_in }, { transfer: true })
      // clip by the pipeline-global gradient norm
      const sq = await Promise.all([embed, blocks, head].map(async e => await e.gradNormSquared()))
      const gradNorm = Math.sqrt(sq.reduce((a, b) => a + b, 0))
      await Promise.all([embed, blocks, head].map(async e => await e.step({ gradNorm })))
    }
    // starts at chance level (ln vocab) and learns the task
    expect(Math.abs(losses[0] - Math.log(config.vocabSize))).toBeLessThan(0.5)
    expect(losses[steps - 1]).toBeLessThan(0.05)
    expect(losses[steps - 1]).toBeLessThan(losses[0] / 50)

    // the trained weights checkpoint and reload with a matching content hash
    const bytes = await blocks.checkpoint()
    const ck = decodeCheckpoint(bytes, { config, role: { kind: 'blocks', start: 0, end: config.nLayers } })
    expect(ck.step).toBe(steps)
  })

  it("asking for 'cuda' here runs on CPU and says so; bad inputs raise typed errors naming the tensor", async () => {
    const warnings: string[] = []
    const schedule = warmupCosine({ peakLr: 1e-3, warmupSteps: 1, totalSteps: 10 })
    const blocks = await shard({ kind: 'blocks', start: 0, end: 1 }, schedule, 'cuda', (m) => warnings.push(m))
    if (missingCudaLibrary() !== undefined) {
      expect(blocks.executionProvider).toBe('cpu')
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(/asked for device 'cuda' but runs on CPU/)
    } // (with onnxruntime's CUDA provider installed the shard runs on CUDA, or falls back if no GPU answers)

    const d = config.dModel
    const good = float32(new Float32Array(2 * 3 * d).fill(0.1), [2, 3, d])
    expect((await blocks.forward({ hidden_in: good })).hidden_out.dims).toEqual([2, 3, d])

    let err = await rejection(blocks.forward({ hidden_in: { type: 'float64', dims: [2, 3, d], data: new Float64Array(2 * 3 * d) } }))
    expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'hidden_in'])
    err = await rejection(blocks.forward({ hidden_in: float32(new Float32Array(2 * 3 * (d + 1)), [2, 3, d + 1]) }))
    expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'hidden_in'])
    const nan = new Float32Array(2 * 3 * d).fill(0.1); nan[17] = Number.NaN
    err = await rejection(blocks.forward({ hidden_in: float32(nan, [2, 3, d]) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'hidden_in'])
    // backward: grad_hidden_out must bind batch/seq like hidden_in
    err = await rejection(blocks.backward({ hidden_in: good, grad_hidden_out: float32(new Float32Array(2 * 4 * d), [2, 4, d]) }))
    expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'grad_hidden_out'])
    // NaN in weights
    const params = await blocks.getParameters()
    params.get('blocks.0.attn.wk')![3] = Number.POSITIVE_INFINITY
    err = await rejection(blocks.setParameters(params))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'blocks.0.attn.wk'])
    // token ids must be int64
    const embed = await shard({ kind: 'embed' }, schedule)
    err = await rejection(embed.forward({ input_ids: float32([1, 2, 3], [1, 3]) }))
    expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'input_ids'])
  })

  it('KV-cache generation through shard executors matches recomputing the whole sequence', async () => {
    const blocksRole: ShardRole = { kind: 'blocks', start: 0, end: config.nLayers }
    // weights ×10 so attention is sharp and a wrong cache or position would change the logits visibly
    const scaled = (name: string, v: Float32Array): Float32Array => name.endsWith('norm.weight') ? v : v.map(x => x * 10)
    const mk = async (role: ShardRole, graphs: Record<string, Uint8Array>): Promise<ShardExecutor> => {
      const parameters = new Map([...initShardParameters(config, role, 7)].map(([k, v]) => [k, scaled(k, v)]))
      const ex = await createShardExecutor({ config, role, parameters, intraOpNumThreads: 1, graphs })
      executors.push(ex)
      return ex
    }
    const embed = await mk({ kind: 'embed' }, { forward: buildShardGraph(config, { kind: 'embed' }, 'forward').bytes })
    const blocks = await mk(blocksRole, { inference: buildShardGraph(config, blocksRole, 'inference').bytes })
    const head = await mk({ kind: 'head' }, { inference: buildShardGraph(config, { kind: 'head' }, 'inference').bytes })
    const tokens = [72, 101, 108, 108, 111, 44, 32, 119]
    const prompt = 5

    // reference: the monolithic graph on the whole sequence
    const rt = await createRuntime({ intraOpNumThreads: 1 })
    let reference: Float32Array
    try {
      const all: Record<string, ReturnType<typeof float32>> = {}
      for (const role of [{ kind: 'embed' }, blocksRole, { kind: 'head' }] as ShardRole[]) {
        for (const [k, v] of initShardParameters(config, role, 7)) all[k] = float32(scaled(k, v), modelParameters(config).find(p => p.name === k)!.shape)
      }
      await rt.setResident(all)
      const mono = await rt.createSession(buildModelGraph(config, 'inference').bytes)
      reference = (await mono.run({ input_ids: int64(tokens, [1, tokens.length]) })).logits.data as Float32Array
    } finally {
      await rt.close()
    }

    const cache = await blocks.openInference()
    const headSession = await head.openInference()
    const step = async (ids: number[]): Promise<Float32Array> => {
      const h = (await embed.forward({ input_ids: int64(ids, [1, ids.length]) })).hidden
      const out = await cache.run({ hidden_in: h }, { transfer: true })
      return (await headSession.run({ hidden: out.hidden_out }, { transfer: true })).logits.data as Float32Array
    }
    const V = config.vocabSize
    const got = new Float32Array(tokens.length * V)
    got.set(await step(tokens.slice(0, prompt)), 0)
    expect(cache.position).toBe(prompt)
    for (let i = prompt; i < tokens.length; i++) {
      got.set(await step([tokens[i]]), i * V)
      expect(cache.position).toBe(i + 1)
    }
    let maxDiff = 0
    let maxAbs = 0
    for (let i = 0; i < got.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i] - reference[i]))
      maxAbs = Math.max(maxAbs, Math.abs(reference[i]))
    }
    expect(maxAbs).toBeGreaterThan(1)
    expect(maxDiff).toBeLessThan(1e-4)
    await cache.close()
    await headSession.close()
  })
})

describe('tied embeddings across shards', () => {
  it("the head's embed.weight gradient is taken from the head, added to the embed shard and the stepped weight copied back", async () => {
    const tied = { ...config, tieEmbeddings: true }
    const mk = async (role: ShardRole): Promise<ShardExecutor> => {
      const ex = await createShardExecutor({
        config: tied,
        role,
        seed: 3,
        intraOpNumThreads: 1,
        graphs: { forward: buildShardGraph(tied, role, 'forward').bytes, backward: buildShardGraph(tied, role, 'backward').bytes },
        optimizer: { schedule: warmupCosine({ peakLr: 1e-2, warmupSteps: 1, totalSteps: 10 }), maxGradNorm: 0 }
      })
      executors.push(ex)
      return ex
    }
    const embed = await mk({ kind: 'embed' })
    const head = await mk({ kind: 'head' })
    const { ids, targets } = batch(2, 16)
    const hidden = (await embed.forward({ input_ids: int64(ids, [2, 16]) })).hidden
    const hb = await head.backward({ hidden, targets: int64(targets, [2, 16]), grad_loss: float32([1], []) })
    await embed.backward({ input_ids: int64(ids, [2, 16]), grad_hidden: hb.grad_hidden })
    const fromEmbed = (await embed.getGradients()).get('embed.weight')!
    const fromHead = (await head.getGradients()).get('embed.weight')!
    const taken = await head.takeTiedGradients()
    expect(taken.get('embed.weight')).toEqual(fromHead)
    await embed.addGradients(taken)
    const total = (await embed.getGradients()).get('embed.weight')!
    for (let i = 0; i < total.length; i += 97) expect(total[i]).toBeCloseTo(fromEmbed[i] + fromHead[i], 6)
    await Promise.all([embed.step(), head.step()])
    await head.setParameters(new Map([['embed.weight', (await embed.getParameters()).get('embed.weight')!]]), { partial: true })
    expect((await head.getParameters()).get('embed.weight')).toEqual((await embed.getParameters()).get('embed.weight'))
    const bad = await rejection(embed.addGradients(new Map([['embed.weight', new Float32Array(3)]])))
    expect(bad.name).toBe('InvalidParametersError')
    // the head does not own embed.weight: a gradient for it belongs to the embed shard
    const notOwner = await rejection(head.addGradients(new Map([['embed.weight', fromHead]])))
    expect(notOwner.name).toBe('InvalidParametersError')
    const nan = fromHead.slice(); nan[0] = Number.NaN
    const e2 = await rejection(embed.addGradients(new Map([['embed.weight', nan]])))
    expect([e2.name, e2.tensorName]).toEqual(['NonFiniteTensorError', 'grad.embed.weight'])
  })
})
