import { headDim } from '../config.js'
import type { ModelConfig } from '../config.js'
import type { GraphBuilder, Value } from '@neuroshard/onnx-graph'

/** Score given to masked (future) keys before the softmax; exp() of it underflows to exactly 0 */
export const MASK_VALUE = -1e9

/** Rotary tables and positions shared by every block of one graph */
export interface RopeTables {
  /** cos(pos · inv_freq) duplicated to [seq, headDim] */
  cos: Value
  /** sin(pos · inv_freq) duplicated to [seq, headDim] */
  sin: Value
  /** Absolute query positions, int64 [seq] */
  positions: Value
}

/** The weights of one block, as graph values */
export interface BlockWeights {
  attnNorm: Value
  wq: Value
  wk: Value
  wv: Value
  wo: Value
  mlpNorm: Value
  wGate: Value
  wUp: Value
  wDown: Value
}

/** KV cache of one block: past keys/values in, present (past ++ new) out */
export interface KvCache {
  pastKey: Value
  pastValue: Value
}

/** RMSNorm(x) = x · w / sqrt(mean(x²) + eps), over the last axis */
export function rmsNorm (g: GraphBuilder, x: Value, w: Value, eps: number, name: string): Value {
  const ms = g.reduceMean(g.mul(x, x, { name: `${name}.sq` }), [-1], true, { name: `${name}.mean` })
  const inv = g.reciprocal(g.sqrt(g.add(ms, eps, { name: `${name}.eps` }), { name: `${name}.sqrt` }), { name: `${name}.rsqrt` })
  return g.mul(g.mul(x, inv, { name: `${name}.scale` }), w, { name })
}

/**
 * RoPE tables for the positions `offset .. offset + seq` (GPT-NeoX / HF Llama convention: inv_freq =
 * theta^(-2i/hd), the angle vector duplicated as [f, f] so rotate-half pairs i with i + hd/2).
 */
export function ropeTables (g: GraphBuilder, config: ModelConfig, seq: Value, seqDim: string | number, offset: Value): RopeTables {
  const hd = headDim(config)
  const half = hd / 2
  const inv = new Array<number>(half)
  for (let i = 0; i < half; i++) inv[i] = Math.pow(config.ropeTheta, -(2 * i) / hd)
  const invFreq = g.constant(inv, g.dtype, [1, half], 'rope.inv_freq')
  const positions = g.range(offset, g.add(offset, seq, { name: 'rope.end' }), g.scalar(1, 'int64'), seqDim, { name: 'rope.positions' })
  const freqs = g.mul(g.unsqueeze(g.cast(positions, g.dtype), [1]), invFreq, { name: 'rope.freqs' })
  const emb = g.concat([freqs, freqs], -1, { name: 'rope.emb' })
  return { cos: g.cos(emb, { name: 'rope.cos' }), sin: g.sin(emb, { name: 'rope.sin' }), positions }
}

/** x · cos + rotate_half(x) · sin, with rotate_half([x1, x2]) = [−x2, x1]; x is [batch, heads, seq, hd] */
export function applyRope (g: GraphBuilder, x: Value, rope: RopeTables, hd: number, name: string): Value {
  const [x1, x2] = g.split(x, [hd / 2, hd / 2], -1, { name: `${name}.split` })
  const rot = g.concat([g.neg(x2, { name: `${name}.neg` }), x1], -1, { name: `${name}.rot` })
  return g.add(g.mul(x, rope.cos, { name: `${name}.cos` }), g.mul(rot, rope.sin, { name: `${name}.sin` }), { name })
}

/**
 * Grouped-query causal self-attention. Queries are grouped as [batch, kvHeads, rep, seq, hd] so one MatMul
 * broadcasts each KV head over its `rep` query heads (head h uses KV head ⌊h / rep⌋, as HF repeat_kv), with no
 * copy of K/V. With a cache, keys/values are past ++ new and a query at absolute position p sees keys 0..p.
 */
export function attention (g: GraphBuilder, config: ModelConfig, x: Value, w: BlockWeights, rope: RopeTables, prefix: string, cache?: KvCache): { out: Value, presentKey?: Value, presentValue?: Value } {
  const hd = headDim(config)
  const nH = config.nHeads
  const nKv = config.nKvHeads
  const rep = nH / nKv
  const heads = (v: Value, n: number, name: string): Value =>
    g.transpose(g.reshape(v, [0, 0, n, hd], { name: `${name}.split_heads` }), [0, 2, 1, 3], { name: `${name}.heads` })
  const q = applyRope(g, heads(g.matmul(x, w.wq, { name: `${prefix}.q_proj` }), nH, `${prefix}.q`), rope, hd, `${prefix}.q_rope`)
  let k = applyRope(g, heads(g.matmul(x, w.wk, { name: `${prefix}.k_proj` }), nKv, `${prefix}.k`), rope, hd, `${prefix}.k_rope`)
  let v = heads(g.matmul(x, w.wv, { name: `${prefix}.v_proj` }), nKv, `${prefix}.v`)
  if (cache != null) {
    k = g.concat([cache.pastKey, k], 2, { name: `${prefix}.present_key` })
    v = g.concat([cache.pastValue, v], 2, { name: `${prefix}.present_value` })
  }
  const q5 = g.reshape(q, [0, nKv, rep, -1, hd], { name: `${prefix}.q_groups` })
  const k5 = g.unsqueeze(k, [2], { name: `${prefix}.k_groups` })
  const v5 = g.unsqueeze(v, [2], { name: `${prefix}.v_groups` })
  const scores = g.mul(g.matmul(q5, g.transpose(k5, [0, 1, 2, 4, 3], { name: `${prefix}.kT` }), { name: `${prefix}.qk` }), 1 / Math.sqrt(hd), { name: `${prefix}.scale` })
  // causal mask [seq, kv_len]: key position ≤ query position
  const kvLen = k.shape[2]
  const keyPos = g.range(g.scalar(0, 'int64'), g.dimOf(k, 2), g.scalar(1, 'int64'), kvLen, { name: `${prefix}.key_pos` })
  const allowed = g.lessOrEqual(g.unsqueeze(keyPos, [0]), g.unsqueeze(rope.positions, [1]), { name: `${prefix}.causal` })
  const masked = g.where(allowed, scores, MASK_VALUE, { name: `${prefix}.masked` })
  const probs = g.softmax(masked, -1, { name: `${prefix}.softmax` })
  const o5 = g.matmul(probs, v5, { name: `${prefix}.pv` })
  const o = g.reshape(g.transpose(g.reshape(o5, [0, nH, -1, hd], { name: `${prefix}.merge_groups` }), [0, 2, 1, 3], { name: `${prefix}.o_t` }), [0, 0, nH * hd], { name: `${prefix}.merge_heads` })
  const out = g.matmul(o, w.wo, { name: `${prefix}.o_proj` })
  return cache != null ? { out, presentKey: k, presentValue: v } : { out }
}

/** SwiGLU: (silu(x Wg) ⊙ (x Wu)) Wd */
export function mlp (g: GraphBuilder, x: Value, w: BlockWeights, prefix: string): Value {
  const gate = g.silu(g.matmul(x, w.wGate, { name: `${prefix}.gate_proj` }), { name: `${prefix}.silu` })
  const up = g.matmul(x, w.wUp, { name: `${prefix}.up_proj` })
  return g.matmul(g.mul(gate, up, { name: `${prefix}.glu` }), w.wDown, { name: `${prefix}.down_proj` })
}

/** One pre-norm block: h = x + Attn(RMSNorm(x)); out = h + MLP(RMSNorm(h)) */
export function block (g: GraphBuilder, config: ModelConfig, x: Value, w: BlockWeights, rope: RopeTables, index: number, cache?: KvCache): { out: Value, presentKey?: Value, presentValue?: Value } {
  const p = `blocks.${index}`
  const a = attention(g, config, rmsNorm(g, x, w.attnNorm, config.normEps, `${p}.attn_norm`), w, rope, `${p}.attn`, cache)
  const h = g.add(x, a.out, { name: `${p}.attn_residual` })
  const out = g.add(h, mlp(g, rmsNorm(g, h, w.mlpNorm, config.normEps, `${p}.mlp_norm`), w, `${p}.mlp`), { name: `${p}.mlp_residual` })
  return { ...a, out }
}

/** Final RMSNorm and LM head: logits = RMSNorm(x) @ W (W = embed.weightᵀ when tied) */
export function lmHead (g: GraphBuilder, config: ModelConfig, x: Value, finalNorm: Value, weight: Value): Value {
  const n = rmsNorm(g, x, finalNorm, config.normEps, 'final_norm')
  const w = config.tieEmbeddings ? g.transpose(weight, [1, 0], { name: 'lm_head.tied' }) : weight
  return g.matmul(n, w, { name: 'lm_head' })
}

/**
 * Mean token cross-entropy over every position: −mean(log_softmax(logits)[target]). LogSoftmax subtracts the
 * row max internally; the target log-probability is picked with GatherElements (its VJP scatters back with
 * ScatterElements-add), so no [batch, seq, vocab] one-hot is built.
 */
export function crossEntropy (g: GraphBuilder, _config: ModelConfig, logits: Value, targets: Value): Value {
  const lsm = g.logSoftmax(logits, -1, { name: 'loss.log_softmax' })
  const picked = g.gatherElements(lsm, g.unsqueeze(targets, [-1], { name: 'loss.targets' }), -1, { name: 'loss.pick' })
  return g.neg(g.reduceMean(picked, [0, 1, 2], false, { name: 'loss.mean' }), { name: 'loss' })
}

/**
 * The same block with onnx opset-23 fused ops, for inference graphs: RMSNormalization, RotaryEmbedding (rotate-half,
 * cos/sin tables over maxSeqLen indexed by position_ids) and Attention (GQA by q/kv head counts, past/present KV,
 * an explicit boolean causal mask so a query at absolute position p sees keys 0..p). No VJP rules exist for these,
 * so training graphs use the decomposed form.
 */
export function fusedBlock (g: GraphBuilder, config: ModelConfig, x: Value, w: BlockWeights, fused: FusedTables, index: number, cache: KvCache): { out: Value, presentKey: Value, presentValue: Value } {
  const p = `blocks.${index}`
  const hd = headDim(config)
  const nH = config.nHeads
  const nKv = config.nKvHeads
  const norm = (v: Value, weight: Value, name: string): Value => g.op('RMSNormalization', [v, weight], [{ dtype: v.dtype, shape: v.shape }], {
    axis: { kind: 'int', value: -1 }, epsilon: { kind: 'float', value: config.normEps }
  }, { name })[0]
  const heads = (v: Value, n: number, name: string): Value =>
    g.transpose(g.reshape(v, [0, 0, n, hd], { name: `${name}.split_heads` }), [0, 2, 1, 3], { name: `${name}.heads` })
  const rotary = (v: Value, name: string): Value => g.op('RotaryEmbedding', [v, fused.cosCache, fused.sinCache, fused.positionIds], [{ dtype: v.dtype, shape: v.shape }], {
    interleaved: { kind: 'int', value: 0 }
  }, { name })[0]
  const n = norm(x, w.attnNorm, `${p}.attn_norm`)
  const q = rotary(heads(g.matmul(n, w.wq, { name: `${p}.attn.q_proj` }), nH, `${p}.attn.q`), `${p}.attn.q_rope`)
  const k = rotary(heads(g.matmul(n, w.wk, { name: `${p}.attn.k_proj` }), nKv, `${p}.attn.k`), `${p}.attn.k_rope`)
  const v = heads(g.matmul(n, w.wv, { name: `${p}.attn.v_proj` }), nKv, `${p}.attn.v`)
  const B = x.shape[0]
  const S = x.shape[1]
  const T = `${String(cache.pastKey.shape[2])}+${String(S)}`
  const [y, presentKey, presentValue] = g.op('Attention', [q, k, v, fused.mask, cache.pastKey, cache.pastValue], [
    { dtype: x.dtype, shape: [B, nH, S, hd] },
    { dtype: x.dtype, shape: [B, nKv, T, hd] },
    { dtype: x.dtype, shape: [B, nKv, T, hd] }
  ], {
    q_num_heads: { kind: 'int', value: nH },
    kv_num_heads: { kind: 'int', value: nKv },
    scale: { kind: 'float', value: 1 / Math.sqrt(hd) }
  }, { name: `${p}.attn` })
  const o = g.reshape(g.transpose(y, [0, 2, 1, 3], { name: `${p}.attn.o_t` }), [0, 0, nH * hd], { name: `${p}.attn.merge_heads` })
  const h = g.add(x, g.matmul(o, w.wo, { name: `${p}.attn.o_proj` }), { name: `${p}.attn_residual` })
  const out = g.add(h, mlp(g, norm(h, w.mlpNorm, `${p}.mlp_norm`), w, `${p}.mlp`), { name: `${p}.mlp_residual` })
  return { out, presentKey, presentValue }
}

/** Tables shared by the fused blocks of one graph */
export interface FusedTables {
  /** cos(pos · inv_freq) for pos in [0, maxSeqLen): [maxSeqLen, headDim / 2] */
  cosCache: Value
  sinCache: Value
  /** int64 [batch, seq]: absolute positions offset .. offset + seq */
  positionIds: Value
  /** bool [seq, past + seq]: key position ≤ query position */
  mask: Value
}

/** The constant RoPE caches cos/sin(pos · inv_freq), pos in [0, maxSeqLen): [maxSeqLen, headDim / 2] each */
export function ropeCaches (g: GraphBuilder, config: ModelConfig): { cosCache: Value, sinCache: Value } {
  const hd = headDim(config)
  const half = hd / 2
  const cos = new Array<number>(config.maxSeqLen * half)
  const sin = new Array<number>(config.maxSeqLen * half)
  for (let pos = 0; pos < config.maxSeqLen; pos++) {
    for (let i = 0; i < half; i++) {
      const f = pos * Math.pow(config.ropeTheta, -(2 * i) / hd)
      cos[pos * half + i] = Math.cos(f)
      sin[pos * half + i] = Math.sin(f)
    }
  }
  return {
    cosCache: g.constant(cos, g.dtype, [config.maxSeqLen, half], 'rope.cos_cache'),
    sinCache: g.constant(sin, g.dtype, [config.maxSeqLen, half], 'rope.sin_cache')
  }
}

/** Builds the constant RoPE caches, position ids and causal mask for the fused blocks */
export function fusedTables (g: GraphBuilder, config: ModelConfig, x: Value, offset: Value, pastKey: Value): FusedTables {
  const S = x.shape[1]
  const seq = g.dimOf(x, 1, { name: 'seq_len' })
  const positions = g.range(offset, g.add(offset, seq, { name: 'rope.end' }), g.scalar(1, 'int64'), S, { name: 'rope.positions' })
  const bs = g.concat([g.reshape(g.dimOf(x, 0), [1]), g.reshape(seq, [1])], 0, { name: 'batch_seq' })
  const positionIds = g.expand(g.unsqueeze(positions, [0]), { tensor: bs, shape: [x.shape[0], S] }, { name: 'position_ids' })
  const T = `${String(pastKey.shape[2])}+${String(S)}`
  const keyPos = g.range(g.scalar(0, 'int64'), g.add(offset, seq), g.scalar(1, 'int64'), T, { name: 'key_pos' })
  const mask = g.lessOrEqual(g.unsqueeze(keyPos, [0]), g.unsqueeze(positions, [1]), { name: 'causal' })
  return { ...ropeCaches(g, config), positionIds, mask }
}

/** Final norm + LM head with the fused RMSNormalization op */
export function fusedLmHead (g: GraphBuilder, config: ModelConfig, x: Value, finalNorm: Value, weight: Value): Value {
  const n = g.op('RMSNormalization', [x, finalNorm], [{ dtype: x.dtype, shape: x.shape }], {
    axis: { kind: 'int', value: -1 }, epsilon: { kind: 'float', value: config.normEps }
  }, { name: 'final_norm' })[0]
  const w = config.tieEmbeddings ? g.transpose(weight, [1, 0], { name: 'lm_head.tied' }) : weight
  return g.matmul(n, w, { name: 'lm_head' })
}
