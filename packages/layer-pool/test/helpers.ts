import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createNeuroShardHost } from '@neuroshard/host'
import { multiaddr } from '@multiformats/multiaddr'
import { TINY } from '@neuroshard/model'
import { genesisSlotParameters, layerPool, layerPoolRecordValidator, slotWeightsHash } from '../src/index.js'
import type { LayerPool, LayerPoolInit, LayerPoolRecord, LayerSpan } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { Libp2p } from '@libp2p/interface'

export type PoolHost = NeuroShardHost & Libp2p<{ layerPool: LayerPool }>

/** `issued_at_ms` of {@link sampleRecord}'s records */
export const SAMPLE_NOW = 1_800_000_000_000

/** A valid record of a fresh key with one two-slot span per entry of `spans` (fields overridden by the entry) */
export async function sampleRecord (spans: Array<Partial<LayerSpan>>): Promise<{ record: LayerPoolRecord, key: Awaited<ReturnType<typeof generateKeyPair>> }> {
  const key = await generateKeyPair('Ed25519')
  const H = (c: string): string => c.repeat(64)
  return {
    key,
    record: {
      modelId: 'devnet', version: 1, peerId: peerIdFromPrivateKey(key), sequence: 5n, issuedAt: SAMPLE_NOW, expiresAt: SAMPLE_NOW + 10_000,
      memoryBytes: 1 << 26, addresses: [multiaddr('/ip4/127.0.0.1/tcp/4001')],
      spans: spans.map((s, i) => ({
        start: 2 * i, end: 2 * i + 2, state: 'serving', throughput: 10, weightsStep: 0, claimedAt: SAMPLE_NOW - 1,
        slots: [{ weightsHash: H('a'), chunksRoot: H('b') }, { weightsHash: H('c'), chunksRoot: H('d') }], ...s
      }))
    }
  }
}

/** A real libp2p host (TCP on loopback) running the layer pool, connected to `bootstrap` if given */
export async function startPoolHost (init: LayerPoolInit, bootstrap?: PoolHost): Promise<PoolHost> {
  const host = await createNeuroShardHost<{ layerPool: LayerPool }>({
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    recordValidators: { 'layer-pool': layerPoolRecordValidator() },
    services: { layerPool: layerPool(init) }
  }) as PoolHost
  if (bootstrap != null) {
    // a loaded machine can time a handshake out: try again a few times before failing the test
    for (let attempt = 1; ; attempt++) {
      try {
        await host.dial(multiaddr(bootstrap.getMultiaddrs()[0]), { signal: AbortSignal.timeout(30_000) })
        break
      } catch (err) {
        if (attempt >= 5) {
          await host.stop()
          throw err
        }
        await new Promise(resolve => setTimeout(resolve, 500 * attempt))
      }
    }
  }
  return host
}

/** Polls `condition` every 100 ms (running `between` before each check, if given) until it holds; fails after `timeoutMs` */
export async function until (condition: () => boolean, timeoutMs: number, message: () => string, between?: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    await between?.()
    if (condition()) return
    if (Date.now() > deadline) throw new Error(`timed out: ${message()}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** Live replicas per slot as `pool` sees the swarm */
export function liveReplicas (pool: LayerPool): number[] {
  return pool.view().map(v => v.live)
}

export async function stopAll (hosts: Array<PoolHost | undefined>): Promise<void> {
  await Promise.all(hosts.map(async h => { await Promise.resolve(h?.stop()).catch(() => {}) }))
}

/**
 * A host holding all of TINY (`init` added) whose slot 1 it has trained: genesis weights plus `shift(i, name)`
 * per element, announced at step 1 with their hash
 */
export async function startTrainedHolder (init: LayerPoolInit, shift: (i: number, name: string) => number): Promise<{ host: PoolHost, trainedHash: string }> {
  const host = await startPoolHost({ config: TINY, memoryBytes: 16 * 1024 * 1024, ...init })
  try {
    await host.services.layerPool.whenServing({ signal: AbortSignal.timeout(60_000) })
    if (!host.services.layerPool.ownSpans().some(s => s.start <= 1 && 1 < s.end)) throw new Error('the holder does not hold slot 1')
    const trained = genesisSlotParameters(TINY, 1, 0)
    for (const [name, w] of trained) for (let i = 0; i < w.length; i++) w[i] += shift(i, name)
    await host.services.layerPool.updateSlotWeights(1, trained, 1)
    return { host, trainedHash: slotWeightsHash(TINY, 1, trained) }
  } catch (err) {
    await host.stop()
    throw err
  }
}
