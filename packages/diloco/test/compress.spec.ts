import { describe, expect, it } from 'vitest'
import { decodePayload, encodePayload, ErrorFeedback, MalformedPseudoGradientError, payloadSize, resolveCodec } from '../src/index.js'

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs)

describe('codecs', () => {
  it('fp32 is lossless and 4 bytes per element', () => {
    const x = f32([1.5, -2.25, 3e-8, 0])
    const c = resolveCodec('fp32')
    const p = encodePayload(x, c)
    expect(p.byteLength).toBe(16)
    expect(Array.from(decodePayload(p, 4, c))).toEqual(Array.from(x))
  })

  it('fp16 rounds to the nearest half', () => {
    const c = resolveCodec('fp16')
    const p = encodePayload(f32([1, 1 + 2 ** -11, -0.5]), c)
    expect(p.byteLength).toBe(6)
    // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: ties to even gives 1
    expect(Array.from(decodePayload(p, 3, c))).toEqual([1, 1, -0.5])
  })

  it('int8: scale = absmax/127 per block, q = round(x/scale)', () => {
    const c = resolveCodec({ codec: 'int8', blockSize: 2 })
    const p = encodePayload(f32([1.27, -0.635, 0, 0]), c)
    expect(p.byteLength).toBe(2 * 4 + 4)
    const dv = new DataView(p.buffer, p.byteOffset)
    expect(dv.getFloat32(0, true)).toBe(Math.fround(Math.fround(1.27) / 127))
    expect(dv.getFloat32(4, true)).toBe(0)
    expect(Array.from(new Int8Array(p.buffer, p.byteOffset + 8, 4))).toEqual([127, -64, 0, 0])
  })

  it('sparse keeps the top-k of each chunk with 2-bit values', () => {
    const c = resolveCodec({ codec: 'sparse', chunk: 4, topK: 2, bits: 2 })
    const x = f32([0.1, -0.9, 0.3, 0.05, 0.6, 0, 0, -0.2])
    const p = encodePayload(x, c)
    expect(p.byteLength).toBe(payloadSize(8, c))
    expect(p.byteLength).toBe(2 * (4 + 4 + 1))
    const d = decodePayload(p, 8, c)
    // chunk 0 keeps indices 1 (−0.9) and 2 (0.3): scale 0.9, levels ±1, ±1/3 → −0.9, 0.3
    expect(d[0]).toBe(0)
    expect(d[1]).toBe(Math.fround(-0.9))
    expect(d[2]).toBeCloseTo(0.3, 6)
    expect(d[3]).toBe(0)
    // chunk 1 keeps 4 (0.6) and 7 (−0.2): −0.2/0.6 = −1/3 exactly a level
    expect(d[4]).toBe(Math.fround(0.6))
    expect(d[7]).toBeCloseTo(-0.2, 6)
  })

  it('sizes: sparse at the defaults is about 2.2 bytes per kept value', () => {
    const c = resolveCodec('sparse')
    expect(payloadSize(4096 * 10, c)).toBe(10 * (4 + 128 + 16))
    expect(payloadSize(100, resolveCodec('int8'))).toBe(2 * 4 + 100)
  })

  it('refuses malformed payloads with MalformedPseudoGradientError', () => {
    const int8 = resolveCodec({ codec: 'int8', blockSize: 2 })
    const good = encodePayload(f32([1, -1, 0.5, 0.25]), int8)
    const bad = (mut: (b: Uint8Array) => void, codec = int8, n = 4): unknown => {
      const b = good.slice(); mut(b)
      try { decodePayload(b, n, codec); return undefined } catch (err: any) { return err.name }
    }
    expect(bad(() => {}, int8, 5)).toBe(MalformedPseudoGradientError.name) // wrong size for n
    expect(bad(b => { new DataView(b.buffer).setFloat32(0, NaN, true) })).toBe(MalformedPseudoGradientError.name)
    expect(bad(b => { new DataView(b.buffer).setFloat32(0, -1, true) })).toBe(MalformedPseudoGradientError.name)
    expect(bad(b => { b[8] = 0x80 })).toBe(MalformedPseudoGradientError.name) // −128
    const fp16 = resolveCodec('fp16')
    expect(() => decodePayload(Uint8Array.of(0x00, 0x7c), 1, fp16)).toThrow(MalformedPseudoGradientError) // +Inf
    const sp = resolveCodec({ codec: 'sparse', chunk: 4, topK: 2, bits: 2 })
    const sparse = encodePayload(f32([1, 2, 3, 4]), sp)
    const dup = sparse.slice(); dup[6] = dup[4]; dup[7] = dup[5] // repeated index
    expect(() => decodePayload(dup, 4, sp)).toThrow(MalformedPseudoGradientError)
    const pad = sparse.slice(); pad[8] |= 0x80 // padding bits after the two 2-bit codes
    expect(() => decodePayload(pad, 4, sp)).toThrow(MalformedPseudoGradientError)
  })
})

describe('error feedback', () => {
  it('what is not sent is kept: Σ decoded + residual = Σ deltas', () => {
    const c = resolveCodec({ codec: 'sparse', chunk: 8, topK: 1, bits: 1 })
    const ef = new ErrorFeedback(8)
    const sum = new Float64Array(8)
    const sent = new Float64Array(8)
    for (let r = 0; r < 5; r++) {
      const d = Float32Array.from({ length: 8 }, (_, i) => Math.sin(r * 8 + i) / 8)
      d.forEach((v, i) => { sum[i] += v })
      ef.compress(d, c).decoded.forEach((v, i) => { sent[i] += v })
    }
    for (let i = 0; i < 8; i++) expect(sent[i] + ef.residual[i]).toBeCloseTo(sum[i], 5)
  })

  it('carry folds a missed pseudo-gradient into the next one', () => {
    const c = resolveCodec('fp32')
    const ef = new ErrorFeedback(2)
    const first = ef.compress(f32([1, 2]), c).decoded
    ef.carry(first)
    expect(Array.from(ef.compress(f32([0.5, 0.5]), c).decoded)).toEqual([1.5, 2.5])
  })
})
