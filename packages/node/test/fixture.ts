/**
 * A node as the API serves it, from real parts: four libp2p hosts on loopback running the layer pool
 * (`tiny`, about half the model each), a ponw-ledger service on host 0 (single validator, 100 NEURO),
 * the local fallback generator (a small random-init NeuroLLM on onnxruntime with a BPE tokenizer
 * trained here), a training recorder, and the API server of host 0.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNeuroShardHost } from '@neuroshard/host'
import { layerPool, layerPoolRecordValidator } from '@neuroshard/layer-pool'
import { TINY, initShardParameters } from '@neuroshard/model'
import { NEURO, Wallet, createGenesis, ponwLedger, toHex } from '@neuroshard/ponw-ledger'
import { trainBpe } from '@neuroshard/tokenizer'
import { LocalGenerator, TrainingRecorder, createLocalBackend, startApiServer } from '../src/index.js'
import type { ApiServer, ApiServerOptions, NodeBackend } from '../src/index.js'
import type { LayerPool } from '@neuroshard/layer-pool'
import type { PonwLedger } from '@neuroshard/ponw-ledger'

export const TOKEN = 'test-token-0123456789'

const SENTENCES = [
  'The network trains the model together.', 'Every node holds a slice of the transformer.',
  'A worker keeps the cache of the session.', 'The validator computes the loss at the head.',
  'Rewards are paid in NEURO for verified work.', 'Peers find each other through the DHT.',
  'The driver embeds the tokens and sends activations.', 'Gradients flow back along the same route.'
]

export async function testGenerator (): Promise<LocalGenerator> {
  const docs = Array.from({ length: 40 }, (_, i) => SENTENCES[i % SENTENCES.length] + ' ' + SENTENCES[(i * 3) % SENTENCES.length])
  const tokenizer = trainBpe(docs, { vocabSize: 320 })
  const config = { ...TINY, vocabSize: tokenizer.vocabSize }
  const parameters = new Map([
    ...initShardParameters(config, { kind: 'embed' }, 7),
    ...initShardParameters(config, { kind: 'blocks', start: 0, end: config.nLayers }, 7),
    ...initShardParameters(config, { kind: 'head' }, 7)
  ])
  return LocalGenerator.create({ tokenizer, config, parameters, threads: 1 })
}

type PoolNode = Awaited<ReturnType<typeof createNeuroShardHost<{ layerPool: LayerPool, ledger: PonwLedger }>>>

export interface NodeFixture {
  hosts: PoolNode[]
  backend: NodeBackend
  recorder: TrainingRecorder
  generator: LocalGenerator
  wallet: Wallet
  server: ApiServer
  /** Another API server on the same backend */
  startServer(options?: Partial<ApiServerOptions>): Promise<ApiServer>
  stop(): Promise<void>
}

/** Polls until `condition()` holds (re-checks every 100 ms) */
export async function until (condition: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await condition()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

export async function startNodeFixture (options: { hosts?: number, generator?: LocalGenerator, slotsOfMemory?: number } = {}): Promise<NodeFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'neuroshard-api-'))
  const wallet = Wallet.generate()
  const genesis = createGenesis({
    network: 'api-test',
    validators: [{ publicKey: toHex(wallet.publicKey), stake: 1000n * NEURO }],
    allocations: [{ address: wallet.address, balance: 100n * NEURO }]
  })
  const hosts: PoolNode[] = []
  const servers: ApiServer[] = []
  let generator: LocalGenerator | undefined
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map(async s => { await s.close() }))
    await Promise.all(hosts.map(async h => { await Promise.resolve(h.stop()).catch(() => {}) }))
    await generator?.close()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const slotBytes = 4 * 46_208 // one tiny block in fp32
    for (let i = 0; i < (options.hosts ?? 4); i++) {
      const host = await createNeuroShardHost<{ layerPool: LayerPool, ledger: PonwLedger }>({
        transports: { quic: false, webrtcDirect: false, circuitRelay: false },
        recordValidators: { 'layer-pool': layerPoolRecordValidator() },
        services: {
          layerPool: layerPool({ modelId: 'api-test', config: TINY, memoryBytes: Math.round((options.slotsOfMemory ?? 2.9) * slotBytes), heartbeatIntervalMs: 500, recordTtlMs: 4_000 }),
          ...(i === 0 ? { ledger: ponwLedger({ genesis, path: join(dir, 'ledger'), wallet }) } : {})
        }
      }) as PoolNode
      hosts.push(host)
      if (i > 0) await host.dial(hosts[0].getMultiaddrs()[0])
    }
    const pool = hosts[0].services.layerPool
    await until(() => pool.view().every(v => v.live >= 2) && hosts.every(h => h.services.layerPool.ownSpans().every(s => s.state === 'serving')), 60_000, 'every slot at 2 live replicas')
    generator = options.generator ?? await testGenerator()
    const recorder = new TrainingRecorder({ innerSteps: 10 })
    const backend = createLocalBackend({ host: hosts[0], layerPool: pool, generator, training: recorder, ledger: hosts[0].services.ledger })
    const startServer = async (o: Partial<ApiServerOptions> = {}): Promise<ApiServer> => {
      const s = await startApiServer({ backend, port: 0, token: TOKEN, ...o })
      servers.push(s)
      return s
    }
    const server = await startServer()
    return { hosts, backend, recorder, generator, wallet, server, startServer, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
