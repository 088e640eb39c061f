import { createNeuroShardHost } from '@neuroshard/host'
import { multiaddr } from '@multiformats/multiaddr'
import { diloco } from '../src/index.js'
import type { DiLoCo, DiLoCoInit, Span } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { Libp2p } from '@libp2p/interface'

export type DiLoCoHost = NeuroShardHost & Libp2p<{ diloco: DiLoCo }>

/** A small span: a (3 elements) and b (2 × 2) */
export const TOY_SPAN: Span = { id: 'toy', parameters: [{ name: 'b', shape: [2, 2] }, { name: 'a', shape: [3] }] }

export async function startHost (init: DiLoCoInit): Promise<DiLoCoHost> {
  return await createNeuroShardHost<{ diloco: DiLoCo }>({
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    services: { diloco: diloco(init) }
  }) as DiLoCoHost
}

/** Connects every host to every other and waits until each sees all others on the group topic */
export async function connectAll (hosts: DiLoCoHost[], topicOf = (h: DiLoCoHost) => h.services.diloco.topic): Promise<void> {
  for (let i = 0; i < hosts.length; i++) {
    for (let j = i + 1; j < hosts.length; j++) await hosts[i].dial(multiaddr(hosts[j].getMultiaddrs()[0]))
  }
  await until(() => hosts.every(h => h.services.pubsub.getSubscribers(topicOf(h)).length >= hosts.length - 1), 20_000, () => 'topic subscriptions')
}

export async function connect (a: DiLoCoHost, b: DiLoCoHost): Promise<void> {
  await a.dial(multiaddr(b.getMultiaddrs()[0]))
}

export async function until (condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${message()}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

export async function stopAll (hosts: Array<DiLoCoHost | undefined>): Promise<void> {
  await Promise.all(hosts.map(async h => { await Promise.resolve(h?.stop()).catch(() => {}) }))
}

export function toyParams (a: number[], b: number[]): Map<string, Float32Array> {
  return new Map([['a', Float32Array.from(a)], ['b', Float32Array.from(b)]])
}
