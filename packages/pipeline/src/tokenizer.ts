/** What the Driver uses to turn text into token ids and back (only the Driver tokenizes) */
export interface PipelineTokenizer {
  encode(text: string): number[]
  /** Decode ids; with `stream` the decoder keeps an incomplete trailing character for the next call */
  decoder(): { decode(ids: number[]): string, flush(): string }
}

/**
 * Byte-level tokenizer: token i is the byte i (the `tiny` preset's 256-token vocabulary). For a trained
 * vocabulary pass a tokenizer built from `@neuroshard/tokenizer` instead.
 */
export function byteTokenizer (): PipelineTokenizer {
  return {
    encode: (text) => [...new TextEncoder().encode(text)],
    decoder: () => {
      const d = new TextDecoder('utf-8')
      return {
        decode: (ids) => d.decode(Uint8Array.from(ids), { stream: true }),
        flush: () => d.decode()
      }
    }
  }
}
