import { CheckpointHeaderError, CheckpointOffsetsError, CheckpointTruncatedError } from './errors.js'

/**
 * The safetensors container (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of UTF-8 JSON, then the raw little-endian tensor bytes. Written by hand: the format is
 * ~100 lines, and no maintained npm library both writes it and validates untrusted files as strictly as
 * the checkpoint loader must (typed errors for every malformed case).
 */

/** Element types safetensors names, with their size in bytes */
export const SAFETENSORS_DTYPE_BYTES = Object.freeze({
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1
})

export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES

/** One tensor: dtype, shape and its raw little-endian bytes */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype
  shape: number[]
  data: Uint8Array
}

export interface SafetensorsFile {
  /** Tensors by name (their `data` are views into the decoded buffer) */
  tensors: Map<string, SafetensorsTensor>
  /** The `__metadata__` string map (empty when absent) */
  metadata: Record<string, string>
}

export interface DecodeSafetensorsOptions {
  /**
   * Largest header accepted, in bytes (the reference implementation's cap)
   *
   * @default 100_000_000
   */
  maxHeaderBytes?: number
}

/** The default cap on the JSON header */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000

function numel (shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

/**
 * Encode tensors (written in name order, byte-wise sorted) and optional string metadata. The header is
 * padded with spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned in the file.
 */
export function encodeSafetensors (tensors: Map<string, SafetensorsTensor>, metadata?: Record<string, string>): Uint8Array {
  const names = [...tensors.keys()].sort(compareNames)
  const header: Record<string, unknown> = {}
  if (metadata != null && Object.keys(metadata).length > 0) header.__metadata__ = metadata
  let offset = 0
  for (const name of names) {
    if (name === '__metadata__') throw new CheckpointHeaderError('a tensor cannot be named __metadata__')
    const t = tensors.get(name)!
    const size = SAFETENSORS_DTYPE_BYTES[t.dtype]
    if (size === undefined) throw new CheckpointHeaderError(`tensor ${name}: unknown dtype ${String(t.dtype)}`)
    if (t.data.byteLength !== numel(t.shape) * size) {
      throw new CheckpointOffsetsError(`tensor ${name}: ${t.data.byteLength} bytes do not match ${t.dtype} ${JSON.stringify(t.shape)}`)
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] }
    offset += t.data.byteLength
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8')
  const pad = (8 - (json.length % 8)) % 8
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)])
  const out = new Uint8Array(8 + json.length + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true)
  out.set(json, 8)
  let at = 8 + json.length
  for (const name of names) {
    const t = tensors.get(name)!
    out.set(t.data, at)
    at += t.data.byteLength
  }
  return out
}

/** Byte-wise (UTF-8) order of names, the order of the file and of the content hash */
export function compareNames (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return v != null && typeof v === 'object' && !Array.isArray(v)
}

function isIndex (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/**
 * Decode and validate a safetensors buffer. Throws `CheckpointTruncatedError` (shorter than 8 bytes, or
 * the data section ends before the last tensor), `CheckpointHeaderError` (header length past the end of
 * the file or over the cap, invalid UTF-8 / JSON, malformed entries) or `CheckpointOffsetsError` (a
 * tensor's byte range does not match dtype × shape, ranges overlap or leave holes, trailing bytes).
 */
export function decodeSafetensors (bytes: Uint8Array, options: DecodeSafetensorsOptions = {}): SafetensorsFile {
  const maxHeader = options.maxHeaderBytes ?? MAX_SAFETENSORS_HEADER_BYTES
  if (bytes.byteLength < 8) {
    throw new CheckpointTruncatedError(`file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`)
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true)
  if (n > BigInt(maxHeader)) {
    throw new CheckpointHeaderError(`header length ${n} is over the cap of ${maxHeader} bytes`)
  }
  const headerLen = Number(n)
  if (8 + headerLen > bytes.byteLength) {
    throw new CheckpointHeaderError(`header length ${headerLen} runs past the end of the file (${bytes.byteLength} bytes)`)
  }
  let header: unknown
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)))
  } catch (err: any) {
    throw new CheckpointHeaderError(`header is not valid UTF-8 JSON: ${String(err?.message ?? err)}`)
  }
  if (!isRecord(header)) throw new CheckpointHeaderError('header must be a JSON object')

  const metadata: Record<string, string> = {}
  const entries: Array<{ name: string, dtype: SafetensorsDtype, shape: number[], begin: number, end: number }> = []
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isRecord(value)) throw new CheckpointHeaderError('__metadata__ must be an object of strings')
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new CheckpointHeaderError(`__metadata__.${k} must be a string`)
        metadata[k] = v
      }
      continue
    }
    if (!isRecord(value)) throw new CheckpointHeaderError(`tensor ${name}: entry must be an object`)
    const { dtype, shape, data_offsets: offsets } = value
    if (typeof dtype !== 'string' || !Object.hasOwn(SAFETENSORS_DTYPE_BYTES, dtype)) {
      throw new CheckpointHeaderError(`tensor ${name}: unknown dtype ${JSON.stringify(dtype)}`)
    }
    if (!Array.isArray(shape) || !shape.every(isIndex)) {
      throw new CheckpointHeaderError(`tensor ${name}: shape must be an array of non-negative integers`)
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]) {
      throw new CheckpointOffsetsError(`tensor ${name}: data_offsets must be [begin, end] with 0 <= begin <= end`)
    }
    const size = SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDtype]
    const expected = numel(shape) * size
    if (offsets[1] - offsets[0] !== expected) {
      throw new CheckpointOffsetsError(`tensor ${name}: data_offsets span ${offsets[1] - offsets[0]} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`)
    }
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape, begin: offsets[0], end: offsets[1] })
  }

  // ranges must tile the data section exactly: no overlap, no hole, nothing after the last tensor
  const dataStart = 8 + headerLen
  const dataLen = bytes.byteLength - dataStart
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)
  let at = 0
  for (const e of sorted) {
    if (e.begin < at) throw new CheckpointOffsetsError(`tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ends at ${at})`)
    if (e.begin > at) throw new CheckpointOffsetsError(`tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] leave a hole after byte ${at}`)
    at = e.end
  }
  if (at > dataLen) throw new CheckpointTruncatedError(`data section is ${dataLen} bytes but the tensors need ${at}`)
  if (at < dataLen) throw new CheckpointOffsetsError(`${dataLen - at} trailing bytes after the last tensor`)

  const tensors = new Map<string, SafetensorsTensor>()
  for (const e of entries) {
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: bytes.subarray(dataStart + e.begin, dataStart + e.end) })
  }
  return { tensors, metadata }
}

/** View (or, when unaligned, copy) little-endian F32 bytes as a Float32Array */
export function bytesAsFloat32 (data: Uint8Array): Float32Array {
  if (data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)
  return new Float32Array(data.slice().buffer)
}

/** The little-endian bytes of a Float32Array (a view, no copy) */
export function float32AsBytes (data: Float32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}
