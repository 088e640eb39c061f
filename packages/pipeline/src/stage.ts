/**
 * A stage: what one node runs for one slot span of the model. Slots follow layer-pool: slot 0 is the
 * embedding (Driver), slot i in 1..L is block i − 1 (Workers), slot L + 1 is the final norm and LM head
 * (Validator). A span is the half-open slot range [start, end).
 */
import { QUANT_BLOCK_SIZE, QUANT_BLOCK_SIZES, buildInferenceGraph, buildShardGraph, shardParameters } from '@neuroshard/model'
import { createShardExecutor } from '@neuroshard/runtime'
import { InvalidParametersError } from '@neuroshard/interface'
import type { ModelConfig, QuantBlockSize, ShardRole, WeightQuantization } from '@neuroshard/model'
import type { AdamWOptions, KvCacheSession, RuntimeInit, ShardExecutor } from '@neuroshard/runtime'

export interface PipelineStage {
  readonly config: ModelConfig
  /** First slot */
  readonly start: number
  /** One past the last slot */
  readonly end: number
  /**
   * The weights its inference runs with: `'int8'` / `'int4'` (blockwise, `quantBlockSize`-value groups, baked into the
   * embed's, blocks' and head's inference sessions) or `'fp32'`. Declare it in the layer-pool record (`layerPool({ quantization })`).
   */
  readonly quantization: WeightQuantization
  /**
   * A quantized stage's values per quantization group (32, 64 or 128; 32 for float32 stages). Declare it with the
   * format in the layer-pool record (`layerPool({ quantization, quantBlockSize })`).
   */
  readonly quantBlockSize: QuantBlockSize
  /** Slot 0's executor, when the span starts at 0 */
  readonly embed?: ShardExecutor
  /** The blocks of the span, when it holds any */
  readonly blocks?: ShardExecutor
  /** Slot L + 1's executor, when the span ends at L + 2 */
  readonly head?: ShardExecutor
  /**
   * What the blocks' inference session also runs (`fuseInference`): the embedding lookup first (it then takes
   * `input_ids`, not `hidden_in`) and the head over the last position (it also outputs that position's `logits`)
   */
  readonly fused?: { readonly embed: boolean, readonly head: boolean }
  /** Every executor, in slot order */
  readonly executors: readonly ShardExecutor[]
  /**
   * The AdamW settings the executors were built with (runtime defaults where absent). A Validator's replica
   * of a tied embedding is stepped with the Driver's settings, read from here.
   */
  readonly optimizer?: AdamWOptions
  /**
   * The weights a sub-span stage of this one is built from (a route naming part of the span, inference only) and their
   * version: a sub-span stage is rebuilt when the version changes. Absent: the executors' parameters, versioned by
   * their step count (a training stage's sub-span is then rebuilt after every inner step, on the request's path). A
   * training node that serves inference from a round's weights gives those, versioned by the round
   */
  inferenceWeights?: () => { version: number, parameters: () => Promise<Map<string, Float32Array>> }
  /** @internal a long-lived runner of the head's inference graph (no cache) */
  headRunner?: KvCacheSession
  /** Terminate the executors' workers */
  close(): Promise<void>
}

export interface CreateStageOptions extends RuntimeInit {
  config: ModelConfig
  start: number
  end: number
  /**
   * The span's parameters by name (e.g. merged from layer-pool's `WeightStore.get(slot)` of each slot);
   * must hold every parameter the span's shards read (with tied embeddings the head reads `embed.weight`)
   */
  parameters: Map<string, Float32Array>
  /** AdamW settings of the span's optimizer (training) */
  optimizer?: AdamWOptions
  /** Optimizer steps already taken @default 0 */
  step?: number
  /** Build the training graphs too @default true */
  training?: boolean
  /**
   * Serve inference with quantized weights (`'int8'`, `'int4'`): the embed's, blocks' and head's inference sessions
   * are built with the weights baked in and quantized — every matrix, the embedding table of the lookup included, as
   * in a whole-model `InferenceEngine` of the same format and group size (layer-pool §2.4): the same quantized model
   * whichever way it is split. Inference-only stages (`training: false`): a training step would leave the quantized
   * session behind the weights. @default 'fp32'
   */
  quantization?: WeightQuantization
  /**
   * Quantized stages: values per quantization group of the stage's matrices, 32, 64 or 128 (runtime
   * `quantBlockSize`); a float32 stage takes none. @default 32
   */
  quantBlockSize?: QuantBlockSize
  /**
   * How a float32 stage's blocks keep a session's KV cache. `'append'`: token-major caches in the executor's worker,
   * written in place, the graph giving out only the new tokens' keys and values (`buildInferenceGraph`'s
   * `kvCache: 'append'`, weights fed from the resident parameters as before); `'present'`: the shard graph that
   * outputs the whole grown cache every call (onnxruntime copies it out each token). Quantized stages always append.
   * @default 'append'
   */
  kvCache?: 'append' | 'present'
  /**
   * Inference-only float32 stages (`training: false`, `kvCache: 'append'`) whose span holds blocks and the embedding
   * or the head: the blocks' inference session takes the embedding lookup and/or the head over the last position in
   * too (see {@link PipelineStage.fused}), so a decoded token is one onnxruntime run on this node instead of two (each
   * run a call to the executor's worker, or an event-loop turn in-thread). The blocks' runtime then holds its own
   * copy of the embedding and head weights. Ignored where it does not apply. @default false
   */
  fuseInference?: boolean
  /**
   * Inference-only float32 stages (`training: false`, not fused): the blocks' and head's inference sessions with
   * the weights baked in (runtime `ShardExecutor` `bakeWeights`: prepacked by onnxruntime, which uses a second
   * intra-op thread well — pass `intraOpNumThreads: 2`), rebuilt whenever `setParameters` changes the weights. Costs
   * about twice the weights' memory (the float32 weights stay resident too). Ignored where it does not apply.
   * @default false
   */
  bakeWeights?: boolean
}

/** The shard roles of slot span [start, end), in slot order */
export function spanRoles (config: ModelConfig, start: number, end: number): ShardRole[] {
  const L = config.nLayers
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start < end && end <= L + 2)) {
    throw new InvalidParametersError(`span [${start}, ${end}) is not a non-empty slot range within [0, ${L + 2})`)
  }
  const roles: ShardRole[] = []
  if (start === 0) roles.push({ kind: 'embed' })
  const b0 = Math.max(start, 1) - 1
  const b1 = Math.min(end, L + 1) - 1
  if (b1 > b0) roles.push({ kind: 'blocks', start: b0, end: b1 })
  if (end === L + 2) roles.push({ kind: 'head' })
  return roles
}

/** Build the executors of a span (forward, backward and inference graphs), weights from `parameters` */
export async function createPipelineStage (options: CreateStageOptions): Promise<PipelineStage> {
  const { config, start, end, parameters, optimizer, step, training = true, quantization = 'fp32', quantBlockSize, kvCache = 'append', fuseInference = false, bakeWeights = false, ...runtime } = options
  if (kvCache !== 'append' && kvCache !== 'present') throw new InvalidParametersError(`kvCache must be 'append' or 'present', got ${String(kvCache)}`)
  if (quantization !== 'fp32' && quantization !== 'int8' && quantization !== 'int4') throw new InvalidParametersError(`quantization must be 'fp32', 'int8' or 'int4', got ${String(quantization)}`)
  if (quantization !== 'fp32' && training) throw new InvalidParametersError('a quantized stage serves inference only: pass training: false')
  if (quantBlockSize !== undefined) {
    if (!QUANT_BLOCK_SIZES.includes(quantBlockSize)) throw new InvalidParametersError(`quantBlockSize must be one of ${QUANT_BLOCK_SIZES.join(', ')}, got ${String(quantBlockSize)}`)
    if (quantization === 'fp32' && quantBlockSize !== QUANT_BLOCK_SIZE) throw new InvalidParametersError('quantBlockSize needs quantization int8 or int4')
  }
  const roles = spanRoles(config, start, end)
  const fuse = fuseInference && !training && quantization === 'fp32' && kvCache === 'append' && roles.some(r => r.kind === 'blocks')
  const bake = bakeWeights && !training && quantization === 'fp32' && !fuse
  const fused = fuse ? { embed: roles[0].kind === 'embed', head: roles[roles.length - 1].kind === 'head' } : undefined
  const executors = await Promise.all(roles.map(async role => {
    const params = new Map<string, Float32Array>()
    for (const p of shardParameters(config, role)) {
      const v = parameters.get(p.name)
      if (v == null) throw new InvalidParametersError(`span [${start}, ${end}) needs parameter ${p.name}`)
      params.set(p.name, v)
    }
    return await createShardExecutor({
      ...runtime,
      config,
      role,
      parameters: params,
      step,
      optimizer,
      ...(quantization !== 'fp32' ? { quantization, ...(quantBlockSize !== undefined ? { quantBlockSize } : {}) } : {}),
      ...(bake && role.kind !== 'embed' ? { bakeWeights: true } : {}),
      graphs: {
        // the embed forward serves a float32 stage's inference too (a quantized embed looks ids up in its quantized
        // table, `infer`); the head's backward graph computes the loss itself
        forward: role.kind === 'embed' || (training && role.kind === 'blocks') ? buildShardGraph(config, role, 'forward').bytes : undefined,
        backward: training ? buildShardGraph(config, role, 'backward').bytes : undefined,
        inference: role.kind === 'embed'
          ? undefined
          : role.kind === 'blocks' && kvCache === 'append'
            // weights stay graph inputs under their parameter names (fed from the resident tensors, no rebuild after a step)
            ? buildInferenceGraph(config, role, { bakeWeights: false, kvCache: 'append', withEmbed: fused?.embed === true, withHead: fused?.head === true }).bytes
            : buildShardGraph(config, role, 'inference').bytes
      }
    })
  }))
  const find = (kind: ShardRole['kind']): ShardExecutor | undefined => executors.find(e => e.role.kind === kind)
  if (fused != null && (fused.embed || fused.head)) {
    // the weights the fused session reads beyond the blocks' own (a copy, next to the blocks')
    const extra: Record<string, { type: 'float32', dims: number[], data: Float32Array }> = {}
    const take = (role: ShardRole): void => {
      for (const p of shardParameters(config, role)) extra[p.name] = { type: 'float32', dims: p.shape, data: parameters.get(p.name) as Float32Array }
    }
    if (fused.embed) take({ kind: 'embed' })
    if (fused.head) take({ kind: 'head' })
    try {
      await find('blocks')!.runtime.setResident(extra)
    } catch (err) {
      await Promise.all(executors.map(async e => { await e.close() }))
      throw err
    }
  }
  const stage: PipelineStage = {
    config,
    start,
    end,
    quantization,
    quantBlockSize: quantization !== 'fp32' ? quantBlockSize ?? QUANT_BLOCK_SIZE : QUANT_BLOCK_SIZE,
    embed: find('embed'),
    blocks: find('blocks'),
    head: find('head'),
    ...(fused != null && (fused.embed || fused.head) ? { fused } : {}),
    executors,
    optimizer,
    async close () {
      await Promise.all(executors.map(async e => { await e.close() }))
    }
  }
  return stage
}
