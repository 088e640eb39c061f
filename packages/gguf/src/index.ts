/**
 * @packageDocumentation
 *
 * NeuroLLM as a llama-architecture GGUF file (F32 or Q4_0) with its byte-level BPE tokenizer, for llama.cpp,
 * ollama, LM Studio and node-llama-cpp; and a small GGUF writer.
 */

export { dequantizeQ4_0, exportGguf, encodeLlamaGguf, fromFloat16Bits, llamaGgufContent, permuteRope, quantizeQ4_0, toFloat16Bits, transpose } from './llama.js'
export type { ExportGgufOptions, GgufFileType } from './llama.js'
export { GGUF_ALIGNMENT, GGUF_VERSION, GgmlType, GgufValueType, encodeGguf, encodeGgufHeader, ggmlTensorBytes, writeGguf } from './gguf.js'
export type { GgufContent, GgufTensor, GgufValue } from './gguf.js'
