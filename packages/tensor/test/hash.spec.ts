import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { describe, expect, it } from 'vitest'
import { encodeTensorFrame, quantizeInt8, tensorHash, tensorHashHex } from '../src/index.js'
import type { Tensor } from '../src/index.js'

describe('content hash', () => {
  const tensor: Tensor = { dtype: 'float32', shape: [2, 2], name: 'w', data: new Float32Array([1, 2, 3, 4]) }

  it('is SHA-256 of the canonical frame bytes, from the tensor or from its frame', () => {
    const frame = encodeTensorFrame(tensor)
    const expected = bytesToHex(sha256(frame)) // an independent SHA-256
    expect(tensorHashHex(tensor)).toBe(expected)
    expect(tensorHashHex(frame)).toBe(expected)
    expect(tensorHash(tensor)).toEqual(sha256(frame))
  })

  it('changes with any change of values, shape, name, dtype or scales', () => {
    const h = tensorHashHex(tensor)
    const variants: Tensor[] = [
      { ...tensor, data: new Float32Array([1, 2, 3, 5]) },
      { ...tensor, shape: [4, 1] },
      { ...tensor, name: 'v' },
      { dtype: 'int32', shape: [2, 2], name: 'w', data: new Int32Array(new Float32Array([1, 2, 3, 4]).buffer) }
    ]
    for (const v of variants) expect(tensorHashHex(v)).not.toBe(h)
    const q = quantizeInt8(new Float32Array([1, 2, 3, 4]), { blockSize: 2 })
    const qt: Tensor = { dtype: 'int8', shape: [4], ...q }
    const q2: Tensor = { ...qt, scales: new Float32Array([q.scales[0], q.scales[1] * 2]) }
    expect(tensorHashHex(qt)).not.toBe(tensorHashHex(q2))
  })

  it('refuses to hash bytes that are not a valid frame', () => {
    const frame = encodeTensorFrame(tensor)
    expect(() => tensorHash(frame.subarray(0, frame.length - 1))).toThrow(expect.objectContaining({ name: 'FrameLengthError' }))
    expect(() => tensorHash(frame, { maxBytes: 10 })).toThrow(expect.objectContaining({ name: 'FrameTooLargeError' }))
  })
})
