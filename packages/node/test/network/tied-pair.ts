/**
 * The set-up the tied-owner specs share: two NetworkNodes on loopback (real libp2p hosts, layer pool, onnxruntime
 * stages, DiLoCo groups, the Driver loop on genesis data) with a tied micro model (nLayers 2, tiedOwner on), waited
 * for until the two cover the model; the Driver is the node holding slot 0, the Validator the other.
 */
import { createHash } from 'node:crypto'
import { slotCount } from '@neuroshard/layer-pool'
import { constantLr } from '@neuroshard/runtime'
import { expect } from 'vitest'
import { MICRO_CONFIG } from './four-replicas.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet, NetworkDevnetInit } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'

/** Poll `ready` every 100 ms; throw with `what()` after `ms` */
export async function until (ready: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what()}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

export const sha = (a: Float32Array): string => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex')

export interface TiedPair { dir: string, devnet: NetworkDevnet, slots: number, driver: NetworkNode, validator: NetworkNode }

/**
 * Start the pair: `innerSteps` H, batch 2 × 16 tokens, no evaluation, AdamW at a constant 2e-2, fp32 DiLoCo with a
 * 1.5 s minimum deadline; `node` and `ledger` add to or replace those. A failed wait for coverage stops the devnet
 * before it throws (the caller's afterAll has nothing to stop then).
 */
export async function startTiedPair (name: string, H: number, options: { node?: NetworkDevnetInit['node'], ledger?: NetworkDevnetInit['ledger'] } = {}): Promise<TiedPair> {
  const { dir, devnet } = await startTestDevnet(name, 300, {
    nodes: 2,
    config: { ...MICRO_CONFIG, nLayers: 2, tieEmbeddings: true },
    node: { innerSteps: H, batchSize: 2, seqLen: 16, evalEvery: 0, optimizer: { schedule: constantLr(2e-2) }, diloco: { minDeadlineMs: 1500, codec: 'fp32' }, ...options.node },
    ...(options.ledger !== undefined ? { ledger: options.ledger } : {})
  })
  try {
    const slots = slotCount(devnet.config)
    const covered = (): boolean => Array.from({ length: slots }, (_, s) => s).every(s => devnet.nodes.some(n => n.heldStages().some(h => h.start <= s && s < h.end)))
    await until(covered, 240_000, () => `the two nodes to cover the model (${devnet.nodes.map(n => n.heldStages().map(h => `${h.start}-${h.end}`).join(',')).join(' | ')})`)
    const driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
    const validator = devnet.nodes.find(n => n !== driver)!
    expect(validator.heldStages().some(h => h.end === slots)).toBe(true)
    expect(driver.tiedOwner && validator.tiedOwner).toBe(true)
    return { dir, devnet, slots, driver, validator }
  } catch (err) {
    await stopTestDevnet(devnet, dir)
    throw err
  }
}
