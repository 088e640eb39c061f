/**
 * The Validator owns the tied matrix (spec §4.4 rule 7, 1.8.0): once a Validator whose replica is in step accepts the
 * Driver's offer (STEP with `tied_owner`), the Driver no longer recomputes the head's tied gradient nor steps the matrix:
 * it fetches the rows its embedding looks up with each TARGETS, sends its embedding's gradient rows at TAKE_TIED (the
 * owner adds them to the head's and answers the summed gradient's Σ g²), and the AdamW numbers at STEP; `syncTied()`
 * fetches the whole matrix and moments. Over three real hosts an 8-step, 2-micro-batch tied run gives the same losses,
 * norms, lr, clip scales and SHA-256 of every stage's parameters and AdamW moments as the 1.7.0 path (and follows the
 * single-process model within the training suite's tolerance); mixed peers (an old Validator or an old Driver) train
 * the 1.7.0 way to the same bits; bad rows from a Driver are refused before anything is taken; a lost owner is a typed
 * error.
 */
import { createHash } from 'node:crypto'
import { describe, it, expect, afterEach } from 'vitest'
import { preset } from '@neuroshard/model'
import { int64, warmupCosine } from '@neuroshard/runtime'
import { sendRequest } from '@neuroshard/utils'
import { Kind, PipelineRequest, PipelineResponse, PIPELINE_PROTOCOL, TiedOwnerLostError, encodeNamed, peerBytes, staticRouter } from '../src/index.js'
import { encodeTensorFrame } from '@neuroshard/tensor'
import { mesh, monolith, stage, startHost, stopAll, tiedBatch, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage, TrainBatch } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = { ...preset('tiny'), tieEmbeddings: true }
const L = config.nLayers
const V = config.vocabSize
const d = config.dModel
const SEQ = 8
const STEPS = 8
// clipping active at the start (the norm's bits matter), decay on, warmup then cosine
const optimizer = { schedule: warmupCosine({ peakLr: 1e-2, warmupSteps: 2, totalSteps: 20 }), weightDecay: 0.1, maxGradNorm: 0.5 }

const hosts: PipelineHost[] = []
const closers: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  await stopAll(hosts.splice(0))
  await Promise.all(closers.splice(0).map(async c => { await c.close() }))
})

const batch = (k: number): TrainBatch => tiedBatch(k, V, SEQ)
const list = (s: number): TrainBatch[] => [batch(2 * s), batch(2 * s + 1)]

async function threeNodes (driverOwner: boolean, validatorOwner: boolean): Promise<{ driver: PipelineHost, validator: PipelineHost, stages: PipelineStage[] }> {
  const params = weights(config, 11)
  const stages = await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([a, b]) => await stage(config, a, b, params, optimizer)))
  closers.push(...stages)
  const worker = await startHost({ stages: [stages[1]] })
  const validator = await startHost({ stages: [stages[2]], tiedOwner: validatorOwner })
  const driver = await startHost({ stages: [stages[0]], tiedOwner: driverOwner, router: staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]) })
  hosts.push(driver, worker, validator)
  await mesh(hosts)
  return { driver, validator, stages }
}

const sha = (a: Float32Array): string => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex')

/** SHA-256 of every parameter and AdamW moment of every stage, and of the Validator's replica moments */
async function stateOf (stages: PipelineStage[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const [i, s] of stages.entries()) {
    for (const e of s.executors) {
      for (const [name, p] of await e.getParameters()) out[`${i}/${name}`] = sha(p)
      const st = await e.getOptimizerState()
      for (const [name, m] of st.m) out[`${i}/m/${name}`] = sha(m)
      for (const [name, v] of st.v) out[`${i}/v/${name}`] = sha(v)
    }
  }
  const replica = await stages[2].head!.getTiedReplicaState('embed.weight')
  out.replicaM = replica != null ? sha(replica.m) : 'none'
  out.replicaV = replica != null ? sha(replica.v) : 'none'
  return out
}

interface Run { steps: Array<{ loss: number, losses: number[], gradNorm: number, lr: number, clipScale: number }>, state: Record<string, string>, owned: number, recomputes: number, received: number[] }

async function run (driverOwner: boolean, validatorOwner: boolean): Promise<Run> {
  const { driver, stages } = await threeNodes(driverOwner, validatorOwner)
  const p = driver.services.pipeline as any
  const steps: Run['steps'] = []
  let owned = 0
  let recomputes = 0
  const received: number[] = []
  for (let s = 0; s < STEPS; s++) {
    // the Driver's copy of the head (1.6.0/1.7.0 recompute): count its backward runs from step 2 on
    const head = await p.shadowHeads.get(stages[0])
    if (head != null && head.counted !== true) {
      const own = head.backward.bind(head)
      head.backward = async (feeds: any) => { if (s >= 2) recomputes++; return await own(feeds) }
      head.counted = true
    }
    const before = driver.services.pipeline.trafficStats().received
    const r = await driver.services.pipeline.trainStep(list(s))
    received.push(driver.services.pipeline.trafficStats().received - before)
    expect(r.retries).toBe(0)
    steps.push({ loss: r.loss, losses: r.losses, gradNorm: r.gradNorm, lr: r.lr, clipScale: r.clipScale })
    if (p.owners.size > 0) owned++
  }
  await driver.services.pipeline.syncTied()
  return { steps, state: await stateOf(stages), owned, recomputes, received }
}

describe('tied matrix owned by the Validator (spec §4.4 rule 7, 1.8.0)', () => {
  it('8 steps: the same bits as the 1.7.0 path (losses, norms, every parameter and moment), no recompute on the Driver, and the single-process model within tolerance', async () => {
    const before = await run(false, false)
    await stopAll(hosts.splice(0))
    const owner = await run(true, true)
    // step 0 seeds the replica (SET_TIED); step 1's STEP carries the offer, taken: steps 2-7 go the owner's way
    expect(owner.owned).toBe(STEPS - 1)
    expect(before.owned).toBe(0)
    // the 1.7.0 path recomputes the head's tied gradient on the Driver; the owner path never does
    expect(before.recomputes).toBeGreaterThan(0)
    expect(owner.recomputes).toBe(0)
    expect(JSON.stringify(owner.steps)).toBe(JSON.stringify(before.steps))
    expect(owner.state).toEqual(before.state)
    // the Driver's copy of the matrix after syncTied is the Validator's
    expect(owner.state['0/embed.weight']).toBe(owner.state['2/embed.weight'])
    expect(owner.state['0/m/embed.weight']).toBe(owner.state.replicaM)
    // per owned step the Driver receives its rows, far less than a matrix
    for (const r of owner.received.slice(2)) expect(r).toBeLessThan(V * d * 4 / 2)

    // the single-process model, as training.spec.ts checks the pipeline
    const mono: ShardExecutor = await monolith(config, weights(config, 11), optimizer)
    closers.push(mono)
    for (let s = 0; s < STEPS; s++) {
      // the two equal micro-batches as one batch of 4 rows: the mean loss and its gradient are the pipeline's
      const [a, b] = list(s)
      const cat = (x: BigInt64Array, y: BigInt64Array): BigInt64Array => { const o = new BigInt64Array(x.length + y.length); o.set(x); o.set(y, x.length); return o }
      const out = await mono.backward({ input_ids: int64(cat(a.inputIds, b.inputIds), [4, SEQ]), targets: int64(cat(a.targets, b.targets), [4, SEQ]) })
      const loss = (out.loss.data as Float32Array)[0]
      const r = await mono.step()
      expect(Math.abs(owner.steps[s].loss - loss) / loss, `loss at step ${s}`).toBeLessThan(1e-5)
      expect(Math.abs(owner.steps[s].gradNorm - r.gradNorm) / r.gradNorm, `gradNorm at step ${s}`).toBeLessThan(1e-4)
    }
  })

  it('mixed peers: a Validator that does not take the matrix, or a Driver that does not offer it, train the 1.7.0 way to the same bits', async () => {
    const before = await run(false, false)
    await stopAll(hosts.splice(0))
    const oldValidator = await run(true, false)
    await stopAll(hosts.splice(0))
    const oldDriver = await run(false, true)
    for (const r of [oldValidator, oldDriver]) {
      expect(r.owned).toBe(0)
      expect(JSON.stringify(r.steps)).toBe(JSON.stringify(before.steps))
      expect(r.state).toEqual(before.state)
    }
  })

  it('refuses bad rows at TAKE_TIED before taking the head\'s gradient; a Validator that lost the matrix is TiedOwnerLostError, the Driver back at the offer\'s matrix, re-seeding the next try', async () => {
    const { driver, validator, stages } = await threeNodes(true, true)
    await driver.services.pipeline.trainStep(list(0))
    await driver.services.pipeline.trainStep(list(1))
    const p = driver.services.pipeline as any
    expect(p.owners.size).toBe(1)
    // a step's micro-batches by hand up to TAKE_TIED: the head holds a gradient
    const route = [driver, hosts[1], validator].map((h, i) => ({ peer: peerBytes(h.peerId), start: [0, 1, L + 1][i], end: [1, L + 1, L + 2][i] }))
    const send = async (req: Partial<PipelineRequest>): Promise<PipelineResponse> => await sendRequest(driver, validator.peerId, PIPELINE_PROTOCOL, {
      ...PipelineRequest.decode(new Uint8Array(0)), kind: Kind.TAKE_TIED, session: p.runId, step: 2, route, hop: 2, tiedReplica: true, tiedOwner: true, ...req
    }, { requestCodec: PipelineRequest, responseCodec: PipelineResponse, maxMessageSize: 8 * 1024 * 1024 })
    const head = stages[2].head! as any
    let taken = 0
    const take = head.takeTiedGradients.bind(head)
    head.takeTiedGradients = async () => { taken++; return await take() }
    const ids = (a: number[]): Uint8Array<ArrayBuffer> => encodeTensorFrame({ dtype: 'int64', shape: [a.length], data: BigInt64Array.from(a, BigInt) }) as Uint8Array<ArrayBuffer>
    const rows = (k: number): Uint8Array<ArrayBuffer> => encodeNamed('embed.weight', new Float32Array(k * d).fill(0.5), [k, d])
    const nan = new Float32Array(2 * d); nan[3] = Number.NaN
    for (const [bad, error] of [
      [{ tiedIds: ids([3, 3]), tied: rows(2) }, 'InvalidActivationError'], // not increasing
      [{ tiedIds: ids([1, V]), tied: rows(2) }, 'InvalidActivationError'], // out of range
      [{ tiedIds: ids([1, 2]), tied: rows(3) }, 'InvalidActivationError'], // rows do not match the ids
      [{ tiedIds: ids([1, 2]), tied: encodeNamed('embed.weight', nan, [2, d]) }, 'InvalidActivationError'], // not finite
      [{ tiedIds: ids([]), tied: rows(0) }, 'InvalidActivationError'] // no rows
    ] as const) {
      const res = await send(bad)
      expect(res.error, JSON.stringify(Object.keys(bad))).toBe(error)
    }
    expect(taken).toBe(0)
    // GET_TIED: a part out of range, a wrong step
    const get = async (req: Partial<PipelineRequest>): Promise<PipelineResponse> => await send({ kind: Kind.GET_TIED, tiedOwner: false, ...req })
    expect((await get({ tiedPart: 3 })).error).toBe('PipelineRequestError')
    expect((await get({ step: 1 })).error).toBe('PipelineRequestError')
    expect((await get({ tiedPart: 1 })).error).toBe('')
    // two owned steps: the second fetches rows the first stepped (the Driver's copy no longer the offer's matrix there)
    const offered = Buffer.from(p.owners.get(stages[0]).hash).toString('hex')
    await driver.services.pipeline.trainStep(list(2))
    await driver.services.pipeline.trainStep(list(3))
    const embedW = async (): Promise<string> => sha((await stages[0].embed!.getParameters()).get('embed.weight')!)
    expect(await embedW()).not.toBe(offered)
    // the Validator drops its replica (e.g. restarted): the Driver's next step fails with a typed error, drops the owner,
    // and its copy is the offer's matrix again (the rows it fetched put back)
    ;(validator.services.pipeline as any).replicas.clear()
    await expect(driver.services.pipeline.trainStep(list(4))).rejects.toThrow(TiedOwnerLostError)
    expect(p.owners.size).toBe(0)
    expect(await embedW()).toBe(offered)
    // the next try goes the 1.7.0 way and re-seeds the Validator with that copy (SET_TIED): both hold the same matrix
    const r = await driver.services.pipeline.trainStep(list(4))
    expect(Number.isFinite(r.loss)).toBe(true)
    expect(sha((await stages[2].head!.getParameters()).get('embed.weight')!)).toBe(await embedW())
  })
})
