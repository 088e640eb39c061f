import { InvalidConfigError } from './errors.js'

/** Weight formats a span can be served with */
export type WeightQuantization = 'fp32' | 'int8' | 'int4'

/** The quantized formats and their bit widths */
export const QUANTIZATION_BITS = Object.freeze({ int8: 8, int4: 4 } as const)

/** Default quantization block: 32 consecutive values along the input (K) dim share one scale */
export const QUANT_BLOCK_SIZE = 32

/**
 * The block sizes a quantized span may declare (layer-pool 1.7.0 `SpanEntry.quant_block_size`; 32 when absent).
 * `quantizeMatrix` takes any power of 2 ≥ 16.
 */
export const QUANT_BLOCK_SIZES: readonly QuantBlockSize[] = Object.freeze([32, 64, 128] as const)

/** A declarable quantization block size (see {@link QUANT_BLOCK_SIZES}) */
export type QuantBlockSize = 32 | 64 | 128

/**
 * A `[K, N]` matrix (`y = x @ W`, x of width K) quantized blockwise along K, symmetric, in the layout of
 * onnxruntime's `com.microsoft` `MatMulNBits`: column n's block b covers rows b·blockSize … (b+1)·blockSize − 1
 * (zero-padded past K) and is stored as `packed[n][b]` (`blockSize · bits / 8` bytes) with one float scale
 * `scales[n · kBlocks + b]`. Value = (q − 2^(bits−1)) · scale.
 *
 * - int4 follows llama.cpp's Q4_0 rule: the value of largest magnitude m maps to −8, scale = m / −8,
 *   q = min(15, ⌊x / scale + 8.5⌋); element 2i of a block sits in the low nibble of byte i, 2i + 1 in the high one.
 * - int8: scale = max|x| / 127, q = round(x / scale) + 128 (so q ∈ [1, 255]).
 */
export interface QuantizedMatrix {
  bits: 4 | 8
  blockSize: number
  /** Input (reduction) dim */
  K: number
  /** Output dim */
  N: number
  /** ceil(K / blockSize) */
  kBlocks: number
  /** uint8 [N, kBlocks, blockSize · bits / 8] */
  packed: Uint8Array
  /** [N · kBlocks] */
  scales: Float32Array
}

export interface QuantizeOptions {
  bits: 4 | 8
  /** @default 32 */
  blockSize?: number
  /**
   * How `w` is stored: `'KN'` row-major `[K, N]` (NeuroLLM's `[in, out]` matrices) or `'NK'` row-major `[N, K]`
   * (an embedding table read as the tied LM head). @default 'KN'
   */
  layout?: 'KN' | 'NK'
}

/** Quantize a matrix blockwise along K (see {@link QuantizedMatrix}) */
export function quantizeMatrix (w: Float32Array, K: number, N: number, options: QuantizeOptions): QuantizedMatrix {
  const bits = options.bits
  const bs = options.blockSize ?? QUANT_BLOCK_SIZE
  if (bits !== 4 && bits !== 8) throw new InvalidConfigError(`quantization bits must be 4 or 8, got ${String(bits)}`)
  if (!(Number.isInteger(bs) && bs >= 16 && (bs & (bs - 1)) === 0)) throw new InvalidConfigError(`quantization block size must be a power of 2 ≥ 16, got ${bs}`)
  if (w.length !== K * N) throw new InvalidConfigError(`matrix has ${w.length} values, expected K · N = ${K * N}`)
  const kb = Math.ceil(K / bs)
  const blob = bs * bits / 8
  const packed = new Uint8Array(N * kb * blob)
  const scales = new Float32Array(N * kb)
  const nk = options.layout === 'NK'
  const block = new Float32Array(bs)
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kb; b++) {
      block.fill(0)
      const k0 = b * bs
      const len = Math.min(bs, K - k0)
      for (let j = 0; j < len; j++) block[j] = nk ? w[n * K + k0 + j] : w[(k0 + j) * N + n]
      const off = (n * kb + b) * blob
      if (bits === 4) {
        let m = 0
        for (let j = 0; j < bs; j++) if (Math.abs(block[j]) > Math.abs(m)) m = block[j]
        const d = Math.fround(m / -8)
        const id = d !== 0 ? 1 / d : 0
        scales[n * kb + b] = d
        for (let j = 0; j < bs; j++) {
          const q = Math.min(15, Math.trunc(block[j] * id + 8.5))
          packed[off + (j >> 1)] |= (j & 1) === 1 ? q << 4 : q
        }
      } else {
        let amax = 0
        for (let j = 0; j < bs; j++) amax = Math.max(amax, Math.abs(block[j]))
        const d = Math.fround(amax / 127)
        const id = d !== 0 ? 1 / d : 0
        scales[n * kb + b] = d
        for (let j = 0; j < bs; j++) packed[off + j] = Math.max(1, Math.min(255, Math.round(block[j] * id) + 128))
      }
    }
  }
  return { bits, blockSize: bs, K, N, kBlocks: kb, packed, scales }
}

/** The float `[K, N]` matrix a quantized one stands for (row-major, `[in, out]`) */
export function dequantizeMatrix (q: QuantizedMatrix): Float32Array {
  const { K, N, kBlocks: kb, blockSize: bs, bits } = q
  const blob = bs * bits / 8
  const mid = bits === 4 ? 8 : 128
  const out = new Float32Array(K * N)
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kb; b++) {
      const s = q.scales[n * kb + b]
      const off = (n * kb + b) * blob
      for (let j = 0; j < bs; j++) {
        const k = b * bs + j
        if (k >= K) break
        const v = bits === 4 ? (q.packed[off + (j >> 1)] >> ((j & 1) * 4)) & 15 : q.packed[off + j]
        out[k * N + n] = (v - mid) * s
      }
    }
  }
  return out
}
