import { createNeuroShardHost } from '@neuroshard/host'
import { multiaddr } from '@multiformats/multiaddr'
import { layerPool, layerPoolRecordValidator } from '../src/index.js'
import type { LayerPool, LayerPoolInit } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { Libp2p } from '@libp2p/interface'

export type PoolHost = NeuroShardHost & Libp2p<{ layerPool: LayerPool }>

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
