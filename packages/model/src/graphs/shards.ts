import { GraphBuilder, GraphError, activationsToSave, gradients } from '@neuroshard/onnx-graph'
import { headDim } from '../config.js'
import { InvalidConfigError } from '../errors.js'
import { validateConfig } from '../validate.js'
import { blockParameters, modelParameters, shardParameters } from '../params.js'
import { block, crossEntropy, fusedBlock, fusedLmHead, fusedTables, lmHead, ropeTables } from './layers.js'
import type { ModelConfig } from '../config.js'
import type { ShardRole } from '../params.js'
import type { BlockWeights, KvCache, RopeTables } from './layers.js'
import type { DType, Dim, GradientsOptions, Value } from '@neuroshard/onnx-graph'

/**
 * Names of the shard graphs' inputs and outputs (specs/model/README.md, "Shard graphs"). Parameters are
 * inputs under their own names (params.ts); their gradients are outputs named `grad.<param>`.
 */
export const SHARD_IO = Object.freeze({
  /** int64 [batch, seq]: token ids (embed shard, monolithic graphs) */
  inputIds: 'input_ids',
  /** int64 [batch, seq]: next-token targets (head shard, monolithic graphs) */
  targets: 'targets',
  /** [batch, seq, d]: output of the embed shard, input of the head shard */
  hidden: 'hidden',
  /** [batch, seq, d]: input of a block-range shard */
  hiddenIn: 'hidden_in',
  /** [batch, seq, d]: output of a block-range shard */
  hiddenOut: 'hidden_out',
  /** [batch, seq, d]: gradient of `hidden` (embed backward input, head backward output) */
  gradHidden: 'grad_hidden',
  /** [batch, seq, d]: gradient of `hidden_in` (block-range backward output) */
  gradHiddenIn: 'grad_hidden_in',
  /** [batch, seq, d]: gradient of `hidden_out` (block-range backward input) */
  gradHiddenOut: 'grad_hidden_out',
  /** scalar: mean token cross-entropy */
  loss: 'loss',
  /** scalar: seed dL/dloss of the head backward graph (1 for plain training; a loss scale otherwise) */
  gradLoss: 'grad_loss',
  /** [batch, seq, vocab] */
  logits: 'logits',
  /** int64 scalar: absolute position of the first token of this call (= cached length) */
  positionOffset: 'position_offset',
  /** int32 [batch]: tokens in the cache after this call, minus one (`attention: 'gqa'` inference graphs) */
  kvSeqlens: 'kv_seqlens',
  /** int32 scalar: tokens in the cache after this call (`attention: 'gqa'` inference graphs) */
  kvTotalLength: 'kv_total_length',
  /** The new tokens' keys of block k, [batch, seq, nKvHeads · headDim] (`kvCache: 'append'` inference graphs) */
  appendKey: (k: number) => `append_key.${k}`,
  /** The new tokens' values of block k (`kvCache: 'append'` inference graphs) */
  appendValue: (k: number) => `append_value.${k}`,
  /** [batch, nKvHeads, past, headDim], one per block k */
  pastKey: (k: number) => `past_key.${k}`,
  pastValue: (k: number) => `past_value.${k}`,
  /** [batch, nKvHeads, past + seq, headDim], one per block k */
  presentKey: (k: number) => `present_key.${k}`,
  presentValue: (k: number) => `present_value.${k}`,
  /** Gradient output of a parameter */
  grad: (param: string) => `grad.${param}`,
  /** Saved activation i (forward output and backward input when `savedActivations` is on) */
  activation: (i: number) => `act.${i}`
})

/** Symbolic dim names used in the shard graphs */
export const SHARD_DIMS = Object.freeze({ batch: 'batch', seq: 'seq', past: 'past' })

export type ShardVariant = 'forward' | 'backward' | 'inference'

export interface ShardGraphOptions {
  /** Float type of activations and parameters @default 'float32' */
  dtype?: 'float32' | 'float64'
  /**
   * Inference graphs only: use the opset-23 fused ops (RMSNormalization, RotaryEmbedding, Attention) instead of
   * their decompositions. Same inputs, outputs and results (within float rounding); positions must stay below
   * `maxSeqLen` (the RoPE cache size). Measured 1.15–1.6× faster prefill and 1.25–1.7× faster decode on CPU
   * over three runs on a shared machine (packages/model/bench/graphs.ts). @default true for float32, false for float64
   */
  fused?: boolean
  /**
   * Block-range and head forward/backward graphs only: the forward also outputs the activations its backward
   * reads (`act.0`, `act.1`, … in forward order) and the backward takes them as inputs instead of recomputing
   * the forward. Build both graphs with the same setting. Faster per step, at the cost of the activations'
   * memory between the two calls and one output copy each (see the benchmark). @default false
   */
  savedActivations?: boolean
  /**
   * Head backward graphs only: take gradients with respect to these parameters alone (e.g. `['embed.weight']`, the
   * tied matrix: what a pipeline's Driver recomputes, spec pipeline §4.4 point 5), without `grad_hidden` and the other
   * parameters' gradients — the work they alone need is left out of the graph. The loss is still an output.
   * @default every parameter and `grad_hidden`
   */
  gradientsOf?: string[]
}

/** One input or output of a shard graph */
export interface IOSpec {
  name: string
  dtype: DType
  shape: Dim[]
}

export interface ShardGraph {
  /** ONNX ModelProto bytes for `InferenceSession.create(bytes)` */
  bytes: Uint8Array
  inputs: IOSpec[]
  outputs: IOSpec[]
  /** The builder graph (for further composition or inspection) */
  graph: GraphBuilder
}

const B = SHARD_DIMS.batch
const S = SHARD_DIMS.seq

/** The graph's bytes and I/O, keeping only the inputs it reads (e.g. embed backward needs no embedding values) */
export function finish (g: GraphBuilder, domains: Record<string, number> = {}): ShardGraph {
  const bytes = g.toModelProto({ pruneInputs: true, domains })
  const used = g.usedInputs()
  return {
    bytes,
    inputs: g.inputs.filter(v => used.has(v)).map(v => ({ name: v.name, dtype: v.dtype, shape: [...v.shape] })),
    outputs: g.outputs.map(o => ({ name: o.name, dtype: o.value.dtype, shape: [...o.value.shape] })),
    graph: g
  }
}

function paramInputs (g: GraphBuilder, config: ModelConfig, role: ShardRole): Map<string, Value> {
  const m = new Map<string, Value>()
  for (const p of shardParameters(config, role)) m.set(p.name, g.input(p.name, g.dtype, p.shape))
  return m
}

function blockWeights (config: ModelConfig, params: Map<string, Value>, i: number): BlockWeights {
  const [attnNorm, wq, wk, wv, wo, mlpNorm, wGate, wUp, wDown] = blockParameters(config, i).map(p => params.get(p.name) as Value)
  return { attnNorm, wq, wk, wv, wo, mlpNorm, wGate, wUp, wDown }
}

function rope (g: GraphBuilder, config: ModelConfig, x: Value, offset: Value): RopeTables {
  return ropeTables(g, config, g.dimOf(x, 1, { name: 'seq_len' }), x.shape[1] as string, offset)
}

/** Forward part of the embed shard: hidden = embed.weight[input_ids] */
function embedForward (config: ModelConfig, dtype: 'float32' | 'float64'): { g: GraphBuilder, out: Value, params: Map<string, Value> } {
  const g = new GraphBuilder({ dtype, name: 'embed' })
  const ids = g.input(SHARD_IO.inputIds, 'int64', [B, S])
  const params = paramInputs(g, config, { kind: 'embed' })
  const out = g.gather(params.get('embed.weight') as Value, ids, 0, { name: 'embed' })
  return { g, out, params }
}

function blocksForward (config: ModelConfig, role: { start: number, end: number }, dtype: 'float32' | 'float64', kv: boolean, fused = false): { g: GraphBuilder, x: Value, out: Value, params: Map<string, Value> } {
  const g = new GraphBuilder({ dtype, name: `blocks_${role.start}_${role.end}` })
  const x = g.input(SHARD_IO.hiddenIn, dtype, [B, S, config.dModel])
  const params = paramInputs(g, config, { kind: 'blocks', ...role })
  const caches: KvCache[] = []
  let offset: Value
  if (kv) {
    const hd = headDim(config)
    for (let k = role.start; k < role.end; k++) {
      caches.push({
        pastKey: g.input(SHARD_IO.pastKey(k), dtype, [B, config.nKvHeads, SHARD_DIMS.past, hd]),
        pastValue: g.input(SHARD_IO.pastValue(k), dtype, [B, config.nKvHeads, SHARD_DIMS.past, hd])
      })
    }
    offset = g.input(SHARD_IO.positionOffset, 'int64', [])
  } else {
    offset = g.scalar(0, 'int64')
  }
  let h = x
  if (fused && kv) {
    const tables = fusedTables(g, config, x, offset, caches[0].pastKey)
    for (let k = role.start; k < role.end; k++) {
      const res = fusedBlock(g, config, h, blockWeights(config, params, k), tables, k, caches[k - role.start])
      h = res.out
      g.output(res.presentKey, SHARD_IO.presentKey(k))
      g.output(res.presentValue, SHARD_IO.presentValue(k))
    }
    return { g, x, out: h, params }
  }
  const r = rope(g, config, x, offset)
  for (let k = role.start; k < role.end; k++) {
    const res = block(g, config, h, blockWeights(config, params, k), r, k, kv ? caches[k - role.start] : undefined)
    h = res.out
    if (kv) {
      g.output(res.presentKey as Value, SHARD_IO.presentKey(k))
      g.output(res.presentValue as Value, SHARD_IO.presentValue(k))
    }
  }
  return { g, x, out: h, params }
}

function headForward (config: ModelConfig, dtype: 'float32' | 'float64', withLoss: boolean, fused = false): { g: GraphBuilder, x: Value, logits: Value, loss?: Value, params: Map<string, Value> } {
  const g = new GraphBuilder({ dtype, name: 'head' })
  const x = g.input(SHARD_IO.hidden, dtype, [B, S, config.dModel])
  const targets = withLoss ? g.input(SHARD_IO.targets, 'int64', [B, S]) : undefined
  const params = paramInputs(g, config, { kind: 'head' })
  const w = params.get(config.tieEmbeddings ? 'embed.weight' : 'lm_head.weight') as Value
  const logits = (fused ? fusedLmHead : lmHead)(g, config, x, params.get('final_norm.weight') as Value, w)
  const loss = targets != null ? crossEntropy(g, config, logits, targets) : undefined
  return { g, x, logits, loss, params }
}

/**
 * Build one shard graph.
 *
 * - embed: forward/inference `input_ids` + `embed.weight` → `hidden`; backward `input_ids` + `grad_hidden` →
 *   `grad.embed.weight`.
 * - blocks [start, end): forward `hidden_in` + params → `hidden_out`; backward adds `grad_hidden_out` and
 *   returns `grad_hidden_in` + `grad.<param>`; inference adds `past_key.<k>`, `past_value.<k>` and
 *   `position_offset` and also returns `present_key.<k>`, `present_value.<k>` (prefill: past = 0; decode: seq = 1).
 * - head: forward `hidden` + `targets` + params → `loss`; backward adds `grad_loss` and returns `grad_hidden` +
 *   `grad.<param>` + `loss`; inference `hidden` + params → `logits`. With tied embeddings the head reads
 *   `embed.weight` and returns `grad.embed.weight`, which the owner adds to the embed shard's gradient.
 *
 * By default backward graphs recompute the shard's forward from its inputs (activation recomputation), so no
 * activations are kept between the forward and backward calls; `savedActivations: true` trades memory for
 * that recomputation. Float32 inference graphs use the fused opset-23 ops unless
 * `fused: false` (see {@link ShardGraphOptions.fused}).
 */
export function buildShardGraph (config: ModelConfig, role: ShardRole, variant: ShardVariant, options: ShardGraphOptions = {}): ShardGraph {
  validateConfig(config)
  if (role.kind === 'blocks' && !(Number.isSafeInteger(role.start) && Number.isSafeInteger(role.end) && role.start >= 0 && role.start < role.end && role.end <= config.nLayers)) {
    throw new InvalidConfigError(`block range [${role.start}, ${role.end}) is not a non-empty range within [0, ${config.nLayers})`)
  }
  const dtype = options.dtype ?? 'float32'
  if (options.fused === true && dtype !== 'float32') {
    // ONNX types RotaryEmbedding and Attention for float/float16/bfloat16 only
    throw new GraphError('fused inference graphs are float32-only (RotaryEmbedding/Attention have no double type); use fused: false')
  }
  const fused = variant === 'inference' && (options.fused ?? dtype === 'float32')
  switch (role.kind) {
    case 'embed': {
      const { g, out, params } = embedForward(config, dtype)
      if (variant !== 'backward') {
        g.output(out, SHARD_IO.hidden)
        return finish(g)
      }
      return finish(gradients(g, {
        of: [{ value: out, seed: SHARD_IO.gradHidden }],
        wrt: [params.get('embed.weight') as Value]
      }))
    }
    case 'blocks': {
      const { g, x, out, params } = blocksForward(config, role, dtype, variant === 'inference', fused)
      const ps = [...params.values()]
      const grad: GradientsOptions = {
        of: [{ value: out, seed: SHARD_IO.gradHiddenOut }],
        wrt: [x, ...ps],
        names: [SHARD_IO.gradHiddenIn, ...ps.map(p => SHARD_IO.grad(p.name))]
      }
      if (variant === 'backward') return finish(gradients(g, withSaved(g, grad, options)))
      g.output(out, SHARD_IO.hiddenOut)
      // present_* were registered first; keep hidden_out first in the output list
      g.outputs.unshift(g.outputs.pop() as typeof g.outputs[number])
      if (variant === 'forward') outputSaved(g, grad, options)
      return finish(g)
    }
    case 'head': {
      const { g, x, logits, loss, params } = headForward(config, dtype, variant !== 'inference', fused)
      if (variant === 'inference') {
        g.output(logits, SHARD_IO.logits)
        return finish(g)
      }
      const ps = [...params.values()]
      const grad: GradientsOptions = {
        of: [{ value: loss as Value, seed: SHARD_IO.gradLoss }],
        wrt: [x, ...ps],
        names: [SHARD_IO.gradHidden, ...ps.map(p => SHARD_IO.grad(p.name))],
        alsoOutput: [{ value: loss as Value, name: SHARD_IO.loss }]
      }
      if (variant === 'backward' && options.gradientsOf != null) {
        const only = options.gradientsOf.map(name => {
          const p = params.get(name)
          if (p == null) throw new GraphError(`gradientsOf: ${name} is not a parameter of the head`)
          return p
        })
        if (only.length === 0) throw new GraphError('gradientsOf: name at least one parameter')
        return finish(gradients(g, withSaved(g, { ...grad, wrt: only, names: only.map(p => SHARD_IO.grad(p.name)) }, options)))
      }
      if (variant === 'backward') return finish(gradients(g, withSaved(g, grad, options)))
      g.output(loss as Value, SHARD_IO.loss)
      outputSaved(g, grad, options)
      return finish(g)
    }
  }
}

/** Saved activations of a shard, named `act.<i>` in forward order */
function savedList (g: GraphBuilder, grad: GradientsOptions): Array<{ value: Value, name: string }> {
  return activationsToSave(g, grad).map((value, i) => ({ value, name: SHARD_IO.activation(i) }))
}

function withSaved (g: GraphBuilder, grad: GradientsOptions, options: ShardGraphOptions): GradientsOptions {
  return options.savedActivations === true ? { ...grad, saved: savedList(g, grad) } : grad
}

function outputSaved (g: GraphBuilder, grad: GradientsOptions, options: ShardGraphOptions): void {
  if (options.savedActivations !== true) return
  for (const a of savedList(g, grad)) {
    // the loss is already an output; every other activation is exported under its act.<i> name
    if (g.outputs.some(o => o.value === a.value)) g.output(g.identity(a.value), a.name)
    else g.output(a.value, a.name)
  }
}

export type ModelVariant = 'forward' | 'backward' | 'inference'

/**
 * The whole model as one graph (tests, local training, reference results).
 *
 * - forward: `input_ids`, `targets`, every parameter → `loss`, `logits`
 * - backward: same inputs → `loss` and `grad.<param>` for every parameter (seed dL/dloss = 1)
 * - inference: `input_ids`, every parameter → `logits` (no cache: recomputes the whole sequence)
 */
export function buildModelGraph (config: ModelConfig, variant: ModelVariant, options: ShardGraphOptions = {}): ShardGraph {
  validateConfig(config)
  const dtype = options.dtype ?? 'float32'
  const g = new GraphBuilder({ dtype, name: 'neurollm' })
  const ids = g.input(SHARD_IO.inputIds, 'int64', [B, S])
  const targets = variant !== 'inference' ? g.input(SHARD_IO.targets, 'int64', [B, S]) : undefined
  const params = new Map<string, Value>()
  for (const p of modelParameters(config)) params.set(p.name, g.input(p.name, dtype, p.shape))
  const x = g.gather(params.get('embed.weight') as Value, ids, 0, { name: 'embed' })
  const r = rope(g, config, x, g.scalar(0, 'int64'))
  let h = x
  for (let k = 0; k < config.nLayers; k++) h = block(g, config, h, blockWeights(config, params, k), r, k).out
  const logits = lmHead(g, config, h, params.get('final_norm.weight') as Value, params.get(config.tieEmbeddings ? 'embed.weight' : 'lm_head.weight') as Value)
  if (variant === 'inference') {
    g.output(logits, SHARD_IO.logits)
    return finish(g)
  }
  const loss = crossEntropy(g, config, logits, targets as Value)
  if (variant === 'forward') {
    g.output(loss, SHARD_IO.loss)
    g.output(logits, SHARD_IO.logits)
    return finish(g)
  }
  const ps = [...params.values()]
  return finish(gradients(g, { of: loss, wrt: ps, alsoOutput: [{ value: loss, name: SHARD_IO.loss }] }))
}
