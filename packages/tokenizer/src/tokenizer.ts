import { readFile, writeFile } from 'node:fs/promises'
import { InvalidParametersError } from '@neuroshard/interface'
import { BYTE_TO_CHAR, bytesToByteLevel, byteLevelToBytes } from './byte-level.js'
import { DEFAULT_CACHE_SIZE, MAX_VOCAB_SIZE } from './constants.js'
import { TokenizerFormatError, UnknownTokenIdError } from './errors.js'
import { NumberHeap } from './heap.js'
import { PieceCache } from './piece-cache.js'
import { pieceEnd, utf8Into, utf8SequenceLength } from './pretokenize.js'

/** A token added on top of the BPE model (`added_tokens` in `tokenizer.json`) */
export interface AddedToken {
  id: number
  content: string
  /** Special tokens are dropped by `decode(ids, { skipSpecialTokens: true })` */
  special: boolean
}

/** What a byte-level BPE tokenizer is made of, as stored in `tokenizer.json` */
export interface BpeModelSpec {
  /** Model vocabulary: token spelled in the GPT-2 byte-level alphabet → id */
  vocab: ReadonlyMap<string, number>
  /** Merge rules in rank order (first = applied first), both sides spelled in the byte-level alphabet */
  merges: ReadonlyArray<readonly [string, string]>
  addedTokens: readonly AddedToken[]
}

export interface EncodeOptions {
  /**
   * Turn special-token text in the input (e.g. the seven characters `<|eos|>`) into the special id,
   * as Hugging Face `tokenizers` does. When false the text is encoded like any other text, so user
   * data can never forge a control token.
   *
   * @default false
   */
  allowSpecial?: boolean
  /** Prepend `<|bos|>` @default false */
  addBos?: boolean
  /** Append `<|eos|>` @default false */
  addEos?: boolean
}

export interface DecodeOptions {
  /** Leave special tokens (`<|bos|>`, …) out of the output @default false */
  skipSpecialTokens?: boolean
}

export interface TokenizerOptions {
  /** Pieces whose BPE result is cached (the cache is cleared when full) @default 131072 */
  cacheSize?: number
}

const PAIR = MAX_VOCAB_SIZE // pair key = left * PAIR + right
const POS = 2 ** 32 // heap entry = rank * POS + position

const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function escapeRegExp (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
}

/**
 * A byte-level BPE tokenizer (GPT-2 / Hugging Face `ByteLevel` style).
 *
 * Round-trip guarantees:
 * - `decodeBytes(encodeBytes(b))` equals `b` for every byte sequence `b`, valid UTF-8 or not.
 * - `decode(encode(s))` equals `s` for every well-formed string; a lone surrogate (which has no
 *   UTF-8 form) is encoded as U+FFFD, exactly like `TextEncoder`, so in general
 *   `decode(encode(s)) === s.toWellFormed()`.
 */
export class BpeTokenizer {
  /** Number of ids: every id in `[0, vocabSize)` is a token */
  readonly vocabSize: number
  /** Added tokens (`<|bos|>`, `<|eos|>`, `<|pad|>`, …) */
  readonly addedTokens: readonly AddedToken[]

  private readonly idToTokenStr: string[]
  private readonly tokenToIdMap: Map<string, number>
  private readonly bytesOf: Uint8Array[]
  private readonly isSpecial: Uint8Array
  private readonly byteToId: Int32Array
  private readonly mergePairs: ReadonlyArray<readonly [string, string]>
  private readonly pairRank: Map<number, number>
  private readonly mergeResult: Int32Array
  private readonly specialRe: RegExp | undefined
  private readonly addedByContent: Map<string, number>
  private readonly cache: PieceCache | undefined
  private readonly cacheSize: number
  private readonly scratch: number[] = []
  private sym = new Int32Array(64)
  private next = new Int32Array(64)
  private prev = new Int32Array(64)
  private readonly heap = new NumberHeap()

  constructor (spec: BpeModelSpec, options: TokenizerOptions = {}) {
    this.cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE
    if (!Number.isInteger(this.cacheSize) || this.cacheSize < 0 || this.cacheSize > 2 ** 26) {
      throw new InvalidParametersError('cacheSize must be an integer in [0, 2^26]')
    }
    this.cache = this.cacheSize > 0 ? new PieceCache(this.cacheSize) : undefined
    const idToTokenStr: string[] = []
    const bytesOf: Uint8Array[] = []
    let maxId = -1
    for (const [tok, id] of spec.vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= MAX_VOCAB_SIZE) {
        throw new TokenizerFormatError(`vocab id ${String(id)} of ${JSON.stringify(tok)} is not an integer in [0, ${MAX_VOCAB_SIZE})`)
      }
      if (idToTokenStr[id] !== undefined) throw new TokenizerFormatError(`vocab id ${id} is used twice`)
      const bytes = byteLevelToBytes(tok)
      if (bytes === undefined) {
        throw new TokenizerFormatError(`vocab token ${JSON.stringify(tok)} is not spelled in the byte-level alphabet`)
      }
      idToTokenStr[id] = tok
      bytesOf[id] = bytes
      maxId = Math.max(maxId, id)
    }
    const addedByContent = new Map<string, number>()
    const isSpecialList: number[] = []
    const enc = new TextEncoder()
    for (const t of spec.addedTokens) {
      if (!Number.isInteger(t.id) || t.id < 0 || t.id >= MAX_VOCAB_SIZE || typeof t.content !== 'string' || t.content === '') {
        throw new TokenizerFormatError(`bad added token ${JSON.stringify(t)}`)
      }
      const existing = idToTokenStr[t.id]
      if (existing !== undefined && existing !== bytesToByteLevel(enc.encode(t.content))) {
        throw new TokenizerFormatError(`added token ${JSON.stringify(t.content)} reuses id ${t.id} of ${JSON.stringify(existing)}`)
      }
      if (existing === undefined) {
        idToTokenStr[t.id] = t.content
        bytesOf[t.id] = enc.encode(t.content)
      }
      addedByContent.set(t.content, t.id)
      if (t.special) isSpecialList.push(t.id)
      maxId = Math.max(maxId, t.id)
    }
    this.vocabSize = maxId + 1
    for (let id = 0; id < this.vocabSize; id++) {
      if (idToTokenStr[id] === undefined) throw new TokenizerFormatError(`id ${id} has no token (ids must be 0 … ${maxId} without gaps)`)
    }
    this.idToTokenStr = idToTokenStr
    this.bytesOf = bytesOf
    this.isSpecial = new Uint8Array(this.vocabSize)
    for (const id of isSpecialList) this.isSpecial[id] = 1
    this.addedTokens = spec.addedTokens.map(t => ({ ...t }))
    this.addedByContent = addedByContent
    this.tokenToIdMap = new Map(spec.vocab)

    this.byteToId = new Int32Array(256)
    for (let b = 0; b < 256; b++) {
      const id = spec.vocab.get(BYTE_TO_CHAR[b])
      if (id === undefined) {
        throw new TokenizerFormatError(`byte 0x${b.toString(16)} (${JSON.stringify(BYTE_TO_CHAR[b])}) is missing from the vocab: a byte-level BPE needs all 256 bytes`)
      }
      this.byteToId[b] = id
    }

    if (spec.merges.length >= 2 ** 21) throw new TokenizerFormatError('too many merges')
    this.mergePairs = spec.merges.map(([l, r]) => [l, r] as const)
    this.pairRank = new Map()
    this.mergeResult = new Int32Array(spec.merges.length)
    for (let rank = 0; rank < spec.merges.length; rank++) {
      const [l, r] = spec.merges[rank]
      const a = spec.vocab.get(l)
      const b = spec.vocab.get(r)
      const m = spec.vocab.get(l + r)
      if (a === undefined || b === undefined || m === undefined) {
        throw new TokenizerFormatError(`merge ${rank} (${JSON.stringify(l)} ${JSON.stringify(r)}) uses a token missing from the vocab`)
      }
      const key = a * PAIR + b
      // like Hugging Face, a duplicated merge keeps its first (best) rank
      if (!this.pairRank.has(key)) this.pairRank.set(key, rank)
      this.mergeResult[rank] = m
    }

    const contents = [...addedByContent.keys()].sort((x, y) => y.length - x.length || (x < y ? -1 : 1))
    this.specialRe = contents.length > 0 ? new RegExp(contents.map(escapeRegExp).join('|'), 'g') : undefined
  }

  /** Id of an added token by its text, e.g. `'<|eos|>'` */
  addedTokenId (content: string): number | undefined {
    return this.addedByContent.get(content)
  }

  /** Id of `<|bos|>`, if this tokenizer has it */
  get bosId (): number | undefined { return this.addedByContent.get('<|bos|>') }
  /** Id of `<|eos|>`, if this tokenizer has it */
  get eosId (): number | undefined { return this.addedByContent.get('<|eos|>') }
  /** Id of `<|pad|>`, if this tokenizer has it */
  get padId (): number | undefined { return this.addedByContent.get('<|pad|>') }

  /** Token as spelled in `tokenizer.json` (byte-level alphabet; added tokens verbatim) */
  idToToken (id: number): string | undefined {
    return this.idToTokenStr[id]
  }

  /** Id of a token spelled as in `tokenizer.json` */
  tokenToId (token: string): number | undefined {
    return this.tokenToIdMap.get(token) ?? this.addedByContent.get(token)
  }

  /** The bytes a token stands for */
  tokenBytes (id: number): Uint8Array {
    const b = this.bytesOf[id]
    if (b === undefined) throw new UnknownTokenIdError(`unknown token id ${id}`)
    return b
  }

  /** Whether `id` is a special token */
  isSpecialToken (id: number): boolean {
    return this.isSpecial[id] === 1
  }

  /** Number of merge rules */
  get mergeCount (): number {
    return this.mergePairs.length
  }

  /** Encode a string. Lone surrogates become U+FFFD (see the class doc). */
  encode (text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new InvalidParametersError('encode() takes a string')
    const out: number[] = []
    this.pushBos(out, options)
    if (options.allowSpecial === true && this.specialRe !== undefined) {
      const sre = this.specialRe
      sre.lastIndex = 0
      let last = 0
      let m: RegExpExecArray | null
      while ((m = sre.exec(text)) !== null) {
        if (m.index > last) this.encodeText(text.slice(last, m.index), out)
        out.push(this.addedByContent.get(m[0]) as number)
        last = m.index + m[0].length
      }
      if (last < text.length) this.encodeText(last === 0 ? text : text.slice(last), out)
    } else {
      this.encodeText(text, out)
    }
    this.pushEos(out, options)
    return out
  }

  /**
   * Encode raw bytes. Any byte sequence round-trips through `decodeBytes` exactly. Well-formed UTF-8
   * gives the same ids as `encode` on the decoded string; otherwise the input is cut into maximal
   * well-formed runs (encoded as text) and ill-formed bytes (each its own piece).
   */
  encodeBytes (bytes: Uint8Array, options: EncodeOptions = {}): number[] {
    if (!(bytes instanceof Uint8Array)) throw new InvalidParametersError('encodeBytes() takes a Uint8Array')
    let text: string | undefined
    try {
      text = strictDecoder.decode(bytes)
    } catch {
      text = undefined
    }
    if (text !== undefined) return this.encode(text, options)
    const out: number[] = []
    this.pushBos(out, options)
    let i = 0
    let runStart = 0
    const flush = (end: number): void => {
      if (end > runStart) {
        const inner = this.encode(utf8Decoder.decode(bytes.subarray(runStart, end)), { allowSpecial: options.allowSpecial })
        for (const id of inner) out.push(id)
      }
    }
    while (i < bytes.length) {
      const n = utf8SequenceLength(bytes, i)
      if (n > 0) {
        i += n
        continue
      }
      flush(i)
      out.push(this.byteToId[bytes[i]])
      i++
      runStart = i
    }
    flush(i)
    this.pushEos(out, options)
    return out
  }

  /** Decode ids to bytes (exact inverse of `encodeBytes`) */
  decodeBytes (ids: ArrayLike<number>, options: DecodeOptions = {}): Uint8Array {
    const skip = options.skipSpecialTokens === true
    let len = 0
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]
      const b = this.bytesOf[id]
      if (b === undefined) throw new UnknownTokenIdError(`unknown token id ${String(id)} at position ${i}`)
      if (skip && this.isSpecial[id] === 1) continue
      len += b.length
    }
    const out = new Uint8Array(len)
    let o = 0
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]
      if (skip && this.isSpecial[id] === 1) continue
      const b = this.bytesOf[id]
      if (b.length === 1) out[o++] = b[0]
      else {
        out.set(b, o)
        o += b.length
      }
    }
    return out
  }

  /** Decode ids to a string; bytes that are not valid UTF-8 (a cut-off sequence) become U+FFFD */
  decode (ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    return utf8Decoder.decode(this.decodeBytes(ids, options))
  }

  /** The tokenizer in Hugging Face `tokenizer.json` format (deterministic bytes for the same model) */
  toTokenizerJson (): string {
    const doc = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.addedTokens.map(t => ({
        id: t.id,
        content: t.content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: t.special
      })),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: '\u0000VOCAB\u0000',
        merges: '\u0000MERGES\u0000'
      }
    }
    const vocabLines: string[] = []
    for (const [tok, id] of [...this.tokenToIdMap].sort((x, y) => x[1] - y[1])) {
      vocabLines.push(`      ${JSON.stringify(tok)}: ${id}`)
    }
    // "left right" strings: byte-level tokens never contain a space, and every tokenizers version reads this form
    const mergeLines = this.mergePairs.map(([l, r]) => `      ${JSON.stringify(`${l} ${r}`)}`)
    return JSON.stringify(doc, null, 2)
      .replace('"\\u0000VOCAB\\u0000"', () => `{\n${vocabLines.join(',\n')}\n    }`)
      .replace('"\\u0000MERGES\\u0000"', () => `[\n${mergeLines.join(',\n')}\n    ]`) + '\n'
  }

  /** Write `tokenizer.json` */
  async save (path: string): Promise<void> {
    await writeFile(path, this.toTokenizerJson())
  }

  /** Parse a Hugging Face `tokenizer.json` (byte-level BPE with the GPT-2 pre-tokenizer) */
  static fromTokenizerJson (json: string, options?: TokenizerOptions): BpeTokenizer {
    return new BpeTokenizer(parseTokenizerJson(json), options)
  }

  /** Read a `tokenizer.json` file */
  static async load (path: string, options?: TokenizerOptions): Promise<BpeTokenizer> {
    return BpeTokenizer.fromTokenizerJson(await readFile(path, 'utf8'), options)
  }

  private pushBos (out: number[], options: EncodeOptions): void {
    if (options.addBos === true) out.push(this.requireAdded('<|bos|>'))
  }

  private pushEos (out: number[], options: EncodeOptions): void {
    if (options.addEos === true) out.push(this.requireAdded('<|eos|>'))
  }

  private requireAdded (content: string): number {
    const id = this.addedByContent.get(content)
    if (id === undefined) throw new InvalidParametersError(`this tokenizer has no ${content} token`)
    return id
  }

  private encodeText (text: string, out: number[]): void {
    const cache = this.cache
    const n = text.length
    let s = 0
    while (s < n) {
      const e = pieceEnd(text, s)
      if (cache === undefined) {
        const ids = this.bpePiece(text.slice(s, e))
        for (let i = 0; i < ids.length; i++) out.push(ids[i])
      } else {
        const h = PieceCache.hash(text, s, e)
        if (!cache.get(text, s, e, h, out)) {
          const ids = this.bpePiece(text.slice(s, e))
          cache.set(text, s, e, h, ids)
          for (let i = 0; i < ids.length; i++) out.push(ids[i])
        }
      }
      s = e
    }
  }

  /** BPE on one pre-token: lowest-rank pair first, leftmost on ties (Hugging Face's `merge_all`) */
  private bpePiece (piece: string): number[] {
    const bytes = this.scratch
    bytes.length = 0
    utf8Into(piece, bytes)
    const n = bytes.length
    const byteToId = this.byteToId
    if (n === 1) return [byteToId[bytes[0]]]
    const pairRank = this.pairRank
    if (this.sym.length < n) {
      const cap = Math.max(n, this.sym.length * 2)
      this.sym = new Int32Array(cap)
      this.next = new Int32Array(cap)
      this.prev = new Int32Array(cap)
    }
    const sym = this.sym
    const next = this.next
    const prev = this.prev // prev[i] === -2 marks a symbol merged into its left neighbour
    const heap = this.heap
    for (let i = 0; i < n; i++) {
      sym[i] = byteToId[bytes[i]]
      next[i] = i + 1 < n ? i + 1 : -1
      prev[i] = i - 1
    }
    for (let i = 0; i + 1 < n; i++) {
      const r = pairRank.get(sym[i] * PAIR + sym[i + 1])
      if (r !== undefined) heap.push(r * POS + i)
    }
    while (heap.size > 0) {
      const e = heap.pop()
      const rank = Math.floor(e / POS)
      const pos = e - rank * POS
      if (prev[pos] === -2) continue
      const nx = next[pos]
      if (nx === -1) continue
      if (pairRank.get(sym[pos] * PAIR + sym[nx]) !== rank) continue
      sym[pos] = this.mergeResult[rank]
      prev[nx] = -2
      const nn = next[nx]
      next[pos] = nn
      if (nn !== -1) prev[nn] = pos
      const pv = prev[pos]
      if (pv !== -1) {
        const r = pairRank.get(sym[pv] * PAIR + sym[pos])
        if (r !== undefined) heap.push(r * POS + pv)
      }
      if (nn !== -1) {
        const r = pairRank.get(sym[pos] * PAIR + sym[nn])
        if (r !== undefined) heap.push(r * POS + pos)
      }
    }
    const out: number[] = []
    for (let i = 0; i !== -1; i = next[i]) out.push(sym[i])
    return out
  }
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Read the parts of a `tokenizer.json` this package implements: model `BPE` over the GPT-2
 * byte-level alphabet, no normalizer, pre-tokenizer `ByteLevel` with `use_regex: true` and
 * `add_prefix_space: false`. Anything else is refused with `TokenizerFormatError` rather than
 * silently encoded differently from Hugging Face.
 */
export function parseTokenizerJson (json: string): BpeModelSpec {
  let doc: unknown
  try {
    doc = JSON.parse(json)
  } catch (err) {
    throw new TokenizerFormatError(`tokenizer.json is not JSON: ${(err as Error).message}`)
  }
  if (!isObject(doc)) throw new TokenizerFormatError('tokenizer.json must be an object')
  const model = doc.model
  if (!isObject(model) || model.type !== 'BPE') throw new TokenizerFormatError('model.type must be "BPE"')
  if (doc.normalizer !== null && doc.normalizer !== undefined) throw new TokenizerFormatError('normalizers are not supported')
  const pt = doc.pre_tokenizer
  if (!isObject(pt) || pt.type !== 'ByteLevel' || pt.use_regex === false || pt.add_prefix_space === true) {
    throw new TokenizerFormatError('pre_tokenizer must be ByteLevel with use_regex: true and add_prefix_space: false')
  }
  for (const k of ['continuing_subword_prefix', 'end_of_word_suffix', 'dropout'] as const) {
    if (model[k] !== null && model[k] !== undefined && model[k] !== '') throw new TokenizerFormatError(`model.${k} is not supported`)
  }
  if (model.byte_fallback === true || model.ignore_merges === true) throw new TokenizerFormatError('byte_fallback / ignore_merges are not supported')
  if (!isObject(model.vocab)) throw new TokenizerFormatError('model.vocab must be an object')
  const vocab = new Map<string, number>()
  for (const [tok, id] of Object.entries(model.vocab)) {
    if (typeof id !== 'number') throw new TokenizerFormatError(`vocab id of ${JSON.stringify(tok)} is not a number`)
    vocab.set(tok, id)
  }
  if (!Array.isArray(model.merges)) throw new TokenizerFormatError('model.merges must be an array')
  const merges: Array<readonly [string, string]> = model.merges.map((m: unknown, i: number) => {
    if (typeof m === 'string') {
      const sp = m.indexOf(' ')
      if (sp <= 0 || sp !== m.lastIndexOf(' ') || sp === m.length - 1) throw new TokenizerFormatError(`merge ${i} ${JSON.stringify(m)} is not "left right"`)
      return [m.slice(0, sp), m.slice(sp + 1)] as const
    }
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]] as const
    throw new TokenizerFormatError(`merge ${i} is neither "left right" nor ["left", "right"]`)
  })
  const added = doc.added_tokens ?? []
  if (!Array.isArray(added)) throw new TokenizerFormatError('added_tokens must be an array')
  const addedTokens: AddedToken[] = added.map((t: unknown) => {
    if (!isObject(t) || typeof t.id !== 'number' || typeof t.content !== 'string') throw new TokenizerFormatError('bad entry in added_tokens')
    if (t.single_word === true || t.lstrip === true || t.rstrip === true) throw new TokenizerFormatError('single_word / lstrip / rstrip added tokens are not supported')
    return { id: t.id, content: t.content, special: t.special === true }
  })
  return { vocab, merges, addedTokens }
}

/** Read a `tokenizer.json` file */
export async function loadTokenizer (path: string, options?: TokenizerOptions): Promise<BpeTokenizer> {
  return BpeTokenizer.load(path, options)
}
