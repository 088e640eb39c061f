/**
 * Set-up shared by the node tests whose four NetworkNodes (real libp2p hosts on loopback, layer pool, onnxruntime
 * stages) each hold the whole of a micro model, so that every slot's DiLoCo group is the four of them, and whose
 * rounds the test drives itself (no node has training data).
 */
import { slotCount, slotMemory, TRAINING_BYTES_PER_PARAMETER } from '@neuroshard/layer-pool'
import { TINY } from '@neuroshard/model'
import { NetworkNode } from '../../src/network/node.js'
import type { NetworkNodeInit } from '../../src/network/node.js'
import type { DiLoCo } from '@neuroshard/diloco'
import type { ModelConfig } from '@neuroshard/model'
import type { TrainBatch } from '@neuroshard/pipeline'

/** A model small enough that four training nodes each hold all of it */
export const MICRO_CONFIG: ModelConfig = { ...TINY, vocabSize: 64, dModel: 32, nLayers: 1, nHeads: 2, nKvHeads: 1, ffnHidden: 64, maxSeqLen: 32 }
export const MICRO_SLOTS = slotCount(MICRO_CONFIG)
/** The whole micro model while training, with room to spare: every node holds every slot */
export const FULL_MEMORY = Math.ceil(1.2 * Array.from({ length: MICRO_SLOTS }, (_, s) => slotMemory(MICRO_CONFIG, s, TRAINING_BYTES_PER_PARAMETER)).reduce((a, b) => a + b, 0))

/** Polls `condition` every 100 ms; throws with `what()` after `ms` */
export async function until (condition: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what()}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** A deterministic 2 × 16 micro-batch of the micro model for inner step `step` */
export function microBatch (step: number): TrainBatch {
  const seq = 16
  const inputIds = BigInt64Array.from({ length: 2 * seq }, (_, t) => BigInt((t * 7 + step * 3) % MICRO_CONFIG.vocabSize))
  const targets = BigInt64Array.from({ length: 2 * seq }, (_, t) => BigInt((t * 7 + step * 3 + 1) % MICRO_CONFIG.vocabSize))
  return { inputIds, targets, batch: 2, seq }
}

/** A worker's "inner loop" for a test: the group's base weights moved by an amount that differs per worker */
export function localStep (g: DiLoCo, worker: number): Map<string, Float32Array> {
  const p = g.parameters()
  for (const v of p.values()) for (let k = 0; k < v.length; k++) v[k] -= 0.001 * (worker + 1) + 0.0001 * (k % 7)
  return p
}

/**
 * Starts A, then B, C and D bootstrapped from A, each offering the whole micro model's training memory; every node
 * is pushed to `nodes` as it starts (the caller stops them)
 */
export async function startFourReplicas (nodes: NetworkNode[], init: Pick<NetworkNodeInit, 'diloco' | 'innerSteps'>): Promise<[NetworkNode, NetworkNode, NetworkNode, NetworkNode]> {
  const start = async (bootstrap?: NetworkNode): Promise<NetworkNode> => {
    const node = new NetworkNode({
      config: MICRO_CONFIG,
      memoryBytes: FULL_MEMORY,
      ...init,
      layerPool: { reserveFraction: 0 },
      host: { bootstrap: bootstrap != null ? bootstrap.host.getMultiaddrs().map(String).filter(a => a.includes('/tcp/')) : [] }
    })
    nodes.push(node)
    await node.start()
    return node
  }
  const A = await start()
  return [A, await start(A), await start(A), await start(A)]
}

/**
 * Waits until every node holds every slot in one stage with its group, sees the three others as training holders of
 * each slot, and sees them on each slot's DiLoCo topic (so one node's announces reach each other node directly)
 */
export async function waitForWholeModelGroups (all: NetworkNode[]): Promise<void> {
  const slots = Array.from({ length: MICRO_SLOTS }, (_, s) => s)
  await until(() => all.every(n => n.heldStages().length === 1 && slots.every(s => n.group(s)?.initialized === true && n.slotReplicas(s).length === 4)), 240_000,
    () => all.map(n => `${n.heldStages().length} stages, ${slots.map(s => `${n.group(s)?.initialized === true ? 'group' : 'no group'} ${n.slotReplicas(s).length} replicas`).join('; ')}`).join(' | '))
  await until(() => slots.every(s => all.every(n => n.host.services.pubsub.getSubscribers(n.group(s)!.topic).length === 3)), 60_000,
    () => slots.map(s => all.map(n => n.host.services.pubsub.getSubscribers(n.group(s)!.topic).length).join(',')).join(' | '))
}

/**
 * Records, per slot, the rounds of `sender`'s announces that `observer`'s slot groups accept (filled as they come;
 * the map is returned at once)
 */
export function announcesSeen (observer: NetworkNode, sender: NetworkNode): Map<number, number[]> {
  const seen = new Map<number, number[]>()
  for (let s = 0; s < MICRO_SLOTS; s++) {
    const rounds: number[] = []
    seen.set(s, rounds)
    observer.group(s)!.addEventListener('diloco:announce', (e) => { if (e.detail.sender === sender.peerId.toString()) rounds.push(e.detail.round) })
  }
  return seen
}
