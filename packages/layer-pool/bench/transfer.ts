/**
 * Weight transfer throughput against a raw libp2p stream, over loopback TCP (Noise + Yamux).
 *
 * Two hosts in this process. The raw run pushes the same bytes (the span's canonical stream) through a
 * plain stream of a trivial protocol (the server `send`s 1 MiB pieces with drain backpressure, the client
 * counts and drops them); the transfer run is `fetchSpanWeights` from one replica (manifest, chunk
 * requests, sha256 of every chunk, copy into the result, the whole-span contentHash), run as:
 * into a buffer the caller hands in and reuses (`into`: a node replacing weights it holds), with the
 * whole-span hash inline (the default) and on the helper thread (`hashOnThread: true`); into a buffer
 * the helper thread prefaulted (`prefaultedBuffer`, what the layer pool passes; the prefault's time is
 * counted); and into a new buffer (no `into`). Another run, raw + store, is the raw stream whose client
 * also copies the bytes into a new buffer of the total size: what keeping the bytes in new memory costs
 * by itself (first writes to new memory are slow on some VMs). Runs alternate so all see the same load;
 * the table reports the median of the warm runs (the cold first transfer also hashes the content on the
 * server and is reported apart).
 *
 * Run: `cd packages/layer-pool && npx tsc -b && ../../node_modules/.bin/node dist/bench/transfer.js [MB] [rounds]`
 * (default ≈ 101 MB: two blocks of a d = 1024 model, 7 rounds). Results: bench/results/transfer.json
 * (transfer-glibc-tunables.json when GLIBC_TUNABLES is set, e.g. `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`,
 * which backs large buffers with transparent huge pages and removes most first-touch page faults).
 */

import { execSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { createNeuroShardHost } from '@neuroshard/host'
import { digestChunks, fetchSpanWeights, prefaultedBuffer, spanLayout, streamBytes, tensorsContentHash, toHex, weightsServer } from '../src/transfer/index.js'
import type { SpanTensor } from '../src/transfer/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { ModelConfig } from '@neuroshard/model'

const RAW_PROTOCOL = '/neuroshard-bench/raw/1.0.0'
const MB = 1e6
/** Warm rounds (each: raw, transfer into the reused buffer (hash inline, then on the thread), into a prefaulted buffer, into a new buffer, raw + store) @default 7 */
const WARM_RUNS = Math.max(1, Number(process.argv[3] ?? 7))

/** A model whose blocks are ≈ 50.6 MB each; `blocks` of them make the span */
function benchConfig (): ModelConfig {
  return { vocabSize: 1024, dModel: 1024, nLayers: 8, nHeads: 8, nKvHeads: 8, ffnHidden: 2816, maxSeqLen: 128, ropeTheta: 10000, normEps: 1e-5, tieEmbeddings: false }
}

function makeTensors (config: ModelConfig, start: number, end: number): SpanTensor[] {
  let state = 12345
  return spanLayout(config, start, end, 'weights').map(t => {
    const data = new Float32Array(t.shape.reduce((a, b) => a * b, 1))
    for (let i = 0; i < data.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0
      data[i] = state / 2 ** 32 - 0.5
    }
    return { name: t.name, shape: [...t.shape], data }
  })
}

/** One raw run; with `store` the client also copies what it receives into a fresh buffer of the total size */
async function rawRun (client: NeuroShardHost, server: NeuroShardHost, expectBytes: number, store = false): Promise<number> {
  const started = performance.now()
  const stream = await client.dialProtocol(server.peerId, RAW_PROTOCOL)
  stream.send(Uint8Array.of(1))
  await stream.close()
  const into = store ? new Uint8Array(expectBytes) : undefined
  let received = 0

  for await (const chunk of stream) {
    if (into != null && received + chunk.byteLength <= expectBytes) {
      into.set(chunk.subarray(), received)
    }
    received += chunk.byteLength
  }

  if (received !== expectBytes) {
    throw new Error(`raw run received ${received} bytes, expected ${expectBytes}`)
  }

  return (performance.now() - started) / 1000
}

function median (values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function main (): Promise<void> {
  const config = benchConfig()
  const blocks = Math.max(1, Math.round(Number(process.argv[2] ?? 100) / 50.6))
  const start = 1
  const end = 1 + blocks
  const tensors = makeTensors(config, start, end)
  const totalBytes = streamBytes(tensors)
  const digest = digestChunks(tensors)
  const expected = {
    modelId: 'bench', version: 1, start, end, part: 'weights' as const, config,
    chunksRoot: toHex(digest.chunksRoot), weightsHash: tensorsContentHash(tensors)
  }
  // the raw run pushes the same bytes, 1 MiB at a time
  const pieces: Uint8Array[] = []
  for (const t of [...tensors].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)
    for (let at = 0; at < bytes.byteLength; at += 1 << 20) pieces.push(bytes.subarray(at, at + (1 << 20)))
  }

  const transports = { quic: false, webrtcDirect: false, circuitRelay: false }
  const server = await createNeuroShardHost({ transports })
  const client = await createNeuroShardHost({ transports })

  await server.handle(RAW_PROTOCOL, async (stream) => {
    for await (const _ of stream) { break } // the one-byte request
    for (const piece of pieces) {
      if (!stream.send(piece)) {
        await new Promise<void>((resolve, reject) => {
          const onDrain = (): void => { stream.removeEventListener('close', onClose); resolve() }
          const onClose = (): void => { stream.removeEventListener('drain', onDrain); reject(new Error('stream closed')) }
          stream.addEventListener('drain', onDrain, { once: true })
          stream.addEventListener('close', onClose, { once: true })
        })
      }
    }
    await stream.close()
  })
  const weights = weightsServer({ registrar: server }, { provider: () => ({ tensors }) })
  await weights.start()
  await client.dial(server.getMultiaddrs())

  const reused = new Uint8Array(totalBytes)
  const transferRun = async (into?: Uint8Array | 'prefault', hashOnThread = false): Promise<number> => {
    const t0 = performance.now()
    const buffer = into === 'prefault' ? await prefaultedBuffer(totalBytes) : into
    const result = await fetchSpanWeights(client, [server.peerId], expected, { timeout: 60_000, into: buffer, hashOnThread })
    const seconds = (performance.now() - t0) / 1000
    if (result.weightsHash !== expected.weightsHash) throw new Error('hash mismatch')
    return seconds
  }

  // warm the connection and the raw path once, then the cold transfer (server hashes its content)
  await rawRun(client, server, totalBytes)
  const cold = await transferRun()
  const raw: number[] = []
  const rawStore: number[] = []
  const transfer: number[] = []
  const transferInto: number[] = []
  const transferIntoThread: number[] = []
  const transferPrefaulted: number[] = []
  reused.fill(0) // the reused buffer has been written before
  // CPU time of each run, ms: the main thread (network, Noise, chunk hashes, copies) and the whole
  // process (with the helper thread); under load these vary less than wall time
  const cpu: Record<string, { main: number[], process: number[] }> = {}
  const measured = async (kind: string, run: () => Promise<number>): Promise<number> => {
    const t0 = process.threadCpuUsage()
    const p0 = process.cpuUsage()
    const seconds = await run()
    const t1 = process.threadCpuUsage(t0)
    const p1 = process.cpuUsage(p0)
    cpu[kind] ??= { main: [], process: [] }
    cpu[kind].main.push((t1.user + t1.system) / 1000)
    cpu[kind].process.push((p1.user + p1.system) / 1000)
    return seconds
  }
  for (let i = 0; i < WARM_RUNS; i++) {
    raw.push(await measured('raw stream', async () => rawRun(client, server, totalBytes)))
    transferInto.push(await measured('transfer, reused buffer', async () => transferRun(reused)))
    transferIntoThread.push(await measured('reused, hash on thread', async () => transferRun(reused, true)))
    transferPrefaulted.push(await measured('prefaulted buffer', async () => transferRun('prefault')))
    transfer.push(await measured('transfer, new buffer', async () => transferRun()))
    rawStore.push(await measured('raw + store', async () => rawRun(client, server, totalBytes, true)))
  }

  await weights.stop()
  await client.stop()
  await server.stop()

  const rawMBs = totalBytes / MB / median(raw)
  const rawStoreMBs = totalBytes / MB / median(rawStore)
  const transferMBs = totalBytes / MB / median(transfer)
  const transferIntoMBs = totalBytes / MB / median(transferInto)
  const transferIntoThreadMBs = totalBytes / MB / median(transferIntoThread)
  const transferPrefaultedMBs = totalBytes / MB / median(transferPrefaulted)
  const coldMBs = totalBytes / MB / cold
  const load = execSync('uptime').toString().trim()
  const tunables = process.env.GLIBC_TUNABLES ?? '(unset)'
  const pct = (a: number, b: number): string => `${(100 * a / b).toFixed(0)}%`
  const rows = [
    '| bytes | chunks | raw stream MB/s | transfer, reused buffer MB/s | reused / raw | reused, hash on thread MB/s | thread / raw | prefaulted buffer (prefault counted) MB/s | prefaulted / raw | transfer, new buffer MB/s | new / raw | raw + store (new buffer) MB/s | new / (raw + store) | cold transfer MB/s |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${(totalBytes / MB).toFixed(1)} MB | ${digest.chunkHashes.length} | ${rawMBs.toFixed(1)} | ${transferIntoMBs.toFixed(1)} | ${pct(transferIntoMBs, rawMBs)} | ${transferIntoThreadMBs.toFixed(1)} | ${pct(transferIntoThreadMBs, rawMBs)} | ${transferPrefaultedMBs.toFixed(1)} | ${pct(transferPrefaultedMBs, rawMBs)} | ${transferMBs.toFixed(1)} | ${pct(transferMBs, rawMBs)} | ${rawStoreMBs.toFixed(1)} | ${pct(transferMBs, rawStoreMBs)} | ${coldMBs.toFixed(1)} |`
  ]
  const cpuRows = [
    '| run | main thread CPU ms (median) | whole process CPU ms (median) |',
    '|---|---:|---:|',
    ...Object.entries(cpu).map(([kind, c]) => `| ${kind} | ${median(c.main).toFixed(0)} | ${median(c.process).toFixed(0)} |`)
  ]
  process.stdout.write(`\nWeight transfer vs raw libp2p stream, loopback TCP + Noise + Yamux, both hosts in one process (node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}); medians of ${WARM_RUNS} alternating warm runs\n\n${rows.join('\n')}\n\n${cpuRows.join('\n')}\n\nuptime: ${load}\nGLIBC_TUNABLES: ${tunables}\n`)

  const dir = new URL('../../bench/results/', import.meta.url)
  mkdirSync(dir, { recursive: true })
  // a run with glibc's transparent-huge-page malloc (fewer first-touch page faults) is kept apart
  const file = tunables === '(unset)' ? 'transfer.json' : 'transfer-glibc-tunables.json'
  writeFileSync(new URL(file, dir), JSON.stringify({
    benchmark: 'layer-pool weight transfer vs raw stream',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    uptime: load,
    glibcTunables: tunables,
    totalBytes,
    chunks: digest.chunkHashes.length,
    seconds: { raw, transferReusedBuffer: transferInto, transferReusedBufferHashOnThread: transferIntoThread, transferPrefaultedBuffer: transferPrefaulted, transfer, rawStore, coldTransfer: cold },
    mbPerSecond: { raw: rawMBs, transferReusedBuffer: transferIntoMBs, transferReusedBufferHashOnThread: transferIntoThreadMBs, transferPrefaultedBuffer: transferPrefaultedMBs, transfer: transferMBs, rawStore: rawStoreMBs, coldTransfer: coldMBs },
    // raw seconds / transfer seconds of each round (neighbours in time, so they saw about the same load)
    cpuMs: cpu,
    roundRatios: {
      reusedBuffer: raw.map((r, i) => r / transferInto[i]),
      reusedBufferHashOnThread: raw.map((r, i) => r / transferIntoThread[i]),
      prefaultedBuffer: raw.map((r, i) => r / transferPrefaulted[i]),
      newBuffer: raw.map((r, i) => r / transfer[i])
    },
    ratioReusedBuffer: transferIntoMBs / rawMBs,
    ratioReusedBufferHashOnThread: transferIntoThreadMBs / rawMBs,
    ratioPrefaultedBuffer: transferPrefaultedMBs / rawMBs,
    ratio: transferMBs / rawMBs,
    ratioToRawStore: transferMBs / rawStoreMBs
  }, null, 2) + '\n')
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  process.exit(1)
})
