import { describe, it, expect } from 'vitest'
import { GraphBuilder, onnx } from '../src/index.js'
import { runBytes } from './helpers.js'

/** A hand-packed 4-bit/8-bit matrix: B[n][k] = (code(n, k) − mid) · scale(n, block) */
function packed (K: number, N: number, bits: 4 | 8, bs: number): { b: Uint8Array, scales: Float32Array, w: Float64Array } {
  const kb = Math.ceil(K / bs)
  const blob = bs * bits / 8
  const mid = bits === 4 ? 8 : 128
  const b = new Uint8Array(N * kb * blob)
  const scales = new Float32Array(N * kb)
  const w = new Float64Array(K * N) // [K, N], the matrix the packed bytes stand for
  for (let n = 0; n < N; n++) {
    for (let blk = 0; blk < kb; blk++) {
      scales[n * kb + blk] = 0.01 * (1 + ((n + 3 * blk) % 5))
      for (let j = 0; j < bs; j++) {
        const k = blk * bs + j
        const code = (n * 7 + k * 13) % (1 << bits)
        const off = (n * kb + blk) * blob
        if (bits === 8) b[off + j] = code
        else b[off + (j >> 1)] |= (j & 1) === 1 ? code << 4 : code
        if (k < K) w[k * N + n] = (code - mid) * scales[n * kb + blk]
      }
    }
  }
  return { b, scales, w }
}

describe('uint8 initializers and MatMulNBits', () => {
  it('stores uint8 constants as raw_data initializers of element type 2', () => {
    const g = new GraphBuilder()
    const x = g.input('x', 'float32', [2])
    const c = g.constant(Uint8Array.of(1, 2, 250), 'uint8', [3], 'codes')
    g.output(x, 'y')
    g.output(g.cast(c, 'float32'), 'c')
    const m = onnx.ModelProto.decode(g.toModelProto())
    const init = m.graph?.initializer.find(t => t.name === 'codes')
    expect(init?.dataType).toBe(2)
    expect([...(init?.rawData ?? [])]).toEqual([1, 2, 250])
  })

  for (const bits of [4, 8] as const) {
    it(`computes x @ dequant(B) with ${bits}-bit packed weights baked in (accuracy level 0 is exact up to float rounding)`, async () => {
      const K = 40 // not a multiple of the block: the last block is padded
      const N = 6
      const bs = 32
      const { b, scales, w } = packed(K, N, bits, bs)
      const g = new GraphBuilder()
      const x = g.input('x', 'float32', ['batch', 'seq', K])
      const kb = Math.ceil(K / bs)
      const y = g.matMulNBits(x, g.constant(b, 'uint8', [N, kb, bs * bits / 8], 'w'), g.constant(scales, 'float32', [N * kb], 'scales'), { K, N, bits, blockSize: bs, accuracyLevel: 0, name: 'proj' })
      expect(y.shape).toEqual(['batch', 'seq', N])
      g.output(y, 'y')
      const xs = Float32Array.from({ length: 2 * K }, (_, i) => Math.sin(i))
      const out = await runBytes(g.toModelProto({ domains: { 'com.microsoft': 1 } }), { x: { data: xs, dims: [1, 2, K] } })
      for (let r = 0; r < 2; r++) {
        for (let n = 0; n < N; n++) {
          let ref = 0
          for (let k = 0; k < K; k++) ref += xs[r * K + k] * w[k * N + n]
          expect(Math.abs(out.y.data[r * N + n] - ref)).toBeLessThan(1e-4 * (1 + Math.abs(ref)))
        }
      }
    })
  }

  it('names the node on bad MatMulNBits operands', () => {
    const g = new GraphBuilder()
    const x = g.input('x', 'float32', [1, 64])
    const b = g.constant(new Uint8Array(8 * 2 * 16), 'uint8', [8, 2, 16], 'b')
    const s = g.constant(new Float32Array(16), 'float32', [16], 's')
    expect(() => g.matMulNBits(x, b, s, { K: 64, N: 8, bits: 8, blockSize: 32, name: 'q' })).toThrow(/MatMulNBits 'q': B must be \[8, 2, 32\]/)
    const b1 = g.constant(new Uint8Array(8 * 16), 'uint8', [8, 1, 16], 'b1')
    const s1 = g.constant(new Float32Array(8), 'float32', [8], 's1')
    expect(() => g.matMulNBits(x, b1, s1, { K: 32, N: 8, bits: 4, blockSize: 32, name: 'q' })).toThrow(/A's last dim 64 differs from K = 32/)
    expect(() => g.matMulNBits(x, b, g.constant(new Float32Array(3), 'float32', [3]), { K: 64, N: 8, bits: 4, blockSize: 32, name: 'q' })).toThrow(/scales must hold/)
    expect(() => g.matMulNBits(x, b, s, { K: 64, N: 8, bits: 4, blockSize: 24, name: 'q' })).toThrow(/power of 2/)
  })
})
