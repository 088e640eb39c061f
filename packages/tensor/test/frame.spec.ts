import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_MAX_FRAME_BYTES, TensorFrameError, decodeTensorFrame, decodeTensorFrameHeader, encodeTensorFrame,
  encodeTensorFrameParts, quantizeInt8, toBFloat16, toFloat16, validateTensorFrame
} from '../src/index.js'
import type { Dtype, Tensor } from '../src/index.js'

const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 4 })
const nameArb = fc.option(fc.string({ maxLength: 40, unit: 'grapheme' }), { nil: undefined })
const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1)

/** Random tensors of every dtype, every float bit pattern included (NaN payloads, -0, subnormals) */
const tensorArb: fc.Arbitrary<Tensor> = fc.tuple(
  fc.constantFrom<Dtype>('float32', 'float16', 'bfloat16', 'int8', 'int32', 'int64'), shapeArb, nameArb, fc.integer({ min: 1, max: 9 })
).chain(([dtype, shape, name, blockSize]) => {
  const n = numelOf(shape)
  const named = name !== undefined ? { name } : {}
  switch (dtype) {
    case 'float32':
      return fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: n, maxLength: n })
        .map((bits): Tensor => ({ dtype, shape, data: new Float32Array(new Uint32Array(bits).buffer), ...named }))
    case 'float16':
    case 'bfloat16':
      return fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: n, maxLength: n })
        .map((bits): Tensor => ({ dtype, shape, data: new Uint16Array(bits), ...named }))
    case 'int32':
      return fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: n, maxLength: n })
        .map((xs): Tensor => ({ dtype, shape, data: new Int32Array(xs), ...named }))
    case 'int64':
      return fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { minLength: n, maxLength: n })
        .map((xs): Tensor => ({ dtype, shape, data: new BigInt64Array(xs), ...named }))
    case 'int8':
      return fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n })
        .map((xs): Tensor => ({ dtype, shape, ...quantizeInt8(new Float32Array(xs), { blockSize }), ...named }))
  }
})

function expectSameTensor (a: Tensor, b: Tensor): void {
  expect(a.dtype).toBe(b.dtype)
  expect(a.shape).toEqual(b.shape)
  expect(a.name === '' ? undefined : a.name).toBe(b.name === '' ? undefined : b.name)
  // compare raw bytes so NaN payloads and -0 count
  const raw = (t: Tensor): Buffer => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)
  expect(raw(a).equals(raw(b))).toBe(true)
  if (a.dtype === 'int8' && b.dtype === 'int8') {
    expect(a.blockSize).toBe(b.blockSize)
    expect(Buffer.from(a.scales.buffer, a.scales.byteOffset, a.scales.byteLength)
      .equals(Buffer.from(b.scales.buffer, b.scales.byteOffset, b.scales.byteLength))).toBe(true)
  }
}

const f32Tensor = (xs: number[], shape = [xs.length]): Tensor => ({ dtype: 'float32', shape, data: new Float32Array(xs) })

describe('tensor frames', () => {
  it('round-trip every dtype, shape and name bit for bit', () => {
    fc.assert(fc.property(tensorArb, (t) => {
      const frame = encodeTensorFrame(t)
      expectSameTensor(decodeTensorFrame(frame), t)
      expectSameTensor(decodeTensorFrame(frame, { copy: true }), t)
      const header = decodeTensorFrameHeader(frame)
      expect(header.frameBytes).toBe(frame.length)
      expect(header.payloadOffset % 8).toBe(0)
      expect(Buffer.concat(encodeTensorFrameParts(t)).equals(Buffer.from(frame))).toBe(true)
    }), { numRuns: 300 })
  })

  it('round-trips a large float16 / bfloat16 / int8 tensor made by the converters', () => {
    const x = new Float32Array(10_000).map((_, i) => Math.sin(i) * 1000)
    for (const t of [
      { dtype: 'float16', shape: [100, 100], data: toFloat16(x) },
      { dtype: 'bfloat16', shape: [10_000], data: toBFloat16(x) },
      { dtype: 'int8', shape: [10, 10, 100], ...quantizeInt8(x) }
    ] satisfies Tensor[]) {
      expectSameTensor(decodeTensorFrame(encodeTensorFrame(t)), t)
    }
  })

  it('decodes zero-copy when the frame is aligned, and copies otherwise or when asked', () => {
    const frame = encodeTensorFrame({ dtype: 'int64', shape: [3], name: 'x', data: new BigInt64Array([1n, -2n, 3n]) })
    const viewed = decodeTensorFrame(frame)
    expect(viewed.data.buffer).toBe(frame.buffer)
    frame[frame.length - 8] = 9 // the view sees changes to the frame
    expect(viewed.data[2]).toBe(9n)

    const copied = decodeTensorFrame(frame, { copy: true })
    expect(copied.data.buffer).not.toBe(frame.buffer)

    // the same frame at an odd offset in a larger buffer: decoded by copying, values intact
    const shifted = new Uint8Array(frame.length + 3)
    shifted.set(frame, 3)
    const misaligned = decodeTensorFrame(shifted.subarray(3))
    expect(misaligned.data.buffer).not.toBe(shifted.buffer)
    expect(Array.from(misaligned.data as BigInt64Array)).toEqual([1n, -2n, 9n])

    // a Node Buffer (pooled: it sits at an offset in a shared ArrayBuffer, and its slice() is a view, not a copy):
    // copied or misaligned, the values are the frame's (found by the pipeline's tied-rows vectors: they were garbage)
    // (built at offset 8 of a larger ArrayBuffer, as Node's pool would place it: the pool itself can hand out offset 0
    // right after it refills, which failed this check once in a fresh-clone CI run)
    const pooled = Buffer.from(new ArrayBuffer(frame.length + 16), 8, frame.length)
    pooled.set(frame)
    expect(pooled.byteOffset).toBeGreaterThan(0)
    expect(Array.from(decodeTensorFrame(pooled, { copy: true }).data as BigInt64Array)).toEqual([1n, -2n, 9n])
    const odd = Buffer.concat([Buffer.alloc(3), pooled]).subarray(3)
    expect(Array.from(decodeTensorFrame(odd).data as BigInt64Array)).toEqual([1n, -2n, 9n])

    // int8 values need no alignment; their scales do
    const q = encodeTensorFrame({ dtype: 'int8', shape: [5], ...quantizeInt8(new Float32Array([1, 2, 3, 4, 5]), { blockSize: 2 }) })
    const qt = decodeTensorFrame(q)
    expect(qt.data.buffer).toBe(q.buffer)
    expect(qt.dtype === 'int8' && qt.scales.buffer === q.buffer).toBe(true)
  })

  it('treats an empty name as no name', () => {
    const a = encodeTensorFrame({ dtype: 'int32', shape: [1], name: '', data: new Int32Array([7]) })
    const b = encodeTensorFrame({ dtype: 'int32', shape: [1], data: new Int32Array([7]) })
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true)
    expect('name' in decodeTensorFrame(a)).toBe(false)
  })

  it('reads the header from a prefix, so a stream reader learns the frame size first', () => {
    const frame = encodeTensorFrame({ dtype: 'float32', shape: [4, 4], name: 'acts', data: new Float32Array(16) })
    const h = decodeTensorFrameHeader(frame.subarray(0, 40))
    expect(h).toMatchObject({ dtype: 'float32', shape: [4, 4], name: 'acts', numel: 16, payloadOffset: 40, payloadBytes: 64, frameBytes: 104 })
    expect(() => decodeTensorFrameHeader(frame.subarray(0, 39))).toThrow(expect.objectContaining({ name: 'FrameLengthError' }))
  })
})

describe('hostile frames', () => {
  /** A frame header declaring `shape` of `dtype` (code), with `extra` bytes after it */
  function header (code: number, shape: bigint[], extra = 0): Uint8Array {
    const b = new Uint8Array(16 + 8 * shape.length + extra)
    const v = new DataView(b.buffer)
    b.set([0x4e, 0x53, 0x54, 0x46, 1, code, shape.length, 0])
    shape.forEach((d, i) => { v.setBigUint64(16 + 8 * i, d, true) })
    return b
  }

  it('rejects a 2^60-element shape in a small buffer before allocating', () => {
    const frame = header(1, [2n ** 30n, 2n ** 30n], 68) // 100 bytes
    expect(frame.length).toBe(100)
    const t0 = performance.now()
    expect(() => decodeTensorFrame(frame)).toThrow(expect.objectContaining({ name: 'InvalidShapeError' }))
    expect(performance.now() - t0).toBeLessThan(1_000) // generous: a loaded CI machine must not flake; an allocation attempt would throw RangeError, not the typed error
  })

  it('checks the declared size against the bytes before allocating, whatever the cap', () => {
    // 2^50 float32 elements = 4 PiB: allocating first would throw a RangeError, not our typed error
    const frame = header(1, [2n ** 50n], 76)
    expect(() => decodeTensorFrame(frame, { maxBytes: Number.MAX_SAFE_INTEGER, copy: true }))
      .toThrow(expect.objectContaining({ name: 'FrameLengthError' }))
    expect(() => decodeTensorFrame(frame)).toThrow(expect.objectContaining({ name: 'FrameTooLargeError' }))
    // 1 GiB declared, allocatable on this machine: rejected without the process's ArrayBuffer memory moving
    const big = header(1, [2n ** 28n], 76)
    const before = process.memoryUsage().arrayBuffers
    expect(() => decodeTensorFrame(big, { maxBytes: 2 ** 31, copy: true })).toThrow(expect.objectContaining({ name: 'FrameLengthError' }))
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(2 ** 20)
  })

  it('enforces a cap of a few bytes', () => {
    const frame = encodeTensorFrame(f32Tensor([1]))
    expect(() => decodeTensorFrame(frame, { maxBytes: 8 })).toThrow(expect.objectContaining({ name: 'FrameTooLargeError' }))
    expect(decodeTensorFrame(frame, { maxBytes: frame.length }).data).toEqual(new Float32Array([1]))
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(256 * 1024 * 1024)
  })

  it('rejects unknown dtypes, wrong lengths and non-canonical bytes with typed errors', () => {
    for (const code of [0, 7, 8, 255]) {
      expect(() => decodeTensorFrame(header(code, [1n], 8))).toThrow(expect.objectContaining({ name: 'UnknownDtypeError' }))
    }
    const frame = encodeTensorFrame(f32Tensor([1, 2, 3, 4]))
    expect(() => decodeTensorFrame(frame.subarray(0, frame.length - 4))).toThrow(expect.objectContaining({ name: 'FrameLengthError' }))
    expect(() => decodeTensorFrame(Uint8Array.from([...frame, 0, 0, 0, 0]))).toThrow(expect.objectContaining({ name: 'FrameLengthError' }))
  })

  it('rejects every truncation of a valid frame with FrameLengthError', () => {
    const frames = [
      encodeTensorFrame({ dtype: 'float32', shape: [2, 2], name: 'w', data: new Float32Array(4) }),
      encodeTensorFrame({ dtype: 'int8', shape: [10], ...quantizeInt8(new Float32Array(10).fill(1), { blockSize: 3 }) })
    ]
    for (const frame of frames) {
      for (let len = 0; len < frame.length; len++) {
        expect(() => decodeTensorFrame(frame.subarray(0, len))).toThrow(expect.objectContaining({ name: 'FrameLengthError' }))
      }
    }
  })

  it('throws only typed frame errors on random bytes and random corruptions', () => {
    const isTyped = (err: unknown): boolean => err instanceof TensorFrameError || (err as Error).name === 'UnsupportedProtocolVersionError'
    const valid = encodeTensorFrame({ dtype: 'int8', shape: [3, 5], name: 'g', ...quantizeInt8(new Float32Array(15).map((_, i) => i - 7), { blockSize: 4 }) })
    fc.assert(fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        // a valid prefix (magic, version) with random rest: gets past the first checks
        fc.uint8Array({ maxLength: 120 }).map((rest) => Uint8Array.from([0x4e, 0x53, 0x54, 0x46, 1, ...rest])),
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
          .map((edits) => { const b = valid.slice(); for (const [i, x] of edits) b[i] = x; return b })
      ),
      fc.integer({ min: 0, max: 4096 }),
      (bytes, maxBytes) => {
        try {
          const t = decodeTensorFrame(bytes, { maxBytes })
          // anything accepted re-encodes to the same bytes: the format is canonical
          expect(Buffer.from(encodeTensorFrame(t)).equals(Buffer.from(bytes))).toBe(true)
        } catch (err) {
          if (!isTyped(err)) throw err
        }
      }
    ), { numRuns: 2000 })
  })
})

describe('encoding checks', () => {
  it('refuses tensors that cannot be a valid frame', () => {
    const bad: Array<[unknown, string]> = [
      [{ dtype: 'float64', shape: [1], data: new Float64Array(1) }, 'UnknownDtypeError'],
      [{ dtype: 'float32', shape: [2], data: new Float32Array(3) }, 'InvalidShapeError'],
      [{ dtype: 'float32', shape: [1, 1, 1, 1, 1, 1, 1, 1, 1], data: new Float32Array(1) }, 'InvalidShapeError'],
      [{ dtype: 'float32', shape: [-1], data: new Float32Array(0) }, 'InvalidShapeError'],
      [{ dtype: 'float32', shape: [1.5], data: new Float32Array(0) }, 'InvalidShapeError'],
      [{ dtype: 'float32', shape: [2 ** 30, 2 ** 30], data: new Float32Array(0) }, 'InvalidShapeError'],
      [{ dtype: 'float32', shape: [1], data: new Int32Array(1) }, 'InvalidParametersError'],
      [{ dtype: 'float32', shape: [1], name: 'x'.repeat(1025), data: new Float32Array(1) }, 'InvalidNameError'],
      [{ dtype: 'float32', shape: [1], name: '\ud800', data: new Float32Array(1) }, 'InvalidNameError'],
      [{ dtype: 'int8', shape: [2], data: new Int8Array(2), scales: new Float32Array(2), blockSize: 1 }, ''],
      [{ dtype: 'int8', shape: [2], data: new Int8Array(2), scales: new Float32Array(1), blockSize: 1 }, 'InvalidShapeError'],
      [{ dtype: 'int8', shape: [2], data: new Int8Array(2), scales: new Float32Array(1), blockSize: 0 }, 'InvalidParametersError'],
      [{ dtype: 'int8', shape: [2], data: new Int8Array([1, -128]), scales: new Float32Array(1), blockSize: 2 }, 'MalformedFrameError'],
      [{ dtype: 'int8', shape: [2], data: new Int8Array(2), scales: new Float32Array([NaN]), blockSize: 2 }, 'MalformedFrameError'],
      [{ dtype: 'int8', shape: [2], data: new Int8Array(2), scales: new Float32Array([-1]), blockSize: 2 }, 'MalformedFrameError']
    ]
    for (const [t, name] of bad) {
      if (name === '') expect(() => encodeTensorFrame(t as Tensor)).not.toThrow()
      else expect(() => encodeTensorFrame(t as Tensor), JSON.stringify(t)).toThrow(expect.objectContaining({ name }))
    }
  })

  it('validateTensorFrame accepts exactly what decodeTensorFrame accepts', () => {
    const frame = encodeTensorFrame(f32Tensor([1, 2], [2]))
    expect(validateTensorFrame(frame).numel).toBe(2)
    expect(() => validateTensorFrame(frame.subarray(1))).toThrow(expect.objectContaining({ name: 'InvalidMagicError' }))
  })
})
