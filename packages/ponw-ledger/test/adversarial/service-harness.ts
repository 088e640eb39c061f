import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultLogger } from '@libp2p/logger'
import { LEDGER_TOPIC } from '../../src/constants.js'
import { ponwLedger } from '../../src/service.js'
import type { PonwLedger, PonwLedgerInit } from '../../src/service.js'

/** gossipsub stand-in: records what the service publishes; tests dispatch 'message' events into it */
export class FakePubsub extends EventTarget {
  readonly published: Uint8Array[] = []
  subscribe (): void {}
  unsubscribe (): void {}
  async publish (_topic: string, data: Uint8Array): Promise<void> {
    this.published.push(data)
  }

  deliver (data: Uint8Array, from?: { toString(): string }): void {
    this.dispatchEvent(new CustomEvent('message', { detail: { topic: LEDGER_TOPIC, data, type: 'signed', from } }))
  }
}

/** The ledger service over fake libp2p components (no network): what a gossip handler sees, nothing else */
export async function startService (init: Omit<PonwLedgerInit, 'path'>): Promise<{ svc: PonwLedger, pubsub: FakePubsub, close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ponw-adv-svc-'))
  const pubsub = new FakePubsub()
  const components = {
    registrar: { handle: async () => {}, unhandle: async () => {} },
    connectionManager: { openStream: async () => { throw new Error('no network in this test') } },
    events: new EventTarget(),
    logger: defaultLogger(),
    pubsub
  }
  const svc = ponwLedger({ ...init, path: dir, syncOnConnect: false })(components as any)
  await svc.start()
  return {
    svc,
    pubsub,
    close: async () => {
      await svc.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
}
