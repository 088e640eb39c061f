import { InvalidParametersError } from '@neuroshard/interface'
import { BYTE_TO_CHAR, bytesToByteLevel } from './byte-level.js'
import { DEFAULT_MIN_FREQUENCY, DEFAULT_SPECIAL_TOKENS, MAX_VOCAB_SIZE } from './constants.js'
import { pieceEnd, utf8Into } from './pretokenize.js'
import { BpeTokenizer } from './tokenizer.js'
import type { AddedToken, TokenizerOptions } from './tokenizer.js'

export interface TrainProgress {
  /** Tokens in the vocabulary so far */
  vocabSize: number
  /** Target vocabulary size */
  target: number
}

export interface TrainBpeOptions extends TokenizerOptions {
  /** Final vocabulary size: 256 bytes + special tokens + merges */
  vocabSize: number
  /**
   * Special tokens, given ids 256, 257, … in this order.
   *
   * @default ['<|bos|>', '<|eos|>', '<|pad|>']
   */
  specialTokens?: readonly string[]
  /** Pairs seen fewer times are never merged (training may stop below `vocabSize`) @default 2 */
  minFrequency?: number
  /** Called every 256 merges and at the end */
  onProgress?(progress: TrainProgress): void
}

const PAIR = MAX_VOCAB_SIZE

/**
 * Max-heap of (count, pair key): highest count first, then the smallest key, i.e. the smallest
 * (left id, right id) pair — the documented, deterministic tie-break.
 */
class PairHeap {
  private readonly counts: number[] = []
  private readonly keys: number[] = []

  get size (): number { return this.counts.length }

  private better (c1: number, k1: number, c2: number, k2: number): boolean {
    return c1 > c2 || (c1 === c2 && k1 < k2)
  }

  push (count: number, key: number): void {
    const c = this.counts
    const k = this.keys
    let i = c.length
    c.push(count)
    k.push(key)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.better(count, key, c[p], k[p])) break
      c[i] = c[p]
      k[i] = k[p]
      i = p
    }
    c[i] = count
    k[i] = key
  }

  /** Pops into `out` = [count, key] */
  pop (out: [number, number]): void {
    const c = this.counts
    const k = this.keys
    out[0] = c[0]
    out[1] = k[0]
    const lc = c.pop() as number
    const lk = k.pop() as number
    const n = c.length
    if (n === 0) return
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const ch = r < n && this.better(c[r], k[r], c[l], k[l]) ? r : l
      if (!this.better(c[ch], k[ch], lc, lk)) break
      c[i] = c[ch]
      k[i] = k[ch]
      i = ch
    }
    c[i] = lc
    k[i] = lk
  }
}

/**
 * Train a byte-level BPE tokenizer (the algorithm of Hugging Face's `BpeTrainer`):
 *
 * 1. pre-tokenize every text with the GPT-2 regex and count each distinct piece;
 * 2. start from the 256 single bytes and count every adjacent pair inside the pieces
 *    (weighted by piece count);
 * 3. repeatedly merge the most frequent pair — ties go to the smallest (left id, right id) —
 *    updating pair counts only in the pieces that contain it (priority queue with lazy
 *    re-validation), until `vocabSize` tokens exist or no pair is seen `minFrequency` times.
 *
 * The result depends only on the multiset of texts' pieces and the options, so it is deterministic.
 * A merge whose bytes equal a special token's text is skipped, so plain text can never produce a
 * special id. When two merges produce the same bytes the existing id is reused (as Hugging Face does).
 */
export function trainBpe (texts: Iterable<string>, options: TrainBpeOptions): BpeTokenizer {
  if (typeof texts === 'string' || texts == null || typeof (texts as Iterable<string>)[Symbol.iterator] !== 'function') {
    throw new InvalidParametersError('trainBpe() takes an iterable of strings (an array of documents), not a single string')
  }
  const specials = options?.specialTokens ?? DEFAULT_SPECIAL_TOKENS
  const minFrequency = options?.minFrequency ?? DEFAULT_MIN_FREQUENCY
  const target = options?.vocabSize
  if (!Number.isInteger(target) || target < 256 + specials.length || target > MAX_VOCAB_SIZE) {
    throw new InvalidParametersError(`vocabSize must be an integer in [${256 + specials.length}, ${MAX_VOCAB_SIZE}]`)
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new InvalidParametersError('minFrequency must be a positive integer')
  if (new Set(specials).size !== specials.length || specials.some(s => typeof s !== 'string' || s === '')) {
    throw new InvalidParametersError('specialTokens must be distinct non-empty strings')
  }

  // 1. count pieces
  const pieceCounts = new Map<string, number>()
  for (const text of texts) {
    if (typeof text !== 'string') throw new InvalidParametersError('trainBpe() takes an iterable of strings')
    const n = text.length
    let s = 0
    while (s < n) {
      const e = pieceEnd(text, s)
      const p = text.slice(s, e)
      pieceCounts.set(p, (pieceCounts.get(p) ?? 0) + 1)
      s = e
    }
  }

  // 2. words as byte-id sequences, pair counts and where each pair occurs
  const nWords = pieceCounts.size
  const words: Int32Array[] = new Array<Int32Array>(nWords)
  const wordCount = new Float64Array(nWords)
  const scratch: number[] = []
  let wi = 0
  for (const [p, c] of pieceCounts) {
    scratch.length = 0
    utf8Into(p, scratch)
    words[wi] = Int32Array.from(scratch)
    wordCount[wi] = c
    wi++
  }
  pieceCounts.clear()

  const pairCount = new Map<number, number>()
  const where = new Map<number, number[]>()
  for (let w = 0; w < nWords; w++) {
    const s = words[w]
    const c = wordCount[w]
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * PAIR + s[i + 1]
      pairCount.set(key, (pairCount.get(key) ?? 0) + c)
      let list = where.get(key)
      if (list === undefined) {
        list = []
        where.set(key, list)
      }
      if (list[list.length - 1] !== w) list.push(w)
    }
  }
  const heap = new PairHeap()
  for (const [key, c] of pairCount) heap.push(c, key)

  // vocabulary: bytes, then specials, then merges
  const tokenBytes: number[][] = []
  const idOf = new Map<string, number>() // byte-level spelling → id (specials excluded)
  const vocab = new Map<string, number>()
  for (let b = 0; b < 256; b++) {
    tokenBytes.push([b])
    idOf.set(BYTE_TO_CHAR[b], b)
    vocab.set(BYTE_TO_CHAR[b], b)
  }
  const enc = new TextEncoder()
  const addedTokens: AddedToken[] = []
  const specialSpellings = new Set<string>()
  for (const s of specials) {
    const id = tokenBytes.length
    const bytes = [...enc.encode(s)]
    tokenBytes.push(bytes)
    const spelled = bytesToByteLevel(bytes)
    specialSpellings.add(spelled)
    vocab.set(spelled, id)
    addedTokens.push({ id, content: s, special: true })
  }

  // 3. merge
  const merges: Array<readonly [string, string]> = []
  const spelling: string[] = []
  for (const [tok, id] of vocab) spelling[id] = tok
  const stamp = new Int32Array(nWords).fill(-1)
  const top: [number, number] = [0, 0]
  let nextId = tokenBytes.length
  let step = 0
  const touched = new Set<number>()
  const report = (): void => options.onProgress?.({ vocabSize: nextId, target })

  while (nextId < target && heap.size > 0) {
    heap.pop(top)
    const [count, key] = top
    const current = pairCount.get(key) ?? 0
    if (current !== count) {
      if (current > 0) heap.push(current, key)
      continue
    }
    if (count < minFrequency) break
    const a = Math.floor(key / PAIR)
    const b = key - a * PAIR
    const merged = spelling[a] + spelling[b]
    if (specialSpellings.has(merged)) continue // never spell a special token from plain text
    let newId = idOf.get(merged)
    if (newId === undefined) {
      newId = nextId++
      idOf.set(merged, newId)
      vocab.set(merged, newId)
      spelling[newId] = merged
      tokenBytes.push([...tokenBytes[a], ...tokenBytes[b]])
    }
    merges.push([spelling[a], spelling[b]])
    step++
    touched.clear()

    const list = where.get(key) ?? []
    for (let li = 0; li < list.length; li++) {
      const w = list[li]
      if (stamp[w] === step) continue
      stamp[w] = step
      const s = words[w]
      const n = s.length
      let found = false
      for (let i = 0; i + 1 < n; i++) {
        if (s[i] === a && s[i + 1] === b) {
          found = true
          break
        }
      }
      if (!found) continue
      const c = wordCount[w]
      // remove the old pairs, merge left to right, add the new pairs
      for (let i = 0; i + 1 < n; i++) {
        const k = s[i] * PAIR + s[i + 1]
        pairCount.set(k, (pairCount.get(k) as number) - c)
      }
      const t: number[] = []
      for (let i = 0; i < n; i++) {
        if (i + 1 < n && s[i] === a && s[i + 1] === b) {
          t.push(newId)
          i++
        } else {
          t.push(s[i])
        }
      }
      const ns = Int32Array.from(t)
      words[w] = ns
      for (let i = 0; i + 1 < ns.length; i++) {
        const l = ns[i]
        const r = ns[i + 1]
        const k = l * PAIR + r
        pairCount.set(k, (pairCount.get(k) ?? 0) + c)
        if (l === newId || r === newId) {
          touched.add(k)
          let wl = where.get(k)
          if (wl === undefined) {
            wl = []
            where.set(k, wl)
          }
          if (wl[wl.length - 1] !== w) wl.push(w)
        }
      }
    }
    pairCount.delete(key)
    where.delete(key)
    for (const k of touched) {
      const c = pairCount.get(k) as number
      if (c > 0) heap.push(c, k)
    }
    if ((step & 255) === 0) report()
  }
  report()
  return new BpeTokenizer({ vocab, merges, addedTokens }, options)
}
