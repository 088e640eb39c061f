import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { ponwLedger } from '../src/service.js'
import type { PonwLedger, PonwLedgerInit } from '../src/service.js'
import type { Libp2p, PeerId } from '@libp2p/interface'

export interface TestNode {
  libp2p: Libp2p<{ pubsub: any, identify: any, ledger: PonwLedger }>
  ledger: PonwLedger
  /** while true, this node refuses every connection (a network partition) */
  partition: { on: boolean }
}

/** A minimal real libp2p 3 host on loopback TCP with gossipsub and the ledger service */
export async function createTestNode (init: PonwLedgerInit): Promise<TestNode> {
  const partition = { on: false }
  const libp2p = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      denyDialPeer: async () => partition.on,
      denyInboundEncryptedConnection: async () => partition.on
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false }),
      ledger: ponwLedger(init)
    }
  })
  return { libp2p: libp2p as any, ledger: (libp2p.services as any).ledger, partition }
}

/**
 * Resolves when `check()` is true, re-checking whenever one of `events` fires on one of `targets`
 * (no fixed sleeps); rejects after `timeoutMs` with `what` in the message.
 */
export async function waitFor (check: () => boolean, targets: EventTarget[], events: string[], timeoutMs: number, what: string): Promise<void> {
  if (check()) {
    return
  }
  await new Promise<void>((resolve, reject) => {
    const listeners: Array<() => void> = []
    const done = (err?: Error): void => {
      clearTimeout(timer)
      listeners.forEach(off => { off() })
      err == null ? resolve() : reject(err)
    }
    const timer = setTimeout(() => { done(new Error(`timed out waiting for ${what}`)) }, timeoutMs)
    const onEvent = (): void => {
      if (check()) {
        done()
      }
    }
    for (const t of targets) {
      for (const e of events) {
        t.addEventListener(e, onEvent)
        listeners.push(() => { t.removeEventListener(e, onEvent) })
      }
    }
  })
}

/** Connects every pair and waits until every node sees every other as a topic subscriber */
export async function connectAll (nodes: TestNode[], topic: string): Promise<void> {
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) {
      await nodes[i].libp2p.dial(nodes[j].libp2p.getMultiaddrs()[0])
    }
  }
  await waitForSubscribers(nodes, topic)
}

export async function waitForSubscribers (nodes: TestNode[], topic: string, expect?: Map<TestNode, PeerId[]>): Promise<void> {
  for (const n of nodes) {
    const others = expect?.get(n) ?? nodes.filter(m => m !== n).map(m => m.libp2p.peerId)
    await waitFor(() => {
      const subs = new Set(n.libp2p.services.pubsub.getSubscribers(topic).map((p: PeerId) => p.toString()))
      return others.every(o => subs.has(o.toString()))
    }, [n.libp2p.services.pubsub], ['subscription-change'], 20_000, 'topic subscribers')
  }
}
