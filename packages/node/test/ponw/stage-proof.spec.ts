/**
 * Stage training proofs without a network: a stage's inner loop is recorded, encoded, decoded and re-executed
 * on fresh onnxruntime executors by the verifier's `StageTrainingModel`, which must land on the prover's own
 * final state; tampered committed inputs, a tampered final state and junk witnesses are refused.
 */
import { TINY, initParameter, modelParameters } from '@neuroshard/model'
import { createPipelineStage } from '@neuroshard/pipeline'
import { ReExecutionMismatchError } from '@neuroshard/ponw-ledger'
import { describe, expect, it } from 'vitest'
import { localTrainStep } from '../../src/network/node.js'
import { StageTrainingModel } from '../../src/ponw/stage-verifier.js'
import { StageRecorder, decodeWitness, encodeWitness } from '../../src/ponw/stage-work.js'
import type { StageWitness } from '../../src/ponw/stage-work.js'
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

async function replay (model: StageTrainingModel, w0: StageWitness): Promise<StageWitness> {
  let w = w0
  for (let i = 0; i < H; i++) w = await model.step(w, {} as TrainingClaim, i)
  return w
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

  it('a tied Validator\'s head loop (its tied gradient taken, its replica of the tied matrix stepped in its worker) is not provable', async () => {
    // what a pipeline Validator with a replica (spec §4.4; 1.8.0 owner alike) does to its head each step: backward,
    // takeTiedGradients, its own step, then the replica's AdamW step of the tied matrix with the (moved) gradient. A replay
    // of the recorded backward and step cannot reproduce that: the recorder must not offer such a loop as provable
    const tied = { ...config, tieEmbeddings: true }
    const L = tied.nLayers
    const params = new Map(modelParameters(tied).map(spec => [spec.name, initParameter(tied, spec, 1)]))
    const stage = await createPipelineStage({ config: tied, start: L + 1, end: L + 2, parameters: params })
    const model = new StageTrainingModel({ config: tied })
    try {
      const V = tied.vocabSize
      const d = tied.dModel
      await stage.head!.seedTiedReplica('embed.weight', { m: new Float32Array(V * d), v: new Float32Array(V * d) })
      const rec = new StageRecorder(stage, H)
      const head = rec.stage.head!
      for (let i = 0; i < H; i++) {
        const b = batch(i)
        const hidden = { type: 'float32' as const, dims: [b.batch, b.seq, d], data: Float32Array.from({ length: b.batch * b.seq * d }, (_, k) => Math.sin(k * 0.37 + i)) }
        await head.backward({ hidden, targets: { type: 'int64', dims: [b.batch, b.seq], data: b.targets }, grad_loss: { type: 'float32', dims: [], data: Float32Array.of(1) } })
        const g = (await head.takeTiedGradients()).get('embed.weight')!
        await head.step({ gradNorm: 1 })
        await head.stepTiedReplica('embed.weight', g, { ids: Int32Array.of(b.inputIds.length > 0 ? Number(b.inputIds[0]) : 0), data: new Float32Array(d).fill(0.01) }, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, t: i + 1, gradScale: 1 })
      }
      const work = await rec.finish()
      if (work != null) {
        // (before the recorder broke such a loop) the proof the node would sign: its replay is refused
        const w0 = decodeWitness(encodeWitness({ start: work.start, end: work.end, states: work.before, opsFrom: work.opsFrom, ops: work.ops, evidence: [], payloads: [] }))!
        const wf = decodeWitness(encodeWitness({ start: work.start, end: work.end, states: work.after, opsFrom: work.opsFrom, ops: [], evidence: [], payloads: [] }))!
        const outcome = await replay(model, w0).then(w => `distance ${model.distance(w, wf)}`, (err: Error) => `${err.name}: ${err.message}`)
        expect.fail(`a loop the replay cannot reproduce was offered as provable (its replay: ${outcome})`)
      }
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
