/**
 * A Driver's completion runs on the stage it started with. When the node takes that stage out of service
 * meanwhile (its span released, or rebuilt after missed rounds), the stage must stay open until the
 * completion ends: the testbed's node-failover runs saw completions fail with RuntimeClosedError ("the
 * runtime is closed") while pipelines changed.
 */
import { int64 } from '@neuroshard/runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { retryUntilRouted, waitForCoverage } from './devnet-wait.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'

describe('a stage taken out of service during a completion', () => {
  let dir: string
  let devnet: NetworkDevnet

  beforeAll(async () => {
    ({ dir, devnet } = await startTestDevnet('retire', 400, {
      nodes: 2,
      // the executors in worker threads, as a training node runs them
      node: { training: false, inThread: false }
    }))
    await waitForCoverage(devnet)
  }, 300_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('the completion finishes on the old stage, which is closed after it', async () => {
    const driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))
    if (driver == null) throw new Error('no Driver')
    // a route exists once the Driver's layer records show the other half (gossip)
    await retryUntilRouted(async () => {
      for await (const _ of driver.generate([1, 2, 3], { maxNewTokens: 1 })) { void _ }
    })
    const held = driver.heldStages().find(h => h.start === 0)
    if (held == null) throw new Error('the Driver holds no stage at slot 0')
    const ids: number[] = []
    for await (const t of driver.generate([1, 2, 3, 4], { maxNewTokens: 12, temperature: 0.8, seed: 7 })) {
      ids.push(t.id)
      // after the first token the node releases the span the completion runs on (what a layer-pool move does)
      if (ids.length === 1) await (driver as any).closeStage(held.start, held.end)
    }
    expect(ids.length).toBe(12)
    expect(driver.heldStages().some(h => h.stage === held.stage)).toBe(false)
    // once the completion is over the replaced stage is closed
    const closedBy = Date.now() + 30_000
    for (;;) {
      const err = await held.stage.embed!.forward({ input_ids: int64(BigInt64Array.of(1n), [1, 1]) }).then(() => undefined, (e: Error) => e)
      if (err?.name === 'RuntimeClosedError') break
      if (Date.now() > closedBy) throw new Error(`the replaced stage is still open (${err?.name ?? 'forward ran'})`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }, 300_000)
})
