import { genesisSlotParameters, slotCount } from '@neuroshard/layer-pool'
import type { ModelConfig } from '@neuroshard/model'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/**
 * Waits until every slot of the model is held by some node of the devnet (and, with `everyNodeServes`, until every
 * node holds a stage): what a test needs before it asks for a route. Throws after `timeoutMs`.
 */
export async function waitForCoverage (devnet: NetworkDevnet, options: { everyNodeServes?: boolean, timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 240_000)
  const slots = Array.from({ length: slotCount(devnet.config) }, (_, s) => s)
  const ready = (): boolean => (options.everyNodeServes !== true || devnet.nodes.every(n => n.heldStages().length > 0)) &&
    slots.every(s => devnet.nodes.some(n => n.heldStages().some(h => h.start <= s && s < h.end)))
  while (!ready()) {
    if (Date.now() > deadline) throw new Error('the devnet did not cover the model')
    await sleep(250)
  }
}

/**
 * Runs `attempt` until it does not fail with `NoRouteError` (a Driver sees a route only once the other nodes' layer
 * records reached it by gossip); any other error, or a `NoRouteError` after `timeoutMs`, is thrown.
 */
export async function retryUntilRouted<T> (attempt: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await attempt()
    } catch (err: any) {
      if (err?.name !== 'NoRouteError' || Date.now() > deadline) throw err
      await sleep(250)
    }
  }
}

/** The whole model's genesis weights (init seed 0), slot by slot, as the devnet's nodes start from them */
export function genesisWeights (config: ModelConfig): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>()
  for (let slot = 0; slot < slotCount(config); slot++) for (const [k, v] of genesisSlotParameters(config, slot, 0)) weights.set(k, v)
  return weights
}

/** `n` greedy tokens of `prompt` through `driver`'s pipeline with their logits (retried until the records route) */
export async function greedyWithLogits (driver: NetworkNode, prompt: number[], n: number): Promise<Array<{ id: number, logits: Float32Array }>> {
  const served: Array<{ id: number, logits: Float32Array }> = []
  await retryUntilRouted(async () => {
    served.length = 0
    for await (const t of driver.host.services.pipeline.generate(prompt, { maxNewTokens: n, temperature: 0, returnLogits: true })) served.push({ id: t.id, logits: t.logits! })
  })
  return served
}
