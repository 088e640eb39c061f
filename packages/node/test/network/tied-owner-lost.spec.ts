/**
 * The owned tied matrix (pipeline spec 1.8.0 §4.4 rule 7) lost in a training network: two NetworkNodes on loopback
 * (real libp2p hosts, onnxruntime stages, DiLoCo groups, the Driver loop on genesis data), a tied micro model. At an
 * owned step of round 1 the Validator drops its replica between the step's micro-batches and its TAKE_TIED (what a
 * Validator that lost the matrix does): TAKE_TIED answers the head's tied gradient `H` the pre-1.8.0 way, without
 * `tied_owner`, and the Driver's step fails with TiedOwnerLostError before anything stepped. The node then (a) zeroes
 * the Driver's gradients and retries the same batch at once the 1.7.0 way, and (d) the Validator, whose head's `H` of the
 * step was taken by that failed TAKE_TIED, answers the retry from its records:
 * - the step is retried once and counted once (one `node:step`, one optimizer step per executor, both stages one step on);
 * - the Driver's tied gradient at its step is one backward's `E` plus the head's `H`, bit for bit (`E` of a fresh
 *   executor given the retry's own embedding feeds, `H` as the Validator's head gave it up);
 * - the Validator is re-seeded: after the step its head's copy of the matrix is the Driver's, bit for bit, and the
 *   round ends with slot 0's weights the head slot's copy.
 */
import { createPipelineStage } from '@neuroshard/pipeline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stopTestDevnet } from './test-data.js'
import { sha, startTiedPair, until } from './tied-pair.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'
import type { TensorData } from '@neuroshard/runtime'

const H = 6
/** The owned step of round 1 at which the Validator drops its replica (round 1's steps H + 2 .. 2H - 3 are owned) */
const LOSE_AT = H + 3

const copyTensor = (t: TensorData): TensorData => ({ ...t, data: t.data.slice() } as TensorData)

describe('tiedOwner lost at TAKE_TIED in a training network (real hosts, tied micro model)', () => {
  let dir: string
  let devnet: NetworkDevnet
  let slots: number
  let driver: NetworkNode
  let validator: NetworkNode
  /** the Driver's trainStep calls at LOSE_AT: owned when called, and how each ended */
  const calls: Array<{ owned: boolean, outcome?: string }> = []
  /** node:step events per step */
  const stepEvents = new Map<number, number>()
  /** the Driver embedding's optimizer steps at LOSE_AT, with its embed.weight gradient then */
  const embedSteps: Float32Array[] = []
  /** the Driver embedding's backward feeds of LOSE_AT, in order */
  const embedFeeds: Array<Record<string, TensorData>> = []
  /** what the Validator's head gave up of its tied gradient at LOSE_AT (summed) */
  let taken: Float32Array | undefined
  let dropped = false
  /** SHA-256 of the Driver's matrix and of the Validator's head's copy after the retried step */
  let afterStep: { driver: string, validator: string } | undefined

  beforeAll(async () => {
    ({ dir, devnet, slots, driver, validator } = await startTiedPair('tied-owner-lost', H))
    driver.addEventListener('node:step', e => { stepEvents.set(e.detail.step, (stepEvents.get(e.detail.step) ?? 0) + 1) })
    // the Driver: its steps at LOSE_AT watched, its embedding's backward feeds and gradient at its optimizer step kept
    const pipeline = driver.host.services.pipeline as any
    const trainStep = pipeline.trainStep.bind(pipeline)
    const driverStage = (): any => pipeline.stages().find((s: any) => s.start === 0)
    pipeline.trainStep = async (...args: any[]) => {
      const embed = driverStage().embed
      if (embed.stepCount !== LOSE_AT) return await trainStep(...args)
      if (embed.watched !== true) {
        embed.watched = true
        const backward = embed.backward.bind(embed)
        embed.backward = async (feeds: Record<string, TensorData>, options?: any) => {
          if (embed.stepCount === LOSE_AT) embedFeeds.push(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, copyTensor(t)])))
          return await backward(feeds, options)
        }
        const step = embed.step.bind(embed)
        embed.step = async (options?: any) => {
          if (embed.stepCount === LOSE_AT) embedSteps.push((await embed.getGradients()).get('embed.weight')!)
          return await step(options)
        }
      }
      const call: typeof calls[number] = { owned: pipeline.owners.size > 0 }
      calls.push(call)
      try {
        const res = await trainStep(...args)
        call.outcome = 'ok'
        // the two copies of the matrix as the step left them
        const v = validator.heldStages().find(h => h.end === slots)!.stage.head!
        afterStep = { driver: sha((await embed.getParameters()).get('embed.weight')!), validator: sha((await v.getParameters()).get('embed.weight')!) }
        return res
      } catch (err: any) {
        call.outcome = err?.name ?? 'error'
        throw err
      }
    }
    // the Validator: at LOSE_AT's TAKE_TIED (once) its replica is gone, as in a Validator that lost the matrix
    const vp = validator.host.services.pipeline as any
    const serveTakeTied = vp.serveTakeTied.bind(vp)
    vp.serveTakeTied = async (req: any, stage: any) => {
      if (req.step === LOSE_AT && !dropped) {
        dropped = true
        vp.replicas.delete(stage)
      }
      return await serveTakeTied(req, stage)
    }
    const head = validator.heldStages().find(h => h.end === slots)!.stage.head as any
    const take = head.takeTiedGradients.bind(head)
    head.takeTiedGradients = async (...args: any[]) => {
      const got: Map<string, Float32Array> = await take(...args)
      const g = got.get('embed.weight')
      if (g != null && head.stepCount === LOSE_AT) {
        if (taken == null) taken = g.slice()
        else for (let i = 0; i < g.length; i++) taken[i] += g[i]
      }
      return got
    }
  }, 400_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('the step retried once the 1.7.0 way: counted once, its tied gradient E + H, the Validator re-seeded with the Driver\'s matrix', async () => {
    const driverStage = (): any => driver.heldStages().find(h => h.start === 0)!.stage
    const validatorStage = (): any => validator.heldStages().find(h => h.end === slots)!.stage
    await until(() => driverStage().embed.stepCount > LOSE_AT + 1 && validatorStage().head.stepCount > LOSE_AT + 1, 150_000,
      () => `the Driver past step ${LOSE_AT + 1} (at ${driverStage().embed.stepCount}; calls ${JSON.stringify(calls)})`)
    // owned when it failed; retried at once, not owned, and done
    expect(dropped).toBe(true)
    expect(calls, JSON.stringify(calls)).toEqual([{ owned: true, outcome: 'TiedOwnerLostError' }, { owned: false, outcome: 'ok' }])
    // counted once: one node:step, one optimizer step of the embedding
    expect(stepEvents.get(LOSE_AT)).toBe(1)
    expect(embedSteps).toHaveLength(1)
    // the embedding ran its backward once per try; the retry's gradient is one backward (the first try's zeroed) plus H
    expect(embedFeeds).toHaveLength(2)
    // the same batch
    expect(Array.from(embedFeeds[1].input_ids.data as BigInt64Array)).toEqual(Array.from(embedFeeds[0].input_ids.data as BigInt64Array))
    expect(taken, 'the Validator\'s head gave up its tied gradient at the failed TAKE_TIED').toBeDefined()
    const fresh = await createPipelineStage({ config: devnet.config, start: 0, end: 1, parameters: await driverStage().embed.getParameters(), step: LOSE_AT })
    let E: Float32Array
    try {
      await fresh.embed!.backward(embedFeeds[1])
      E = (await fresh.embed!.getGradients()).get('embed.weight')!
    } finally {
      await fresh.close()
    }
    const want = new Float32Array(E.length)
    for (let i = 0; i < E.length; i++) want[i] = E[i] + taken![i]
    const got = embedSteps[0]
    let worst = 0
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]))
    expect(worst, 'max |gradient - (E + H)|').toBe(0)
    // the Validator re-seeded with the Driver's matrix (SET_TIED): the two copies the same after the step, and at the round
    expect(afterStep).toBeDefined()
    expect(afterStep!.validator).toBe(afterStep!.driver)
    await until(() => (driver.group(0)?.round ?? 0) >= 2 && (validator.group(slots - 1)?.round ?? 0) >= 2, 150_000, () => 'round 2')
    expect(sha(driver.group(0)!.parameters().get('embed.weight')!)).toBe(sha(validator.group(slots - 1)!.parameters().get('embed.weight')!))
  }, 300_000)
})
