/**
 * A devnet that trains and serves: N `NetworkNode`s on 127.0.0.1 sharing one genesis dataset and
 * tokenizer. Node 0 is every other node's bootstrap peer; the layer pool gives each node about half of
 * the model (memory is sized for that), so the nodes form pipelines of Driver → Validator with two or
 * more replicas of every slot, train with the pipeline and DiLoCo, and serve completions through the
 * pipeline.
 */
import { join } from 'node:path'
import { InvalidParametersError } from '@neuroshard/interface'
import { SERVING_BYTES_PER_PARAMETER, TRAINING_BYTES_PER_PARAMETER, slotCount, slotMemory } from '@neuroshard/layer-pool'
import { TINY } from '@neuroshard/model'
import { NetworkNode } from './node.js'
import { pipelineTokenizer } from './tokenizer.js'
import type { NetworkNodeInit, NodeData } from './node.js'
import type { StreamingTokenizer } from './tokenizer.js'
import type { ModelConfig } from '@neuroshard/model'
import type { BpeTokenizer } from '@neuroshard/tokenizer'

/** Nodes of a devnet unless told otherwise: two pipelines of two nodes (two replicas of every slot) */
export const DEFAULT_NETWORK_DEVNET_NODES = 4

export interface NetworkDevnetInit {
  /** @default 4 */
  nodes?: number
  /** The dataset's tokenizer (its vocabulary sizes the model) */
  tokenizer: BpeTokenizer
  data: NodeData
  /** Architecture (vocabSize is taken from the tokenizer) @default TINY */
  config?: ModelConfig
  /** Memory per node, bytes @default enough for about half of the model while training, plus the reserve */
  memoryBytes?: number
  /** Keep identities in `<dataDir>/node-<i>` */
  dataDir?: string
  /** Settings every node shares (inner steps, batch, DiLoCo, layer pool, …) */
  node?: Partial<Omit<NetworkNodeInit, 'config' | 'memoryBytes' | 'tokenizer' | 'data'>>
  /** Called as each node starts */
  onNode?(node: NetworkNode, index: number): void
}

export interface NetworkDevnet {
  readonly nodes: NetworkNode[]
  readonly config: ModelConfig
  readonly tokenizer: StreamingTokenizer
  /** Start one more node (bootstrapping from node 0, or from the first node still running) */
  addNode(): Promise<NetworkNode>
  /** Stop one node (graceful unless `kill`: then its host just closes, as a crash would) */
  stopNode(index: number, options?: { kill?: boolean }): Promise<void>
  stop(): Promise<void>
}

/**
 * Memory that holds the larger half of the model while training (the split into [0, k) and [k, L + 2)
 * whose larger part is smallest), 1% more, and nothing beyond: so every node takes one of the two
 * halves and the nodes pair into Driver → Validator pipelines. Devnet nodes keep no hot-swap reserve
 * (`reserveFraction: 0`); a killed node's pipeline waits while the others train on.
 */
export function halfModelMemory (config: ModelConfig, training = true): number {
  const slots = slotCount(config)
  const mem = Array.from({ length: slots }, (_, slot) => slotMemory(config, slot, training ? TRAINING_BYTES_PER_PARAMETER : SERVING_BYTES_PER_PARAMETER))
  const total = mem.reduce((a, b) => a + b, 0)
  let best = total
  let prefix = 0
  for (let k = 1; k < slots; k++) {
    prefix += mem[k - 1]
    best = Math.min(best, Math.max(prefix, total - prefix))
  }
  return Math.ceil(best * 1.01)
}

export async function startNetworkDevnet (init: NetworkDevnetInit): Promise<NetworkDevnet> {
  const count = init.nodes ?? DEFAULT_NETWORK_DEVNET_NODES
  if (!Number.isSafeInteger(count) || count < 1 || count > 64) throw new InvalidParametersError('nodes must be an integer from 1 to 64')
  const config = { ...(init.config ?? TINY), vocabSize: init.tokenizer.vocabSize }
  const tokenizer = pipelineTokenizer(init.tokenizer)
  const memoryBytes = init.memoryBytes ?? halfModelMemory(config, init.node?.training ?? true)
  const nodes: NetworkNode[] = []
  const stopped = new Set<NetworkNode>()

  const addNode = async (): Promise<NetworkNode> => {
    const index = nodes.length
    const seed = nodes.find(n => !stopped.has(n))
    const node = new NetworkNode({
      ...init.node,
      layerPool: { reserveFraction: 0, ...init.node?.layerPool },
      config,
      memoryBytes,
      tokenizer,
      data: init.data,
      host: {
        ...init.node?.host,
        ...(init.dataDir != null ? { dataDir: join(init.dataDir, `node-${index}`) } : {}),
        bootstrap: seed != null ? seed.host.getMultiaddrs().map(String).filter(a => a.includes('/tcp/')) : []
      }
    })
    nodes.push(node)
    await node.start()
    init.onNode?.(node, index)
    return node
  }

  try {
    await addNode()
    await Promise.all(Array.from({ length: count - 1 }, async () => { await addNode() }))
  } catch (err) {
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
    throw err
  }

  return {
    nodes,
    config,
    tokenizer,
    addNode,
    async stopNode (index, options = {}) {
      const node = nodes[index]
      if (node == null || stopped.has(node)) return
      stopped.add(node)
      if (options.kill === true) await node.kill()
      else await node.stop()
    },
    async stop () {
      await Promise.allSettled(nodes.filter(n => !stopped.has(n)).map(async n => { stopped.add(n); await n.stop() }))
    }
  }
}
