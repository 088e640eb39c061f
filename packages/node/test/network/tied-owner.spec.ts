/**
 * The pipeline's owned tied matrix (spec 1.8.0, `tiedOwner`, on by default for a tied model) in a training network:
 * two NetworkNodes on loopback (real libp2p hosts, layer pool, onnxruntime stages, DiLoCo groups, the Driver loop on
 * genesis data) with a tied micro model, the Driver holding [0, k), the Validator the rest. While the Validator owns the
 * matrix the Driver's copy is current only at the rows its steps looked up, so the node must fetch the whole matrix
 * before it uses it otherwise:
 * - a round: slot 0's weights of round 1 (the Driver's contribution) are bit for bit the head slot's copy of the tied
 *   matrix (the Validator's contribution), as with the 1.7.0 path (replicas checked by hash every step), though the
 *   round's steps but the last were owned;
 * - a generation on the Driver after owned steps: the tokens of a local model with the network's weights (the matrix
 *   as its owner has it), though the Driver's copy was stale before it.
 */
import { DefaultDiLoCo } from '@neuroshard/diloco'
import { TextGenerator } from '@neuroshard/trainer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stopTestDevnet } from './test-data.js'
import { sha, startTiedPair, until } from './tied-pair.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'

const H = 7
/**
 * The Driver is held before this step (round 1's fifth: its third and fourth were owned; its first re-seeds the
 * Validator after the owner's release before the round, the second is the offer; the round's last two steps are not
 * owned, the owner released before the sixth)
 */
const PAUSE_AT = 2 * H - 3

describe('tiedOwner in a training network (real hosts, tied micro model)', () => {
  let dir: string
  let devnet: NetworkDevnet
  let slots: number
  let driver: NetworkNode
  let validator: NetworkNode
  /** per Driver step (its step count when asked): whether the Validator owned the tied matrix then */
  const owned = new Map<number, boolean>()
  /** the Driver's step PAUSE_AT refused (the Driver loop retries it) until released */
  let paused = false
  let released = false
  const open = (): void => { released = true }
  /** (diagnostics) each slot group's contributions: the group, its round, the tied matrix's hash in the local weights */
  const contributions: string[] = []
  const contribute = DefaultDiLoCo.prototype.contribute

  beforeAll(async () => {
    DefaultDiLoCo.prototype.contribute = async function (this: any, local: ReadonlyMap<string, Float32Array>, ...rest: any[]) {
      const m = local.get('embed.weight')
      if (m != null) contributions.push(`${String(this.group).replace(/^.*\//, '')} r${String(this.round)} ${sha(m).slice(0, 12)}`)
      return await contribute.call(this, local, ...rest)
    } as any
    // generations from the training executors (the Driver's copy of the matrix), not from a round's snapshot: the sync
    // before a generation is what the second test checks (round-serving.spec tests the snapshots)
    ;({ dir, devnet, slots, driver, validator } = await startTiedPair('tied-owner', H, { node: { serveRoundWeights: false } }))
    // the Validator answers SET_TIED (a re-seed of its replica) late, as a loaded machine may: a re-seed after the round's
    // last STEP would land after the Validator, at H steps, took its contribution (refusing training requests meanwhile)
    const validatorPipeline = validator.host.services.pipeline as any
    const serveSetTied = validatorPipeline.serveSetTied.bind(validatorPipeline)
    validatorPipeline.serveSetTied = async (...args: any[]) => {
      await new Promise(resolve => setTimeout(resolve, 250))
      return await serveSetTied(...args)
    }
    // and steps its head (the last of its stage's executors, the one with the tied matrix) late: a contribution taken
    // when the stage's first executor is at H steps would take the head's weights of the step before
    const head = validator.heldStages().find(h => h.end === slots)!.stage.head! as any
    const headStep = head.step.bind(head)
    head.step = async (...args: any[]) => {
      await new Promise(resolve => setTimeout(resolve, 250))
      return await headStep(...args)
    }
    // the Driver's steps, watched (and held at PAUSE_AT)
    const pipeline = driver.host.services.pipeline as any
    const trainStep = pipeline.trainStep.bind(pipeline)
    pipeline.trainStep = async (...args: any[]) => {
      const stage = pipeline.stages().find((s: any) => s.start === 0)
      if (stage.embed.stepCount === PAUSE_AT && !released) {
        // (thrown, not awaited: the node runs its steps and tied syncs one at a time)
        paused = true
        throw new Error('held by the test')
      }
      owned.set(stage.embed.stepCount, pipeline.owners.size > 0)
      return await trainStep(...args)
    }
  }, 400_000)

  afterAll(async () => {
    DefaultDiLoCo.prototype.contribute = contribute
    open()
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('a round with owned steps: slot 0\'s round-1 weights are the head slot\'s copy of the tied matrix, bit for bit', async () => {
    await until(() => (driver.group(0)?.round ?? 0) >= 1 && (validator.group(slots - 1)?.round ?? 0) >= 1, 150_000,
      () => `round 1 (Driver slot 0 at ${driver.group(0)?.round}, Validator's head at ${validator.group(slots - 1)?.round}; steps ${JSON.stringify([...owned])}; stages ${devnet.nodes.map(n => n.heldStages().map(h => `${h.start}-${h.end}`).join(',')).join(' | ')}; chains ${JSON.stringify(driver.chains())}; groups ${devnet.nodes.map(n => Array.from({ length: slots }, (_, s) => n.group(s)?.initialized)).join(' | ')})`)
    // round 0's steps after the first (the offer) were owned, but for the last (synced, then the 1.7.0 way)
    expect([...owned].filter(([s, o]) => s < H && o).length, JSON.stringify([...owned])).toBeGreaterThanOrEqual(1)
    expect(owned.get(H - 1)).toBe(false)
    const embed = driver.group(0)!.parameters().get('embed.weight')!
    const headCopy = validator.group(slots - 1)!.parameters().get('embed.weight')!
    const state = (): string => `Driver slot 0 at round ${driver.group(0)?.round} step ${driver.heldStages().find(h => h.start === 0)?.stage.embed?.stepCount}, ` +
      `Validator's head at round ${validator.group(slots - 1)?.round} step ${validator.heldStages().find(h => h.end === slots)?.stage.executors[0].stepCount}; ` +
      `steps ${JSON.stringify([...owned])}; contributions ${JSON.stringify(contributions)}; stages ${devnet.nodes.map(n => n.heldStages().map(h => `${h.start}-${h.end}`).join(',')).join(' | ')}`
    expect(sha(embed), state()).toBe(sha(headCopy))
  }, 300_000)

  it('a generation on the Driver after owned steps: the tokens of the network\'s weights, the owner\'s matrix', async () => {
    // owned steps in round 1, then training held
    await until(() => paused, 120_000, () => `the Driver at step ${PAUSE_AT} ${JSON.stringify([...owned])}`)
    expect([...owned].filter(([s, o]) => s >= H && s < PAUSE_AT && o).length, JSON.stringify([...owned])).toBeGreaterThanOrEqual(2)
    const driverStage = driver.heldStages().find(h => h.start === 0)!.stage
    expect(driverStage.embed!.stepCount).toBe(PAUSE_AT)
    const ownerMatrix = async (): Promise<Float32Array> => (await validator.heldStages().find(h => h.end === slots)!.stage.head!.getParameters()).get('embed.weight')!
    const driverMatrix = async (): Promise<Float32Array> => (await driverStage.embed!.getParameters()).get('embed.weight')!
    expect((driver.host.services.pipeline as any).owners.size, 'the Validator owns the matrix').toBe(1)
    expect(sha(await driverMatrix()), 'the Driver\'s copy is stale before the generation').not.toBe(sha(await ownerMatrix()))
    // the network's weights: the Validator's stage (its head's matrix the owned one) and the Driver's, but its matrix
    const weights = new Map<string, Float32Array>()
    for (const e of driverStage.executors) for (const [name, w] of await e.getParameters()) if (name !== 'embed.weight') weights.set(name, w)
    for (const e of validator.heldStages().find(h => h.end === slots)!.stage.executors) for (const [name, w] of await e.getParameters()) weights.set(name, w)
    expect(weights.size).toBeGreaterThan(2)
    const prompt = devnet.tokenizer.encode('the quick brown fox')
    const local = await TextGenerator.create({ config: devnet.config, parameters: weights, bakeWeights: false, threads: 1 })
    let expected: number[]
    try {
      const session = await local.session()
      expected = []
      for await (const id of session.generate(prompt, { maxTokens: 12, temperature: 0 })) expected.push(id)
      await session.close()
    } finally {
      await local.close()
    }
    const got: number[] = []
    for await (const t of driver.generate(prompt, { maxNewTokens: 12, temperature: 0 })) got.push(t.id)
    expect(got).toEqual(expected)
    // the Driver's copy is the owner's now, and training goes on owned
    expect(sha(await driverMatrix())).toBe(sha(await ownerMatrix()))
    open()
    const before = driverStage.embed!.stepCount
    await until(() => driverStage.embed!.stepCount >= before + 1, 60_000, () => 'a step after the generation')
  }, 300_000)
})
