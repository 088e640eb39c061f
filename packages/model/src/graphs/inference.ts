import { GraphBuilder } from '@neuroshard/onnx-graph'
import type { Value } from '@neuroshard/onnx-graph'
import { headDim } from '../config.js'
import type { ModelConfig } from '../config.js'
import { InvalidConfigError } from '../errors.js'
import { blockParameters, modelParameters, shardParameters } from '../params.js'
import type { ParameterSpec, ShardRole } from '../params.js'
import { QUANTIZATION_BITS, QUANT_BLOCK_SIZE, quantizeMatrix } from '../quantize.js'
import type { QuantizedMatrix, WeightQuantization } from '../quantize.js'
import { validateConfig } from '../validate.js'
import { fusedTables, ropeCaches } from './layers.js'
import type { FusedTables, KvCache } from './layers.js'
import { SHARD_DIMS, SHARD_IO, finish } from './shards.js'
import type { ShardGraph } from './shards.js'

/** What an inference graph covers: one shard, or the whole model (embed → blocks → head) in one graph */
export type InferenceSpan = ShardRole | { kind: 'model' }

export interface InferenceGraphOptions {
  /** Every parameter of the span (see {@link inferenceParameters}); they become initializers of the graph */
  parameters?: Map<string, Float32Array>
  /**
   * Weight format of the matrices (projections, MLP, LM head and, for the embed lookup, the embedding table):
   * `'fp32'` as given, `'int8'` / `'int4'` blockwise-quantized (see `quantizeMatrix`) and multiplied with
   * `com.microsoft` `MatMulNBits`. Norm weights stay float32. @default 'fp32'
   */
  quantization?: WeightQuantization
  /** Quantization block size along the input dim @default 32 */
  blockSize?: number
  /**
   * `MatMulNBits` `accuracy_level`: 4 quantizes activations to int8 per block inside the kernel (the fast path
   * on CPU), 0 keeps float32 activations (several times slower for int8). @default 4
   */
  accuracyLevel?: 0 | 1 | 2 | 3 | 4
  /**
   * fp32 only: `false` leaves the parameters as graph inputs under their own names (fed from a runtime's
   * resident tensors, no rebuild when they change) instead of initializers; `parameters` may then be omitted.
   * A tied model's head (and the model span's lookup) reads {@link TIED_HEAD_WEIGHT} instead of `embed.weight`
   * (the graph's `inputs` list what to feed).
   * Quantized graphs always bake their weights. @default true
   */
  bakeWeights?: boolean
  /**
   * Attention of the blocks. `'opset'`: opset-23 `RotaryEmbedding` + `Attention` (with the head split/merge
   * reshapes and transposes around them), cache position from `position_offset`. `'gqa'`: one `com.microsoft`
   * `GroupQueryAttention` node per block (RoPE inside, no head reshapes: 10 nodes fewer per block; quantized, q/k/v
   * and gate/up are then one `MatMulNBits` each over the concatenated packed tables), fed `kv_seqlens` /
   * `kv_total_length` instead of `position_offset`; onnxruntime's CPU kernel takes several new tokens over a
   * non-empty cache only for batch 1 (`@neuroshard/runtime` then runs them one at a time). Same cache tensors
   * ([batch, nKvHeads, past, headDim] in, one token longer out) either way. @default 'opset'
   */
  attention?: 'opset' | 'gqa'
  /**
   * How the KV cache crosses the graph boundary. `'present'`: `past_key.<k>` / `past_value.<k>` are
   * [batch, nKvHeads, past, headDim] and the graph outputs the whole grown cache (`present_*`, one token longer).
   * `'append'`: the caches are [batch, past, nKvHeads · headDim] (token-major, so a cache that grows at its end
   * keeps every prefix contiguous and a runtime can feed a view of one buffer) and the graph outputs only the
   * new tokens' (rotated) keys and values as `append_key.<k>` / `append_value.<k>` [batch, seq, nKvHeads · headDim]:
   * no output grows with the context (onnxruntime-node copies every output into fresh memory). Attention is
   * the opset-23 `RotaryEmbedding` + `Attention` ops on 3D tensors, fed `position_offset`. Only with
   * `attention: 'opset'`. @default 'present'
   */
  kvCache?: 'present' | 'append'
  /**
   * fp32 blocks spans only: the graph reads `input_ids` instead of `hidden_in` and looks the embedding up first (it
   * takes `embed.weight`): a node holding the embedding and the first blocks runs one session per token. @default false
   */
  withEmbed?: boolean
  /**
   * fp32 blocks spans only: besides `hidden_out`, the graph outputs `logits` [batch, 1, vocab] of the last position
   * (final norm and LM head over it: it takes `final_norm.weight` and `lm_head.weight`, or `embed.weight` when tied): a
   * node holding the last blocks and the head runs one session per decoded token. @default false
   */
  withHead?: boolean
  /**
   * q/k/v as one projection and gate/up as another (one `MatMulNBits` or, fp32, one `MatMul` over the
   * column-concatenated matrix, each instead of three / two): fewer, bigger kernels per token. Needs attention
   * `'gqa'` or `kvCache: 'append'` (packed q/k/v in), and for fp32 baked weights (the concatenated matrices are
   * initializers). @default true where those hold, else false
   */
  fuseProjections?: boolean
}

/**
 * fp32 inference graphs with tied embeddings read the embedding table transposed, `[d, vocab]`, under this name
 * (a graph input when the weights are not baked; `transposeEmbedding` makes it from `embed.weight`): the LM head
 * is then a plain `MatMul`, which onnxruntime runs as a matrix-vector product straight over the table, instead of
 * `MatMul(x, Transpose(table))` (fused to a transposed-B `FusedMatMul` that packs the table first: 7.5-8.1 vs
 * 5.5-6.2 ms CPU for bootstrap's 32000 × 768 head, one thread). The model span's embed lookup gathers columns of
 * the same table, so `embed.weight` itself is not read.
 */
export const TIED_HEAD_WEIGHT = 'lm_head.tied_weight'

/** The `[d, vocab]` table of {@link TIED_HEAD_WEIGHT} from a row-major `[vocab, d]` embedding table */
export function transposeEmbedding (config: ModelConfig, embedding: Float32Array): Float32Array {
  const V = config.vocabSize
  const d = config.dModel
  if (embedding.length !== V * d) throw new InvalidConfigError(`embedding table has ${embedding.length} values, expected vocabSize · dModel = ${V * d}`)
  const out = new Float32Array(V * d)
  // in tiles, so that both sides stay in cache
  const T = 64
  for (let v0 = 0; v0 < V; v0 += T) {
    const v1 = Math.min(V, v0 + T)
    for (let k0 = 0; k0 < d; k0 += T) {
      const k1 = Math.min(d, k0 + T)
      for (let v = v0; v < v1; v++) for (let k = k0; k < k1; k++) out[k * V + v] = embedding[v * d + k]
    }
  }
  return out
}

/** Row-major [K, ΣNᵢ] from row-major [K, Nᵢ] matrices: the columns of the parts side by side */
function concatColumns (parts: Array<{ data: Float32Array, K: number, N: number }>): Float32Array {
  const K = parts[0].K
  const N = parts.reduce((a, p) => a + p.N, 0)
  const out = new Float32Array(K * N)
  for (let k = 0; k < K; k++) {
    let o = k * N
    for (const p of parts) { out.set(p.data.subarray(k * p.N, (k + 1) * p.N), o); o += p.N }
  }
  return out
}

/** The parameters an inference span reads (each name once, canonical order) */
export function inferenceParameters (config: ModelConfig, span: InferenceSpan): ParameterSpec[] {
  return span.kind === 'model' ? modelParameters(config) : shardParameters(config, span)
}

const B = SHARD_DIMS.batch
const S = SHARD_DIMS.seq

/**
 * A KV-cache inference graph with its weights baked in as initializers, fp32 or quantized. onnxruntime prepacks
 * constant weights at session creation (for `MatMulNBits` that is what makes 4-bit faster than fp32; fed as
 * graph inputs the same op runs ≈ 30× slower), so the session must be rebuilt when the weights change.
 *
 * Inputs and outputs follow the shard I/O contract (`SHARD_IO`) minus the parameters:
 * - embed: `input_ids` → `hidden`
 * - blocks [start, end): `hidden_in`, `past_key.<k>`, `past_value.<k>`, `position_offset` → `hidden_out`,
 *   `present_key.<k>`, `present_value.<k>`
 * - head: `hidden` → `logits`
 * - model: `input_ids`, the caches of every block, `position_offset` → `logits` and `present_*` — one session
 *   per token for a node that holds the whole model.
 *
 * Attention, RoPE and norms use the fused opset-23 ops (float32 only). Each residual add is done by the norm that
 * reads its sum (`com.microsoft` `SkipSimplifiedLayerNormalization`, which outputs the sum too): 2 · nLayers nodes
 * fewer per token over the whole model; a block span ends on its last residual add.
 */
export function buildInferenceGraph (config: ModelConfig, span: InferenceSpan, options: InferenceGraphOptions): ShardGraph {
  validateConfig(config)
  if (span.kind === 'blocks' && !(Number.isSafeInteger(span.start) && Number.isSafeInteger(span.end) && span.start >= 0 && span.start < span.end && span.end <= config.nLayers)) {
    throw new InvalidConfigError(`block range [${span.start}, ${span.end}) is not a non-empty range within [0, ${config.nLayers})`)
  }
  const quant = options.quantization ?? 'fp32'
  if (quant !== 'fp32' && quant !== 'int8' && quant !== 'int4') throw new InvalidConfigError(`unknown quantization '${String(quant)}'`)
  const bits = quant === 'fp32' ? undefined : QUANTIZATION_BITS[quant]
  const blockSize = options.blockSize ?? QUANT_BLOCK_SIZE
  const accuracyLevel = options.accuracyLevel ?? 4
  const specs = inferenceParameters(config, span)
  if (span.kind === 'blocks') {
    // the embedding / head a fused blocks span reads too (each name once)
    const more = [...(options.withEmbed === true ? shardParameters(config, { kind: 'embed' }) : []), ...(options.withHead === true ? shardParameters(config, { kind: 'head' }) : [])]
    for (const p of more) if (!specs.some(q => q.name === p.name)) specs.push(p)
  }
  const bake = options.bakeWeights ?? true
  if (!bake && bits !== undefined) throw new InvalidConfigError('quantized inference graphs bake their weights (bakeWeights: false is for fp32 only)')
  const params = options.parameters ?? new Map<string, Float32Array>()
  if (bake) for (const s of specs) {
    const p = params.get(s.name)
    const n = s.shape.reduce((a, b) => a * b, 1)
    if (!(p instanceof Float32Array) || p.length !== n) throw new InvalidConfigError(`parameter ${s.name} must be a Float32Array of ${n} elements`)
  }
  const shape = (name: string): number[] => (specs.find(s => s.name === name) as ParameterSpec).shape
  const g = new GraphBuilder({ dtype: 'float32', name: span.kind === 'blocks' ? `infer_blocks_${span.start}_${span.end}` : `infer_${span.kind}` })

  const constants = new Map<string, Value>()
  const fp = (name: string): Value => {
    let v = constants.get(name)
    if (v == null) {
      v = bake ? g.constant(params.get(name) as Float32Array, 'float32', shape(name), name) : g.input(name, 'float32', shape(name))
      constants.set(name, v)
    }
    return v
  }
  // quantized matrices by parameter name, shared by the embed lookup and the tied LM head
  const qCache = new Map<string, { q: QuantizedMatrix, packed: Value, scales: Value }>()
  const quantized = (name: string, layout: 'KN' | 'NK'): { q: QuantizedMatrix, packed: Value, scales: Value } => {
    let e = qCache.get(name)
    if (e == null) {
      const [r, c] = shape(name)
      const [K, N] = layout === 'KN' ? [r, c] : [c, r]
      const q = quantizeMatrix(params.get(name) as Float32Array, K, N, { bits: bits as 4 | 8, blockSize, layout })
      const blob = blockSize * q.bits / 8
      e = { q, packed: g.constant(q.packed, 'uint8', [N, q.kBlocks, blob], `${name}.q${q.bits}`), scales: g.constant(q.scales, 'float32', [N, q.kBlocks], `${name}.scales`) }
      qCache.set(name, e)
    }
    return e
  }
  /** x @ W for a stored matrix; `layout` 'NK' reads an [N, K] table (the tied embedding) as Wᵀ */
  const linear = (x: Value, name: string, opName: string, layout: 'KN' | 'NK' = 'KN'): Value => {
    if (bits === undefined) {
      const w = fp(name)
      return g.matmul(x, layout === 'KN' ? w : g.transpose(w, [1, 0], { name: `${opName}.wT` }), { name: opName })
    }
    const { q, packed, scales } = quantized(name, layout)
    return g.matMulNBits(x, packed, scales, { K: q.K, N: q.N, bits: q.bits, blockSize, accuracyLevel, name: opName })
  }
  /**
   * x @ [W₁ | W₂ | …] for stored [K, Nᵢ] matrices as one kernel instead of several: one quantized `MatMulNBits`
   * (columns quantize independently, so the packed tables and scales of the parts simply concatenate), or, for
   * baked fp32, one `MatMul` over the column-concatenated matrix
   */
  const linearCat = (x: Value, names: string[], opName: string): Value => {
    if (bits === undefined) return g.matmul(x, g.constant(concatColumns(names.map(name => ({ data: params.get(name) as Float32Array, K: shape(name)[0], N: shape(name)[1] }))), 'float32', [shape(names[0])[0], names.reduce((a, name) => a + shape(name)[1], 0)], `${opName}.weight`), { name: opName })
    const qs = names.map(name => quantizeMatrix(params.get(name) as Float32Array, shape(name)[0], shape(name)[1], { bits: bits as 4 | 8, blockSize, layout: 'KN' }))
    const N = qs.reduce((a, q) => a + q.N, 0)
    const packed = new Uint8Array(qs.reduce((a, q) => a + q.packed.length, 0))
    const scales = new Float32Array(qs.reduce((a, q) => a + q.scales.length, 0))
    let [po, so] = [0, 0]
    for (const q of qs) { packed.set(q.packed, po); scales.set(q.scales, so); po += q.packed.length; so += q.scales.length }
    const { K, kBlocks } = qs[0]
    return g.matMulNBits(x, g.constant(packed, 'uint8', [N, kBlocks, blockSize * qs[0].bits / 8], `${opName}.q${qs[0].bits}`), g.constant(scales, 'float32', [N, kBlocks], `${opName}.scales`), {
      K, N, bits: qs[0].bits, blockSize, accuracyLevel, name: opName
    })
  }
  const norm = (x: Value, name: string, opName: string): Value => g.op('RMSNormalization', [x, fp(name)], [{ dtype: 'float32', shape: x.shape }], {
    axis: { kind: 'int', value: -1 }, epsilon: { kind: 'float', value: config.normEps }
  }, { name: opName })[0]
  /**
   * RMSNorm(x + skip) and x + skip in one `com.microsoft` `SkipSimplifiedLayerNormalization` node (the residual
   * add fused into the next norm: one node instead of two per norm, 2 · nLayers fewer per token)
   */
  const skipNorm: SkipNorm = (x, skip, name, opName) => {
    const stat = { dtype: 'float32' as const, shape: [...x.shape.slice(0, -1), 1] }
    const [y, , , sum] = g.op('SkipSimplifiedLayerNormalization', [x, skip, fp(name)], [{ dtype: 'float32', shape: x.shape }, stat, stat, { dtype: 'float32', shape: x.shape }], {
      epsilon: { kind: 'float', value: config.normEps }
    }, { name: opName, domain: 'com.microsoft' })
    return [y, sum]
  }
  // fp32 tied head: the table transposed (see TIED_HEAD_WEIGHT); the model span's lookup reads it too
  const tiedT = bits === undefined && config.tieEmbeddings && (span.kind === 'head' || span.kind === 'model')
  let tableT: Value | undefined
  const embedT = (): Value => {
    tableT ??= bake
      ? g.constant(transposeEmbedding(config, params.get('embed.weight') as Float32Array), 'float32', [config.dModel, config.vocabSize], TIED_HEAD_WEIGHT)
      : g.input(TIED_HEAD_WEIGHT, 'float32', [config.dModel, config.vocabSize])
    return tableT
  }
  const embed = (ids: Value): Value => {
    // columns of the [d, V] table: [d, B, S] → [B, S, d]
    if (tiedT) return g.transpose(g.gather(embedT(), ids, 1, { name: 'embed' }), [1, 2, 0], { name: 'embed.rows' })
    if (bits === undefined) return g.gather(fp('embed.weight'), ids, 0, { name: 'embed' })
    // gather the packed rows and their scales, unpack to float: [B, S, kBlocks, blockSize] → [B, S, d]
    const { q, packed, scales } = quantized('embed.weight', 'NK')
    const rows = g.gather(packed, ids, 0, { name: 'embed.rows' })
    let codes = rows
    if (q.bits === 4) {
      const lo = g.op('BitwiseAnd', [rows, g.constant([15], 'uint8', [], 'nibble_mask')], [{ dtype: 'uint8', shape: rows.shape }], {}, { name: 'embed.lo' })[0]
      const hi = g.op('BitShift', [rows, g.constant([4], 'uint8', [], 'nibble_shift')], [{ dtype: 'uint8', shape: rows.shape }], { direction: { kind: 'string', value: 'RIGHT' } }, { name: 'embed.hi' })[0]
      codes = g.reshape(g.concat([g.unsqueeze(lo, [-1]), g.unsqueeze(hi, [-1])], -1, { name: 'embed.nibbles' }), [0, 0, q.kBlocks, blockSize], { name: 'embed.codes' })
    }
    const centered = g.sub(g.cast(codes, 'float32', { name: 'embed.float' }), q.bits === 4 ? 8 : 128, { name: 'embed.center' })
    const s = g.unsqueeze(g.gather(scales, ids, 0, { name: 'embed.row_scales' }), [-1])
    const full = g.reshape(g.mul(centered, s, { name: 'embed.dequant' }), [0, 0, q.kBlocks * blockSize], { name: 'embed.flat' })
    return q.kBlocks * blockSize === config.dModel ? full : g.slice(full, [0], [config.dModel], [2], { name: 'embed.trim' })
  }
  const head = (x: Residual): Value => {
    const n = x.delta === undefined ? norm(x.base, 'final_norm.weight', 'final_norm') : skipNorm(x.base, x.delta, 'final_norm.weight', 'final_norm')[0]
    if (tiedT) return g.matmul(n, embedT(), { name: 'lm_head' })
    return config.tieEmbeddings ? linear(n, 'embed.weight', 'lm_head', 'NK') : linear(n, 'lm_head.weight', 'lm_head')
  }
  const gqa = options.attention === 'gqa'
  if ((options.withEmbed === true || options.withHead === true) && (span.kind !== 'blocks' || bits !== undefined)) {
    throw new InvalidConfigError('withEmbed / withHead extend fp32 blocks spans only')
  }
  const append = options.kvCache === 'append'
  // q/k/v and gate/up as one projection each: the attention must take packed q/k/v, and fp32 must bake the weights
  const fuse = (gqa || append) && (bits !== undefined || bake) && options.fuseProjections !== false
  if (options.fuseProjections === true && !fuse) throw new InvalidConfigError("fuseProjections needs attention 'gqa' or kvCache 'append', and baked weights for fp32")
  if (options.kvCache !== undefined && options.kvCache !== 'present' && options.kvCache !== 'append') throw new InvalidConfigError(`unknown kvCache '${String(options.kvCache)}'`)
  if (append && gqa) throw new InvalidConfigError("kvCache 'append' needs attention 'opset' (GroupQueryAttention takes [batch, heads, past, headDim] caches only)")
  /** Blocks [start, end) over x; the last block's residual add is left pending (see {@link Residual}) */
  const blocks = (x: Value, start: number, end: number): Residual => {
    const hd = headDim(config)
    const caches: KvCache[] = []
    for (let k = start; k < end; k++) {
      const cacheShape = append ? [B, SHARD_DIMS.past, config.nKvHeads * hd] : [B, config.nKvHeads, SHARD_DIMS.past, hd]
      caches.push({
        pastKey: g.input(SHARD_IO.pastKey(k), 'float32', cacheShape),
        pastValue: g.input(SHARD_IO.pastValue(k), 'float32', cacheShape)
      })
    }
    let attention: Attend
    if (append) {
      attention = appendAttention(g, config, x, g.input(SHARD_IO.positionOffset, 'int64', []))
    } else if (gqa) {
      const seqlens = g.input(SHARD_IO.kvSeqlens, 'int32', [B])
      const total = g.input(SHARD_IO.kvTotalLength, 'int32', [])
      const { cosCache, sinCache } = ropeCaches(g, config)
      const T = `${SHARD_DIMS.past}+${S}`
      attention = (q, k, v, cache, name) => g.op('GroupQueryAttention', [q, k, v, cache.pastKey, cache.pastValue, seqlens, total, cosCache, sinCache], [
        { dtype: q.dtype, shape: [q.shape[0], q.shape[1], config.nHeads * hd] },
        { dtype: q.dtype, shape: [B, config.nKvHeads, T, hd] },
        { dtype: q.dtype, shape: [B, config.nKvHeads, T, hd] }
      ], {
        num_heads: { kind: 'int', value: config.nHeads },
        kv_num_heads: { kind: 'int', value: config.nKvHeads },
        scale: { kind: 'float', value: 1 / Math.sqrt(hd) },
        do_rotary: { kind: 'int', value: 1 },
        rotary_interleaved: { kind: 'int', value: 0 }
      }, { name, domain: 'com.microsoft' }) as [Value, Value, Value]
    } else {
      const offset = g.input(SHARD_IO.positionOffset, 'int64', [])
      attention = opsetAttention(g, config, fusedTables(g, config, x, offset, caches[0].pastKey))
    }
    let h: Residual = { base: x }
    for (let k = start; k < end; k++) {
      const res = block(g, config, h, k, attention, caches[k - start], linear, norm, skipNorm, fuse ? linearCat : undefined)
      h = res.out
      g.output(res.presentKey, append ? SHARD_IO.appendKey(k) : SHARD_IO.presentKey(k))
      g.output(res.presentValue, append ? SHARD_IO.appendValue(k) : SHARD_IO.presentValue(k))
    }
    return h
  }

  switch (span.kind) {
    case 'embed': {
      const ids = g.input(SHARD_IO.inputIds, 'int64', [B, S])
      g.output(embed(ids), SHARD_IO.hidden)
      break
    }
    case 'blocks': {
      const x = options.withEmbed === true ? embed(g.input(SHARD_IO.inputIds, 'int64', [B, S])) : g.input(SHARD_IO.hiddenIn, 'float32', [B, S, config.dModel])
      const h = blocks(x, span.start, span.end)
      g.output(h.delta === undefined ? h.base : g.add(h.base, h.delta, { name: `blocks.${span.end - 1}.mlp_residual` }), SHARD_IO.hiddenOut)
      g.outputs.unshift(g.outputs.pop() as typeof g.outputs[number])
      if (options.withHead === true) {
        // the last position only (the residual add still pending, fused into the final norm as in the model span)
        const last = (v: Value, name: string): Value => g.slice(v, [-1], [Infinity], [1], { name, shape: [B, 1, config.dModel] })
        g.output(head({ base: last(h.base, 'last.base'), ...(h.delta !== undefined ? { delta: last(h.delta, 'last.delta') } : {}) }), SHARD_IO.logits)
      }
      break
    }
    case 'head': {
      const x = g.input(SHARD_IO.hidden, 'float32', [B, S, config.dModel])
      g.output(head({ base: x }), SHARD_IO.logits)
      break
    }
    case 'model': {
      const ids = g.input(SHARD_IO.inputIds, 'int64', [B, S])
      const h = blocks(embed(ids), 0, config.nLayers)
      g.output(head(h), SHARD_IO.logits)
      g.outputs.unshift(g.outputs.pop() as typeof g.outputs[number])
      break
    }
  }
  return finish(g, span.kind === 'blocks' || span.kind === 'model' || bits !== undefined || gqa ? { 'com.microsoft': 1 } : {})
}

type Linear = (x: Value, name: string, opName: string) => Value
type Norm = (x: Value, name: string, opName: string) => Value
/** [RMSNorm(x + skip), x + skip] */
type SkipNorm = (x: Value, skip: Value, name: string, opName: string) => [Value, Value]
/** A hidden state `base + delta` whose residual add is still to be done (fused into the norm that reads it) */
interface Residual { base: Value, delta?: Value }
/**
 * Attention of one block: q [B, S, nH·hd], k and v [B, S, nKv·hd] before RoPE (or q, k and v packed in one
 * [B, S, (nH + 2·nKv)·hd] tensor with k and v null) → [y [B, S, nH·hd], present key, present value]
 */
type Attend = (q: Value, k: Value | null, v: Value | null, cache: KvCache, name: string) => [Value, Value, Value]
type LinearCat = (x: Value, names: string[], opName: string) => Value

/**
 * Attention over token-major caches ([B, past, nKv·hd], `kvCache: 'append'`): RoPE and attention on 3D tensors
 * (no head reshapes), the cache concatenated with the new keys/values inside the graph; returns the new tokens'
 * rotated keys and their values in place of the present caches
 */
function appendAttention (g: GraphBuilder, config: ModelConfig, x: Value, offset: Value): Attend {
  const hd = headDim(config)
  const S = x.shape[1]
  const seq = g.dimOf(x, 1, { name: 'seq_len' })
  const positions = g.range(offset, g.add(offset, seq, { name: 'rope.end' }), g.scalar(1, 'int64'), S, { name: 'rope.positions' })
  const bs = g.concat([g.reshape(g.dimOf(x, 0), [1]), g.reshape(seq, [1])], 0, { name: 'batch_seq' })
  const positionIds = g.expand(g.unsqueeze(positions, [0]), { tensor: bs, shape: [x.shape[0], S] }, { name: 'position_ids' })
  const T = `${SHARD_DIMS.past}+${String(S)}`
  const keyPos = g.range(g.scalar(0, 'int64'), g.add(offset, seq), g.scalar(1, 'int64'), T, { name: 'key_pos' })
  const mask = g.lessOrEqual(g.unsqueeze(keyPos, [0]), g.unsqueeze(positions, [1]), { name: 'causal' })
  const { cosCache, sinCache } = ropeCaches(g, config)
  const rotary = (v: Value, heads: number, name: string): Value => g.op('RotaryEmbedding', [v, cosCache, sinCache, positionIds], [{ dtype: v.dtype, shape: v.shape }], {
    interleaved: { kind: 'int', value: 0 }, num_heads: { kind: 'int', value: heads }
  }, { name })[0]
  return (q0, k0, v0, cache, p) => {
    if (k0 === null || v0 === null) [q0, k0, v0] = g.split(q0, [config.nHeads * hd, config.nKvHeads * hd, config.nKvHeads * hd], -1, { name: `${p}.qkv` }) as [Value, Value, Value]
    const q = rotary(q0, config.nHeads, `${p}.q_rope`)
    const k = rotary(k0, config.nKvHeads, `${p}.k_rope`)
    const kAll = g.concat([cache.pastKey, k], 1, { name: `${p}.keys` })
    const vAll = g.concat([cache.pastValue, v0], 1, { name: `${p}.values` })
    const [y] = g.op('Attention', [q, kAll, vAll, mask], [{ dtype: q0.dtype, shape: [q0.shape[0], S, config.nHeads * hd] }], {
      q_num_heads: { kind: 'int', value: config.nHeads },
      kv_num_heads: { kind: 'int', value: config.nKvHeads },
      scale: { kind: 'float', value: 1 / Math.sqrt(hd) }
    }, { name: p })
    return [y, k, v0]
  }
}

/** Attention with the opset-23 `RotaryEmbedding` and `Attention` ops over a growing cache */
function opsetAttention (g: GraphBuilder, config: ModelConfig, fused: FusedTables): Attend {
  const hd = headDim(config)
  const heads = (v: Value, n: number, name: string): Value =>
    g.transpose(g.reshape(v, [0, 0, n, hd], { name: `${name}.split_heads` }), [0, 2, 1, 3], { name: `${name}.heads` })
  const rotary = (v: Value, name: string): Value => g.op('RotaryEmbedding', [v, fused.cosCache, fused.sinCache, fused.positionIds], [{ dtype: v.dtype, shape: v.shape }], {
    interleaved: { kind: 'int', value: 0 }
  }, { name })[0]
  return (q0, k0, v0, cache, p) => {
    if (k0 === null || v0 === null) throw new InvalidConfigError('the opset-23 attention takes q, k and v apart')
    const q = rotary(heads(q0, config.nHeads, `${p}.q`), `${p}.q_rope`)
    const k = rotary(heads(k0, config.nKvHeads, `${p}.k`), `${p}.k_rope`)
    const v = heads(v0, config.nKvHeads, `${p}.v`)
    const Bd = q0.shape[0]
    const Sd = q0.shape[1]
    const T = `${String(cache.pastKey.shape[2])}+${String(Sd)}`
    const [y, presentKey, presentValue] = g.op('Attention', [q, k, v, fused.mask, cache.pastKey, cache.pastValue], [
      { dtype: q0.dtype, shape: [Bd, config.nHeads, Sd, hd] },
      { dtype: q0.dtype, shape: [Bd, config.nKvHeads, T, hd] },
      { dtype: q0.dtype, shape: [Bd, config.nKvHeads, T, hd] }
    ], {
      q_num_heads: { kind: 'int', value: config.nHeads },
      kv_num_heads: { kind: 'int', value: config.nKvHeads },
      scale: { kind: 'float', value: 1 / Math.sqrt(hd) }
    }, { name: p })
    const o = g.reshape(g.transpose(y, [0, 2, 1, 3], { name: `${p}.o_t` }), [0, 0, config.nHeads * hd], { name: `${p}.merge_heads` })
    return [o, presentKey, presentValue]
  }
}

/**
 * One fused block (as `fusedBlock`) whose projections go through `linear` (fp32 MatMul or MatMulNBits); with
 * `linearCat` (`fuseProjections`) q/k/v are one packed projection and gate/up another
 */
function block (g: GraphBuilder, config: ModelConfig, input: Residual, index: number, attention: Attend, cache: KvCache, linear: Linear, norm: Norm, skipNorm: SkipNorm, linearCat?: LinearCat): { out: Residual, presentKey: Value, presentValue: Value } {
  const p = `blocks.${index}`
  const [attnNorm, wq, wk, wv, wo, mlpNorm, wGate, wUp, wDown] = blockParameters(config, index).map(s => s.name)
  // the previous block's residual add happens inside this block's first norm
  const [n, x] = input.delta === undefined ? [norm(input.base, attnNorm, `${p}.attn_norm`), input.base] : skipNorm(input.base, input.delta, attnNorm, `${p}.attn_norm`)
  const [o, presentKey, presentValue] = linearCat !== undefined
    ? attention(linearCat(n, [wq, wk, wv], `${p}.attn.qkv_proj`), null, null, cache, `${p}.attn`)
    : attention(linear(n, wq, `${p}.attn.q_proj`), linear(n, wk, `${p}.attn.k_proj`), linear(n, wv, `${p}.attn.v_proj`), cache, `${p}.attn`)
  const [m, h] = skipNorm(x, linear(o, wo, `${p}.attn.o_proj`), mlpNorm, `${p}.mlp_norm`)
  const [gateLin, up] = linearCat !== undefined
    ? g.split(linearCat(m, [wGate, wUp], `${p}.mlp.gate_up_proj`), [config.ffnHidden, config.ffnHidden], -1, { name: `${p}.mlp.gate_up` })
    : [linear(m, wGate, `${p}.mlp.gate_proj`), linear(m, wUp, `${p}.mlp.up_proj`)]
  const gate = g.silu(gateLin, { name: `${p}.mlp.silu` })
  const down = linear(g.mul(gate, up, { name: `${p}.mlp.glu` }), wDown, `${p}.mlp.down_proj`)
  return { out: { base: h, delta: down }, presentKey, presentValue }
}
