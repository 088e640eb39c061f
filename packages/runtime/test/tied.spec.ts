/**
 * A pipeline of shard executors (embed → blocks → blocks → head) trains exactly like the monolithic model
 * graph in one executor: same losses, same clipped global gradient norm, same weights after a few AdamW
 * steps — with tied embeddings (the head's `embed.weight` gradient is exported and stepped by the embed
 * shard, counted once) and without.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { buildModelGraph, buildShardGraph, initParameter, modelParameters, preset, shardParameters } from '@neuroshard/model'
import { createRuntime, createShardExecutor, float32, int64, warmupCosine } from '../src/index.js'
import type { ShardExecutor, TensorData } from '../src/index.js'
import type { ModelConfig, ShardRole } from '@neuroshard/model'

const executors: ShardExecutor[] = []
afterEach(async () => { await Promise.all(executors.splice(0).map(async e => { await e.close() })) })

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

const ROWS = 2
const SEQ = 12
const STEPS = 3
const MAX_GRAD_NORM = 0.05

/** Deterministic token batches (an LCG, so the test does not depend on the code under test) */
function batches (config: ModelConfig, n: number): Array<{ ids: BigInt64Array, targets: BigInt64Array }> {
  let s = 12345
  const next = (): bigint => { s = (s * 1103515245 + 12345) % 2147483648; return BigInt(s % config.vocabSize) }
  return Array.from({ length: n }, () => {
    const ids = BigInt64Array.from({ length: ROWS * SEQ }, next)
    return { ids, targets: BigInt64Array.from({ length: ROWS * SEQ }, next) }
  })
}

function initial (config: ModelConfig): Map<string, Float32Array> {
  return new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 77)]))
}

const optimizer = { schedule: warmupCosine({ peakLr: 2e-2, warmupSteps: 2, totalSteps: 10 }), weightDecay: 0.1, maxGradNorm: MAX_GRAD_NORM }

interface Trace { losses: number[], gradNorms: number[], clipScales: number[], params: Map<string, Float32Array> }

async function monolithic (config: ModelConfig): Promise<Trace> {
  const ex = await createShardExecutor({
    config,
    role: { kind: 'blocks', start: 0, end: config.nLayers },
    parameterSpecs: modelParameters(config),
    parameters: initial(config),
    intraOpNumThreads: 1,
    graphs: { backward: buildModelGraph(config, 'backward').bytes },
    optimizer
  })
  executors.push(ex)
  const t: Trace = { losses: [], gradNorms: [], clipScales: [], params: new Map() }
  for (const b of batches(config, STEPS)) {
    const out = await ex.backward({ input_ids: int64(b.ids, [ROWS, SEQ]), targets: int64(b.targets, [ROWS, SEQ]) })
    t.losses.push((out.loss.data as Float32Array)[0])
    const r = await ex.step()
    t.gradNorms.push(r.gradNorm)
    t.clipScales.push(r.clipScale)
  }
  t.params = await ex.getParameters()
  return t
}

async function pipelineShards (config: ModelConfig): Promise<ShardExecutor[]> {
  const all = initial(config)
  const roles: ShardRole[] = [{ kind: 'embed' }, { kind: 'blocks', start: 0, end: 1 }, { kind: 'blocks', start: 1, end: 2 }, { kind: 'head' }]
  const shards = await Promise.all(roles.map(async role => await createShardExecutor({
    config,
    role,
    parameters: new Map(shardParameters(config, role).map(p => [p.name, all.get(p.name)!])),
    intraOpNumThreads: 1,
    graphs: { forward: buildShardGraph(config, role, 'forward').bytes, backward: buildShardGraph(config, role, 'backward').bytes },
    optimizer
  })))
  executors.push(...shards)
  return shards
}

/** One micro-batch forward and backward through the pipeline; returns the loss */
async function forwardBackward (shards: ShardExecutor[], b: { ids: BigInt64Array, targets: BigInt64Array }): Promise<number> {
  const [embed, b0, b1, head] = shards
  const h0 = (await embed.forward({ input_ids: int64(b.ids, [ROWS, SEQ]) })).hidden
  const h1 = (await b0.forward({ hidden_in: h0 })).hidden_out
  const h2 = (await b1.forward({ hidden_in: h1 })).hidden_out
  const hb = await head.backward({ hidden: h2, targets: int64(b.targets, [ROWS, SEQ]), grad_loss: float32([1], []) })
  const g1 = await b1.backward({ hidden_in: h1, grad_hidden_out: hb.grad_hidden })
  const g0 = await b0.backward({ hidden_in: h0, grad_hidden_out: g1.grad_hidden_in })
  await embed.backward({ input_ids: int64(b.ids, [ROWS, SEQ]), grad_hidden: g0.grad_hidden_in })
  return (hb.loss.data as Float32Array)[0]
}

/**
 * The documented pipeline step: move the head's tied gradients to their owner, clip by the global norm
 * (each parameter counted once), step every shard, copy the stepped tied weights back to the head.
 */
async function pipelineStep (shards: ShardExecutor[]): Promise<{ gradNorm: number, clipScale: number }> {
  const [embed, , , head] = shards
  await embed.addGradients(await head.takeTiedGradients())
  const sq = await Promise.all(shards.map(async s => await s.gradNormSquared()))
  const gradNorm = Math.sqrt(sq.reduce((a, b) => a + b, 0))
  const results = await Promise.all(shards.map(async s => await s.step({ gradNorm })))
  if (head.tiedParameters.length > 0) {
    const owned = await embed.getParameters()
    await head.setParameters(new Map(head.tiedParameters.map(n => [n, owned.get(n)!])), { partial: true })
  }
  return results[0]
}

async function pipeline (config: ModelConfig): Promise<Trace> {
  const shards = await pipelineShards(config)
  const t: Trace = { losses: [], gradNorms: [], clipScales: [], params: new Map() }
  for (const b of batches(config, STEPS)) {
    t.losses.push(await forwardBackward(shards, b))
    const r = await pipelineStep(shards)
    t.gradNorms.push(r.gradNorm)
    t.clipScales.push(r.clipScale)
  }
  for (const s of shards) for (const [k, v] of await s.getParameters()) t.params.set(k, v)
  const headEmbed = (await shards[3].getParameters()).get('embed.weight')
  if (config.tieEmbeddings) expect(headEmbed).toEqual((await shards[0].getParameters()).get('embed.weight'))
  return t
}

function expectSameTraining (config: ModelConfig, got: Trace, want: Trace): void {
  expect(want.clipScales.every(s => s < 1)).toBe(true) // clipping is active at every step
  for (let i = 0; i < STEPS; i++) {
    expect(Math.abs(got.losses[i] - want.losses[i])).toBeLessThan(1e-5 * want.losses[i])
    expect(Math.abs(got.gradNorms[i] - want.gradNorms[i])).toBeLessThan(1e-4 * want.gradNorms[i])
    expect(Math.abs(got.clipScales[i] - want.clipScales[i])).toBeLessThan(1e-4 * want.clipScales[i])
  }
  const init = initial(config)
  expect([...got.params.keys()].sort()).toEqual(modelParameters(config).map(p => p.name).sort())
  for (const { name } of modelParameters(config)) {
    const a = got.params.get(name)!
    const b = want.params.get(name)!
    const p0 = init.get(name)!
    let diff = 0
    let moved = 0
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]))
      moved = Math.max(moved, Math.abs(b[i] - p0[i]))
    }
    // every parameter trained (Σ lr = 5e-2 over the three steps), and both runs moved it the same way
    expect(moved, name).toBeGreaterThan(1e-3)
    expect(diff, name).toBeLessThan(2e-5)
  }
}

describe('pipeline of shard executors = monolithic model', () => {
  it('tied embeddings: same losses, global norm and weights after clipped AdamW steps; final_norm trains', async () => {
    const config = { ...preset('tiny'), tieEmbeddings: true }
    const want = await monolithic(config)
    const got = await pipeline(config)
    expectSameTraining(config, got, want)
  })

  it('untied embeddings: same losses, global norm and weights', async () => {
    const config = preset('tiny')
    const want = await monolithic(config)
    const got = await pipeline(config)
    expectSameTraining(config, got, want)
  })
})

describe('tied gradients', () => {
  it('the summed embed.weight gradient matches finite differences of the float64 model loss', async () => {
    const config = { ...preset('tiny'), tieEmbeddings: true }
    const shards = await pipelineShards(config)
    const [embed, , , head] = shards
    const [b] = batches(config, 1)
    await forwardBackward(shards, b)
    expect(head.tiedParameters).toEqual(['embed.weight'])
    const fromHead = await head.takeTiedGradients()
    expect([...fromHead.keys()]).toEqual(['embed.weight'])
    // taken, not copied: the head keeps no embed.weight gradient and its norm counts final_norm only
    expect((await head.getGradients()).get('embed.weight')!.every(x => x === 0)).toBe(true)
    const finalNormGrad = (await head.getGradients()).get('final_norm.weight')!
    expect(finalNormGrad.some(x => x !== 0)).toBe(true)
    expect(await head.gradNormSquared()).toBeCloseTo(finalNormGrad.reduce((s, x) => s + x * x, 0), 10)
    await embed.addGradients(fromHead)
    const g = (await embed.getGradients()).get('embed.weight')!

    // reference: central differences of the float64 monolithic forward graph at the same weights
    const rt = await createRuntime({ intraOpNumThreads: 1 })
    try {
      const params = initial(config)
      const resident: Record<string, TensorData> = {}
      for (const p of modelParameters(config)) resident[p.name] = { type: 'float64', dims: p.shape, data: Float64Array.from(params.get(p.name)!) }
      await rt.setResident(resident)
      const session = await rt.createSession(buildModelGraph(config, 'forward', { dtype: 'float64' }).bytes)
      const lossAt = async (delta: number, index: number): Promise<number> => {
        const w = (resident['embed.weight'].data as Float64Array).slice()
        w[index] += delta
        await rt.setResident({ 'embed.weight': { type: 'float64', dims: resident['embed.weight'].dims, data: w } })
        const out = await session.run({ input_ids: int64(b.ids, [ROWS, SEQ]), targets: int64(b.targets, [ROWS, SEQ]) })
        return (out.loss.data as Float64Array)[0]
      }
      const d = config.dModel
      const inBatch = Number(b.ids[3])
      const present = new Set(Array.from(b.ids, Number))
      const absent = Array.from({ length: config.vocabSize }, (_, i) => i).find(i => !present.has(i))!
      // a row the batch gathers (embedding + head contributions) and a row only the head uses
      for (const index of [inBatch * d + 5, inBatch * d + 40, absent * d + 17]) {
        const h = 1e-5
        const fd = ((await lossAt(h, index)) - (await lossAt(-h, index))) / (2 * h)
        expect(Math.abs(fd)).toBeGreaterThan(1e-6)
        expect(Math.abs(g[index] - fd)).toBeLessThan(1e-4 * Math.abs(fd) + 1e-8)
      }
      // the head's share alone would be wrong for a gathered row
      const headOnly = fromHead.get('embed.weight')![inBatch * d + 5]
      const fdRow = ((await lossAt(1e-5, inBatch * d + 5)) - (await lossAt(-1e-5, inBatch * d + 5))) / 2e-5
      expect(Math.abs(headOnly - fdRow)).toBeGreaterThan(1e-3 * Math.abs(fdRow))
    } finally {
      await rt.close()
    }
  })

  it('a head step or norm with its tied gradient still in place is refused; the head steps final_norm but not the tied matrix', async () => {
    const config = { ...preset('tiny'), tieEmbeddings: true }
    const shards = await pipelineShards(config)
    const head = shards[3]
    await forwardBackward(shards, batches(config, 1)[0])
    const err = await rejection(head.step())
    expect(err.name).toBe('TiedGradientsPendingError')
    const e2 = await rejection(head.gradNormSquared())
    expect(e2.name).toBe('TiedGradientsPendingError')
    expect(head.stepCount).toBe(0)
    await head.takeTiedGradients()
    const before = (await head.getParameters()).get('final_norm.weight')!
    const embedBefore = (await head.getParameters()).get('embed.weight')!
    const r = await head.step()
    expect(r.gradNorm).toBeGreaterThan(0)
    const after = await head.getParameters()
    // final_norm trains on the head; the head never steps its copy of the tied matrix itself
    expect(after.get('final_norm.weight')).not.toEqual(before)
    expect(after.get('embed.weight')).toEqual(embedBefore)
    // untied heads have nothing to export
    const untied = await pipelineShards(preset('tiny'))
    expect(untied[3].tiedParameters).toEqual([])
    expect((await untied[3].takeTiedGradients()).size).toBe(0)
  })
})
