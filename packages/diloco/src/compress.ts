/**
 * Pseudo-gradient payload codecs (specs/diloco §5): fp32, fp16, blockwise int8 and sparse (chunk-wise top-k
 * with low-bit values, SparseLoCo), plus error feedback. Every encoding is a pure function of the float32
 * input, and every decoder checks the exact size and the value rules before returning anything.
 */

import { InvalidParametersError } from '@neuroshard/interface'
import { dequantizeInt8, fromFloat16, MAX_INT8_SCALE, quantizeInt8, toFloat16 } from '@neuroshard/tensor'
import {
  DEFAULT_ERROR_FEEDBACK_DECAY, DEFAULT_INT8_BLOCK_SIZE, DEFAULT_SPARSE_BITS, DEFAULT_SPARSE_CHUNK, DEFAULT_SPARSE_TOP_K
} from './constants.js'
import { MalformedPseudoGradientError } from './errors.js'

export type CodecName = 'fp32' | 'fp16' | 'int8' | 'sparse'

/** A codec and its parameters, as an announce carries them */
export interface CodecParams {
  codec: CodecName
  /** int8: elements per scale @default 64 */
  blockSize?: number
  /** sparse: elements per chunk (≤ 65536) @default 4096 */
  chunk?: number
  /** sparse: values kept per chunk @default 64 */
  topK?: number
  /** sparse: bits per kept value, 1–8 @default 2 */
  bits?: number
}

/** Codec parameters with every default filled in and checked */
export interface ResolvedCodec { codec: CodecName, blockSize: number, chunk: number, topK: number, bits: number }

export function resolveCodec (p: CodecParams | CodecName): ResolvedCodec {
  const c = typeof p === 'string' ? { codec: p } : p
  if (!['fp32', 'fp16', 'int8', 'sparse'].includes(c.codec)) throw new InvalidParametersError(`unknown codec ${String(c.codec)}`)
  const r: ResolvedCodec = {
    codec: c.codec,
    blockSize: c.codec === 'int8' ? (c.blockSize ?? DEFAULT_INT8_BLOCK_SIZE) : 0,
    chunk: c.codec === 'sparse' ? (c.chunk ?? DEFAULT_SPARSE_CHUNK) : 0,
    topK: c.codec === 'sparse' ? (c.topK ?? DEFAULT_SPARSE_TOP_K) : 0,
    bits: c.codec === 'sparse' ? (c.bits ?? DEFAULT_SPARSE_BITS) : 0
  }
  if (r.codec === 'int8' && (!Number.isSafeInteger(r.blockSize) || r.blockSize < 1 || r.blockSize > 65536)) throw new InvalidParametersError(`int8 block size must be in [1, 65536], got ${r.blockSize}`)
  if (r.codec === 'sparse') {
    if (!Number.isSafeInteger(r.chunk) || r.chunk < 1 || r.chunk > 65536) throw new InvalidParametersError(`sparse chunk must be in [1, 65536], got ${r.chunk}`)
    if (!Number.isSafeInteger(r.topK) || r.topK < 1 || r.topK > r.chunk) throw new InvalidParametersError(`sparse topK must be in [1, chunk], got ${r.topK}`)
    if (!Number.isSafeInteger(r.bits) || r.bits < 1 || r.bits > 8) throw new InvalidParametersError(`sparse bits must be in [1, 8], got ${r.bits}`)
  }
  return r
}

/** Exact payload size in bytes of `n` elements under a codec */
export function payloadSize (n: number, p: ResolvedCodec): number {
  switch (p.codec) {
    case 'fp32': return 4 * n
    case 'fp16': return 2 * n
    case 'int8': return 4 * Math.ceil(n / p.blockSize) + n
    case 'sparse': {
      let size = 0
      for (let start = 0; start < n; start += p.chunk) {
        const k = Math.min(p.topK, Math.min(p.chunk, n - start))
        size += 4 + 2 * k + Math.ceil(k * p.bits / 8)
      }
      return size
    }
  }
}

function f32le (values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength))
}

/** Level j of a b-bit symmetric quantizer on [−1, 1]: (2j − (L − 1)) / (L − 1), L = 2^b (float64) */
function level (j: number, bits: number): number {
  const m = (1 << bits) - 1
  return (2 * j - m) / m
}

/** Encodes float32 values (all finite) under a codec */
export function encodePayload (values: Float32Array, params: ResolvedCodec): Uint8Array {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new InvalidParametersError(`cannot encode non-finite value ${values[i]} at ${i}`)
  }
  switch (params.codec) {
    case 'fp32': return f32le(values)
    case 'fp16': {
      const bits = toFloat16(values)
      return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength)
    }
    case 'int8': {
      const q = quantizeInt8(values, { blockSize: params.blockSize })
      const out = new Uint8Array(4 * q.scales.length + q.data.length)
      out.set(f32le(q.scales), 0)
      out.set(new Uint8Array(q.data.buffer, q.data.byteOffset, q.data.byteLength), 4 * q.scales.length)
      return out
    }
    case 'sparse': return encodeSparse(values, params)
  }
}

function encodeSparse (values: Float32Array, p: ResolvedCodec): Uint8Array {
  const n = values.length
  const out = new Uint8Array(payloadSize(n, p))
  const view = new DataView(out.buffer)
  const order = new Uint32Array(p.chunk)
  const m = (1 << p.bits) - 1
  let at = 0
  for (let start = 0; start < n; start += p.chunk) {
    const len = Math.min(p.chunk, n - start)
    const k = Math.min(p.topK, len)
    const idx = order.subarray(0, len)
    for (let i = 0; i < len; i++) idx[i] = i
    // largest |x| first, ties to the lower index
    idx.sort((a, b) => {
      const d = Math.abs(values[start + b]) - Math.abs(values[start + a])
      return d !== 0 ? d : a - b
    })
    const chosen = idx.slice(0, k).sort()
    let absmax = 0
    for (let j = 0; j < k; j++) absmax = Math.max(absmax, Math.abs(values[start + chosen[j]]))
    const scale = Math.fround(absmax)
    view.setFloat32(at, scale, true)
    at += 4
    for (let j = 0; j < k; j++) { view.setUint16(at, chosen[j], true); at += 2 }
    const codeStart = at
    for (let j = 0; j < k; j++) {
      let code = 0
      if (scale > 0) {
        const t = (values[start + chosen[j]] / scale + 1) * m / 2
        code = Math.min(m, Math.max(0, roundHalfEven(t)))
      }
      const bit = j * p.bits
      for (let b = 0; b < p.bits; b++) {
        if (((code >> b) & 1) === 1) out[codeStart + ((bit + b) >> 3)] |= 1 << ((bit + b) & 7)
      }
    }
    at = codeStart + Math.ceil(k * p.bits / 8)
  }
  return out
}

function roundHalfEven (x: number): number {
  const r = Math.round(x)
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r
}

/**
 * Decodes a payload of `n` elements. Throws `MalformedPseudoGradientError` for a wrong size, a non-finite
 * or negative scale (int8 scales also ≤ MAX_INT8_SCALE), an int8 value of −128, a non-finite fp16 value,
 * or sparse indices that are not strictly increasing within their chunk.
 */
export function decodePayload (bytes: Uint8Array, n: number, params: ResolvedCodec): Float32Array {
  const expected = payloadSize(n, params)
  if (bytes.byteLength !== expected) throw new MalformedPseudoGradientError(`${params.codec} payload of ${n} elements must be ${expected} bytes, got ${bytes.byteLength}`)
  const copy = new Uint8Array(bytes) // a copy (Buffer#slice would be a view into a shared pool)
  switch (params.codec) {
    case 'fp32': {
      const v = new Float32Array(copy.buffer)
      for (let i = 0; i < n; i++) if (!Number.isFinite(v[i])) throw new MalformedPseudoGradientError(`non-finite value at ${i}`)
      return v
    }
    case 'fp16': {
      const v = fromFloat16(new Uint16Array(copy.buffer))
      for (let i = 0; i < n; i++) if (!Number.isFinite(v[i])) throw new MalformedPseudoGradientError(`non-finite fp16 value at ${i}`)
      return v
    }
    case 'int8': {
      const nb = Math.ceil(n / params.blockSize)
      const scales = new Float32Array(copy.buffer, 0, nb)
      for (let i = 0; i < nb; i++) {
        const s = scales[i]
        if (!(s >= 0) || s > MAX_INT8_SCALE) throw new MalformedPseudoGradientError(`int8 scale ${s} of block ${i} is not in [0, MAX_INT8_SCALE]`)
      }
      const data = new Int8Array(copy.buffer, 4 * nb, n)
      for (let i = 0; i < n; i++) if (data[i] === -128) throw new MalformedPseudoGradientError(`int8 value -128 at ${i}`)
      return dequantizeInt8({ data, scales, blockSize: params.blockSize })
    }
    case 'sparse': return decodeSparse(copy, n, params)
  }
}

function decodeSparse (bytes: Uint8Array, n: number, p: ResolvedCodec): Float32Array {
  const out = new Float32Array(n)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const m = (1 << p.bits) - 1
  let at = 0
  for (let start = 0; start < n; start += p.chunk) {
    const len = Math.min(p.chunk, n - start)
    const k = Math.min(p.topK, len)
    const scale = view.getFloat32(at, true)
    at += 4
    if (!(scale >= 0) || !Number.isFinite(scale)) throw new MalformedPseudoGradientError(`sparse scale ${scale} of the chunk at ${start} is not finite and ≥ 0`)
    const idxAt = at
    at += 2 * k
    const codeStart = at
    let prev = -1
    for (let j = 0; j < k; j++) {
      const i = view.getUint16(idxAt + 2 * j, true)
      if (i <= prev || i >= len) throw new MalformedPseudoGradientError(`sparse index ${i} in the chunk at ${start} is not increasing and < ${len}`)
      prev = i
      let code = 0
      const bit = j * p.bits
      for (let b = 0; b < p.bits; b++) code |= ((bytes[codeStart + ((bit + b) >> 3)] >> ((bit + b) & 7)) & 1) << b
      if (code > m) throw new MalformedPseudoGradientError('sparse code out of range')
      out[start + i] = Math.fround(scale * level(code, p.bits))
    }
    // bits after the last code must be zero (one encoding per value)
    const used = k * p.bits
    const end = codeStart + Math.ceil(used / 8)
    if (used % 8 !== 0 && (bytes[end - 1] >> (used % 8)) !== 0) throw new MalformedPseudoGradientError(`sparse padding bits of the chunk at ${start} are not zero`)
    at = end
  }
  return out
}

/**
 * Error feedback (Seide et al. 2014; Karimireddy et al. 2019; SparseLoCo): the part of each pseudo-gradient a
 * lossy codec did not transmit is added to the next one. `e ← β·e + Δ`; send `C(e)`; `e ← e − D(C(e))`.
 * The same buffer folds a whole pseudo-gradient that missed its round into the next round (`carry`).
 */
export class ErrorFeedback {
  readonly residual: Float32Array
  readonly decay: number

  constructor (size: number, decay = DEFAULT_ERROR_FEEDBACK_DECAY) {
    if (!(decay >= 0 && decay <= 1)) throw new InvalidParametersError(`error-feedback decay must be in [0, 1], got ${decay}`)
    this.residual = new Float32Array(size)
    this.decay = decay
  }

  /** Compresses `delta` plus the residual; returns the payload and what receivers will decode from it */
  compress (delta: Float32Array, codec: ResolvedCodec): { payload: Uint8Array, decoded: Float32Array } {
    const e = this.residual
    if (delta.length !== e.length) throw new InvalidParametersError(`delta has ${delta.length} elements, the residual ${e.length}`)
    for (let i = 0; i < e.length; i++) e[i] = Math.fround(Math.fround(this.decay * e[i]) + delta[i])
    const payload = encodePayload(e, codec)
    const decoded = decodePayload(payload, e.length, codec)
    for (let i = 0; i < e.length; i++) e[i] = Math.fround(e[i] - decoded[i])
    return { payload, decoded }
  }

  /** Adds a transmitted-but-not-aggregated pseudo-gradient back (a straggler's Δ is folded into the next round) */
  carry (decoded: Float32Array): void {
    const e = this.residual
    for (let i = 0; i < e.length; i++) e[i] = Math.fround(e[i] + decoded[i])
  }
}
