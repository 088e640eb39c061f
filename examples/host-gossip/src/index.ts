/**
 * Example: two NeuroShard hosts (`@neuroshard/host`) on loopback.
 *
 * 1. start two hosts with `createNeuroShardHost()` (the full NeuroShard libp2p profile: TCP, QUIC,
 *    WebRTC-direct, Noise, Yamux, Kad-DHT, gossipsub… listening on 127.0.0.1 only),
 * 2. connect them,
 * 3. subscribe both to a gossipsub topic, wait until they are mesh peers, publish from A, receive on B,
 * 4. put a NeuroShard DHT record on A and read it back from B,
 * 5. stop both hosts (always, even on failure).
 *
 * Everything waits on events (graft, routing-table adds, messages) with a timeout, never on sleeps.
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-host-gossip start`
 */
import { pathToFileURL } from 'node:url'
import { createNeuroShardHost, getNeuroShardRecord, neuroShardRecordKey, putNeuroShardRecord } from '@neuroshard/host'
import type { NeuroShardHost } from '@neuroshard/host'

const TOPIC = '/neuroshard/example/1'

export interface HostGossipResult {
  /** the gossip message as B received it */
  message: string
  /** the peer id B says the message came from (gossipsub messages are signed by their author) */
  messageFrom: string
  /** A's peer id, for comparison */
  publisher: string
  /** the record B read from the DHT */
  record: { sequence: bigint, payload: string }
  /** how many peers stored A's record */
  storedBy: number
  /** both hosts report status 'stopped' at the end */
  stopped: boolean
}

/**
 * Resolves with the first `type` event on `target` that satisfies `predicate` (which is also checked
 * right away through `ready`, so a condition that already holds does not wait); rejects after `ms`.
 */
async function waitFor<E extends Event> (target: EventTarget, type: string, predicate: (evt?: E) => boolean, ms = 15_000): Promise<void> {
  if (predicate()) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      target.removeEventListener(type, listener)
      if (err === undefined) resolve(); else reject(err)
    }
    const listener = (evt: Event): void => { if (predicate(evt as E)) done() }
    const timer = setTimeout(() => { done(new Error(`timed out after ${ms} ms waiting for ${type}`)) }, ms)
    target.addEventListener(type, listener)
  })
}

export async function main (log: (line: string) => void = console.log): Promise<HostGossipResult> {
  const hosts: NeuroShardHost[] = []
  try {
    // --- 1. two hosts; no dataDir, so each gets a fresh identity for this run -------------------------
    const a = await createNeuroShardHost()
    hosts.push(a)
    const b = await createNeuroShardHost()
    hosts.push(b)
    log(`host A ${a.peerId.toString()} listening on ${a.getMultiaddrs().map(String).join(', ')}`)
    log(`host B ${b.peerId.toString()}`)

    // --- 2. B dials A (on a real network you would give B a bootstrap list instead) -------------------
    const connection = await b.dial(a.getMultiaddrs()[0])
    log(`B connected to A over ${connection.remoteAddr.toString()}`)

    // --- 3. gossipsub: subscribe both, wait until A has B in its mesh for the topic ---------------------
    a.services.pubsub.subscribe(TOPIC)
    b.services.pubsub.subscribe(TOPIC)
    await waitFor(a.services.pubsub, 'gossipsub:graft', () => a.services.pubsub.getMeshPeers(TOPIC).includes(b.peerId.toString()))
    log(`A and B are mesh peers on ${TOPIC}`)

    // B listens before A publishes
    const received = new Promise<{ text: string, from: string }>((resolve) => {
      b.services.pubsub.addEventListener('message', (evt) => {
        const msg = evt.detail
        if (msg.topic !== TOPIC) return
        // StrictSign: every message carries its author's id and signature
        resolve({ text: new TextDecoder().decode(msg.data), from: msg.type === 'signed' ? msg.from.toString() : 'unsigned' })
      })
    })
    const { recipients } = await a.services.pubsub.publish(TOPIC, new TextEncoder().encode('hello from A'))
    log(`A published to ${recipients.length} peer(s)`)
    const timeout = AbortSignal.timeout(15_000)
    const gossip = await Promise.race([received, new Promise<never>((_resolve, reject) => {
      timeout.addEventListener('abort', () => { reject(new Error('no gossip message within 15 s')) })
    })])
    log(`B received "${gossip.text}" from ${gossip.from}`)

    // --- 4. DHT records: key /neuroshard/<namespace>/<id>, value = sequence + payload ---------------------
    // wait until each host has the other in its Kad-DHT routing table
    for (const h of [a, b]) {
      const table = h.services.dht.routingTable
      await waitFor(table, 'peer:add', () => table.size >= 1)
    }
    const key = neuroShardRecordKey('example', 'greeting')
    const { storedBy } = await putNeuroShardRecord(a, key, { sequence: 1n, payload: new TextEncoder().encode('hello, DHT') })
    log(`A put /neuroshard/example/greeting; stored by ${storedBy.length} peer(s)`)
    const rec = await getNeuroShardRecord(b, key, { signal: AbortSignal.timeout(15_000) })
    const record = { sequence: rec.sequence, payload: new TextDecoder().decode(rec.payload) }
    log(`B got the record: sequence ${record.sequence}, payload "${record.payload}"`)

    // --- 5. clean stop --------------------------------------------------------------------------------
    await Promise.all(hosts.map(async h => { await h.stop() }))
    const stopped = hosts.every(h => h.status === 'stopped')
    log(`both hosts stopped: ${stopped}`)

    return { message: gossip.text, messageFrom: gossip.from, publisher: a.peerId.toString(), record, storedBy: storedBy.length, stopped }
  } finally {
    // stop() is idempotent: this only matters when something above threw
    await Promise.allSettled(hosts.map(async h => { await h.stop() }))
  }
}

// run only when executed directly (`node dist/src/index.js`), not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
