import type { ChatMessage, GenerationOptions, GenerationPrompt } from './backend.js'
import type { CompletionSource } from './local-generator.js'

/** The part of a tokenizer the adapter needs to lay out prompts (a `BpeTokenizer` fits) */
export interface PromptTokenizer {
  encode(text: string): number[]
  readonly eosId: number | undefined
}

/**
 * A token stream as `@neuroshard/pipeline`'s `generate(prompt, options)` gives it: one `{ id, text }`
 * per token, with `text` already holding back bytes of an incomplete character.
 */
export interface TokenStreamGenerate {
  (prompt: number[], options: {
    maxNewTokens: number
    temperature: number
    topK: number
    topP: number
    seed: number
    stopTokens?: number[]
    signal: AbortSignal
  }): AsyncIterable<{ id: number, text: string }>
}

export interface NetworkCompletionSourceInit {
  /** Model id for `/v1/models` */
  modelId: string
  contextLength: number
  tokenizer: PromptTokenizer
  /** The Driver's generate, e.g. `(p, o) => host.services.pipeline.generate(p, o)` */
  generate: TokenStreamGenerate
}

/**
 * A {@link CompletionSource} over the network's pipeline (owned by `network`): prompts are laid out as
 * the local fallback lays them out (`<|eos|>` first; one document per chat message), sampling options
 * map to the pipeline's (`maxTokens` → `maxNewTokens`; a random seed when none is given), generation
 * stops at `<|eos|>`. Structural: it needs no import of the pipeline package.
 */
export function networkCompletionSource (init: NetworkCompletionSourceInit): CompletionSource {
  let open = 0
  const encode = (prompt: GenerationPrompt): number[] => {
    const eos = init.tokenizer.eosId
    const sep = eos !== undefined ? [eos] : []
    if (typeof prompt === 'string') return [...sep, ...init.tokenizer.encode(prompt)]
    return [...sep, ...prompt.flatMap((m: ChatMessage) => [...init.tokenizer.encode(m.content), ...sep])]
  }
  return {
    modelId: init.modelId,
    ownedBy: 'network',
    contextLength: init.contextLength,
    get sessions () { return open },
    countTokens: (prompt) => encode(prompt).length,
    async * generate (prompt: GenerationPrompt, options: GenerationOptions, signal: AbortSignal): AsyncGenerator<string> {
      const eos = init.tokenizer.eosId
      open++
      try {
        for await (const token of init.generate(encode(prompt), {
          maxNewTokens: options.maxTokens,
          temperature: options.temperature,
          topK: options.topK,
          topP: options.topP,
          seed: options.seed ?? Math.floor(Math.random() * 2 ** 32),
          ...(eos !== undefined ? { stopTokens: [eos] } : {}),
          signal
        })) {
          if (signal.aborted) return
          if (token.id === eos) return
          yield token.text
        }
      } finally {
        open--
      }
    }
  }
}
