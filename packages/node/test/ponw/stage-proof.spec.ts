/**
 * Stage training proofs without a network: a stage's inner loop is recorded, encoded, decoded and re-executed
 * on fresh onnxruntime executors by the verifier's `StageTrainingModel`, which must land on the prover's own
 * final state; tampered committed inputs, a tampered final state and junk witnesses are refused.
 */
import { TINY, initParameter, modelParameters } from '@neuroshard/model'
import { createPipelineStage } from '@neuroshard/pipeline'
import { ReExecutionMismatchError } from '@neuroshard/ponw-ledger'
import { DEFAULT_BETA1, DEFAULT_BETA2, DEFAULT_EPS, DEFAULT_WEIGHT_DECAY, constantLr } from '@neuroshard/runtime'
import { describe, expect, it } from 'vitest'
import { localTrainStep } from '../../src/network/node.js'
import { StageTrainingModel } from '../../src/ponw/stage-verifier.js'
import { StageRecorder, decodeWitness, encodeWitness } from '../../src/ponw/stage-work.js'
import type { ExecutorState, RecordedRound, StageOp, StageWitness } from '../../src/ponw/stage-work.js'
import type { TrainingClaim } from '@neuroshard/ponw-ledger'

const config = { ...TINY, vocabSize: 64 }
const H = 3

function batch (seed: number): { inputIds: BigInt64Array, targets: BigInt64Array, batch: number, seq: number } {
  const b = 2
  const s = 8
  const ids = BigInt64Array.from({ length: b * s }, (_, i) => BigInt((i * 7 + seed * 13) % config.vocabSize))
  const t = BigInt64Array.from({ length: b * s }, (_, i) => BigInt((i * 5 + seed * 3 + 1) % config.vocabSize))
  return { inputIds: ids, targets: t, batch: b, seq: s }
}

async function recordedRound (): Promise<{ w0: StageWitness, wf: StageWitness }> {
  const stage = await createPipelineStage({ config, start: 0, end: config.nLayers + 2, parameters: await initParams() })
  try {
    const rec = new StageRecorder(stage, H)
    for (let i = 0; i < H; i++) await localTrainStep(rec.stage, batch(i))
    const work = await rec.finish()
    expect(work).toBeDefined()
    const w0 = decodeWitness(encodeWitness({ start: work!.start, end: work!.end, states: work!.before, opsFrom: work!.opsFrom, ops: work!.ops, evidence: [], payloads: [] }))!
    const wf = decodeWitness(encodeWitness({ start: work!.start, end: work!.end, states: work!.after, opsFrom: work!.opsFrom, ops: [], evidence: [], payloads: [] }))!
    return { w0, wf }
  } finally {
    await stage.close()
  }
}

async function initParams (): Promise<Map<string, Float32Array>> {
  return new Map(modelParameters(config).map(spec => [spec.name, initParameter(config, spec, 1)]))
}

async function replay (model: StageTrainingModel, w0: StageWitness, steps = H): Promise<StageWitness> {
  let w = w0
  for (let i = 0; i < steps; i++) w = await model.step(w, {} as TrainingClaim, i)
  return w
}

const tiedConfig = { ...config, tieEmbeddings: true }
const tiedOptimizer = { schedule: constantLr(1e-2) }
const TH = 4

function witnesses (work: RecordedRound | undefined): { w0: StageWitness, wf: StageWitness } {
  expect(work, 'a recorded loop').toBeDefined()
  const w0 = decodeWitness(encodeWitness({ start: work!.start, end: work!.end, states: work!.before, opsFrom: work!.opsFrom, ops: work!.ops, evidence: [], payloads: [] }))!
  const wf = decodeWitness(encodeWitness({ start: work!.start, end: work!.end, states: work!.after, opsFrom: work!.opsFrom, ops: [], evidence: [], payloads: [] }))!
  return { w0, wf }
}

/**
 * A tied model's Driver (span [0, L + 1): embed, blocks) and Validator (the head) doing to their executors, through their
 * recorders, what the pipeline does (specs/pipeline §4.4) in four inner steps: step 0 the 1.7.0 way without a replica
 * (the head's tied gradient added to the Driver's embedding, SET_TIED's matrix and moments seeding the Validator's
 * replica); step 1 with the replica (the Driver's rows of E at STEP, the replica stepped with the Driver's AdamW numbers,
 * the owner offered); steps 2-3 owned (TARGETS rows written into the Driver's embedding, the Driver's rows of E summed into
 * the head's gradient, the Driver's step skipping the matrix), with a GET_TIED sync of the Driver's copy before step 3.
 */
async function tiedRound (): Promise<{ driver: { w0: StageWitness, wf: StageWitness }, validator: { w0: StageWitness, wf: StageWitness } }> {
  const c = tiedConfig
  const L = c.nLayers
  const d = c.dModel
  const params = new Map(modelParameters(c).map(spec => [spec.name, initParameter(c, spec, 1)]))
  const dStage = await createPipelineStage({ config: c, start: 0, end: L + 1, parameters: params, optimizer: tiedOptimizer })
  const vStage = await createPipelineStage({ config: c, start: L + 1, end: L + 2, parameters: params, optimizer: tiedOptimizer })
  try {
    const dRec = new StageRecorder(dStage, TH)
    const vRec = new StageRecorder(vStage, TH)
    const embed = dRec.stage.embed!
    const blocks = dRec.stage.blocks!
    const head = vRec.stage.head!
    for (let i = 0; i < TH; i++) {
      const owned = i >= 2
      const b = batch(i)
      const ids = [...new Set([...b.inputIds].map(Number))].sort((x, y) => x - y)
      if (i === 3) {
        // GET_TIED: the owner's matrix and moments into the Driver's copy
        const w = (await head.getParameters()).get('embed.weight')!
        const r = (await head.getTiedReplicaState('embed.weight'))!
        await embed.setParameters(new Map([['embed.weight', w]]), { partial: true })
        await embed.setOptimizerState({ m: new Map([['embed.weight', r.m]]), v: new Map([['embed.weight', r.v]]) })
      }
      if (owned) await embed.setParameterRows('embed.weight', ids, await head.getParameterRows('embed.weight', ids))
      const input = { type: 'int64' as const, dims: [b.batch, b.seq], data: b.inputIds }
      const h0 = (await embed.forward({ input_ids: input })).hidden
      const h = (await blocks.forward({ hidden_in: h0 })).hidden_out
      const r = await head.backward({ hidden: h, targets: { type: 'int64', dims: [b.batch, b.seq], data: b.targets }, grad_loss: { type: 'float32', dims: [], data: Float32Array.of(1) } })
      const g0 = (await blocks.backward({ hidden_in: h0, grad_hidden_out: r.grad_hidden })).grad_hidden_in
      await embed.backward({ input_ids: input, grad_hidden: g0 })
      const rows = await embed.getGradientRows('embed.weight', ids)
      const g = (await head.takeTiedGradients()).get('embed.weight')!
      let sq = (await blocks.gradNormSquared()) + (await head.gradNormSquared())
      if (owned) {
        // TAKE_TIED with the Driver's rows: H[id] + E[id] on the owner, whose Σ g² stands for the embedding's
        ids.forEach((id, k) => { for (let j = 0; j < d; j++) g[id * d + j] += rows[k * d + j] })
        for (const x of g) sq += x * x
      } else {
        await embed.addGradients(new Map([['embed.weight', g.slice()]]), { transfer: true })
        sq += await embed.gradNormSquared()
      }
      const gradNorm = Math.sqrt(sq)
      const { lr, clipScale } = head.nextStep(gradNorm)
      const t = head.stepCount + 1
      await embed.step({ gradNorm, ...(owned ? { skip: ['embed.weight'] } : {}) })
      await blocks.step({ gradNorm })
      await head.step({ gradNorm })
      const adamw = { lr, beta1: DEFAULT_BETA1, beta2: DEFAULT_BETA2, eps: DEFAULT_EPS, weightDecay: DEFAULT_WEIGHT_DECAY, t, gradScale: clipScale }
      if (i === 0) {
        // SET_TIED: the stepped matrix and its moments seed the replica
        const w = (await embed.getParameters()).get('embed.weight')!
        const { m, v } = await embed.getOptimizerState()
        await head.setParameters(new Map([['embed.weight', w]]), { partial: true })
        await head.seedTiedReplica('embed.weight', { m: m.get('embed.weight')!, v: v.get('embed.weight')! })
      } else if (i === 1) {
        const { finite } = await head.stepTiedReplica('embed.weight', g, { ids: Int32Array.from(ids), data: rows }, adamw)
        expect(finite).toBe(true)
        // the replica is the Driver's matrix, bit for bit
        expect((await head.getParameters()).get('embed.weight')).toEqual((await embed.getParameters()).get('embed.weight'))
      } else {
        expect((await head.stepTiedReplica('embed.weight', g, { ids: new Int32Array(0), data: new Float32Array(0) }, adamw)).finite).toBe(true)
      }
    }
    return { driver: witnesses(await dRec.finish()), validator: witnesses(await vRec.finish()) }
  } finally {
    await dStage.close()
    await vStage.close()
  }
}

describe('stage training proofs', () => {
  it('a recorded inner loop re-executes to the prover\'s final state; changed inputs or states do not', async () => {
    const { w0, wf } = await recordedRound()
    expect(w0.ops).toHaveLength(3) // embed, blocks, head
    expect(w0.ops[0]).toHaveLength(H)
    expect(wf.states[0].step).toBe(H)
    const model = new StageTrainingModel({ config })
    try {
      const again = await replay(model, w0)
      const d = model.distance(again, wf)
      expect(d).toBeLessThanOrEqual(1e-6)
      // the replay moved the weights: the starting state is far from the final one
      expect(model.distance(w0, { ...wf, states: wf.states.map(s => ({ ...s, step: w0.states[0].step })) })).toBeGreaterThan(1e-4)

      // a committed activation changed by a little: the replay lands elsewhere
      const tampered = decodeWitness(encodeWitness({ ...w0, bytes: undefined }))!
      const op = tampered.ops[1][1].find(o => o.kind === 'backward')!
      const feed = Object.values((op as any).feeds).find((t: any) => t.type === 'float32') as any
      for (let i = 0; i < feed.data.length; i++) feed.data[i] += 0.05
      const off = await replay(model, tampered)
      expect(model.distance(off, wf)).toBeGreaterThan(1e-4)
    } finally {
      await model.close()
    }
  }, 180_000)

  it('records nothing of a loop whose proof could not be signed, and the next wanted loop in full', async () => {
    const stage = await createPipelineStage({ config, start: 0, end: config.nLayers + 2, parameters: await initParams() })
    try {
      let wanted = false
      const rec = new StageRecorder(stage, H, () => wanted)
      let snapshots = 0
      const get = stage.executors[0].getParameters.bind(stage.executors[0])
      ;(stage.executors[0] as any).getParameters = async (...args: any[]) => { snapshots++; return await get(...args) }
      for (let i = 0; i < H; i++) await localTrainStep(rec.stage, batch(i))
      expect(snapshots).toBe(0) // no state taken at the loop's start
      expect(await rec.finish()).toBeUndefined()
      expect(snapshots).toBe(0)
      // asked only when a loop starts: the next loop is wanted and recorded like any other
      wanted = true
      for (let i = 0; i < H; i++) await localTrainStep(rec.stage, batch(i))
      const work = await rec.finish()
      expect(work).toBeDefined()
      expect(work!.opsFrom).toBe(H)
      expect(work!.ops[0]).toHaveLength(H)
      expect(work!.ops[1].flat().filter(o => o.kind === 'backward').length).toBeGreaterThanOrEqual(H)
      expect(snapshots).toBe(2) // before and after
    } finally {
      await stage.close()
    }
  }, 180_000)

  it('a stage brought to a round in place (resetOptimizer, as the node does for missed rounds) records and proves its next loop', async () => {
    const stage = await createPipelineStage({ config, start: 0, end: config.nLayers + 2, parameters: await initParams() })
    const model = new StageTrainingModel({ config })
    try {
      const rec = new StageRecorder(stage, H)
      // a loop begun at step 0, then the round moves on without the stage: new base weights, step 2H, no moments
      await localTrainStep(rec.stage, batch(0))
      const base = new Map(modelParameters(config).map(spec => [spec.name, initParameter(config, spec, 2)]))
      for (const e of rec.stage.executors) {
        await e.setParameters(new Map(e.parameterSpecs.map(p => [p.name, base.get(p.name)!])), { partial: true })
        await e.resetOptimizer(2 * H)
      }
      rec.reset()
      for (let i = 0; i < H; i++) await localTrainStep(rec.stage, batch(10 + i))
      const work = await rec.finish()
      expect(work).toBeDefined()
      expect(work!.opsFrom).toBe(2 * H)
      // the state the loop starts from: the base weights at step 2H, AdamW moments zero (a snapshot fills absent ones)
      for (const s of work!.before) {
        expect(s.step).toBe(2 * H)
        for (const [name, p] of s.parameters) expect(p).toEqual(base.get(name))
        for (const m of [...s.m.values(), ...s.v.values()]) expect(m.every(x => x === 0)).toBe(true)
      }
      const w0 = decodeWitness(encodeWitness({ start: work!.start, end: work!.end, states: work!.before, opsFrom: work!.opsFrom, ops: work!.ops, evidence: [], payloads: [] }))!
      const wf = decodeWitness(encodeWitness({ start: work!.start, end: work!.end, states: work!.after, opsFrom: work!.opsFrom, ops: [], evidence: [], payloads: [] }))!
      expect(wf.states[0].step).toBe(3 * H)
      expect(model.distance(await replay(model, w0), wf)).toBeLessThanOrEqual(1e-6)
    } finally {
      await model.close()
      await stage.close()
    }
  }, 180_000)

  it('(1.1.0) a tied Driver\'s and Validator\'s loops (tied matrix moved, replica seeded and stepped, owned, synced) are recorded and re-execute to their final states', async () => {
    const { driver, validator } = await tiedRound()
    // every tied call of the pipeline is in the witnesses
    const kinds = (w: StageWitness): string[] => [...new Set(w.ops.flat(2).map(o => o.kind === 'step' && o.skip != null ? 'step skip' : o.kind))].sort()
    expect(kinds(driver.w0)).toEqual(['add', 'backward', 'moments', 'rows', 'set', 'step', 'step skip'])
    expect(kinds(validator.w0)).toEqual(['backward', 'seed', 'set', 'step', 'take', 'tiedStep'])
    expect(validator.w0.states[0].replica).toBeUndefined()
    expect(validator.wf.states[0].replica?.m.get('embed.weight')?.length).toBe(tiedConfig.vocabSize * tiedConfig.dModel)
    const model = new StageTrainingModel({ config: tiedConfig, optimizer: tiedOptimizer })
    try {
      for (const { w0, wf } of [driver, validator]) {
        const again = await replay(model, w0, TH)
        expect(model.distance(again, wf)).toBeLessThanOrEqual(1e-6)
        expect(model.distance(w0, { ...wf, states: wf.states.map(s => ({ ...s, step: w0.states[0].step, replica: w0.states[0].replica })) })).toBeGreaterThan(1e-4)
      }
      // the final tied matrix (or the replica's moments) changed by a little: refused
      const moved = (w: StageWitness, f: (s: ExecutorState) => ExecutorState): StageWitness => ({ ...w, states: w.states.map(f) })
      const again = await replay(model, validator.w0, TH)
      expect(model.distance(again, moved(validator.wf, s => ({ ...s, parameters: new Map([...s.parameters].map(([k, v]) => [k, k === 'embed.weight' ? v.map(x => x + 1e-3) : v])) })))).toBeGreaterThan(1e-4)
      expect(model.distance(again, moved(validator.wf, s => ({ ...s, replica: { m: new Map([...s.replica!.m].map(([k, v]) => [k, v.map(x => x + 1e-3)])), v: s.replica!.v } })))).toBeGreaterThan(1e-4)
      expect(model.distance(again, moved(validator.wf, s => ({ ...s, replica: undefined })))).toBe(Infinity)

      // a tampered tied input: the replay lands elsewhere
      const copy = (w: StageWitness): StageWitness => decodeWitness(encodeWitness({ ...w, bytes: undefined }))!
      // (the last op of its kind: rows fetched in step 2 are overwritten by the sync before step 3, which the replay shows)
      const tampered = async (w: StageWitness, wf: StageWitness, kind: StageOp['kind'], change: (op: any) => void): Promise<number> => {
        const t = copy(w)
        const op = t.ops.flat(2).findLast(o => o.kind === kind && (o.kind !== 'tiedStep' || o.gradIds.length > 0))
        expect(op, kind).toBeDefined()
        change(op)
        return model.distance(await replay(model, t, TH), wf)
      }
      expect(await tampered(validator.w0, validator.wf, 'tiedStep', op => { op.gradRows[0] += 0.05 })).toBeGreaterThan(1e-4)
      expect(await tampered(validator.w0, validator.wf, 'seed', op => { op.m[3] += 0.05 })).toBeGreaterThan(1e-4)
      expect(await tampered(validator.w0, validator.wf, 'set', op => { op.parameters.get('embed.weight')[5] += 0.05 })).toBeGreaterThan(1e-4)
      expect(await tampered(driver.w0, driver.wf, 'rows', op => { op.data[0] += 0.05 })).toBeGreaterThan(1e-4)
      // (the matrix the adds stepped is replaced by the sync before step 3: after step 2 the replay is elsewhere)
      const add = copy(driver.w0)
      ;(add.ops[0][1].find(o => o.kind === 'add') as any).gradients.get('embed.weight')[1] += 0.5
      expect(model.distance(await replay(model, add, 2), await replay(model, driver.w0, 2))).toBeGreaterThan(1e-4)
      expect(await tampered(driver.w0, driver.wf, 'moments', op => { op.v.get('embed.weight')[7] += 0.5 })).toBeGreaterThan(1e-4)

      // AdamW numbers of a replica step that are not the network's at that step: refused before anything is compared
      for (const change of [(a: any) => { a.lr *= 2 }, (a: any) => { a.t += 1 }, (a: any) => { a.gradScale = 0.5 }, (a: any) => { a.beta2 = 0.999 }]) {
        const t = copy(validator.w0)
        change((t.ops.flat(2).find(o => o.kind === 'tiedStep') as any).adamw)
        await expect(replay(model, t, TH)).rejects.toThrow(ReExecutionMismatchError)
      }
      // tied calls only on the tied matrix, on the executor that makes them in a pipeline, a replica step after the step
      const refused = async (w: StageWitness, e: number, ops: (list: StageOp[]) => StageOp[]): Promise<void> => {
        const t = copy(w)
        t.ops[e][0] = ops(t.ops[e][0])
        await expect(model.step(t, {} as TrainingClaim, 0)).rejects.toThrow(ReExecutionMismatchError)
      }
      const block = driver.w0.states[1].parameters.keys().next().value!
      await refused(driver.w0, 1, l => [{ kind: 'set', parameters: new Map([[block, driver.w0.states[1].parameters.get(block)!.map(x => x * 2)]]) }, ...l])
      await refused(driver.w0, 0, l => [{ kind: 'set', parameters: new Map([['embed.weight', new Float32Array(3)]]) }, ...l])
      await refused(validator.w0, 0, l => [{ kind: 'add', gradients: new Map([['embed.weight', new Float32Array(tiedConfig.vocabSize * tiedConfig.dModel)]]) }, ...l])
      await refused(driver.w0, 1, l => [{ kind: 'take' }, ...l])
      await refused(driver.w0, 0, l => l.map(o => o.kind === 'step' ? { ...o, skip: ['blocks.0.attn.wq'] } : o))
      await refused(validator.w0, 0, l => [...l, { kind: 'take' }])
      // the same loops on a model without tied embeddings: no tied call is allowed
      const untied = new StageTrainingModel({ config: { ...tiedConfig, tieEmbeddings: false }, optimizer: tiedOptimizer })
      try {
        await expect(untied.step(copy(validator.w0), {} as TrainingClaim, 0)).rejects.toThrow(ReExecutionMismatchError)
      } finally {
        await untied.close()
      }
    } finally {
      await model.close()
    }
  }, 300_000)

  it('(1.1.0) a tied write before a loop begins is in its starting state; one after its last step breaks it', async () => {
    // what SET_TIED does to a Validator's head (or slot 0's round weights to a Driver's embedding) at a round's boundary
    const c = tiedConfig
    const L = c.nLayers
    const n = c.vocabSize * c.dModel
    const params = new Map(modelParameters(c).map(spec => [spec.name, initParameter(c, spec, 1)]))
    const stage = await createPipelineStage({ config: c, start: L + 1, end: L + 2, parameters: params, optimizer: tiedOptimizer })
    const model = new StageTrainingModel({ config: c, optimizer: tiedOptimizer })
    try {
      const rec = new StageRecorder(stage, TH)
      const head = rec.stage.head!
      const d = c.dModel
      const loop = async (from: number): Promise<void> => {
        for (let i = from; i < from + TH; i++) {
          const b = batch(i)
          const hidden = { type: 'float32' as const, dims: [b.batch, b.seq, d], data: Float32Array.from({ length: b.batch * b.seq * d }, (_, k) => Math.sin(k * 0.37 + i)) }
          await head.backward({ hidden, targets: { type: 'int64', dims: [b.batch, b.seq], data: b.targets }, grad_loss: { type: 'float32', dims: [], data: Float32Array.of(1) } })
          await head.takeTiedGradients()
          await head.step({ gradNorm: 1 })
        }
      }
      const matrix = Float32Array.from({ length: n }, (_, k) => Math.cos(k) / 10)
      await head.setParameters(new Map([['embed.weight', matrix]]), { partial: true })
      await loop(0)
      const work = await rec.finish()
      expect(work).toBeDefined()
      // not an op of the loop: its starting state holds the matrix set before it
      expect(work!.ops.flat(2).some(o => o.kind === 'set')).toBe(false)
      expect(work!.before[0].parameters.get('embed.weight')).toEqual(matrix)
      const { w0, wf } = witnesses(work)
      expect(model.distance(await replay(model, w0, TH), wf)).toBeLessThanOrEqual(1e-6)
      // the next loop, then the matrix set after its last step (before the loop was taken): not provable
      await loop(TH)
      await head.setParameters(new Map([['embed.weight', matrix]]), { partial: true })
      expect(await rec.finish()).toBeUndefined()
    } finally {
      await model.close()
      await stage.close()
    }
  }, 180_000)

  it('refuses witnesses that do not decode or do not fit the span', async () => {
    expect(decodeWitness(new Uint8Array(0))).toBeUndefined()
    expect(decodeWitness(new TextEncoder().encode('NSW1\0\0\0\x05{}}}}'))).toBeUndefined()
    const { w0 } = await recordedRound()
    const bytes = encodeWitness({ ...w0, bytes: undefined })
    // every truncation and a flipped header byte: undefined, never a throw
    for (const cut of [1, 9, 100, bytes.byteLength - 1]) expect(decodeWitness(bytes.subarray(0, cut))).toBeUndefined()
    const flipped = bytes.slice()
    flipped[12] ^= 0xff
    expect(() => decodeWitness(flipped)).not.toThrow()
    const model = new StageTrainingModel({ config })
    try {
      // a state lacking a parameter
      const missing = { ...w0, states: w0.states.map((s, i) => i === 1 ? { ...s, parameters: new Map([...s.parameters].slice(1)) } : s) }
      await expect(model.step(missing, {} as TrainingClaim, 0)).rejects.toThrow(ReExecutionMismatchError)
      // a step asked out of order
      await expect(model.step(w0, {} as TrainingClaim, 2)).rejects.toThrow(ReExecutionMismatchError)
      // a committed step without its optimizer step
      const noStep = { ...w0, ops: w0.ops.map(per => per.map(ops => ops.filter(o => o.kind !== 'step'))) }
      await expect(model.step(noStep, {} as TrainingClaim, 0)).rejects.toThrow(ReExecutionMismatchError)
    } finally {
      await model.close()
    }
  }, 180_000)
})
