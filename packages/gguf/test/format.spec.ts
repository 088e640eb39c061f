import { describe, it, expect } from 'vitest'
import { GgmlType, encodeGguf, fromFloat16Bits, quantizeQ4_0, toFloat16Bits } from '../src/index.js'

describe('GGUF writer pieces', () => {
  it('float16 conversion rounds to nearest even like Float16Array (normals, subnormals, overflow)', () => {
    const F16 = (globalThis as any).Float16Array
    const values = [0, -0, 1, -2.5, 65504, 65520, 1e6, 6.1e-5, 5.96e-8, 3e-8, 2.98e-8, 1 / 3, 0.1, -1234.567, 1.0009765625, 1.00048828125, 1.00146484375]
    for (let i = 0; i < 2000; i++) values.push((Math.sin(i) * 10) ** 3)
    for (const v of values) {
      const h = toFloat16Bits(v)
      if (F16 !== undefined) expect(h, String(v)).toBe(new Uint16Array(F16.of(v).buffer)[0])
      expect(fromFloat16Bits(h)).toBe(F16 !== undefined ? F16.of(v)[0] : fromFloat16Bits(h))
    }
  })

  it('Q4_0 block: f16 scale then first-half values in low nibbles, second half in high nibbles', () => {
    const x = new Float32Array(32)
    for (let j = 0; j < 16; j++) { x[j] = (j - 8) * 0.25; x[16 + j] = (7 - j) * 0.25 }
    const q = quantizeQ4_0(x)
    expect(q.length).toBe(18)
    expect(fromFloat16Bits(q[0] | (q[1] << 8))).toBe(0.25) // m = −2 → d = −2 / −8
    for (let j = 0; j < 16; j++) expect([q[2 + j] & 15, q[2 + j] >> 4]).toEqual([j, 15 - j])
  })

  it('header layout: magic, version 3, counts, typed metadata, aligned tensor offsets', () => {
    const bytes = encodeGguf({
      metadata: [['general.architecture', { type: 'string', value: 'llama' }], ['x.n', { type: 'uint32', value: 7 }]],
      tensors: [
        { name: 'a', dims: [3], type: GgmlType.F32, data: new Uint8Array(12) },
        { name: 'b', dims: [32, 2], type: GgmlType.Q4_0, data: new Uint8Array(36) }
      ]
    })
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('GGUF')
    expect(v.getUint32(4, true)).toBe(3)
    expect(v.getBigUint64(8, true)).toBe(2n)
    expect(v.getBigUint64(16, true)).toBe(2n)
    // first key: u64 length + "general.architecture", type 8 (string), u64 length + "llama"
    expect(v.getBigUint64(24, true)).toBe(20n)
    expect(v.getUint32(24 + 8 + 20, true)).toBe(8)
    // data section starts aligned to 32 and tensor b sits at offset 32 (12 bytes of a, padded)
    expect((bytes.length - 96) % 32).toBe(0) // header padded to 32; data: a (12 → 32) + b (36 → 64)
    expect(() => encodeGguf({ metadata: [], tensors: [{ name: 'c', dims: [32], type: GgmlType.Q4_0, data: new Uint8Array(17) }] })).toThrow(/expected 18/)
  })
})
