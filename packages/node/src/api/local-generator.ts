import { TextGenerator, samplingRng } from '@neuroshard/trainer'
import { StreamDecoder } from '../commands/generate.js'
import { loadTrainedModel } from '../workspace.js'
import type { DrafterSource } from '../commands/generate.js'
import type { ChatMessage, GenerationOptions, GenerationPrompt } from './backend.js'
import type { ModelConfig } from '@neuroshard/model'
import type { BpeTokenizer } from '@neuroshard/tokenizer'

/** A text generator the API can serve: the local fallback below, or the pipeline client */
export interface CompletionSource {
  /** Model id as `/v1/models` lists it */
  readonly modelId: string
  /** `local` or `network` */
  readonly ownedBy: string
  readonly contextLength: number
  generate(prompt: GenerationPrompt, options: GenerationOptions, signal: AbortSignal): AsyncIterable<string>
  countTokens?(prompt: GenerationPrompt): number
  /** Sessions open now */
  readonly sessions?: number
}

export interface LocalGeneratorInit {
  tokenizer: BpeTokenizer
  config: ModelConfig
  parameters: Map<string, Float32Array>
  /** @default 'neurollm-local' */
  modelId?: string
  device?: 'cpu' | 'cuda'
  threads?: number
  /**
   * The model as one onnxruntime session with its weights baked in (trainer's `TextGeneratorInit.bakeWeights`:
   * faster decoding, a second copy of the weights), as `neuroshard generate` and `serve` run it by default
   * @default true
   */
  bakeWeights?: boolean
  onWarning?(message: string): void
  /**
   * Speculative decoding for every request (`neuroshard serve --draft`): a drafter per request from this source,
   * `gamma` draft tokens per round (4). The completions are the same tokens as without it.
   */
  draft?: { source: DrafterSource, gamma?: number }
}

/** Model id of the local fallback @default 'neurollm-local' */
export const LOCAL_MODEL_ID = 'neurollm-local'

/**
 * **The local fallback**: the whole model in this process (the generator of `neuroshard generate`),
 * used by the API until the node serves through the distributed pipeline, and by tests. Each request
 * opens its own KV-cache session. A text prompt starts a new document (`<|eos|>` first, as
 * `generate` does); a conversation is one document per message (as `chat` does); generation stops at
 * `<|eos|>`.
 */
export class LocalGenerator implements CompletionSource {
  readonly modelId: string
  readonly ownedBy = 'local'
  readonly contextLength: number
  private readonly tokenizer: BpeTokenizer
  private readonly generator: TextGenerator
  private readonly draft?: { source: DrafterSource, gamma?: number }
  private open = 0
  /** Draft tokens proposed and accepted over every request (speculative decoding) */
  readonly speculation = { proposed: 0, accepted: 0, rounds: 0 }

  private constructor (tokenizer: BpeTokenizer, generator: TextGenerator, modelId: string, draft?: { source: DrafterSource, gamma?: number }) {
    this.tokenizer = tokenizer
    this.generator = generator
    this.modelId = modelId
    this.draft = draft
    this.contextLength = generator.config.maxSeqLen
  }

  static async create (init: LocalGeneratorInit): Promise<LocalGenerator> {
    const generator = await TextGenerator.create({
      config: init.config,
      parameters: init.parameters,
      device: init.device ?? 'cpu',
      // one thread decodes small models fastest (a single position per call), as in `neuroshard generate`
      ...(init.threads !== undefined ? { threads: init.threads } : init.config.dModel < 256 ? { threads: 1 } : {}),
      bakeWeights: init.bakeWeights ?? true,
      ...(init.onWarning !== undefined ? { onWarning: init.onWarning } : {})
    })
    return new LocalGenerator(init.tokenizer, generator, init.modelId ?? LOCAL_MODEL_ID, init.draft)
  }

  /** The tokenizer and newest checkpoint of a `neuroshard train` data directory */
  static async fromDataDir (dataDir: string, options: { checkpoint?: string, modelId?: string, device?: 'cpu' | 'cuda', bakeWeights?: boolean, onWarning?(message: string): void } = {}): Promise<LocalGenerator> {
    const { tokenizer, state } = await loadTrainedModel(dataDir, options.checkpoint)
    return LocalGenerator.create({ tokenizer, config: state.settings.config, parameters: state.parameters, ...options })
  }

  get sessions (): number {
    return this.open
  }

  /** Prompt token ids as the model sees them */
  encode (prompt: GenerationPrompt): number[] {
    const eos = this.tokenizer.eosId
    const sep = eos !== undefined ? [eos] : []
    if (typeof prompt === 'string') return [...sep, ...this.tokenizer.encode(prompt)]
    return [...sep, ...prompt.flatMap((m: ChatMessage) => [...this.tokenizer.encode(m.content), ...sep])]
  }

  countTokens (prompt: GenerationPrompt): number {
    return this.encode(prompt).length
  }

  async * generate (prompt: GenerationPrompt, options: GenerationOptions, signal: AbortSignal): AsyncGenerator<string> {
    const ids = this.encode(prompt)
    const eos = this.tokenizer.eosId
    const session = await this.generator.session()
    const drafter = this.draft?.source.make()
    this.open++
    try {
      const decoder = new StreamDecoder(this.tokenizer)
      let n = 0
      const random = samplingRng(options.seed ?? Math.floor(Math.random() * 2 ** 32))
      for await (const id of session.generate(ids, {
        temperature: options.temperature,
        topK: options.topK,
        topP: options.topP,
        maxTokens: options.maxTokens,
        random,
        signal,
        ...(eos !== undefined ? { stopTokens: [eos] } : {}),
        ...(drafter !== undefined
          ? { draft: drafter, gamma: this.draft?.gamma, onRound: r => { this.speculation.proposed += r.proposed; this.speculation.accepted += r.accepted; this.speculation.rounds++ } }
          : {})
      })) {
        if (signal.aborted) return
        if (id === eos) {
          const rest = decoder.flush()
          if (rest !== '') yield rest
          return
        }
        // the last token also releases bytes held back for an incomplete character
        yield ++n === options.maxTokens ? decoder.push(id) + decoder.flush() : decoder.push(id)
      }
    } finally {
      this.open--
      await drafter?.close?.()
      await session.close()
    }
  }

  async close (): Promise<void> {
    await this.generator.close()
    await this.draft?.source.close()
  }
}
