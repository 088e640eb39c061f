import type { BpeTokenizer } from '@neuroshard/tokenizer'

/** The pipeline's tokenizer interface over a trained BPE tokenizer: streaming decode keeps split UTF-8 characters */
export interface StreamingTokenizer {
  encode(text: string): number[]
  decoder(): { decode(ids: number[]): string, flush(): string }
  readonly eosId: number | undefined
}

export function pipelineTokenizer (tokenizer: BpeTokenizer): StreamingTokenizer {
  return {
    encode: (text) => tokenizer.encode(text),
    decoder () {
      const utf8 = new TextDecoder('utf-8')
      return {
        decode: (ids) => utf8.decode(tokenizer.decodeBytes(ids), { stream: true }),
        flush: () => utf8.decode()
      }
    },
    get eosId () { return tokenizer.eosId }
  }
}
