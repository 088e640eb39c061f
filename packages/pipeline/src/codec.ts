/**
 * Activations, gradients and targets on the wire: tensor frames (specs/tensor-frame), float32 or blockwise
 * int8 (`compress`). Decoding checks dtype, rank and dims before anything is allocated for the runtime;
 * finiteness and token-id ranges are checked again by the runtime before onnxruntime sees the tensor.
 */
import { deflateSync, inflateSync } from 'node:zlib'
import { decodeTensorFrame, dequantizeInt8, encodeTensorFrame, quantizeInt8 } from '@neuroshard/tensor'
import { float32, int64 } from '@neuroshard/runtime'
import { DEFLATE_LEVEL, INT8_BLOCK_SIZE } from './constants.js'
import { InvalidActivationError } from './errors.js'
import type { TensorData } from '@neuroshard/runtime'

/** A tensor frame as a zlib stream (RFC 1950: deflate with an Adler-32 check), for requests with `deflate` */
export function deflateFrame (frame: Uint8Array): Uint8Array<ArrayBuffer> {
  const z = deflateSync(frame, { level: DEFLATE_LEVEL })
  return new Uint8Array(z.buffer, z.byteOffset, z.byteLength) as Uint8Array<ArrayBuffer>
}

/** Undo `deflateFrame`, never inflating past `maxBytes`; throws InvalidActivationError */
export function inflateFrame (bytes: Uint8Array, maxBytes: number, what: string): Uint8Array {
  try {
    const out = inflateSync(bytes, { maxOutputLength: maxBytes })
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  } catch (err: any) {
    throw new InvalidActivationError(`${what}: not a zlib stream of at most ${maxBytes} bytes: ${String(err?.code ?? err?.name)}: ${String(err?.message ?? err)}`)
  }
}

/** Encode a float32 `[.., d]` activation or gradient; int8 blockwise when `compress`; a zlib stream of the frame when `deflate` */
export function encodeActivation (t: TensorData, compress: boolean, deflate = false): Uint8Array<ArrayBuffer> {
  const data = t.data as Float32Array
  let frame: Uint8Array<ArrayBuffer>
  if (compress) {
    const q = quantizeInt8(data, { blockSize: INT8_BLOCK_SIZE })
    frame = encodeTensorFrame({ dtype: 'int8', shape: [...t.dims], ...q }) as Uint8Array<ArrayBuffer>
  } else {
    frame = encodeTensorFrame({ dtype: 'float32', shape: [...t.dims], data }) as Uint8Array<ArrayBuffer>
  }
  return deflate ? deflateFrame(frame) : frame
}

export interface ActivationLimits {
  /** The model width: the last dim must equal it */
  dModel: number
  maxBatch: number
  maxSeq: number
  /** Largest frame, bytes */
  maxBytes: number
  /** The encoding the request announced */
  compress: boolean
  /** Name for error messages */
  what: string
  /** The frame is a zlib stream (the request's `deflate`) @default false */
  deflate?: boolean
}

/** Decode and check a `[batch, seq, d]` activation frame; throws InvalidActivationError */
export function decodeActivation (bytes: Uint8Array, limits: ActivationLimits): TensorData {
  if (limits.deflate === true) bytes = inflateFrame(bytes, limits.maxBytes, limits.what)
  let t
  try {
    t = decodeTensorFrame(bytes, { maxBytes: limits.maxBytes, copy: true })
  } catch (err: any) {
    throw new InvalidActivationError(`${limits.what}: ${String(err?.name ?? 'Error')}: ${String(err?.message ?? err)}`)
  }
  const want = limits.compress ? 'int8' : 'float32'
  if (t.dtype !== want) throw new InvalidActivationError(`${limits.what}: dtype ${t.dtype}, expected ${want}`)
  const [b, s, d] = t.shape
  if (t.shape.length !== 3) throw new InvalidActivationError(`${limits.what}: rank ${t.shape.length}, expected [batch, seq, ${limits.dModel}]`)
  if (d !== limits.dModel) throw new InvalidActivationError(`${limits.what}: width ${d}, expected ${limits.dModel}`)
  if (b < 1 || b > limits.maxBatch) throw new InvalidActivationError(`${limits.what}: batch ${b} outside [1, ${limits.maxBatch}]`)
  if (s < 1 || s > limits.maxSeq) throw new InvalidActivationError(`${limits.what}: seq ${s} outside [1, ${limits.maxSeq}]`)
  if (t.dtype === 'int8') {
    return float32(dequantizeInt8(t), [b, s, d])
  }
  return float32(t.data as Float32Array, [b, s, d])
}

/** Encode int64 token ids / targets `[batch, seq]` (a zlib stream of the frame when `deflate`) */
export function encodeIds (ids: BigInt64Array, dims: readonly number[], deflate = false): Uint8Array<ArrayBuffer> {
  const frame = encodeTensorFrame({ dtype: 'int64', shape: [...dims], data: ids }) as Uint8Array<ArrayBuffer>
  return deflate ? deflateFrame(frame) : frame
}

/** Decode and check an int64 `[batch, seq]` frame (ids are range-checked by the runtime) */
export function decodeIds (bytes: Uint8Array, limits: Omit<ActivationLimits, 'dModel' | 'compress'>): TensorData {
  if (limits.deflate === true) bytes = inflateFrame(bytes, limits.maxBytes, limits.what)
  let t
  try {
    t = decodeTensorFrame(bytes, { maxBytes: limits.maxBytes, copy: true })
  } catch (err: any) {
    throw new InvalidActivationError(`${limits.what}: ${String(err?.name ?? 'Error')}: ${String(err?.message ?? err)}`)
  }
  if (t.dtype !== 'int64') throw new InvalidActivationError(`${limits.what}: dtype ${t.dtype}, expected int64`)
  if (t.shape.length !== 2) throw new InvalidActivationError(`${limits.what}: rank ${t.shape.length}, expected [batch, seq]`)
  const [b, s] = t.shape
  if (b < 1 || b > limits.maxBatch) throw new InvalidActivationError(`${limits.what}: batch ${b} outside [1, ${limits.maxBatch}]`)
  if (s < 1 || s > limits.maxSeq) throw new InvalidActivationError(`${limits.what}: seq ${s} outside [1, ${limits.maxSeq}]`)
  return int64(t.data as BigInt64Array, [b, s])
}

/** Encode a named float32 parameter or gradient (TAKE_TIED / SET_TIED) */
export function encodeNamed (name: string, data: Float32Array, shape: readonly number[]): Uint8Array<ArrayBuffer> {
  return encodeTensorFrame({ dtype: 'float32', shape: [...shape], data, name }) as Uint8Array<ArrayBuffer>
}

/**
 * Decode a named float32 tensor; checks name, element count and (unless `checkFinite: false`, for tensors the
 * runtime checks again anyway) finiteness. `copy: false` returns a view into `bytes` where it is aligned.
 */
export function decodeNamed (bytes: Uint8Array, expectName: string, expectLength: number, maxBytes: number, options: { copy?: boolean, checkFinite?: boolean } = {}): Float32Array {
  let t
  try {
    t = decodeTensorFrame(bytes, { maxBytes, copy: options.copy ?? true })
  } catch (err: any) {
    throw new InvalidActivationError(`${expectName}: ${String(err?.name ?? 'Error')}: ${String(err?.message ?? err)}`)
  }
  if (t.dtype !== 'float32') throw new InvalidActivationError(`${expectName}: dtype ${t.dtype}, expected float32`)
  if (t.name !== expectName) throw new InvalidActivationError(`tensor named ${JSON.stringify(t.name ?? '')}, expected ${expectName}`)
  if (t.data.length !== expectLength) throw new InvalidActivationError(`${expectName}: ${t.data.length} elements, expected ${expectLength}`)
  const data = t.data as Float32Array
  if (options.checkFinite !== false) {
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) throw new InvalidActivationError(`${expectName}: non-finite value at ${i}`)
    }
  }
  return data
}
