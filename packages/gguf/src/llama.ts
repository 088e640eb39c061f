import { InvalidParametersError } from '@neuroshard/interface'
import { blockParameters, headDim, modelParameters, validateConfig } from '@neuroshard/model'
import type { ModelConfig } from '@neuroshard/model'
import { parseTokenizerJson } from '@neuroshard/tokenizer'
import type { BpeTokenizer } from '@neuroshard/tokenizer'
import { GgmlType, encodeGguf, encodeGgufHeader, writeGguf } from './gguf.js'
import type { GgufContent, GgufTensor, GgufValue } from './gguf.js'

/** Tensor formats of an export: all float32, or Q4_0 matrices (norms stay float32) */
export type GgufFileType = 'F32' | 'Q4_0'

export interface ExportGgufOptions {
  config: ModelConfig
  /** Every parameter of the model (`modelParameters(config)`), float32 */
  parameters: Map<string, Float32Array>
  /** The model's byte-level BPE tokenizer (written as `tokenizer.ggml.model = gpt2` with its merges) */
  tokenizer: BpeTokenizer
  /** @default 'F32' */
  type?: GgufFileType
  /** `general.name` @default 'NeuroLLM' */
  name?: string
}

/** llama.cpp's `general.file_type` (llama_ftype) */
const FILE_TYPE: Record<GgufFileType, number> = { F32: 0, Q4_0: 2 }

/** llama.cpp token types */
const TOKEN_NORMAL = 1
const TOKEN_CONTROL = 3
const TOKEN_UNUSED = 5

/** The GGUF tensor and metadata layout of NeuroLLM as a llama model (see the README for the mapping) */
export function llamaGgufContent (options: ExportGgufOptions): GgufContent {
  const { config, parameters, tokenizer } = options
  const type = options.type ?? 'F32'
  if (type !== 'F32' && type !== 'Q4_0') throw new InvalidParametersError(`GGUF type must be 'F32' or 'Q4_0', got '${String(type)}'`)
  validateConfig(config)
  for (const s of modelParameters(config)) {
    const p = parameters.get(s.name)
    const n = s.shape.reduce((a, b) => a * b, 1)
    if (!(p instanceof Float32Array) || p.length !== n) throw new InvalidParametersError(`parameter ${s.name} must be a Float32Array of ${n} elements`)
  }
  const d = config.dModel
  const hd = headDim(config)
  const tensors: GgufTensor[] = []
  /** A row-major [rows, cols] matrix as a ggml tensor [cols, rows]; Q4_0 when asked and rows split into 32s */
  const matrix = (name: string, data: Float32Array, rows: number, cols: number): void => {
    if (type === 'Q4_0' && cols % 32 === 0) tensors.push({ name, dims: [cols, rows], type: GgmlType.Q4_0, data: quantizeQ4_0(data) })
    else tensors.push({ name, dims: [cols, rows], type: GgmlType.F32, data: f32Bytes(data) })
  }
  const vector = (name: string, data: Float32Array): void => { tensors.push({ name, dims: [data.length], type: GgmlType.F32, data: f32Bytes(data) }) }
  const get = (name: string): Float32Array => parameters.get(name) as Float32Array

  matrix('token_embd.weight', get('embed.weight'), config.vocabSize, d)
  for (let i = 0; i < config.nLayers; i++) {
    const [attnNorm, wq, wk, wv, wo, mlpNorm, wGate, wUp, wDown] = blockParameters(config, i).map(s => s.name)
    // NeuroLLM stores [in, out] (x @ W); llama.cpp wants [out, in] rows (HF Linear layout), with the q/k rows of
    // each head reordered from rotate-half pairs (i, i + hd/2) to llama.cpp's adjacent pairs (2i, 2i + 1)
    const qOut = config.nHeads * hd
    const kvOut = config.nKvHeads * hd
    vector(`blk.${i}.attn_norm.weight`, get(attnNorm))
    matrix(`blk.${i}.attn_q.weight`, permuteRope(transpose(get(wq), d, qOut), config.nHeads, hd, d), qOut, d)
    matrix(`blk.${i}.attn_k.weight`, permuteRope(transpose(get(wk), d, kvOut), config.nKvHeads, hd, d), kvOut, d)
    matrix(`blk.${i}.attn_v.weight`, transpose(get(wv), d, kvOut), kvOut, d)
    matrix(`blk.${i}.attn_output.weight`, transpose(get(wo), qOut, d), d, qOut)
    vector(`blk.${i}.ffn_norm.weight`, get(mlpNorm))
    matrix(`blk.${i}.ffn_gate.weight`, transpose(get(wGate), d, config.ffnHidden), config.ffnHidden, d)
    matrix(`blk.${i}.ffn_up.weight`, transpose(get(wUp), d, config.ffnHidden), config.ffnHidden, d)
    matrix(`blk.${i}.ffn_down.weight`, transpose(get(wDown), config.ffnHidden, d), d, config.ffnHidden)
  }
  vector('output_norm.weight', get('final_norm.weight'))
  // tied: no output.weight; llama.cpp then uses token_embd.weight as the LM head
  if (!config.tieEmbeddings) matrix('output.weight', transpose(get('lm_head.weight'), d, config.vocabSize), config.vocabSize, d)

  return { metadata: [...llamaMetadata(config, type, options.name ?? 'NeuroLLM'), ...tokenizerMetadata(tokenizer, config.vocabSize)], tensors }
}

function llamaMetadata (config: ModelConfig, type: GgufFileType, name: string): Array<[string, GgufValue]> {
  const u32 = (value: number): GgufValue => ({ type: 'uint32', value })
  return [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: name }],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['general.quantization_version', u32(2)],
    ['llama.vocab_size', u32(config.vocabSize)],
    ['llama.context_length', u32(config.maxSeqLen)],
    ['llama.embedding_length', u32(config.dModel)],
    ['llama.block_count', u32(config.nLayers)],
    ['llama.feed_forward_length', u32(config.ffnHidden)],
    ['llama.rope.dimension_count', u32(headDim(config))],
    ['llama.rope.freq_base', { type: 'float32', value: config.ropeTheta }],
    ['llama.attention.head_count', u32(config.nHeads)],
    ['llama.attention.head_count_kv', u32(config.nKvHeads)],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'float32', value: config.normEps }]
  ]
}

/**
 * The tokenizer as llama.cpp's `gpt2` (byte-level BPE) model: tokens spelled in the GPT-2 byte alphabet, merges
 * as "left right", the GPT-2 pre-tokenizer (`tokenizer.ggml.pre = gpt-2`, the same regex as ours), added tokens as
 * control tokens. Ids the tokenizer does not use (a model vocabulary larger than the tokenizer's) are written as
 * unused placeholder tokens so the table has one entry per embedding row.
 */
function tokenizerMetadata (tokenizer: BpeTokenizer, vocabSize: number): Array<[string, GgufValue]> {
  const spec = parseTokenizerJson(tokenizer.toTokenizerJson())
  const tokens = new Array<string | undefined>(vocabSize)
  const types = new Int32Array(vocabSize)
  const put = (id: number, text: string, t: number): void => {
    if (id >= vocabSize) throw new InvalidParametersError(`tokenizer id ${id} (${JSON.stringify(text)}) is outside the model's vocabulary of ${vocabSize}`)
    tokens[id] = text
    types[id] = t
  }
  for (const [text, id] of spec.vocab) put(id, text, TOKEN_NORMAL)
  for (const t of spec.addedTokens) put(t.id, t.content, t.special ? TOKEN_CONTROL : TOKEN_NORMAL)
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) { tokens[i] = `<|unused_${i}|>`; types[i] = TOKEN_UNUSED }
  }
  const out: Array<[string, GgufValue]> = [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: 'gpt-2' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens as string[] }],
    ['tokenizer.ggml.token_type', { type: 'int32[]', value: types }],
    ['tokenizer.ggml.merges', { type: 'string[]', value: spec.merges.map(([l, r]) => `${l} ${r}`) }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }]
  ]
  if (tokenizer.bosId !== undefined) out.push(['tokenizer.ggml.bos_token_id', { type: 'uint32', value: tokenizer.bosId }])
  if (tokenizer.eosId !== undefined) out.push(['tokenizer.ggml.eos_token_id', { type: 'uint32', value: tokenizer.eosId }])
  if (tokenizer.padId !== undefined) out.push(['tokenizer.ggml.padding_token_id', { type: 'uint32', value: tokenizer.padId }])
  return out
}

/** Row-major [rows, cols] → [cols, rows] */
export function transpose (w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c]
  return out
}

/**
 * Reorder the output rows of a q or k projection ([heads · hd, in], row-major) from the rotate-half RoPE layout
 * (dims i and i + hd/2 of a head rotate together) to llama.cpp's `LLAMA_ROPE_TYPE_NORM` layout (dims 2i and 2i + 1):
 * new row 2i ← old row i, new row 2i + 1 ← old row hd/2 + i. The same permutation as Hugging Face's
 * `convert_hf_to_gguf.py` (`reshape(n_head, 2, hd/2, in).swapaxes(1, 2)`).
 */
export function permuteRope (w: Float32Array, heads: number, hd: number, cols: number): Float32Array {
  const out = new Float32Array(w.length)
  const half = hd / 2
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      out.set(w.subarray((h * hd + i) * cols, (h * hd + i + 1) * cols), (h * hd + 2 * i) * cols)
      out.set(w.subarray((h * hd + half + i) * cols, (h * hd + half + i + 1) * cols), (h * hd + 2 * i + 1) * cols)
    }
  }
  return out
}

function f32Bytes (a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

/** IEEE half-precision bits of x, rounded to nearest even (as ggml's FP32_TO_FP16) */
export function toFloat16Bits (x: number): number {
  const f = new Float32Array(1)
  const u = new Uint32Array(f.buffer)
  f[0] = x
  const bits = u[0]
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  const mant = bits & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    const m = mant | 0x800000
    const shift = 14 - e
    let h = m >>> shift
    const rem = m & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++
    return sign | h
  }
  let h = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++
  return sign | h
}

/** The float value of IEEE half-precision bits */
export function fromFloat16Bits (h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return sign * m * 2 ** -24
  if (e === 0x1f) return m !== 0 ? NaN : sign * Infinity
  return sign * (1 + m / 1024) * 2 ** (e - 15)
}

/** The values Q4_0 blocks stand for (ggml's `dequantize_row_q4_0`) */
export function dequantizeQ4_0 (q: Uint8Array): Float32Array {
  if (q.length % 18 !== 0) throw new InvalidParametersError(`Q4_0 data must be whole 18-byte blocks, got ${q.length} bytes`)
  const blocks = q.length / 18
  const out = new Float32Array(blocks * 32)
  const view = new DataView(q.buffer, q.byteOffset, q.byteLength)
  for (let b = 0; b < blocks; b++) {
    const d = fromFloat16Bits(view.getUint16(b * 18, true))
    for (let j = 0; j < 16; j++) {
      const byte = q[b * 18 + 2 + j]
      out[b * 32 + j] = ((byte & 15) - 8) * d
      out[b * 32 + 16 + j] = ((byte >> 4) - 8) * d
    }
  }
  return out
}

/**
 * ggml Q4_0 of a row-major matrix whose row length is a multiple of 32: per 32 values a float16 scale
 * d = m / −8 (m the value of largest magnitude) and 16 bytes, byte j = q[j] | q[j + 16] << 4 with
 * q = min(15, ⌊x / d + 8.5⌋) (ggml's `quantize_row_q4_0_ref`).
 */
export function quantizeQ4_0 (x: Float32Array): Uint8Array {
  if (x.length % 32 !== 0) throw new InvalidParametersError(`Q4_0 needs a multiple of 32 values, got ${x.length}`)
  const blocks = x.length / 32
  const out = new Uint8Array(blocks * 18)
  const view = new DataView(out.buffer)
  for (let b = 0; b < blocks; b++) {
    let m = 0
    for (let j = 0; j < 32; j++) { const v = x[b * 32 + j]; if (Math.abs(v) > Math.abs(m)) m = v }
    const d = Math.fround(m / -8)
    const id = d !== 0 ? Math.fround(1 / d) : 0
    view.setUint16(b * 18, toFloat16Bits(d), true)
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(x[b * 32 + j] * id)
      const x1 = Math.fround(x[b * 32 + 16 + j] * id)
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)))
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)))
      out[b * 18 + 2 + j] = q0 | (q1 << 4)
    }
  }
  return out
}

/**
 * Write NeuroLLM as a llama-architecture GGUF file that llama.cpp (and ollama, LM Studio, node-llama-cpp) load:
 * `F32`, or `Q4_0` for every matrix whose rows split into 32-value blocks (norms and other tensors stay F32).
 * Returns the file size in bytes. This is the library behind `neuroshard export --gguf`.
 */
export async function exportGguf (path: string, options: ExportGgufOptions): Promise<{ bytes: number, tensors: number }> {
  const content = llamaGgufContent(options)
  const bytes = await writeGguf(path, content)
  return { bytes, tensors: content.tensors.length }
}

/** The same file as {@link exportGguf}, in memory (small models) */
export function encodeLlamaGguf (options: ExportGgufOptions): Uint8Array {
  return encodeGguf(llamaGgufContent(options))
}

export { encodeGgufHeader }
