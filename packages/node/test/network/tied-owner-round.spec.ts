/**
 * The owned tied matrix (pipeline spec 1.8.0 §4.4 rule 7) when a round's weights are set on slot 0 in a training network:
 * two NetworkNodes on loopback (real libp2p hosts, onnxruntime stages, DiLoCo groups, the Driver loop on genesis data),
 * a tied micro model, the Driver holding [0, k) with k ≥ 2. Slot 0's group applies round 1 late (the Driver's stage
 * already in round 1's loop through its other slot, owned steps taken), as happens when slot groups finish a round at
 * different times. The node releases the owner before it sets slot 0's weights, so what the Driver's copy goes back to
 * when the owner is later lost is a matrix of this round, not rows of the previous one:
 * - right after slot 0's weights are set the Driver's matrix is slot 0's round-1 base, bit for bit, and no owner is held;
 * - at a lost owner at the first owned step after that (the Validator drops its replica at TARGETS) the Driver's copy
 *   goes back to the matrix it offered last, bit for bit, and that offer came after the round's weights were set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stopTestDevnet } from './test-data.js'
import { sha, startTiedPair, until } from './tied-pair.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'

const H = 8


describe('tiedOwner and a round\'s weights set on slot 0 mid-loop (real hosts, tied micro model)', () => {
  let dir: string
  let devnet: NetworkDevnet
  let slots: number
  let driver: NetworkNode
  let validator: NetworkNode
  /** per Driver step: owned when called */
  const owned = new Map<number, boolean>()
  /** slot 0's round-1 application: held until the Driver took owned steps of round 1, then what it left */
  let applied: { at: number, base: string, matrix: string, owners: number } | undefined
  /** the Driver's matrix after each step that offered the matrix (not owned when called, owned after) */
  const offered = new Map<number, string>()
  /** the step at which the Validator drops its replica (TARGETS), and the Driver's matrix on the retry */
  let loseAt: number | undefined
  let retried: { step: number, matrix: string, owned: boolean } | undefined

  beforeAll(async () => {
    ({ dir, devnet, slots, driver, validator } = await startTiedPair('tied-owner-round', H))
    expect(driver.heldStages().find(h => h.start === 0)!.end, 'the Driver\'s stage holds slot 0 and another').toBeGreaterThanOrEqual(2)
    const pipeline = driver.host.services.pipeline as any
    const embed = (): any => pipeline.stages().find((s: any) => s.start === 0).embed
    const matrix = async (): Promise<string> => sha((await embed().getParameters()).get('embed.weight')!)
    // the Driver's steps: owned or not, the matrix it offered, the matrix it is back at on the retry of a lost step
    const trainStep = pipeline.trainStep.bind(pipeline)
    pipeline.trainStep = async (...args: any[]) => {
      const step = embed().stepCount
      const isOwned = pipeline.owners.size > 0
      if (step === loseAt && retried == null && owned.has(step)) retried = { step, matrix: await matrix(), owned: isOwned }
      owned.set(step, isOwned)
      const res = await trainStep(...args)
      if (!isOwned && pipeline.owners.size > 0) offered.set(step, await matrix())
      return res
    }
    // slot 0's round 1 applied late: after two owned steps of round 1 (outside the node's queue, which goes on)
    const node = driver as any
    const applyRound = node.applyRound.bind(node)
    node.applyRound = async (slot: number, g: any) => {
      if (slot !== 0 || g.round !== 1) return await applyRound(slot, g)
      void (async () => {
        await until(() => [...owned].filter(([s, o]) => s > H && o).length >= 2, 120_000, () => 'owned steps of round 1')
        await applyRound(slot, g)
        const base = sha(driver.group(0)!.parameters().get('embed.weight')!)
        applied = { at: embed().stepCount, base, matrix: await matrix(), owners: pipeline.owners.size }
      })().catch(() => {})
    }
    // the Validator drops its replica at TARGETS of the second owned step after slot 0's round was set and re-offered
    const vp = validator.host.services.pipeline as any
    const serveTargets = vp.serveTargets.bind(vp)
    vp.serveTargets = async (req: any, stage: any) => {
      if (loseAt == null && applied != null && req.tiedOwner === true && req.step > applied.at) {
        loseAt = req.step
        vp.replicas.delete(stage)
      }
      return await serveTargets(req, stage)
    }
  }, 400_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('slot 0 takes the round\'s base with the owner released; a later lost owner puts back this round\'s offered matrix', async () => {
    await until(() => retried != null, 200_000, () => `a lost owner after slot 0's round (applied ${JSON.stringify(applied)}, offered ${JSON.stringify([...offered.keys()])}, owned ${JSON.stringify([...owned])}, lose at ${loseAt})`)
    // the round's weights set with owned steps of round 1 before them (a mid-loop application)
    expect(applied!.at).toBeGreaterThan(H + 2)
    expect(applied!.matrix).toBe(applied!.base)
    // offered again after that, owned, then lost at TARGETS: the retry starts from the matrix of the last offer before it
    // (nothing synced in between: a round's last step syncs, releases and offers again)
    const offer = Math.max(...[...offered.keys()].filter(s => s < retried!.step))
    const what = JSON.stringify({ offers: [...offered.keys()], applied, lost: retried!.step })
    expect(retried!.owned).toBe(false)
    expect(retried!.matrix, what).toBe(offered.get(offer))
    expect(offer, what).toBeGreaterThanOrEqual(applied!.at)
    // (the owner was released when the weights were set)
    expect(applied!.owners).toBe(0)
    // and the network goes on: round 2 with slot 0 the head slot's copy
    await until(() => (driver.group(0)?.round ?? 0) >= 2 && (validator.group(slots - 1)?.round ?? 0) >= 2, 150_000, () => 'round 2')
    expect(sha(driver.group(0)!.parameters().get('embed.weight')!)).toBe(sha(validator.group(slots - 1)!.parameters().get('embed.weight')!))
  }, 300_000)
})
