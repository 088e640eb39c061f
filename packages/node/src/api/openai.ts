/**
 * OpenAI-compatible request validation and response shapes for `/v1/completions` and
 * `/v1/chat/completions`. Only what this node can honour is accepted: one choice (`n` = 1), text
 * prompts (no token arrays), sampling by temperature / top_p / top_k / seed, stop sequences.
 */
import { InvalidRequestError } from './errors.js'
import type { ChatMessage, GenerationPrompt } from './backend.js'

/** Stop sequences at most (as OpenAI) */
export const MAX_STOP_SEQUENCES = 4
/** Characters per stop sequence at most */
export const MAX_STOP_LENGTH = 64
/** Messages per chat request at most */
export const MAX_CHAT_MESSAGES = 256
/** Default `max_tokens` of `/v1/completions` (OpenAI's) */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16
/** Default `max_tokens` of `/v1/chat/completions` */
export const DEFAULT_CHAT_MAX_TOKENS = 256

/** A validated completion request */
export interface CompletionRequest {
  model: string
  prompt: GenerationPrompt
  stream: boolean
  maxTokens: number
  temperature: number
  topP: number
  topK: number
  seed?: number
  stop: string[]
  /** `neuroshard_payment`: id (hex) of the client's final ledger payment that pays for this session */
  payment?: string
  /** `stream_options.include_usage`: a last chunk with the usage before `[DONE]` */
  includeUsage?: boolean
}

type Json = Record<string, unknown>

function isObject (v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function optionalNumber (body: Json, name: string, check: (n: number) => boolean, rule: string): number | undefined {
  const v = body[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) {
    throw new InvalidRequestError(`Invalid value for '${name}': ${rule}, got ${JSON.stringify(v)?.slice(0, 40)}`, name, 'invalid_value')
  }
  return v
}

function parseStop (v: unknown): string[] {
  if (v === undefined || v === null) return []
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || list.length > MAX_STOP_SEQUENCES || !list.every(s => typeof s === 'string' && s.length > 0 && s.length <= MAX_STOP_LENGTH)) {
    throw new InvalidRequestError(`Invalid value for 'stop': a string or an array of at most ${MAX_STOP_SEQUENCES} non-empty strings of at most ${MAX_STOP_LENGTH} characters`, 'stop', 'invalid_value')
  }
  return list
}

function parseContent (content: unknown, i: number): string {
  if (typeof content === 'string') return content
  // the array form: [{ type: 'text', text }]
  if (Array.isArray(content) && content.every(p => isObject(p) && p.type === 'text' && typeof p.text === 'string')) {
    return content.map(p => (p as { text: string }).text).join('')
  }
  throw new InvalidRequestError(`Invalid value for 'messages[${i}].content': a string or an array of text parts`, `messages[${i}].content`, 'invalid_value')
}

function parseMessages (v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new InvalidRequestError("'messages' must be a non-empty array", 'messages', 'invalid_value')
  if (v.length > MAX_CHAT_MESSAGES) throw new InvalidRequestError(`'messages' holds at most ${MAX_CHAT_MESSAGES} messages`, 'messages', 'invalid_value')
  return v.map((m, i): ChatMessage => {
    if (!isObject(m)) throw new InvalidRequestError(`'messages[${i}]' must be an object`, `messages[${i}]`, 'invalid_value')
    const role = m.role
    if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'developer') {
      throw new InvalidRequestError(`Invalid value for 'messages[${i}].role': one of system, user, assistant`, `messages[${i}].role`, 'invalid_value')
    }
    return { role: role === 'developer' ? 'system' : role, content: parseContent(m.content, i) }
  })
}

/**
 * Validates the body of a completion (`chat` false) or chat completion request.
 *
 * @throws InvalidRequestError naming the offending parameter
 */
export function parseCompletionRequest (body: unknown, chat: boolean, limits: { maxTokens: number }): CompletionRequest {
  if (!isObject(body)) throw new InvalidRequestError('The request body must be a JSON object')
  const model = body.model
  if (typeof model !== 'string' || model === '') throw new InvalidRequestError("you must provide a model parameter", 'model', 'missing_required_parameter')
  let prompt: GenerationPrompt
  if (chat) {
    prompt = parseMessages(body.messages)
  } else {
    const p = body.prompt
    if (typeof p === 'string') prompt = p
    else if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') prompt = p[0]
    else throw new InvalidRequestError("Invalid value for 'prompt': a string (token arrays and batches are not supported)", 'prompt', 'invalid_value')
  }
  const stream = body.stream ?? false
  if (typeof stream !== 'boolean') throw new InvalidRequestError("Invalid value for 'stream': a boolean", 'stream', 'invalid_value')
  const n = optionalNumber(body, 'n', v => v === 1, 'only 1 is supported')
  void n
  const maxName = chat && body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens'
  const maxTokens = optionalNumber(body, maxName, v => Number.isSafeInteger(v) && v >= 1 && v <= limits.maxTokens, `an integer from 1 to ${limits.maxTokens}`) ??
    Math.min(limits.maxTokens, chat ? DEFAULT_CHAT_MAX_TOKENS : DEFAULT_COMPLETION_MAX_TOKENS)
  const temperature = optionalNumber(body, 'temperature', v => v >= 0 && v <= 2, 'a number from 0 to 2') ?? 1
  const topP = optionalNumber(body, 'top_p', v => v > 0 && v <= 1, 'a number in (0, 1]') ?? 1
  const topK = optionalNumber(body, 'top_k', v => Number.isSafeInteger(v) && v >= 0, 'an integer >= 0') ?? 0
  const seed = optionalNumber(body, 'seed', v => Number.isSafeInteger(v) && v >= 0, 'an integer >= 0')
  const stop = parseStop(body.stop)
  const so = body.stream_options
  if (so !== undefined && so !== null && (!isObject(so) || (so.include_usage !== undefined && typeof so.include_usage !== 'boolean'))) {
    throw new InvalidRequestError("Invalid value for 'stream_options': an object with a boolean 'include_usage'", 'stream_options', 'invalid_value')
  }
  const includeUsage = isObject(so) && so.include_usage === true
  const payment = body.neuroshard_payment
  if (payment !== undefined && (typeof payment !== 'string' || !/^[0-9a-f]{64}$/.test(payment))) {
    throw new InvalidRequestError("Invalid value for 'neuroshard_payment': the 64-hex-digit id of a ledger payment", 'neuroshard_payment', 'invalid_value')
  }
  return { model, prompt, stream, maxTokens, temperature, topP, topK, ...(seed !== undefined ? { seed } : {}), stop, ...(payment !== undefined ? { payment } : {}), ...(includeUsage && stream === true ? { includeUsage } : {}) }
}

/**
 * Applies stop sequences to streamed text: `push` returns what may be sent now, holding back a tail
 * that could still become a stop sequence; once one matches, `stopped` is true and the text before it
 * is all that is ever returned.
 */
export class StopMatcher {
  private readonly stops: string[]
  private held = ''
  stopped = false

  constructor (stops: string[]) {
    this.stops = stops
  }

  push (piece: string): string {
    if (this.stopped) return ''
    if (this.stops.length === 0) return piece
    const text = this.held + piece
    let cut = -1
    for (const s of this.stops) {
      const at = text.indexOf(s)
      if (at >= 0 && (cut < 0 || at < cut)) cut = at
    }
    if (cut >= 0) {
      this.stopped = true
      this.held = ''
      return text.slice(0, cut)
    }
    // hold back the longest tail that is a prefix of some stop sequence
    let keep = 0
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, text.length); k > keep; k--) {
        if (text.endsWith(s.slice(0, k))) { keep = k; break }
      }
    }
    this.held = text.slice(text.length - keep)
    return text.slice(0, text.length - keep)
  }

  /** The held-back tail once generation ended without a match */
  flush (): string {
    const rest = this.stopped ? '' : this.held
    this.held = ''
    return rest
  }
}
