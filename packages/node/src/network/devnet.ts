/**
 * A devnet that trains and serves: N `NetworkNode`s on 127.0.0.1 sharing one genesis dataset and
 * tokenizer. Node 0 is every other node's bootstrap peer; the layer pool gives each node about half of
 * the model (memory is sized for that), so the nodes form pipelines of Driver → Validator with two or
 * more replicas of every slot, train with the pipeline and DiLoCo, and serve completions through the
 * pipeline.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NEURO, Wallet, createGenesis, defaultParams, toHex } from '@neuroshard/ponw-ledger'
import { InvalidParametersError } from '@neuroshard/interface'
import { SERVING_BYTES_PER_PARAMETER, TRAINING_BYTES_PER_PARAMETER, slotCount, slotMemory } from '@neuroshard/layer-pool'
import { TINY } from '@neuroshard/model'
import { NetworkNode } from './node.js'
import { dataManifestHash, ledgerDataShards } from '../ponw/data-shards.js'
import type { LedgerDataShard } from '../ponw/data-shards.js'
import { pipelineTokenizer } from './tokenizer.js'
import type { NetworkNodeInit, NodeData } from './node.js'
import type { StreamingTokenizer } from './tokenizer.js'
import type { ModelConfig } from '@neuroshard/model'
import type { BpeTokenizer } from '@neuroshard/tokenizer'
import type { GenesisConfig, LedgerParams } from '@neuroshard/ponw-ledger'

/**
 * Ledger timing of a devnet: minute epochs, 5-second heartbeats, minute training rounds (validators vote on
 * a training proof within two rounds of its own). A message is votable within two epochs of its own: on a busy
 * machine a validator's queue of training proofs to re-execute took longer than the one-epoch default, the
 * proofs expired half-voted and held up their senders' accounts
 */
export const DEVNET_LEDGER_PARAMS: Readonly<Partial<LedgerParams>> = Object.freeze({ epochMs: 60_000, roundMs: 60_000, heartbeatSeconds: 5, epochWindow: 2 })

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
  /** Called for each node before it starts: listeners attached here see everything it does from its start */
  onCreated?(node: NetworkNode, index: number): void
  /** Called as each node starts */
  onNode?(node: NetworkNode, index: number): void
  /**
   * The devnet's ledger (Proof of Neural Work): every node gets a fresh wallet, the first `validators`
   * nodes (@default all initial nodes) are the genesis validators (1,000 NEURO staked each) and every
   * wallet starts with `allocation` (@default 100 NEURO). `false`: no ledger.
   */
  ledger?: false | { validators?: number, allocation?: bigint, params?: Partial<LedgerParams> }
}

export interface NetworkDevnet {
  readonly nodes: NetworkNode[]
  readonly config: ModelConfig
  readonly tokenizer: StreamingTokenizer
  /** The ledger's genesis (undefined without a ledger) */
  readonly genesis?: GenesisConfig
  /** Node i's wallet (with a ledger) */
  readonly wallets: Wallet[]
  /** Start one more node (bootstrapping from node 0, or from the first node still running) */
  addNode(settings?: Partial<Omit<NetworkNodeInit, 'config' | 'tokenizer' | 'data' | 'ponw'>>): Promise<NetworkNode>
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
  // a node that bakes its weights offers its layer pool half its memory (NetworkNodeInit.bakeWeights)
  const bakes = init.node?.bakeWeights === true && init.node?.training === false && (init.node?.quantization ?? 'fp32') === 'fp32' && init.node?.fuseInference !== true
  const memoryBytes = init.memoryBytes ?? halfModelMemory(config, init.node?.training ?? true) * (bakes ? 2 : 1)
  const nodes: NetworkNode[] = []
  const stopped = new Set<NetworkNode>()
  const wallets: Wallet[] = []
  let genesis: GenesisConfig | undefined
  let ledgerDir: string | undefined
  let shards: LedgerDataShard[] = []
  if (init.ledger !== false) {
    shards = ledgerDataShards(init.data.train)
    const validators = init.ledger?.validators ?? count
    for (let i = 0; i < count; i++) wallets.push(Wallet.generate())
    const train = init.data.manifest.shards.filter(s => s.split === 'train').length
    genesis = createGenesis({
      network: `neuroshard-devnet-${Date.now()}`,
      genesisTimeMs: Date.now(),
      validators: wallets.slice(0, validators).map(w => ({ publicKey: toHex(w.publicKey), stake: 1000n * NEURO })),
      allocations: wallets.map(w => ({ address: w.address, balance: init.ledger !== false ? init.ledger?.allocation ?? 100n * NEURO : 0n })).filter(a => a.balance > 0n),
      params: { ...defaultParams(), ...DEVNET_LEDGER_PARAMS, totalShards: Math.max(1, train), shardsPerAssignment: Math.min(2, Math.max(1, train)), ...init.ledger?.params },
      // data proofs: the genesis names the train shards as the ledger's data manifest
      ...(train > 0 ? { dataManifestHash: dataManifestHash(shards) } : {})
    })
    ledgerDir = await mkdtemp(join(tmpdir(), 'neuroshard-devnet-ledger-'))
  }

  const addNode = async (settings: Partial<Omit<NetworkNodeInit, 'config' | 'tokenizer' | 'data' | 'ponw'>> = {}): Promise<NetworkNode> => {
    const index = nodes.length
    const seed = nodes.find(n => !stopped.has(n))
    if (genesis != null && wallets[index] == null) wallets[index] = Wallet.generate()
    const node = new NetworkNode({
      ...init.node,
      ...settings,
      layerPool: { reserveFraction: 0, ...init.node?.layerPool, ...settings.layerPool },
      config,
      memoryBytes: settings.memoryBytes ?? memoryBytes,
      tokenizer,
      data: init.data,
      ...(genesis != null && ledgerDir != null ? { ponw: { genesis, wallet: wallets[index], path: join(ledgerDir, `node-${index}`), ...(shards.length > 0 ? { data: { shards } } : {}) } } : {}),
      host: {
        ...init.node?.host,
        ...(init.dataDir != null ? { dataDir: join(init.dataDir, `node-${index}`) } : {}),
        bootstrap: seed != null ? seed.host.getMultiaddrs().map(String).filter(a => a.includes('/tcp/')) : []
      }
    })
    nodes.push(node)
    init.onCreated?.(node, index)
    await node.start()
    init.onNode?.(node, index)
    return node
  }

  try {
    await addNode()
    await Promise.all(Array.from({ length: count - 1 }, async () => { await addNode() }))
  } catch (err) {
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
    if (ledgerDir != null) await rm(ledgerDir, { recursive: true, force: true })
    throw err
  }

  return {
    nodes,
    config,
    tokenizer,
    ...(genesis != null ? { genesis } : {}),
    wallets,
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
      if (ledgerDir != null) await rm(ledgerDir, { recursive: true, force: true })
    }
  }
}
