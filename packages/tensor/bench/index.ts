/**
 * Throughput of tensor frames and conversions on a 64 MiB float32 tensor (16 Mi elements).
 * Run: `pnpm --filter @neuroshard/tensor run bench` (or, built: `node --expose-gc packages/tensor/dist/bench/index.js`).
 * Prints a table and writes bench-results/tensor.json. GB/s = 10^9 bytes/s of the column "bytes".
 */

import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpus } from 'node:os'
import {
  decodeTensorFrame, dequantizeInt8, encodeTensorFrame, fromBFloat16, fromFloat16, hasNativeFloat16Array,
  quantizeInt8, tensorHash, toBFloat16, toFloat16
} from '../src/index.js'
import type { Tensor } from '../src/index.js'

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 7)
const N = 16 * 1024 * 1024
const gc = (globalThis as { gc?: () => void }).gc

interface Row { op: string, bytes: number, medianMs: number, gbPerS: number, note: string }
const rows: Row[] = []

function bench (op: string, bytes: number, note: string, fn: () => unknown): void {
  fn() // warm-up (and JIT)
  const times: number[] = []
  for (let i = 0; i < ITERATIONS; i++) {
    gc?.()
    const t0 = performance.now()
    fn()
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  const medianMs = times[Math.floor(times.length / 2)]
  const row = { op, bytes, medianMs, gbPerS: bytes / (medianMs / 1000) / 1e9, note }
  rows.push(row)
  process.stdout.write(`${op.padEnd(34)} ${(bytes / 2 ** 20).toFixed(1).padStart(7)} MiB ${medianMs.toFixed(2).padStart(9)} ms ${row.gbPerS.toFixed(2).padStart(8)} GB/s  ${note}\n`)
}

// smooth, gradient-like values with a spread of magnitudes
const x = new Float32Array(N)
let seed = 12345
for (let i = 0; i < N; i++) {
  seed = (seed * 1103515245 + 12345) >>> 0
  x[i] = ((seed / 2 ** 32) - 0.5) * (1 + (i % 1000))
}
const f32Bytes = x.byteLength
const tensor: Tensor = { dtype: 'float32', shape: [4096, 4096], name: 'bench', data: x }

process.stdout.write(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'}, ${ITERATIONS} iterations (median), native Float16Array: ${hasNativeFloat16Array}\n`)
process.stdout.write(`${'operation'.padEnd(34)} ${'bytes'.padStart(11)} ${'median'.padStart(12)} ${'throughput'.padStart(13)}\n`)

// yardsticks: plain memory copies of the same 64 MiB
const src = Buffer.from(x.buffer, x.byteOffset, x.byteLength)
const dst = Buffer.allocUnsafe(f32Bytes)
bench('yardstick: Buffer.copy', f32Bytes, 'into a preallocated buffer', () => src.copy(dst))
const dstF32 = new Float32Array(N)
bench('yardstick: Float32Array.set', f32Bytes, 'into a preallocated array', () => { dstF32.set(x) })
bench('yardstick: new Float32Array(x)', f32Bytes, 'allocate + copy', () => new Float32Array(x))

const frame = encodeTensorFrame(tensor)
bench('encode float32 frame', frame.byteLength, 'allocate frame + copy payload', () => encodeTensorFrame(tensor))
bench('decode float32 frame (zero-copy)', frame.byteLength, 'aligned: a view, O(header)', () => decodeTensorFrame(frame))
bench('decode float32 frame (copy)', frame.byteLength, 'copy: true', () => decodeTensorFrame(frame, { copy: true }))
const shifted = new Uint8Array(frame.byteLength + 1)
shifted.set(frame, 1)
bench('decode float32 frame (misaligned)', frame.byteLength, 'byteOffset 1: copied', () => decodeTensorFrame(shifted.subarray(1)))

const q = quantizeInt8(x)
bench('int8 quantize (block 64)', f32Bytes, 'float32 input bytes', () => quantizeInt8(x))
bench('int8 dequantize (block 64)', f32Bytes, 'float32 output bytes', () => dequantizeInt8(q))
const qFrame = encodeTensorFrame({ dtype: 'int8', shape: [4096, 4096], ...q })
bench('encode int8 frame', qFrame.byteLength, 'scales + values', () => encodeTensorFrame({ dtype: 'int8', shape: [4096, 4096], ...q }))
bench('decode int8 frame (zero-copy)', qFrame.byteLength, 'checks every scale and value', () => decodeTensorFrame(qFrame))

const h = toFloat16(x, { overflow: 'infinity' })
bench('float32 → float16', f32Bytes, hasNativeFloat16Array ? 'native Float16Array + overflow scan' : 'portable', () => toFloat16(x, { overflow: 'infinity' }))
bench('float16 → float32', f32Bytes, 'table lookup', () => fromFloat16(h))
const bf = toBFloat16(x)
bench('float32 → bfloat16', f32Bytes, 'float32 input bytes', () => toBFloat16(x))
bench('bfloat16 → float32', f32Bytes, 'float32 output bytes', () => fromBFloat16(bf))

bench('sha256 content hash (tensor)', frame.byteLength, 'node:crypto, no frame copy', () => tensorHash(tensor))
bench('sha256 content hash (frame bytes)', frame.byteLength, 'validate + hash', () => tensorHash(frame))

const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench-results')
mkdirSync(outDir, { recursive: true })
writeFileSync(join(outDir, 'tensor.json'), JSON.stringify({
  node: process.version,
  cpu: cpus()[0]?.model,
  elements: N,
  iterations: ITERATIONS,
  nativeFloat16Array: hasNativeFloat16Array,
  date: new Date().toISOString(),
  rows
}, null, 2) + '\n')
process.stdout.write(`wrote ${join(outDir, 'tensor.json')}\n`)
