/**
 * Head inputs early (spec §4.4 rule 6, 1.7.0): a tied Driver asks the Validator for each micro-batch's head input
 * (HEAD_INPUT) beside its TRAIN_FORWARD and recomputes the head's tied gradient while the Worker runs its backward,
 * not after it; TAKE_TIED with `recomputed` is then answered with the micro-batch list alone. The Validator's side
 * over the wire: HEAD_INPUT waits for the micro-batch's head backward and answers exactly the input it ran on, answers
 * without an input when no replica is in step or the step ends first, refuses a hop without a tied head and a wrong
 * step; TAKE_TIED answers the list alone only for exactly the micro-batches its head accumulated, in its order. A
 * Driver refuses a list-only answer it did not ask for, before touching its gradient.
 * (Bits: training.spec.ts's tied run against the single-process model goes this way from its second step.)
 */
import { describe, it, expect, afterEach } from 'vitest'
import { preset } from '@neuroshard/model'
import { encodeTensorFrame, decodeTensorFrame } from '@neuroshard/tensor'
import { sendRequest } from '@neuroshard/utils'
import { warmupCosine } from '@neuroshard/runtime'
import { Kind, PipelineRequest, PipelineResponse, encodeActivation, encodeNamed, peerBytes, staticRouter, PIPELINE_PROTOCOL } from '../src/index.js'
import { mesh, stage, startHost, stopAll, tiedBatch, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage, TrainBatch } from '../src/index.js'

const config = { ...preset('tiny'), tieEmbeddings: true }
const L = config.nLayers
const V = config.vocabSize
const d = config.dModel
const n = V * d
const SEQ = 8
const optimizer = { schedule: warmupCosine({ peakLr: 1e-2, warmupSteps: 2, totalSteps: 20 }), weightDecay: 0.1 }

const hosts: PipelineHost[] = []
const closers: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  await stopAll(hosts.splice(0))
  await Promise.all(closers.splice(0).map(async c => { await c.close() }))
})

const batch = (k: number): TrainBatch => tiedBatch(k, V, SEQ)

async function threeNodes (): Promise<{ driver: PipelineHost, validator: PipelineHost, stages: PipelineStage[] }> {
  const params = weights(config, 11)
  const stages = await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([a, b]) => await stage(config, a, b, params, optimizer)))
  closers.push(...stages)
  const worker = await startHost({ stages: [stages[1]] })
  const validator = await startHost({ stages: [stages[2]] })
  const driver = await startHost({ stages: [stages[0]], router: staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]) })
  hosts.push(driver, worker, validator)
  await mesh(hosts)
  return { driver, validator, stages }
}

describe('tied Driver: the head\'s tied gradient recomputed during the micro-batches', () => {
  it('runs its copy of the head on each micro-batch before the Worker\'s backward of that micro-batch ends', async () => {
    const { driver, stages } = await threeNodes()
    const p = driver.services.pipeline as any
    // the Worker's backward made slow (1.5 s before it runs): the Driver's recompute has that long to start
    const blocks = stages[1].blocks as any
    const workerBackward = blocks.backward.bind(blocks)
    const workerEnds: number[] = []
    blocks.backward = async (feeds: any) => {
      await new Promise(resolve => setTimeout(resolve, 1500))
      const r = await workerBackward(feeds)
      workerEnds.push(performance.now())
      return r
    }
    const STEPS = 3
    const list = (s: number): TrainBatch[] => [batch(2 * s), batch(2 * s + 1)]
    // step 0: no replica yet (HEAD_INPUT answered without an input; H on the wire, the replica seeded by SET_TIED)
    await p.trainStep(list(0))
    const shadow = await p.shadowHeads.get(stages[0])
    expect(shadow, 'no copy of the head before a replica is in step').toBeUndefined()
    for (let s = 1; s < STEPS; s++) {
      const starts: number[] = []
      if (s === 2) {
        const head = await p.shadowHeads.get(stages[0])
        const own = head.backward.bind(head)
        head.backward = async (feeds: any) => { starts.push(performance.now()); return await own(feeds) }
      }
      const before = workerEnds.length
      const r = await p.trainStep(list(s))
      expect(r.retries).toBe(0)
      expect(Number.isFinite(r.loss)).toBe(true)
      if (s === 2) {
        // one recompute per micro-batch, each started before the Worker's backward of the same micro-batch ended
        expect(starts.length).toBe(2)
        const ends = workerEnds.slice(before)
        expect(ends.length).toBe(2)
        expect(starts[0]).toBeLessThan(ends[0])
        expect(starts[1]).toBeLessThan(ends[1])
      }
    }
  })

  it('refuses a TAKE_TIED answer that lists micro-batches without inputs when it recomputed none, its gradient untouched', async () => {
    const { driver, validator, stages } = await threeNodes()
    const p = driver.services.pipeline as any
    const v = validator.services.pipeline as any
    await p.trainStep([batch(0)]) // seeds the replica
    // this Validator now refuses HEAD_INPUT (as one before 1.7.0 does) and answers TAKE_TIED with a bare list
    v.serveHeadInput = async () => { throw Object.assign(new Error('unknown request kind 11'), { name: 'PipelineRequestError' }) }
    const takeTied = v.serveTakeTied.bind(v)
    v.serveTakeTied = async (req: any, st: any) => {
      await takeTied(req, st)
      return { ...PipelineResponse.decode(new Uint8Array(0)), replica: true, headMicroBatches: [0] }
    }
    const embed = stages[0].embed!
    await expect(p.trainStep([batch(1)])).rejects.toMatchObject({ name: 'PipelineRequestError' })
    const g = (await embed.getGradients()).get('embed.weight')!
    // what is in the Driver's gradient is its own embedding backward only (rows of the step's input ids)
    const ids = new Set(Array.from(batch(1).inputIds, Number))
    let outside = 0
    for (let row = 0; row < V; row++) if (!ids.has(row)) for (let j = 0; j < d; j++) if (g[row * d + j] !== 0) outside++
    expect(outside).toBe(0)
  })
})

describe('tied Validator: HEAD_INPUT and TAKE_TIED with recomputed', () => {
  it('answers each micro-batch\'s head input once accumulated, and the bare list only for its own order', async () => {
    const head = await stage(config, L + 1, L + 2, weights(config, 4))
    closers.push(head)
    const untied = await stage({ ...config, tieEmbeddings: false }, L + 1, L + 2, weights({ ...config, tieEmbeddings: false }, 4))
    closers.push(untied)
    const validator = await startHost({ stages: [head] })
    const other = await startHost({ stages: [untied] })
    const driver = await startHost({})
    hosts.push(validator, other, driver)
    await mesh(hosts)
    const session = new Uint8Array(16).fill(9)
    const route = (to: PipelineHost): PipelineRequest['route'] => [
      { peer: peerBytes(driver.peerId), start: 0, end: 1 },
      { peer: peerBytes(driver.peerId), start: 1, end: L + 1 },
      { peer: peerBytes(to.peerId), start: L + 1, end: L + 2 }
    ]
    const ask = async (fields: Partial<PipelineRequest>, to = validator): Promise<PipelineResponse> => await sendRequest(driver, to.peerId, PIPELINE_PROTOCOL, {
      ...PipelineRequest.decode(new Uint8Array(0)), session, hop: 2, route: route(to), ...fields
    }, { requestCodec: PipelineRequest, responseCodec: PipelineResponse, maxMessageSize: 8 * 1024 * 1024 })
    const hidden = (k: number): Uint8Array<ArrayBuffer> => encodeActivation({ type: 'float32', dims: [1, SEQ, d], data: Float32Array.from({ length: SEQ * d }, (_, i) => Math.sin(i * 0.3 + k)) }, false)
    const targets = (k: number): Uint8Array<ArrayBuffer> => encodeTensorFrame({ dtype: 'int64', shape: [1, SEQ], data: BigInt64Array.from({ length: SEQ }, (_, i) => BigInt((i + k) % V)) }) as Uint8Array<ArrayBuffer>
    // the same float32 values, bit for bit
    const same = (a: Uint8Array, b: Uint8Array): boolean => {
      const x = decodeTensorFrame(a)
      const y = decodeTensorFrame(b)
      const bytes = (t: typeof x): Buffer => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)
      return x.dtype === 'float32' && x.shape.join() === y.shape.join() && bytes(x).equals(bytes(y))
    }
    const forward = async (step: number, mb: number): Promise<void> => {
      expect((await ask({ kind: Kind.TARGETS, step, microBatch: mb, targets: targets(mb) })).error).toBe('')
      const res = await ask({ kind: Kind.TRAIN_FORWARD, step, microBatch: mb, hidden: hidden(mb), lossScale: 0.5 })
      expect(res.error).toBe('')
    }
    const rows = encodeNamed('embed.weight', new Float32Array(d).fill(0.01), [1, d])
    const tiedIds = encodeTensorFrame({ dtype: 'int64', shape: [1], data: BigInt64Array.of(3n) }) as Uint8Array<ArrayBuffer>
    const adamw = (t: number): any => ({ lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipScale: 1, t })

    // refusals: a hop whose head holds no tied parameter; another step
    expect((await ask({ kind: Kind.HEAD_INPUT, step: 0, microBatch: 0 }, other)).error).toBe('InvalidRouteError')
    expect((await ask({ kind: Kind.HEAD_INPUT, step: 4, microBatch: 0 })).error).toBe('PipelineRequestError')
    // no replica yet: answered at once without an input
    await forward(0, 0)
    const none = await ask({ kind: Kind.HEAD_INPUT, step: 0, microBatch: 0 })
    expect(none.error).toBe('')
    expect(none.replica).toBe(false)
    expect(none.headInputs.length).toBe(0)
    // step 0 over, then a replica seeded (matrix and moments)
    expect((await ask({ kind: Kind.TAKE_TIED, step: 0 })).error).toBe('')
    expect((await ask({ kind: Kind.STEP, step: 0, gradNorm: 1 })).error).toBe('')
    expect((await ask({ kind: Kind.SET_TIED, step: 0, tied: encodeNamed('embed.weight', new Float32Array(n).fill(0.02), [V, d]) }))).toMatchObject({ error: '' })
    expect((await ask({ kind: Kind.SET_TIED, step: 0, tiedM: encodeNamed('embed.weight', new Float32Array(n), [V, d]) }))).toMatchObject({ error: '' })
    expect((await ask({ kind: Kind.SET_TIED, step: 0, tiedV: encodeNamed('embed.weight', new Float32Array(n), [V, d]) }))).toMatchObject({ error: '', replica: true })

    // step 1: HEAD_INPUT for micro-batch 1 sent before its TRAIN_FORWARD waits for it; micro-batch 0's answers at once
    await forward(1, 0)
    const first = await ask({ kind: Kind.HEAD_INPUT, step: 1, microBatch: 0 })
    expect(first).toMatchObject({ error: '', replica: true, headMicroBatches: [0] })
    expect(same(first.headInputs[0], hidden(0))).toBe(true)
    const norm = decodeTensorFrame(first.headNorm)
    expect(norm.name).toBe('final_norm.weight')
    const want = (await head.head!.getParameters()).get('final_norm.weight')!
    expect(Buffer.from((norm.data as Float32Array).buffer).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(true)
    let answered = false
    const waiting = ask({ kind: Kind.HEAD_INPUT, step: 1, microBatch: 1 }).then(r => { answered = true; return r })
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(answered).toBe(false)
    await forward(1, 1)
    const second = await waiting
    expect(second).toMatchObject({ error: '', replica: true, headMicroBatches: [1] })
    expect(same(second.headInputs[0], hidden(1))).toBe(true)
    // not its order: answered as 1.6.0 (every input, in its order)
    const wrong = await ask({ kind: Kind.TAKE_TIED, step: 1, tiedReplica: true, tiedRecompute: true, recomputed: [1, 0] })
    expect(wrong).toMatchObject({ error: '', replica: true, headMicroBatches: [0, 1] })
    expect(wrong.headInputs.length).toBe(2)
    const stepped = await ask({ kind: Kind.STEP, step: 1, gradNorm: 1, tied: rows, tiedIds, tiedAdamw: adamw(2) })
    expect(stepped).toMatchObject({ error: '', replica: true })

    // step 2: its order: the bare list; a HEAD_INPUT for a micro-batch that never comes is answered empty at STEP
    await forward(2, 0)
    await forward(2, 1)
    const never = ask({ kind: Kind.HEAD_INPUT, step: 2, microBatch: 5 })
    const right = await ask({ kind: Kind.TAKE_TIED, step: 2, tiedReplica: true, tiedRecompute: true, recomputed: [0, 1] })
    expect(right).toMatchObject({ error: '', replica: true, headMicroBatches: [0, 1] })
    expect(right.headInputs.length).toBe(0)
    expect(right.tied.length).toBe(0)
    expect((await ask({ kind: Kind.STEP, step: 2, gradNorm: 1, tied: rows, tiedIds, tiedAdamw: adamw(3) }))).toMatchObject({ error: '', replica: true })
    expect(await never).toMatchObject({ error: '', replica: false, headInputs: [] })
  })
})
