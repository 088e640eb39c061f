/**
 * Encoding and decoding of tensor frames (specs/tensor-frame/README.md).
 *
 * Decoding validates the whole header against the bytes actually present, and against the caller's
 * `maxBytes` cap, before it creates anything sized by the header: a hostile frame costs at most the
 * bytes it really is.
 */

import { Buffer } from 'node:buffer'
import { InvalidParametersError, UnsupportedProtocolVersionError } from '@neuroshard/interface'
import {
  DEFAULT_MAX_FRAME_BYTES, DTYPE_BYTES, DTYPE_CODES, MAX_INT8_BLOCK_SIZE, MAX_NAME_BYTES, MAX_RANK,
  TENSOR_FRAME_ALIGNMENT, TENSOR_FRAME_FIXED_HEADER_BYTES, TENSOR_FRAME_MAGIC, TENSOR_FRAME_VERSION
} from './constants.js'
import {
  FrameLengthError, FrameTooLargeError, InvalidMagicError, InvalidNameError, InvalidShapeError,
  MalformedFrameError, UnknownDtypeError, UnsupportedPlatformError
} from './errors.js'
import { MAX_INT8_SCALE, checkBlockSize } from './int8.js'
import type { Dtype, Tensor } from './types.js'

export interface DecodeTensorFrameOptions {
  /**
   * Largest frame (header + payload, in bytes) to accept; larger frames, and frames whose header
   * declares a larger size, throw `FrameTooLargeError` before anything is allocated.
   *
   * @default 268435456 (256 MiB)
   */
  maxBytes?: number
  /**
   * Always copy the payload into fresh memory. By default `data` (and `scales`) are views into the
   * input bytes whenever the payload is aligned for its element type, and copies otherwise.
   *
   * @default false
   */
  copy?: boolean
}

/** What the header of a frame declares, after validation */
export interface TensorFrameHeader {
  version: number
  dtype: Dtype
  shape: number[]
  /** The name, when the frame has a non-empty one */
  name?: string
  /** Elements per int8 block; 0 for every other dtype */
  blockSize: number
  /** Number of elements: the product of the shape (1 for a scalar) */
  numel: number
  /** Offset of the payload from the start of the frame (a multiple of 8) */
  payloadOffset: number
  /** Length of the payload in bytes (for int8: scales then values) */
  payloadBytes: number
  /** Length of the whole frame in bytes */
  frameBytes: number
}

const CODE_TO_DTYPE: Array<Dtype | undefined> = []
for (const [dtype, code] of Object.entries(DTYPE_CODES)) CODE_TO_DTYPE[code] = dtype as Dtype

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const MAX_INT8_SCALE_BITS = new Uint32Array(new Float32Array([MAX_INT8_SCALE]).buffer)[0]
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const utf8Encoder = new TextEncoder()

function checkPlatform (): void {
  if (!LITTLE_ENDIAN) throw new UnsupportedPlatformError('@neuroshard/tensor needs a little-endian host')
}

function align (n: number): number {
  return Math.ceil(n / TENSOR_FRAME_ALIGNMENT) * TENSOR_FRAME_ALIGNMENT
}

/** Payload size in bytes of `numel` elements of `dtype` (int8: scales + values), as a bigint */
function payloadSize (dtype: Dtype, numel: bigint, blockSize: number): bigint {
  if (dtype === 'int8') {
    const bs = BigInt(blockSize)
    return 4n * ((numel + bs - 1n) / bs) + numel
  }
  return numel * BigInt(DTYPE_BYTES[dtype])
}

/**
 * Parses and validates the header of a frame. `bytes` needs to hold at least the header and its padding
 * (the payload may be missing, so a stream reader can learn `frameBytes` early); throws
 * `FrameLengthError` when it does not, and `FrameTooLargeError` when the frame would exceed `maxBytes`.
 */
export function decodeTensorFrameHeader (bytes: Uint8Array, options: Pick<DecodeTensorFrameOptions, 'maxBytes'> = {}): TensorFrameHeader {
  if (!(bytes instanceof Uint8Array)) throw new InvalidParametersError('a tensor frame must be a Uint8Array')
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FRAME_BYTES
  if (typeof maxBytes !== 'number' || !(maxBytes >= 0)) throw new InvalidParametersError(`maxBytes must be a non-negative number, got ${maxBytes}`)
  if (bytes.byteLength < TENSOR_FRAME_FIXED_HEADER_BYTES) {
    throw new FrameLengthError(`a tensor frame is at least ${TENSOR_FRAME_FIXED_HEADER_BYTES} bytes, got ${bytes.byteLength}`)
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== TENSOR_FRAME_MAGIC[i]) throw new InvalidMagicError('not a tensor frame: the magic bytes are not "NSTF"')
  }
  const version = bytes[4]
  if (version !== TENSOR_FRAME_VERSION) {
    throw new UnsupportedProtocolVersionError(`tensor frame version ${version} is not supported (this implementation reads version ${TENSOR_FRAME_VERSION})`)
  }
  const dtype = CODE_TO_DTYPE[bytes[5]]
  if (dtype === undefined) throw new UnknownDtypeError(`unknown dtype code ${bytes[5]}`)
  const rank = bytes[6]
  if (rank > MAX_RANK) throw new InvalidShapeError(`rank ${rank} exceeds the maximum of ${MAX_RANK}`)
  if (bytes[7] !== 0) throw new MalformedFrameError(`flags byte must be 0 in version ${TENSOR_FRAME_VERSION}, got ${bytes[7]}`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  // the checks run in the order specs/tensor-frame/README.md lists them, so every client reports the same error
  if (view.getUint16(10, true) !== 0) throw new MalformedFrameError('reserved bytes 10-11 must be 0')
  const blockSize = view.getUint32(12, true)
  if (dtype === 'int8') {
    if (blockSize < 1 || blockSize > MAX_INT8_BLOCK_SIZE) throw new MalformedFrameError(`int8 block size must be in [1, ${MAX_INT8_BLOCK_SIZE}], got ${blockSize}`)
  } else if (blockSize !== 0) {
    throw new MalformedFrameError(`block size must be 0 for dtype ${dtype}, got ${blockSize}`)
  }
  const nameLength = view.getUint16(8, true)
  if (nameLength > MAX_NAME_BYTES) throw new InvalidNameError(`name of ${nameLength} bytes exceeds the maximum of ${MAX_NAME_BYTES}`)
  const nameOffset = TENSOR_FRAME_FIXED_HEADER_BYTES + 8 * rank
  const payloadOffset = align(nameOffset + nameLength)
  if (bytes.byteLength < payloadOffset) {
    throw new FrameLengthError(`truncated header: needs ${payloadOffset} bytes, got ${bytes.byteLength}`)
  }
  const shape: number[] = []
  let numel = 1n
  for (let d = 0; d < rank; d++) {
    const dim = view.getBigUint64(TENSOR_FRAME_FIXED_HEADER_BYTES + 8 * d, true)
    if (dim > MAX_SAFE) throw new InvalidShapeError(`dim ${d} is ${dim}, above 2^53 - 1`)
    shape.push(Number(dim))
    numel *= dim
    // stays small: both factors are at most 2^53, and we stop as soon as the product passes 2^53
    if (numel > MAX_SAFE) throw new InvalidShapeError(`shape [${shape.join(', ')}, …] has more than 2^53 - 1 elements`)
  }
  const frameBig = BigInt(payloadOffset) + payloadSize(dtype, numel, blockSize)
  if (frameBig > MAX_SAFE || Number(frameBig) > maxBytes) {
    throw new FrameTooLargeError(`frame declares ${frameBig} bytes, above the cap of ${maxBytes}`)
  }
  for (let i = nameOffset + nameLength; i < payloadOffset; i++) {
    if (bytes[i] !== 0) throw new MalformedFrameError('padding bytes must be 0')
  }
  let name: string | undefined
  if (nameLength > 0) {
    try {
      name = utf8Decoder.decode(bytes.subarray(nameOffset, nameOffset + nameLength))
    } catch {
      throw new InvalidNameError('name is not valid UTF-8')
    }
  }
  const frameBytes = Number(frameBig)
  const header: TensorFrameHeader = {
    version,
    dtype,
    shape,
    blockSize,
    numel: Number(numel),
    payloadOffset,
    payloadBytes: frameBytes - payloadOffset,
    frameBytes
  }
  if (name !== undefined) header.name = name
  return header
}

/** The header of a complete frame: also checks that `bytes` is exactly as long as the frame declares */
function decodeFullHeader (bytes: Uint8Array, options: DecodeTensorFrameOptions): TensorFrameHeader {
  const header = decodeTensorFrameHeader(bytes, options)
  if (header.frameBytes !== bytes.byteLength) {
    throw new FrameLengthError(`frame declares ${header.frameBytes} bytes but ${bytes.byteLength} were given`)
  }
  return header
}

/**
 * Checks that `bytes` is one complete, valid frame (everything `decodeTensorFrame` checks) without
 * creating views or copies of the payload; returns its header.
 */
export function validateTensorFrame (bytes: Uint8Array, options: Pick<DecodeTensorFrameOptions, 'maxBytes'> = {}): TensorFrameHeader {
  const header = decodeFullHeader(bytes, options)
  if (header.dtype === 'int8') {
    const nBlocks = Math.ceil(header.numel / header.blockSize)
    checkScales(typedView(Uint32Array, bytes, header.payloadOffset, nBlocks, false))
    checkInt8Values(typedView(Int8Array, bytes, header.payloadOffset + 4 * nBlocks, header.numel, false))
  }
  return header
}

/** A typed-array view on `length` elements at `offset` in `bytes`, or a copy when unaligned or asked for */
function typedView<T> (
  Ctor: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T, BYTES_PER_ELEMENT: number },
  bytes: Uint8Array, offset: number, length: number, copy: boolean
): T {
  const byteLength = length * Ctor.BYTES_PER_ELEMENT
  const absolute = bytes.byteOffset + offset
  if (!copy && absolute % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer, absolute, length)
  // fresh memory at offset 0: a Node Buffer's slice() is a view into its (pooled) ArrayBuffer, not a copy
  const copied = new Uint8Array(byteLength)
  copied.set(bytes.subarray(offset, offset + byteLength))
  return new Ctor(copied.buffer, 0, length)
}

/**
 * Decodes a tensor frame. Throws a `TensorFrameError` subclass (or `UnsupportedProtocolVersionError`)
 * for anything that is not a valid, canonical version-1 frame of at most `maxBytes` bytes.
 *
 * The returned `data` is a view into `bytes` (zero-copy) when the payload sits at an address aligned for
 * its element type (it always does when `bytes.byteOffset` is a multiple of 8), a copy otherwise or when
 * `copy: true`. Views share memory with `bytes`: do not reuse that buffer while the tensor is in use.
 */
export function decodeTensorFrame (bytes: Uint8Array, options: DecodeTensorFrameOptions = {}): Tensor {
  checkPlatform()
  const header = decodeFullHeader(bytes, options)
  const copy = options.copy === true
  const { dtype, numel, payloadOffset: off } = header
  const shape = header.shape
  let tensor: Tensor
  switch (dtype) {
    case 'float32':
      tensor = { dtype, shape, data: typedView(Float32Array, bytes, off, numel, copy) }
      break
    case 'float16':
    case 'bfloat16':
      tensor = { dtype, shape, data: typedView(Uint16Array, bytes, off, numel, copy) }
      break
    case 'int32':
      tensor = { dtype, shape, data: typedView(Int32Array, bytes, off, numel, copy) }
      break
    case 'int64':
      tensor = { dtype, shape, data: typedView(BigInt64Array, bytes, off, numel, copy) }
      break
    case 'int8': {
      const nBlocks = Math.ceil(numel / header.blockSize)
      const scaleBits = typedView(Uint32Array, bytes, off, nBlocks, copy)
      checkScales(scaleBits)
      const data = typedView(Int8Array, bytes, off + 4 * nBlocks, numel, copy)
      checkInt8Values(data)
      const scales = new Float32Array(scaleBits.buffer, scaleBits.byteOffset, nBlocks)
      tensor = { dtype, shape, data, scales, blockSize: header.blockSize }
      break
    }
  }
  if (header.name !== undefined) tensor.name = header.name
  return tensor
}

/** Scales must be non-negative, finite, and at most MAX_INT8_SCALE: one integer compare on the bits */
function checkScales (bits: Uint32Array): void {
  for (let i = 0; i < bits.length; i++) {
    if (bits[i] > MAX_INT8_SCALE_BITS) throw new MalformedFrameError(`int8 scale ${i} is negative, not finite, or above ${MAX_INT8_SCALE}`)
  }
}

/** -128 is outside the symmetric range; rejecting it keeps every dequantized value finite */
function checkInt8Values (data: Int8Array): void {
  // Buffer#indexOf is a memchr-speed native search, ~10x faster than Int8Array#indexOf here
  const at = Buffer.from(data.buffer, data.byteOffset, data.byteLength).indexOf(0x80)
  if (at !== -1) throw new MalformedFrameError(`int8 value at index ${at} is -128, outside [-127, 127]`)
}

const ARRAY_TYPES = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  int32: Int32Array,
  int64: BigInt64Array
} as const

/**
 * The frame of `tensor` as a list of byte arrays whose concatenation is exactly `encodeTensorFrame(tensor)`:
 * a freshly written header (with padding) followed by views of the tensor's own memory. Send them one
 * after the other to put a tensor on a stream without copying its payload.
 */
export function encodeTensorFrameParts (tensor: Tensor): Uint8Array[] {
  checkPlatform()
  const dtype: Dtype = tensor.dtype
  const code = DTYPE_CODES[dtype] as number | undefined
  if (code === undefined || !Object.hasOwn(DTYPE_CODES, dtype)) throw new UnknownDtypeError(`unknown dtype ${String(dtype)}`)
  const shape = tensor.shape
  if (!Array.isArray(shape)) throw new InvalidShapeError('shape must be an array of dims')
  if (shape.length > MAX_RANK) throw new InvalidShapeError(`rank ${shape.length} exceeds the maximum of ${MAX_RANK}`)
  let numel = 1n
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) throw new InvalidShapeError(`dims must be non-negative safe integers, got ${String(dim)}`)
    numel *= BigInt(dim)
    if (numel > MAX_SAFE) throw new InvalidShapeError(`shape [${shape.join(', ')}] has more than 2^53 - 1 elements`)
  }
  const data = tensor.data
  if (!(data instanceof ARRAY_TYPES[dtype])) throw new InvalidParametersError(`${dtype} data must be a ${ARRAY_TYPES[dtype].name}`)
  if (BigInt(data.length) !== numel) throw new InvalidShapeError(`shape [${shape.join(', ')}] has ${numel} elements but data has ${data.length}`)
  let blockSize = 0
  let scales: Float32Array | undefined
  if (tensor.dtype === 'int8') {
    blockSize = tensor.blockSize
    checkBlockSize(blockSize)
    scales = tensor.scales
    const nBlocks = Math.ceil(data.length / blockSize)
    if (!(scales instanceof Float32Array) || scales.length !== nBlocks) {
      throw new InvalidShapeError(`int8 tensor of ${data.length} values in blocks of ${blockSize} needs ${nBlocks} float32 scales`)
    }
    checkScales(new Uint32Array(scales.buffer, scales.byteOffset, nBlocks))
    checkInt8Values(tensor.data)
  }
  let nameBytes: Uint8Array | undefined
  if (tensor.name !== undefined && tensor.name !== '') {
    const name = tensor.name
    if (typeof name !== 'string' || !(name as unknown as { isWellFormed(): boolean }).isWellFormed()) {
      throw new InvalidNameError('name must be a well-formed string (no lone surrogates)')
    }
    nameBytes = utf8Encoder.encode(name)
    if (nameBytes.length > MAX_NAME_BYTES) throw new InvalidNameError(`name of ${nameBytes.length} bytes exceeds the maximum of ${MAX_NAME_BYTES}`)
  }
  const nameLength = nameBytes?.length ?? 0
  const nameOffset = TENSOR_FRAME_FIXED_HEADER_BYTES + 8 * shape.length
  const payloadOffset = align(nameOffset + nameLength)
  const header = new Uint8Array(payloadOffset)
  const view = new DataView(header.buffer)
  header.set(TENSOR_FRAME_MAGIC, 0)
  header[4] = TENSOR_FRAME_VERSION
  header[5] = code
  header[6] = shape.length
  view.setUint16(8, nameLength, true)
  view.setUint32(12, blockSize, true)
  for (let d = 0; d < shape.length; d++) view.setBigUint64(TENSOR_FRAME_FIXED_HEADER_BYTES + 8 * d, BigInt(shape[d]), true)
  if (nameBytes !== undefined) header.set(nameBytes, nameOffset)
  const parts: Uint8Array[] = [header]
  if (scales !== undefined) parts.push(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength))
  parts.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  return parts
}

/** Encodes a tensor as one frame (see specs/tensor-frame/README.md) */
export function encodeTensorFrame (tensor: Tensor): Uint8Array {
  const parts = encodeTensorFrameParts(tensor)
  let total = 0
  for (const p of parts) total += p.byteLength
  const out = new Uint8Array(total)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.byteLength
  }
  return out
}
