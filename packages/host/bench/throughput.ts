/**
 * Throughput between two NeuroShard hosts on loopback, 1 MiB messages:
 * - direct stream: one libp2p stream, the sender writes N × 1 MiB (respecting backpressure), the receiver
 *   counts the bytes and answers with the total; time from first write to the answer
 * - gossipsub: the publisher publishes M × 1 MiB messages on a topic the receiver is subscribed to; time
 *   from the first publish to the last delivery
 * over TCP (Noise + Yamux) and QUIC. MB/s with 1 MB = 10^6 bytes.
 *
 * Run: node_modules/.bin/tsc -b packages/host && node_modules/.bin/node packages/host/dist/bench/throughput.js
 * Options (env): BENCH_STREAM_MIB (default 256), BENCH_GOSSIP_MESSAGES (default 64), BENCH_ROUNDS (default 3),
 * BENCH_GOSSIP_WINDOW (default 8)
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createNeuroShardHost } from '../src/index.js'
import type { NeuroShardHost } from '../src/index.js'
import type { Stream } from '@libp2p/interface'

const MIB = 1024 * 1024
const STREAM_MIB = Number(process.env.BENCH_STREAM_MIB ?? 256)
const GOSSIP_MESSAGES = Number(process.env.BENCH_GOSSIP_MESSAGES ?? 64)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
/**
 * Gossipsub has no backpressure: publish() only queues bytes on each peer's stream, and a stream whose
 * unsent bytes pass the outbound buffer cap is reset. So the publisher keeps at most this many messages in
 * flight (published, not yet delivered), as an application must.
 */
const GOSSIP_WINDOW = Number(process.env.BENCH_GOSSIP_WINDOW ?? 8)
const PROTOCOL = '/neuroshard/bench/throughput/1.0.0'
const TOPIC = 'neuroshard-bench/1'

type TransportName = 'tcp' | 'quic'

interface Result {
  transport: TransportName
  kind: 'stream' | 'gossipsub'
  messages: number
  messageBytes: number
  /** best of the rounds */
  seconds: number
  mbPerSecond: number
  rounds: number[]
}

async function pair (transport: TransportName): Promise<[NeuroShardHost, NeuroShardHost]> {
  const opts = transport === 'tcp'
    ? { transports: { tcp: true, quic: false, webrtcDirect: false } }
    : { transports: { tcp: false, quic: true, webrtcDirect: false } }
  const a = await createNeuroShardHost(opts)
  const b = await createNeuroShardHost(opts)
  const identified = new Promise<void>((resolve) => {
    const onIdentify = (evt: CustomEvent<{ peerId: { equals(o: unknown): boolean } }>): void => {
      if (evt.detail.peerId.equals(b.peerId)) {
        a.removeEventListener('peer:identify', onIdentify as any)
        resolve()
      }
    }
    a.addEventListener('peer:identify', onIdentify as any)
  })
  const conn = await a.dial(b.getMultiaddrs()[0])
  if (!conn.remoteAddr.toString().includes(transport === 'tcp' ? '/tcp/' : '/quic-v1')) {
    throw new Error(`expected a ${transport} connection, got ${conn.remoteAddr.toString()}`)
  }
  await identified
  return [a, b]
}

async function readAll (stream: Stream): Promise<number> {
  let total = 0
  for await (const chunk of stream) {
    total += chunk.byteLength
  }
  return total
}

async function streamRound (a: NeuroShardHost, b: NeuroShardHost, chunk: Uint8Array): Promise<number> {
  const stream = await a.dialProtocol(b.peerId, PROTOCOL)
  const start = performance.now()
  for (let i = 0; i < STREAM_MIB; i++) {
    if (!stream.send(chunk)) {
      await stream.onDrain()
    }
  }
  await stream.close()
  let reply: Uint8Array = new Uint8Array()
  for await (const buf of stream) {
    reply = buf.subarray()
  }
  const seconds = (performance.now() - start) / 1000
  const received = Number(new DataView(reply.buffer, reply.byteOffset, reply.byteLength).getBigUint64(0))
  if (received !== STREAM_MIB * MIB) {
    throw new Error(`receiver counted ${received} bytes, expected ${STREAM_MIB * MIB}`)
  }
  return seconds
}

async function benchStream (transport: TransportName): Promise<Result> {
  const [a, b] = await pair(transport)
  try {
    await b.handle(PROTOCOL, async (stream) => {
      const total = await readAll(stream)
      const reply = new Uint8Array(8)
      new DataView(reply.buffer).setBigUint64(0, BigInt(total))
      stream.send(reply)
      await stream.close()
    }, { maxInboundStreams: 4 })
    const chunk = new Uint8Array(MIB).fill(7)
    await streamRound(a, b, chunk) // warm-up
    const rounds: number[] = []
    for (let r = 0; r < ROUNDS; r++) rounds.push(await streamRound(a, b, chunk))
    const seconds = Math.min(...rounds)
    return { transport, kind: 'stream', messages: STREAM_MIB, messageBytes: MIB, seconds, mbPerSecond: STREAM_MIB * MIB / 1e6 / seconds, rounds }
  } finally {
    await a.stop()
    await b.stop()
  }
}

async function gossipRound (a: NeuroShardHost, b: NeuroShardHost, round: number): Promise<number> {
  const messages = Array.from({ length: GOSSIP_MESSAGES }, (_, i) => {
    const m = new Uint8Array(MIB)
    // distinct payloads; the StrictSign message id is from+seqno anyway
    new DataView(m.buffer).setUint32(0, round * 1_000_000 + i)
    return m
  })
  let received = 0
  let onProgress: (() => void) | undefined
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`gossipsub round timed out with ${received}/${GOSSIP_MESSAGES} received`)) }, 120_000)
    const onMessage = (evt: CustomEvent<{ topic: string, data: Uint8Array }>): void => {
      if (evt.detail.topic !== TOPIC || evt.detail.data.byteLength !== MIB) return
      received++
      onProgress?.()
      if (received === GOSSIP_MESSAGES) {
        clearTimeout(timer)
        b.services.pubsub.removeEventListener('message', onMessage as any)
        resolve()
      }
    }
    b.services.pubsub.addEventListener('message', onMessage as any)
  })
  const start = performance.now()
  let published = 0
  for (const m of messages) {
    if (published - received >= GOSSIP_WINDOW) {
      await new Promise<void>((resolve) => { onProgress = resolve })
      onProgress = undefined
    }
    await a.services.pubsub.publish(TOPIC, m)
    published++
  }
  await done
  return (performance.now() - start) / 1000
}

async function benchGossip (transport: TransportName): Promise<Result> {
  const [a, b] = await pair(transport)
  try {
    a.services.pubsub.subscribe(TOPIC)
    b.services.pubsub.subscribe(TOPIC)
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (a.services.pubsub.getMeshPeers(TOPIC).includes(b.peerId.toString())) {
          a.services.pubsub.removeEventListener('gossipsub:graft', check)
          resolve()
        }
      }
      a.services.pubsub.addEventListener('gossipsub:graft', check)
      check()
    })
    await gossipRound(a, b, 0) // warm-up
    const rounds: number[] = []
    for (let r = 1; r <= ROUNDS; r++) rounds.push(await gossipRound(a, b, r))
    const seconds = Math.min(...rounds)
    return { transport, kind: 'gossipsub', messages: GOSSIP_MESSAGES, messageBytes: MIB, seconds, mbPerSecond: GOSSIP_MESSAGES * MIB / 1e6 / seconds, rounds }
  } finally {
    await a.stop()
    await b.stop()
  }
}

const results: Result[] = []
for (const transport of ['tcp', 'quic'] as const) {
  results.push(await benchStream(transport))
  results.push(await benchGossip(transport))
}

const rows = results.map(r => `| ${r.kind.padEnd(9)} | ${r.transport.padEnd(4)} | ${String(r.messages).padStart(8)} × 1 MiB | ${r.mbPerSecond.toFixed(1).padStart(8)} MB/s |`)
console.log('| path      | via  | messages       | throughput    |')
console.log('|-----------|------|----------------|---------------|')
for (const row of rows) console.log(row)

const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench-results', 'throughput.json')
await mkdir(dirname(out), { recursive: true })
await writeFile(out, JSON.stringify({ date: new Date().toISOString(), node: process.version, rounds: ROUNDS, gossipWindow: GOSSIP_WINDOW, results }, null, 2) + '\n')
console.log(`wrote ${out}`)
