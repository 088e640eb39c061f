import { open } from 'node:fs/promises'
import { InvalidParametersError } from '@neuroshard/interface'

/** GGUF file format version written here (the current one; llama.cpp reads 2 and 3) */
export const GGUF_VERSION = 3
/** Default tensor data alignment (`general.alignment` absent) */
export const GGUF_ALIGNMENT = 32
const MAGIC = 0x46554747 // "GGUF" little-endian

/** GGUF metadata value types */
export const GgufValueType = Object.freeze({
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12
} as const)

/** ggml tensor types written here */
export const GgmlType = Object.freeze({ F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const)

/** A metadata value with its GGUF type */
export type GgufValue =
  | { type: 'uint32', value: number }
  | { type: 'int32', value: number }
  | { type: 'float32', value: number }
  | { type: 'bool', value: boolean }
  | { type: 'string', value: string }
  | { type: 'uint64', value: bigint }
  | { type: 'string[]', value: readonly string[] }
  | { type: 'int32[]', value: ArrayLike<number> }
  | { type: 'float32[]', value: ArrayLike<number> }

export interface GgufTensor {
  name: string
  /** ggml dims, innermost first (`ne[0]` is the row length: a row-major `[rows, cols]` matrix is `[cols, rows]`) */
  dims: number[]
  /** ggml type (`GgmlType`) */
  type: number
  /** Encoded tensor bytes (F32 little-endian, or quantized blocks) */
  data: Uint8Array
}

export interface GgufContent {
  /** Metadata in writing order */
  metadata: Array<[string, GgufValue]>
  tensors: GgufTensor[]
}

const enc = new TextEncoder()

/** Little-endian byte sink that grows as needed (for the header and metadata, not tensor data) */
class ByteWriter {
  private buf = new Uint8Array(1 << 16)
  private view = new DataView(this.buf.buffer)
  length = 0

  private room (n: number): void {
    if (this.length + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.length + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u8 (v: number): void { this.room(1); this.view.setUint8(this.length, v); this.length += 1 }
  u32 (v: number): void { this.room(4); this.view.setUint32(this.length, v, true); this.length += 4 }
  i32 (v: number): void { this.room(4); this.view.setInt32(this.length, v, true); this.length += 4 }
  f32 (v: number): void { this.room(4); this.view.setFloat32(this.length, v, true); this.length += 4 }
  u64 (v: bigint | number): void { this.room(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8 }
  str (s: string): void {
    const b = enc.encode(s)
    this.u64(b.length)
    this.room(b.length)
    this.buf.set(b, this.length)
    this.length += b.length
  }

  pad (alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment
    this.room(n)
    this.buf.fill(0, this.length, this.length + n)
    this.length += n
  }

  bytes (): Uint8Array { return this.buf.subarray(0, this.length) }
}

function writeValue (w: ByteWriter, v: GgufValue): void {
  switch (v.type) {
    case 'uint32': w.u32(GgufValueType.UINT32); w.u32(v.value); break
    case 'int32': w.u32(GgufValueType.INT32); w.i32(v.value); break
    case 'float32': w.u32(GgufValueType.FLOAT32); w.f32(v.value); break
    case 'bool': w.u32(GgufValueType.BOOL); w.u8(v.value ? 1 : 0); break
    case 'string': w.u32(GgufValueType.STRING); w.str(v.value); break
    case 'uint64': w.u32(GgufValueType.UINT64); w.u64(v.value); break
    case 'string[]':
      w.u32(GgufValueType.ARRAY); w.u32(GgufValueType.STRING); w.u64(v.value.length)
      for (const s of v.value) w.str(s)
      break
    case 'int32[]':
      w.u32(GgufValueType.ARRAY); w.u32(GgufValueType.INT32); w.u64(v.value.length)
      for (let i = 0; i < v.value.length; i++) w.i32(v.value[i])
      break
    case 'float32[]':
      w.u32(GgufValueType.ARRAY); w.u32(GgufValueType.FLOAT32); w.u64(v.value.length)
      for (let i = 0; i < v.value.length; i++) w.f32(v.value[i])
      break
  }
}

/** Bytes a tensor of `dims` takes in `type` */
export function ggmlTensorBytes (type: number, dims: number[]): number {
  const n = dims.reduce((a, b) => a * b, 1)
  switch (type) {
    case GgmlType.F32: return n * 4
    case GgmlType.F16: return n * 2
    case GgmlType.Q4_0: return n / 32 * 18
    case GgmlType.Q8_0: return n / 32 * 34
    default: throw new InvalidParametersError(`unsupported ggml type ${type}`)
  }
}

/** Header, metadata and tensor infos (padded to the alignment), and each tensor's offset in the data section */
export function encodeGgufHeader (content: GgufContent, alignment = GGUF_ALIGNMENT): { header: Uint8Array, offsets: number[], dataBytes: number } {
  const w = new ByteWriter()
  w.u32(MAGIC)
  w.u32(GGUF_VERSION)
  w.u64(content.tensors.length)
  w.u64(content.metadata.length)
  const seen = new Set<string>()
  for (const [key, value] of content.metadata) {
    if (seen.has(key)) throw new InvalidParametersError(`duplicate GGUF metadata key ${key}`)
    seen.add(key)
    w.str(key)
    writeValue(w, value)
  }
  const offsets: number[] = []
  let offset = 0
  const names = new Set<string>()
  for (const t of content.tensors) {
    if (names.has(t.name)) throw new InvalidParametersError(`duplicate GGUF tensor ${t.name}`)
    names.add(t.name)
    const size = ggmlTensorBytes(t.type, t.dims)
    if (!Number.isInteger(size) || size !== t.data.length) throw new InvalidParametersError(`tensor ${t.name}: ${t.data.length} bytes for dims [${t.dims.join(', ')}] of type ${t.type} (expected ${size})`)
    w.str(t.name)
    w.u32(t.dims.length)
    for (const d of t.dims) w.u64(d)
    w.u32(t.type)
    w.u64(offset)
    offsets.push(offset)
    offset += size
    offset += (alignment - (offset % alignment)) % alignment
  }
  w.pad(alignment)
  return { header: w.bytes(), offsets, dataBytes: offset }
}

/** The whole GGUF file in memory (small models, tests) */
export function encodeGguf (content: GgufContent): Uint8Array {
  const { header, offsets, dataBytes } = encodeGgufHeader(content)
  const out = new Uint8Array(header.length + dataBytes)
  out.set(header, 0)
  content.tensors.forEach((t, i) => { out.set(t.data, header.length + offsets[i]) })
  return out
}

/** Write a GGUF file tensor by tensor (no whole-file buffer); returns the file size */
export async function writeGguf (path: string, content: GgufContent): Promise<number> {
  const { header, offsets, dataBytes } = encodeGgufHeader(content)
  const fh = await open(path, 'w')
  try {
    await fh.write(header, 0, header.length, 0)
    for (let i = 0; i < content.tensors.length; i++) {
      const t = content.tensors[i]
      await fh.write(t.data, 0, t.data.length, header.length + offsets[i])
    }
    // the last tensor's padding
    const end = header.length + dataBytes
    await fh.truncate(end)
    return end
  } finally {
    await fh.close()
  }
}
