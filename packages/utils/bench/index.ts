/**
 * Stream helper benchmarks over two real libp2p hosts on loopback TCP (Noise + Yamux):
 *
 * - request/response: `sendRequest` → `handleRequests` round trips, sequential (latency) and with
 *   32 in flight (throughput); each opens and closes a stream
 * - streaming: many messages on one stream with `messageStream`, against `lpStream` from
 *   `@libp2p/utils` without timeouts, to show what the per-message deadline costs
 *
 * Run: cd packages/utils && pnpm run bench   (or: node_modules/.bin/tsc -b packages/utils && node packages/utils/dist/bench/index.js)
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import pDefer from 'p-defer'
import { handleRequests, messageStream, sendRequest } from '../src/index.js'
import { EchoRequest, EchoResponse } from '../test/fixtures/echo.js'
import { createConnectedHosts } from '../test/fixtures/hosts.js'
import type { Libp2p, Stream } from '@libp2p/interface'

interface Row { case: string, n: number, value: number, unit: string, note: string }

const rows: Row[] = []
const codecs = { requestCodec: EchoRequest, responseCodec: EchoResponse }

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

async function requestResponse (client: Libp2p, server: Libp2p): Promise<void> {
  const protocol = '/neuroshard-bench/echo/1.0.0'
  await handleRequests(server, protocol, (req: EchoRequest) => ({ text: req.text, payload: req.payload, count: 0 }), codecs)
  const request = { text: 'bench', payload: new Uint8Array(64) }
  const ask = async (): Promise<unknown> => sendRequest(client, server.peerId, protocol, request, codecs)

  for (let i = 0; i < 200; i++) await ask() // warm-up

  const n = 2_000
  const times: number[] = []

  for (let i = 0; i < n; i++) {
    const start = performance.now()
    await ask()
    times.push(performance.now() - start)
  }

  times.sort((a, b) => a - b)
  rows.push({ case: 'sendRequest 64 B, sequential', n, value: percentile(times, 0.5), unit: 'ms p50', note: `p99 ${percentile(times, 0.99).toFixed(3)} ms` })

  const concurrency = 32
  const total = 4_000
  let next = 0
  const start = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < total) await ask()
  }))
  const seconds = (performance.now() - start) / 1000
  rows.push({ case: `sendRequest 64 B, ${concurrency} in flight`, n: total, value: total / seconds, unit: 'req/s', note: '' })
}

/** Stream `count` messages of `size` bytes one way; returns MB/s */
async function streaming (client: Libp2p, server: Libp2p, size: number, count: number, helper: 'messageStream' | 'lpStream'): Promise<number> {
  const protocol = `/neuroshard-bench/stream-${helper}-${size}/1.0.0`
  const done = pDefer<void>()
  const maxMessageSize = Math.max(size, 1024)

  await server.handle(protocol, async (stream: Stream) => {
    try {
      if (helper === 'messageStream') {
        const reader = messageStream(stream, { maxMessageSize })
        for (let i = 0; i < count; i++) await reader.readBytes()
      } else {
        const reader = lpStream(stream, { maxDataLength: maxMessageSize })
        for (let i = 0; i < count; i++) await reader.read()
      }
      await stream.close()
      done.resolve()
    } catch (err) {
      done.reject(err)
    }
  })

  const stream = await client.dialProtocol(server.peerId, protocol)
  const body = new Uint8Array(size).fill(7)
  const start = performance.now()

  if (helper === 'messageStream') {
    const writer = messageStream(stream, { maxMessageSize })
    for (let i = 0; i < count; i++) await writer.writeBytes(body)
  } else {
    const writer = lpStream(stream, { maxDataLength: maxMessageSize })
    for (let i = 0; i < count; i++) await writer.write(body)
  }

  await done.promise
  const seconds = (performance.now() - start) / 1000
  await stream.close()
  await server.unhandle(protocol)
  return (size * count) / seconds / 1e6
}

async function main (): Promise<void> {
  const [client, server] = await createConnectedHosts()

  try {
    if (process.env.SKIP_RR == null) await requestResponse(client, server)

    for (const [size, count] of [[64, 20_000], [1024 * 1024, 100]] as const) {
      for (const helper of ['lpStream', 'messageStream'] as const) {
        await streaming(client, server, size, Math.ceil(count / 4), helper) // warm-up
        const mbps = await streaming(client, server, size, count, helper)
        const perMessage = helper === 'messageStream' ? 'with per-message timeout + cap' : '@libp2p/utils, no timeout'
        rows.push({ case: `${helper} ${size >= 1024 ? `${size / 1024 / 1024} MiB` : `${size} B`} messages, one stream`, n: count, value: mbps, unit: 'MB/s', note: `${(size / mbps).toFixed(1)} µs/msg, ${perMessage}` })
      }
    }
  } finally {
    await Promise.all([client.stop(), server.stop()])
  }

  console.table(rows.map((r) => ({ ...r, value: Number(r.value.toFixed(r.unit === 'req/s' ? 0 : 3)) })))
  const dir = join(import.meta.dirname, '../../bench-results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'stream-helpers.json')
  writeFileSync(file, JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2))
  console.log(`wrote ${file}`)
}

await main()
