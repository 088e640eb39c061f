/**
 * Weight transfer throughput against a raw libp2p stream, over loopback TCP (Noise + Yamux).
 *
 * Two hosts in this process. The raw runs push the same bytes (the span's canonical stream) through a
 * plain stream of a trivial protocol (the server `send`s 1 MiB pieces with drain backpressure); the
 * client either counts and drops them ("raw, drops") or keeps every piece it received, as received, with
 * no copy ("raw, keeps": the least a receiver that keeps the bytes does). The transfer run is
 * `fetchSpanWeights` from one replica (manifest, chunk requests, sha256 of every chunk, copy into the
 * result, the whole-span contentHash), run as: into a buffer the caller hands in and reuses (`into`: a
 * node replacing weights it holds); into new memory (no `into`: the client allocates one buffer per tensor
 * when the manifest arrives, and the tensors are those buffers; what the layer pool does), with both
 * hashes on the helper thread (the default) and, as the yardstick of that choice, hashed on the thread
 * that runs the network (`hashOnThread: false`). Runs alternate so all see the same load; the table
 * reports the median of the warm runs (the cold first transfer also hashes the content on the server
 * and is reported apart).
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
import { digestChunks, fetchSpanWeights, spanLayout, streamBytes, tensorsContentHash, toHex, weightsServer } from '../src/transfer/index.js'
import type { SpanTensor } from '../src/transfer/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { ModelConfig } from '@neuroshard/model'

const RAW_PROTOCOL = '/neuroshard-bench/raw/1.0.0'
const MB = 1e6
/** Warm rounds (each: raw (drops), transfer into the reused buffer, into new memory hashed inline, into new memory, raw (keeps)) @default 7 */
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

/** One raw run; with `keep` the client keeps every piece it receives (as received, no copy) until the end */
async function rawRun (client: NeuroShardHost, server: NeuroShardHost, expectBytes: number, keep = false): Promise<number> {
  const started = performance.now()
  const stream = await client.dialProtocol(server.peerId, RAW_PROTOCOL)
  stream.send(Uint8Array.of(1))
  await stream.close()
  const kept: Uint8Array[] = []
  let received = 0

  for await (const chunk of stream) {
    if (keep) kept.push(chunk instanceof Uint8Array ? chunk : chunk.subarray())
    received += chunk.byteLength
  }

  if (received !== expectBytes || (keep && kept.reduce((n, c) => n + c.byteLength, 0) !== expectBytes)) {
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
  const transferRun = async (into?: Uint8Array, hashOnThread = true): Promise<number> => {
    const t0 = performance.now()
    const result = await fetchSpanWeights(client, [server.peerId], expected, { timeout: 60_000, into, hashOnThread })
    const seconds = (performance.now() - t0) / 1000
    if (result.weightsHash !== expected.weightsHash) throw new Error('hash mismatch')
    return seconds
  }

  // warm the connection and the raw path once, then the cold transfer (server hashes its content)
  await rawRun(client, server, totalBytes)
  const cold = await transferRun()
  const raw: number[] = []
  const rawKeep: number[] = []
  const transfer: number[] = []
  const transferInto: number[] = []
  const transferInline: number[] = []
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
    raw.push(await measured('raw, drops', async () => rawRun(client, server, totalBytes)))
    transferInto.push(await measured('transfer, reused buffer', async () => transferRun(reused)))
    transferInline.push(await measured('transfer, new memory, hashed inline', async () => transferRun(undefined, false)))
    transfer.push(await measured('transfer, new memory', async () => transferRun()))
    rawKeep.push(await measured('raw, keeps', async () => rawRun(client, server, totalBytes, true)))
  }

  await weights.stop()
  await client.stop()
  await server.stop()

  const rawMBs = totalBytes / MB / median(raw)
  const rawKeepMBs = totalBytes / MB / median(rawKeep)
  const transferMBs = totalBytes / MB / median(transfer)
  const transferIntoMBs = totalBytes / MB / median(transferInto)
  const transferInlineMBs = totalBytes / MB / median(transferInline)
  const coldMBs = totalBytes / MB / cold
  const load = execSync('uptime').toString().trim()
  const tunables = process.env.GLIBC_TUNABLES ?? '(unset)'
  const pct = (a: number, b: number): string => `${(100 * a / b).toFixed(0)}%`
  const rows = [
    '| bytes | chunks | raw, drops MB/s | raw, keeps MB/s | transfer, new memory MB/s | new / raw keeps | new / raw drops | new memory, hashed inline MB/s | inline / raw keeps | inline / raw drops | transfer, reused buffer MB/s | reused / raw keeps | reused / raw drops | cold transfer (new memory) MB/s |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${(totalBytes / MB).toFixed(1)} MB | ${digest.chunkHashes.length} | ${rawMBs.toFixed(1)} | ${rawKeepMBs.toFixed(1)} | ${transferMBs.toFixed(1)} | ${pct(transferMBs, rawKeepMBs)} | ${pct(transferMBs, rawMBs)} | ${transferInlineMBs.toFixed(1)} | ${pct(transferInlineMBs, rawKeepMBs)} | ${pct(transferInlineMBs, rawMBs)} | ${transferIntoMBs.toFixed(1)} | ${pct(transferIntoMBs, rawKeepMBs)} | ${pct(transferIntoMBs, rawMBs)} | ${coldMBs.toFixed(1)} |`
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
    seconds: { raw, rawKeep, transferReusedBuffer: transferInto, transferHashedInline: transferInline, transfer, coldTransfer: cold },
    mbPerSecond: { raw: rawMBs, rawKeep: rawKeepMBs, transferReusedBuffer: transferIntoMBs, transferHashedInline: transferInlineMBs, transfer: transferMBs, coldTransfer: coldMBs },
    // raw seconds / transfer seconds of each round (neighbours in time, so they saw about the same load)
    cpuMs: cpu,
    roundRatios: {
      reusedBuffer: raw.map((r, i) => r / transferInto[i]),
      hashedInline: raw.map((r, i) => r / transferInline[i]),
      newMemory: raw.map((r, i) => r / transfer[i]),
      newMemoryToRawKeep: rawKeep.map((r, i) => r / transfer[i])
    },
    ratioReusedBuffer: transferIntoMBs / rawMBs,
    ratioHashedInline: transferInlineMBs / rawMBs,
    ratioHashedInlineToRawKeep: transferInlineMBs / rawKeepMBs,
    ratio: transferMBs / rawMBs,
    ratioToRawKeep: transferMBs / rawKeepMBs
  }, null, 2) + '\n')
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  process.exit(1)
})
