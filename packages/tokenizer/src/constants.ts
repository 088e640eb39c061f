/**
 * Fixed ids and defaults. A tokenizer trained by `trainBpe` always has this layout:
 *
 * | ids | tokens |
 * |---|---|
 * | 0 – 255 | the 256 single bytes (id = byte value) |
 * | 256, 257, 258 | `<|bos|>`, `<|eos|>`, `<|pad|>` (then any extra special tokens) |
 * | 259 … vocabSize − 1 | merged tokens, in merge order |
 */

/** Beginning-of-sequence token */
export const BOS_TOKEN = '<|bos|>'
/** End-of-sequence token; also the document separator in the genesis dataset */
export const EOS_TOKEN = '<|eos|>'
/** Padding token */
export const PAD_TOKEN = '<|pad|>'

/** @default ['<|bos|>', '<|eos|>', '<|pad|>'] */
export const DEFAULT_SPECIAL_TOKENS: readonly string[] = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN]

/** Id of `<|bos|>` in a tokenizer trained with the default special tokens */
export const BOS_ID = 256
/** Id of `<|eos|>` in a tokenizer trained with the default special tokens */
export const EOS_ID = 257
/** Id of `<|pad|>` in a tokenizer trained with the default special tokens */
export const PAD_ID = 258

/**
 * Pieces whose BPE result is remembered by the encoder (the cache is cleared when full).
 *
 * @default 131072
 */
export const DEFAULT_CACHE_SIZE = 131_072

/**
 * Pairs seen fewer times than this are never merged.
 *
 * @default 2
 */
export const DEFAULT_MIN_FREQUENCY = 2

/** Largest vocabulary this implementation accepts (pair keys are packed as `left * 2^21 + right`) */
export const MAX_VOCAB_SIZE = 1 << 21
