/**
 * What writing into new memory costs, by the size of the buffers it is allocated in: 100 MB written in 1 MiB
 * pieces into new buffers of one size (one 100 MB buffer, or many smaller ones), several rounds in a row with
 * a garbage collection before each, against the same writes into a buffer written before. Why: a buffer
 * above the C allocator's mmap threshold (at most 32 MiB with glibc) is fresh memory every time and its first
 * writes page-fault; smaller buffers reuse heap memory the process already touched. The weight-transfer
 * client allocates one buffer per tensor for this reason (README, "Weight transfer vs a raw libp2p stream").
 *
 * Run: `cd packages/layer-pool && npx tsc -p . && ../../node_modules/.bin/node --expose-gc dist/bench/first-touch.js [rounds]`
 */

import { cpus } from 'node:os'

const TOTAL = 100e6
const ROUNDS = Math.max(1, Number(process.argv[2] ?? 5))
const piece = new Uint8Array(1 << 20).fill(7)
const gc = (globalThis as { gc?: () => void }).gc

function write (buffers: Uint8Array[]): void {
  for (const b of buffers) {
    for (let at = 0; at < b.byteLength; at += piece.byteLength) b.set(piece.subarray(0, Math.min(piece.byteLength, b.byteLength - at)), at)
  }
}

function median (values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

if (gc == null) throw new Error('run with --expose-gc')
const rows: string[] = []
for (const size of [100e6, 40e6, 25e6, 10e6, 4e6, 1 << 20]) {
  const ms: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    gc()
    const t0 = performance.now()
    const buffers: Uint8Array[] = []
    for (let n = 0; n < TOTAL; n += size) buffers.push(new Uint8Array(Math.min(size, TOTAL - n)))
    write(buffers)
    ms.push(performance.now() - t0)
  }
  rows.push(`| new buffers of ${(size / 1e6).toFixed(1)} MB | ${ms.map(m => m.toFixed(0)).join(', ')} | ${median(ms).toFixed(0)} |`)
}
const reused = new Uint8Array(TOTAL)
write([reused])
const again: number[] = []
for (let r = 0; r < ROUNDS; r++) {
  const t0 = performance.now()
  write([reused])
  again.push(performance.now() - t0)
}
rows.push(`| one 100 MB buffer written before | ${again.map(m => m.toFixed(0)).join(', ')} | ${median(again).toFixed(0)} |`)
process.stdout.write(`\nWriting 100 MB in 1 MiB pieces (node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}), ${ROUNDS} rounds each, in this order\n\n| destination | ms per round | median ms |\n|---|---|---:|\n${rows.join('\n')}\n`)
