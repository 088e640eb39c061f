import { InvalidParametersError } from '@neuroshard/interface'
import { buildShardGraph, inferenceParameters, shardParameters, validateConfig } from '@neuroshard/model'
import { createInferenceEngine, createShardExecutor, int64 } from '@neuroshard/runtime'
import { sampleToken } from './sampling.js'
import type { SamplingOptions } from './sampling.js'
import type { ModelConfig, ShardRole } from '@neuroshard/model'
import type { Device, InferenceEngine, KvCacheSession, ShardExecutor, TensorData } from '@neuroshard/runtime'

export interface TextGeneratorInit {
  config: ModelConfig
  /** Every parameter of the model (e.g. `TrainState.parameters` or `TrainResult.parameters`) */
  parameters: Map<string, Float32Array>
  /** @default 'cpu' */
  device?: Device
  /** onnxruntime intra-op threads per shard (per engine with `bakeWeights`) */
  threads?: number
  /**
   * Run the whole model as one onnxruntime session with its weights baked in as initializers (runtime's
   * `InferenceEngine` with `bakeWeights`): onnxruntime prepacks them and a second intra-op thread then helps
   * (`bootstrap` decoded at 0.94–1.01× a native llama.cpp F32 on 2 threads, packages/gguf README), and a token is
   * one run instead of three. onnxruntime holds its own (prepacked) copy of the weights beside the caller's
   * `parameters` (not kept by the generator), and the logits differ from the shard path's by float rounding only (q/k/v and
   * gate/up run as one fused MatMul each). Without it the model runs as three shard executors whose weights are fed
   * as graph inputs. @default false
   */
  bakeWeights?: boolean
  onWarning?: (message: string) => void
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most @default 64 */
  maxTokens?: number
  /** Stop after emitting one of these ids (e.g. `<|eos|>`); the stop token is yielded */
  stopTokens?: readonly number[]
  /** Uniform random numbers in (0, 1) (see `samplingRng`) @default Math.random */
  random?: () => number
  signal?: AbortSignal
  /**
   * Speculative decoding: this drafter proposes up to `gamma` tokens after the history (e.g. `ngramDrafter()` or
   * `modelDrafter()` of `@neuroshard/pipeline`), the model scores them in one run, and the tokens are sampled
   * exactly as without it (one draw of `random` per emitted token, in order), keeping the draft while it agrees;
   * rejected draft tokens are rolled back out of the KV cache. So the output is the same tokens as plain
   * generation with the same `random`; only the number of model runs changes. Any `ids`/`probs` a drafter attaches
   * are ignored (the draft acts as a point mass, which keeps the output exact whatever it proposes).
   */
  draft?: TokenDrafter
  /** Draft tokens per round @default 4 */
  gamma?: number
  /** Called after each speculative round with the draft tokens proposed and accepted */
  onRound?: (round: { proposed: number, accepted: number }) => void
}

/** Proposes tokens that may follow `context` (structurally the pipeline's `Drafter`) */
export interface TokenDrafter {
  propose(context: readonly number[], gamma: number, options: { position: number, signal?: AbortSignal, temperature?: number, topK?: number, topP?: number }): Promise<Array<{ token: number }>>
}

/**
 * Generation on this machine with a KV cache: the model runs as three shard executors (embedding,
 * every block with its past/present KV cache, final norm + LM head), so each new token costs one
 * block-stack run over a single position. Open a {@link GenerationSession} per conversation.
 */
export class TextGenerator {
  readonly config: ModelConfig
  /** Whether the model runs as one session with its weights baked in (`TextGeneratorInit.bakeWeights`) */
  readonly bakedWeights: boolean
  private readonly model: ShardModel | InferenceEngine

  private constructor (config: ModelConfig, model: ShardModel | InferenceEngine) {
    this.config = config
    this.model = model
    this.bakedWeights = !('embed' in model)
  }

  static async create (init: TextGeneratorInit): Promise<TextGenerator> {
    const config = validateConfig(init.config)
    const common = {
      config,
      device: init.device ?? 'cpu',
      ...(init.threads !== undefined ? { intraOpNumThreads: init.threads } : {}),
      ...(init.onWarning !== undefined ? { onWarning: init.onWarning } : {})
    }
    if (init.bakeWeights === true) {
      const parameters = new Map<string, Float32Array>()
      for (const spec of inferenceParameters(config, { kind: 'model' })) {
        const p = init.parameters.get(spec.name)
        if (p === undefined) throw new InvalidParametersError(`parameter ${spec.name} is missing`)
        parameters.set(spec.name, p)
      }
      return new TextGenerator(config, await createInferenceEngine({ ...common, parameters, bakeWeights: true }))
    }
    const made: ShardExecutor[] = []
    try {
      const blocksRole = { kind: 'blocks', start: 0, end: config.nLayers } as const
      const only = (role: ShardRole): Map<string, Float32Array> => new Map(shardParameters(config, role).map(sp => {
        const p = init.parameters.get(sp.name)
        if (p === undefined) throw new InvalidParametersError(`parameter ${sp.name} is missing`)
        return [sp.name, p]
      }))
      made.push(await createShardExecutor({ ...common, parameters: only({ kind: 'embed' }), role: { kind: 'embed' }, graphs: { forward: buildShardGraph(config, { kind: 'embed' }, 'forward').bytes } }))
      made.push(await createShardExecutor({ ...common, parameters: only(blocksRole), role: blocksRole, graphs: { inference: buildShardGraph(config, blocksRole, 'inference').bytes } }))
      // the head's inference graph (hidden → logits) serves as its "forward"
      made.push(await createShardExecutor({ ...common, parameters: only({ kind: 'head' }), role: { kind: 'head' }, graphs: { forward: buildShardGraph(config, { kind: 'head' }, 'inference').bytes } }))
    } catch (err) {
      await Promise.all(made.map(async e => { await e.close() }))
      throw err
    }
    return new TextGenerator(config, { embed: made[0], blocks: made[1], head: made[2] })
  }

  /** Execution provider the model runs on */
  get executionProvider (): Device {
    return 'embed' in this.model ? this.model.blocks.executionProvider : this.model.executionProvider
  }

  /** A new conversation with its own (empty) KV cache */
  async session (): Promise<GenerationSession> {
    return new GenerationSession(this, await this.reopen())
  }

  /** The logits of every position of `ids` after the cache, [ids.length × vocab] */
  private async logits (kv: KvCacheSession, ids: readonly number[], signal?: AbortSignal): Promise<Float32Array> {
    const opts = signal !== undefined ? { signal } : {}
    const input = int64(BigInt64Array.from(ids, x => BigInt(x)), [1, ids.length])
    if (!('embed' in this.model)) return (await kv.run({ input_ids: input }, opts)).logits.data as Float32Array
    const hidden = (await this.model.embed.forward({ input_ids: input }, opts)).hidden
    const out = (await kv.run({ hidden_in: hidden }, { ...opts, transfer: true })).hidden_out
    return (await this.model.head.forward({ hidden: out as TensorData }, { ...opts, transfer: true })).logits.data as Float32Array
  }

  /** @internal one run over new tokens: logits of the last position */
  async step (kv: KvCacheSession, ids: readonly number[], signal?: AbortSignal): Promise<Float32Array> {
    const v = this.config.vocabSize
    return (await this.logits(kv, ids, signal)).slice((ids.length - 1) * v, ids.length * v)
  }

  /** @internal one run over new tokens: the logits of every one of their positions */
  async stepRows (kv: KvCacheSession, ids: readonly number[], signal?: AbortSignal): Promise<Float32Array[]> {
    const logits = await this.logits(kv, ids, signal)
    const v = this.config.vocabSize
    return ids.map((_, i) => logits.slice(i * v, (i + 1) * v))
  }

  /** @internal */
  async reopen (): Promise<KvCacheSession> {
    return 'embed' in this.model ? await this.model.blocks.openInference() : await this.model.openInference()
  }

  async close (): Promise<void> {
    const m = this.model
    if ('embed' in m) await Promise.all([m.embed.close(), m.blocks.close(), m.head.close()])
    else await m.close()
  }
}

/** The model as three shard executors (embedding, every block with its KV cache, final norm + head) */
interface ShardModel { embed: ShardExecutor, blocks: ShardExecutor, head: ShardExecutor }

/**
 * One conversation: the token history and its KV cache, which stays in the blocks' worker across
 * calls, so a new turn only runs its own tokens. When the history would pass the model's `maxSeqLen`,
 * the cache is rebuilt from the most recent half of the context (a sliding window).
 */
export class GenerationSession {
  private readonly gen: TextGenerator
  private kv: KvCacheSession
  /** Tokens whose keys/values are in the cache, in order */
  private readonly cached: number[] = []
  /** A sampled token not yet run through the model (the next call feeds it first) */
  private pending: number[] = []
  /** Times the cache was rebuilt because the context was full */
  rebuilds = 0

  /** @internal */
  constructor (gen: TextGenerator, kv: KvCacheSession) {
    this.gen = gen
    this.kv = kv
  }

  /** Tokens in the KV cache */
  get position (): number {
    return this.kv.position
  }

  /** Token history (cached and pending) */
  get history (): number[] {
    return [...this.cached, ...this.pending]
  }

  /** Run tokens through the model (after any pending one); returns the logits for the next token */
  async feed (ids: readonly number[], signal?: AbortSignal): Promise<Float32Array> {
    const todo = [...this.pending, ...ids]
    if (todo.length === 0) throw new InvalidParametersError('nothing to feed')
    const max = this.gen.config.maxSeqLen
    if (this.kv.position + todo.length > max) {
      // sliding window: rebuild the cache from the newest max/2 tokens of the whole history
      const all = [...this.cached, ...todo]
      const keep = all.slice(-Math.max(1, Math.floor(max / 2)))
      await this.kv.close()
      this.kv = await this.gen.reopen()
      this.cached.length = 0
      this.pending = []
      this.rebuilds++
      const logits = await this.gen.step(this.kv, keep, signal)
      this.cached.push(...keep)
      return logits
    }
    const logits = await this.gen.step(this.kv, todo, signal)
    this.cached.push(...todo)
    this.pending = []
    return logits
  }

  /**
   * Feed `prompt` and generate up to `maxTokens` tokens, yielding each as soon as it is sampled. The
   * last token is kept pending (fed at the start of the next call), so the cache always matches the
   * history and nothing is recomputed between turns.
   */
  async * generate (prompt: readonly number[], options: GenerateOptions = {}): AsyncGenerator<number> {
    const maxTokens = options.maxTokens ?? 64
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 0) throw new InvalidParametersError('maxTokens must be a non-negative integer')
    for (const id of prompt) {
      if (!Number.isSafeInteger(id) || id < 0 || id >= this.gen.config.vocabSize) throw new InvalidParametersError(`token ${id} is outside the vocabulary of ${this.gen.config.vocabSize}`)
    }
    if (maxTokens === 0) {
      if (prompt.length > 0) this.pending.push(...prompt)
      return
    }
    const random = options.random ?? Math.random
    const stop = new Set(options.stopTokens ?? [])
    if (options.draft !== undefined) {
      yield * this.speculate(prompt, maxTokens, options, options.draft, random, stop)
      return
    }
    let logits = await this.feed(prompt, options.signal)
    for (let i = 0; i < maxTokens; i++) {
      const next = sampleToken(logits, options, random)
      this.pending = [next]
      yield next
      if (stop.has(next) || i === maxTokens - 1) break
      logits = await this.feed([], options.signal)
    }
  }

  /** Speculative generation (see `GenerateOptions.draft`); the same pending-token contract as `generate` */
  private async * speculate (prompt: readonly number[], maxTokens: number, options: GenerateOptions, drafter: TokenDrafter, random: () => number, stop: Set<number>): AsyncGenerator<number> {
    const gamma = options.gamma ?? 4
    if (!Number.isSafeInteger(gamma) || gamma < 1) throw new InvalidParametersError('gamma must be an integer >= 1')
    const V = this.gen.config.vocabSize
    const max = this.gen.config.maxSeqLen
    const signal = options.signal
    let logits = await this.feed(prompt, signal)
    let produced = 0
    for (;;) {
      const x = sampleToken(logits, options, random)
      produced++
      this.pending = [x]
      yield x
      if (stop.has(x) || produced >= maxTokens) return
      // the cache holds the history before x; a round runs x and the draft: it must fit in maxSeqLen
      const room = Math.min(gamma, maxTokens - produced, max - this.kv.position - 1)
      const draft = room > 0
        ? (await drafter.propose([...this.cached, x], room, { position: this.cached.length + 1, signal, temperature: options.temperature, topK: options.topK, topP: options.topP })).slice(0, room).map(d => d.token)
        : []
      for (const d of draft) if (!(Number.isSafeInteger(d) && d >= 0 && d < V)) throw new InvalidParametersError(`the drafter proposed token ${d}, outside the vocabulary of ${V}`)
      if (draft.length === 0) {
        logits = await this.feed([], signal)
        continue
      }
      const rows = await this.gen.stepRows(this.kv, [x, ...draft], signal)
      this.cached.push(x, ...draft)
      this.pending = []
      let accepted = 0
      let next: number | undefined
      for (let i = 0; i < draft.length; i++) {
        const y = sampleToken(rows[i], options, random)
        produced++
        if (y !== draft[i]) {
          next = y
          break
        }
        accepted++
        yield y
        if (stop.has(y) || produced >= maxTokens) {
          // y is the last token: keep it pending (out of the cache) like plain generation does
          await this.rollback(draft.length - i)
          this.pending = [y]
          options.onRound?.({ proposed: draft.length, accepted })
          return
        }
      }
      options.onRound?.({ proposed: draft.length, accepted })
      if (next === undefined) {
        logits = rows[draft.length]
        continue
      }
      // the draft from `accepted` on is not the sequence: out of the cache
      await this.rollback(draft.length - accepted)
      this.pending = [next]
      yield next
      if (stop.has(next) || produced >= maxTokens) return
      logits = await this.feed([], signal)
    }
  }

  /** Drop the newest `n` tokens from the cache and the history */
  private async rollback (n: number): Promise<void> {
    if (n <= 0) return
    await this.kv.truncate(this.kv.position - n)
    this.cached.length -= n
  }

  async close (): Promise<void> {
    await this.kv.close()
  }
}
