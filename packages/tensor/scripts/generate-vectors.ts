/**
 * Writes the test vectors of specs/tensor-frame/vectors/ from this implementation.
 * Run after a deliberate format change: `pnpm --filter @neuroshard/tensor run vectors`.
 * The tests replay the files (decode and compare, encode and compare bytes), so a change that alters
 * the bytes of any vector fails them until the vectors are regenerated and the spec updated.
 */

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  encodeTensorFrame, quantizeInt8, dequantizeInt8, toFloat16, fromFloat16, toBFloat16, fromBFloat16, tensorHashHex
} from '../src/index.js'
import type { Tensor } from '../src/index.js'

const here = dirname(fileURLToPath(import.meta.url))
// dist/scripts → package root → repo root
// NEUROSHARD_SPECS_DIR: another specs/ tree (specs/regenerate.py writes into a temporary copy and compares)
const outDir = join(process.env.NEUROSHARD_SPECS_DIR ?? join(here, '..', '..', '..', '..', 'specs'), 'tensor-frame', 'vectors')

/** JSON cannot hold NaN, ±Infinity or -0: write them as strings */
function num (x: number): number | string {
  if (Number.isNaN(x)) return 'NaN'
  if (x === Infinity) return 'Infinity'
  if (x === -Infinity) return '-Infinity'
  if (Object.is(x, -0)) return '-0'
  return x
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function valid (file: string, description: string, tensor: Tensor, extra: Record<string, unknown> = {}): void {
  const frame = encodeTensorFrame(tensor)
  const v: Record<string, unknown> = {
    description,
    frame: hex(frame),
    dtype: tensor.dtype,
    shape: tensor.shape
  }
  if (tensor.name !== undefined) v.name = tensor.name
  switch (tensor.dtype) {
    case 'float32': v.values = Array.from(tensor.data, num); break
    case 'float16': v.bits = Array.from(tensor.data); v.values = Array.from(fromFloat16(tensor.data), num); break
    case 'bfloat16': v.bits = Array.from(tensor.data); v.values = Array.from(fromBFloat16(tensor.data), num); break
    case 'int32': v.values = Array.from(tensor.data); break
    case 'int64': v.values = Array.from(tensor.data, (x) => x.toString()); break
    case 'int8':
      v.blockSize = tensor.blockSize
      v.values = Array.from(tensor.data)
      v.scales = Array.from(tensor.scales, num)
      v.dequantized = Array.from(dequantizeInt8(tensor), num)
      break
  }
  Object.assign(v, extra)
  v.hash = tensorHashHex(frame)
  writeFileSync(join(outDir, `${file}.json`), JSON.stringify(v, null, 2) + '\n')
}

function invalid (file: string, description: string, frame: Uint8Array, error: string, maxBytes?: number): void {
  const v: Record<string, unknown> = { description, frame: hex(frame), error }
  if (maxBytes !== undefined) v.maxBytes = maxBytes
  writeFileSync(join(outDir, `${file}.json`), JSON.stringify(v, null, 2) + '\n')
}

/** A copy of `frame` with `edit` applied to it (through a DataView at the frame's start) */
function patch (frame: Uint8Array, edit: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const copy = frame.slice()
  edit(new DataView(copy.buffer), copy)
  return copy
}

mkdirSync(outDir, { recursive: true })
// conversions.py writes convert-*.json and encoding.py encoding.json: those stay
for (const f of readdirSync(outDir)) if (f.endsWith('.json') && !f.startsWith('convert-') && f !== 'encoding.json') rmSync(join(outDir, f))

const f32 = (xs: number[]): Float32Array => new Float32Array(xs)

// ---- valid frames: one per dtype, plus the edge cases
valid('float32-matrix', 'float32 2x3 matrix', { dtype: 'float32', shape: [2, 3], data: f32([1, -2.5, 0.1, 3.4028234663852886e38, 1.401298464324817e-45, 1e-7]) })
valid('float32-special', 'float32 IEEE special values: NaN (quiet, 0x7fc00000), +Inf, -Inf, -0', { dtype: 'float32', shape: [4], data: f32([NaN, Infinity, -Infinity, -0]) })
const f16src = f32([1, -2, 0.1, 65504, 5.960464477539063e-8, 1.00048828125, Infinity, -0])
valid('float16-vector', 'float16 values (raw binary16 bits in "bits"); 1.00048828125 is a tie that rounds to even (1.0)',
  { dtype: 'float16', shape: [8], data: toFloat16(f16src) }, { source: Array.from(f16src, num) })
const bf16src = f32([1, -3.140625, 1e-20, 3.3895313892515355e38, 1.00390625, 1.01171875])
valid('bfloat16-matrix', 'bfloat16 2x3 values (raw bits in "bits"); 1.00390625 and 1.01171875 are ties that round to even',
  { dtype: 'bfloat16', shape: [2, 3], data: toBFloat16(bf16src) }, { source: Array.from(bf16src, num) })
const int8src = f32([0.5, -1, 0.25, 0.75, 2, 1, -0.125, 0, 100, -50, 1.5, 0.01, -0.2])
valid('int8-blocks', 'int8 with block size 8: 13 values in 2 blocks (the last one partial); "source" quantizes to "values"/"scales"',
  { dtype: 'int8', shape: [13], ...quantizeInt8(int8src, { blockSize: 8 }) }, { source: Array.from(int8src, num) })
const zeros = f32([0, 0, 0, 0, 3, -3])
valid('int8-zero-block', 'int8 with an all-zero block (scale 0) and block size 4',
  { dtype: 'int8', shape: [2, 3], ...quantizeInt8(zeros, { blockSize: 4 }) }, { source: Array.from(zeros, num) })
valid('int32-vector', 'int32 extremes', { dtype: 'int32', shape: [4], data: new Int32Array([-2147483648, 2147483647, 0, -1]) })
valid('int64-vector', 'int64 extremes (values as decimal strings)', { dtype: 'int64', shape: [3], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 42n]) })
valid('empty', 'float32 tensor with no elements (shape [0, 3]): the frame is the header alone', { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) })
valid('int8-empty', 'int8 tensor with no elements: no scales, no values', { dtype: 'int8', shape: [0], data: new Int8Array(0), scales: new Float32Array(0), blockSize: 64 })
valid('scalar', 'rank-0 float32 scalar: shape [] holds one element', { dtype: 'float32', shape: [], data: f32([42.5]) })
valid('named', 'named float32 tensor, the name has multi-byte UTF-8', { dtype: 'float32', shape: [2], name: 'layers.0.attn.wq — ü✓', data: f32([1, 2]) })
valid('named-int64-rank4', 'named int64 rank-4 tensor whose name ends exactly on an 8-byte boundary (no padding)', { dtype: 'int64', shape: [1, 2, 1, 2], name: 'position', data: new BigInt64Array([0n, 1n, 2n, 3n]) })

// ---- invalid frames: each must be rejected with the named error
const base = encodeTensorFrame({ dtype: 'float32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) })
const named = encodeTensorFrame({ dtype: 'float32', shape: [1], name: 'abc', data: f32([1]) })
const q = encodeTensorFrame({ dtype: 'int8', shape: [4], ...quantizeInt8(f32([1, -1, 0.5, 0]), { blockSize: 4 }) })
invalid('invalid-short', 'fewer bytes than the fixed header', base.subarray(0, 10), 'FrameLengthError')
invalid('invalid-magic', 'magic bytes are not "NSTF"', patch(base, (_v, b) => { b[0] = 0x4f }), 'InvalidMagicError')
invalid('invalid-version', 'format version 2', patch(base, (_v, b) => { b[4] = 2 }), 'UnsupportedProtocolVersionError')
invalid('invalid-dtype-0', 'dtype code 0 (reserved)', patch(base, (_v, b) => { b[5] = 0 }), 'UnknownDtypeError')
invalid('invalid-dtype-200', 'dtype code 200', patch(base, (_v, b) => { b[5] = 200 }), 'UnknownDtypeError')
invalid('invalid-rank', 'rank 9, above the maximum of 8', patch(base, (_v, b) => { b[6] = 9 }), 'InvalidShapeError')
invalid('invalid-flags', 'non-zero flags byte', patch(base, (_v, b) => { b[7] = 1 }), 'MalformedFrameError')
invalid('invalid-reserved', 'non-zero reserved bytes 10-11', patch(base, (v) => { v.setUint16(10, 1, true) }), 'MalformedFrameError')
invalid('invalid-block-size-float32', 'float32 frame with a non-zero block size', patch(base, (v) => { v.setUint32(12, 64, true) }), 'MalformedFrameError')
invalid('invalid-block-size-zero', 'int8 frame with block size 0', patch(q, (v) => { v.setUint32(12, 0, true) }), 'MalformedFrameError')
invalid('invalid-huge-shape', 'shape [2^30, 2^30]: 2^60 elements declared in a 48-byte frame', patch(base, (v) => {
  v.setBigUint64(16, 2n ** 30n, true); v.setBigUint64(24, 2n ** 30n, true)
}), 'InvalidShapeError')
invalid('invalid-dim-unsafe', 'a dim of 2^64 - 1', patch(base, (v) => { v.setBigUint64(16, 2n ** 64n - 1n, true) }), 'InvalidShapeError')
invalid('invalid-too-large-default-cap', 'shape [2^20, 2^20] float32 declares 4 TiB, above the default 256 MiB cap', patch(base, (v) => {
  v.setBigUint64(16, 2n ** 20n, true); v.setBigUint64(24, 2n ** 20n, true)
}), 'FrameTooLargeError')
invalid('invalid-too-large-cap', 'a valid 56-byte frame decoded with maxBytes 40', base, 'FrameTooLargeError', 40)
invalid('invalid-truncated', 'payload one byte short', base.subarray(0, base.length - 1), 'FrameLengthError')
invalid('invalid-truncated-header', 'frame cut inside the shape dims', base.subarray(0, 20), 'FrameLengthError')
invalid('invalid-trailing', 'one byte after the payload', Uint8Array.from([...base, 0]), 'FrameLengthError')
invalid('invalid-wrong-shape', 'shape [2, 4] with the payload of [2, 3]', patch(base, (v) => { v.setBigUint64(24, 4n, true) }), 'FrameLengthError')
invalid('invalid-name-too-long', 'name length 2000, above the maximum of 1024', patch(base, (v) => { v.setUint16(8, 2000, true) }), 'InvalidNameError')
invalid('invalid-name-utf8', 'name bytes are not valid UTF-8 (0xff)', patch(named, (_v, b) => { b[24] = 0xff }), 'InvalidNameError')
invalid('invalid-padding', 'non-zero padding byte after the name', patch(named, (_v, b) => { b[27] = 1 }), 'MalformedFrameError')
invalid('invalid-int8-negative-scale', 'int8 frame with a negative scale', patch(q, (v) => { v.setFloat32(24, -0.5, true) }), 'MalformedFrameError')
invalid('invalid-int8-nan-scale', 'int8 frame with a NaN scale', patch(q, (v) => { v.setUint32(24, 0x7fc00000, true) }), 'MalformedFrameError')
invalid('invalid-int8-minus-128', 'int8 frame with the value -128', patch(q, (v) => { v.setInt8(28, -128) }), 'MalformedFrameError')

process.stdout.write(`wrote ${readdirSync(outDir).length} files to ${outDir}\n`)
