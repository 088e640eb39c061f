/**
 * @packageDocumentation
 *
 * Byte-level BPE (GPT-2 style): train, encode, decode, and save/load Hugging Face `tokenizer.json`.
 *
 * @example
 * ```ts
 * import { trainBpe, BpeTokenizer } from '@neuroshard/tokenizer'
 *
 * const tok = trainBpe(['hello world', 'hello there'], { vocabSize: 300 })
 * const ids = tok.encode('hello world', { addEos: true })
 * tok.decode(ids, { skipSpecialTokens: true }) // 'hello world'
 * const again = BpeTokenizer.fromTokenizerJson(tok.toTokenizerJson())
 * ```
 */

export { BpeTokenizer, parseTokenizerJson, loadTokenizer } from './tokenizer.js'
export type { AddedToken, BpeModelSpec, EncodeOptions, DecodeOptions, TokenizerOptions } from './tokenizer.js'
export { trainBpe } from './trainer.js'
export type { TrainBpeOptions, TrainProgress } from './trainer.js'
export { pretokenize, pretokenizeRegExp, pieceEnd, scanPieces, PRETOKENIZE_PATTERN } from './pretokenize.js'
export { BYTE_TO_CHAR, CHAR_TO_BYTE, bytesToByteLevel, byteLevelToBytes } from './byte-level.js'
export * from './constants.js'
export * from './errors.js'
