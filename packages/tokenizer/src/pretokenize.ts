/**
 * GPT-2 pre-tokenization, exactly as Hugging Face's `ByteLevel` pre-tokenizer with `use_regex: true`:
 *
 * `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
 *
 * Hugging Face runs it with Oniguruma, whose `\s` is Unicode White_Space minus nothing JS lacks:
 * JS's `\s` adds U+FEFF and misses U+0085, so `\s` is spelled out here to match Oniguruma.
 */
const WS = '\\t\\n\\v\\f\\r\\x85\\p{Zs}\\u2028\\u2029'

/** Source of the pre-tokenization regex (flags `gu`) */
export const PRETOKENIZE_PATTERN =
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`

/** A fresh global regex (it carries `lastIndex`, so each caller gets its own) */
export function pretokenizeRegExp (): RegExp {
  return new RegExp(PRETOKENIZE_PATTERN, 'gu')
}

/** Split text into the pieces BPE runs on; concatenated they give back `text` */
export function pretokenize (text: string): string[] {
  const out: string[] = []
  scanPieces(text, (s, e) => { out.push(text.slice(s, e)) })
  return out
}

/**
 * UTF-8 encode `s` into `out` (appending), turning each lone surrogate into U+FFFD (EF BF BD),
 * the same rule as `TextEncoder`. Returns the number of bytes written.
 */
export function utf8Into (s: string, out: number[]): number {
  const start = out.length
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i)
    if (c < 0x80) {
      out.push(c)
    } else if (c < 0x800) {
      out.push(0xc0 | (c >> 6), 0x80 | (c & 63))
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
        i++
        out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63))
      } else {
        out.push(0xef, 0xbf, 0xbd)
      }
    } else {
      out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63))
    }
  }
  return out.length - start
}

/**
 * Length of the well-formed UTF-8 sequence starting at `i`, or 0 when the byte there starts none
 * (stray continuation byte, overlong form, surrogate, > U+10FFFF, or truncated sequence).
 */
export function utf8SequenceLength (b: Uint8Array, i: number): number {
  const c = b[i]
  if (c < 0x80) return 1
  const n = b.length
  const cont = (j: number): boolean => j < n && (b[j] & 0xc0) === 0x80
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(i + 1) || !cont(i + 2)) return 0
    const c1 = b[i + 1]
    if (c === 0xe0 && c1 < 0xa0) return 0 // overlong
    if (c === 0xed && c1 >= 0xa0) return 0 // surrogate
    return 3
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0
    const c1 = b[i + 1]
    if (c === 0xf0 && c1 < 0x90) return 0 // overlong
    if (c === 0xf4 && c1 >= 0x90) return 0 // > U+10FFFF
    return 4
  }
  return 0
}

// ---- hand-written scanner: the same splits as the regex, without a match object per piece ----

const C_OTHER = 0
const C_LETTER = 1
const C_NUMBER = 2
const C_SPACE = 3

const reL = /\p{L}/u
const reN = /\p{N}/u
const reWS = new RegExp(`[${WS}]`, 'u')

function classifyCodePoint (cp: number): number {
  const s = String.fromCodePoint(cp)
  if (reL.test(s)) return C_LETTER
  if (reN.test(s)) return C_NUMBER
  if (reWS.test(s)) return C_SPACE
  return C_OTHER
}

let bmpClass: Uint8Array | undefined
function bmpTable (): Uint8Array {
  if (bmpClass === undefined) {
    bmpClass = new Uint8Array(65536)
    for (let cp = 0; cp < 65536; cp++) {
      // lone surrogates are "other" for the regex too
      bmpClass[cp] = cp >= 0xd800 && cp <= 0xdfff ? C_OTHER : classifyCodePoint(cp)
    }
  }
  return bmpClass
}
const astralClass = new Map<number, number>()

let cpLen = 1 // UTF-16 length of the code point last classified by `cls`

/** Class of the code point at `i`; sets `cpLen` */
function cls (text: string, i: number, n: number, table: Uint8Array): number {
  const c = text.charCodeAt(i)
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
    const d = text.charCodeAt(i + 1)
    if (d >= 0xdc00 && d <= 0xdfff) {
      cpLen = 2
      const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
      let k = astralClass.get(cp)
      if (k === undefined) {
        k = classifyCodePoint(cp)
        astralClass.set(cp, k)
      }
      return k
    }
  }
  cpLen = 1
  return table[c]
}

function runEnd (text: string, i: number, n: number, k: number, table: Uint8Array): number {
  while (i < n) {
    if (cls(text, i, n, table) !== k) break
    i += cpLen
  }
  return i
}

/**
 * End of the pre-token that starts at `i` (`i < text.length`): pieces are exactly what
 * {@link PRETOKENIZE_PATTERN} matches (a property test checks this), found several times faster.
 */
export function pieceEnd (text: string, i: number): number {
  const table = bmpClass ?? bmpTable()
  const n = text.length
  const c0 = text.charCodeAt(i)
  // 's 't 're 've 'm 'll 'd
  if (c0 === 39 && i + 1 < n) {
    const c1 = text.charCodeAt(i + 1)
    if (c1 === 115 || c1 === 116 || c1 === 109 || c1 === 100) return i + 2 // s t m d
    if (i + 2 < n) {
      const c2 = text.charCodeAt(i + 2)
      if ((c1 === 114 && c2 === 101) || (c1 === 118 && c2 === 101) || (c1 === 108 && c2 === 108)) return i + 3 // re ve ll
    }
  }
  const k = cls(text, i, n, table)
  const j = i + cpLen
  if (c0 === 32 && j < n) {
    // ' ?X+': a single space joins a following letter / number / other run
    const k1 = cls(text, j, n, table)
    if (k1 !== C_SPACE) return runEnd(text, j + cpLen, n, k1, table)
  }
  if (k !== C_SPACE) return runEnd(text, j, n, k, table)
  // whitespace: \s+(?!\S) | \s+  (whitespace is all in the BMP, one unit each)
  let e = j
  while (e < n && table[text.charCodeAt(e)] === C_SPACE) e++
  // followed by non-space: leave the last whitespace char for the next piece (it may start ' word')
  return e < n && e - 1 > i ? e - 1 : e
}

/** Calls `emit(start, end)` for every pre-token of `text`, in order */
export function scanPieces (text: string, emit: (start: number, end: number) => void): void {
  const n = text.length
  let i = 0
  while (i < n) {
    const e = pieceEnd(text, i)
    emit(i, e)
    i = e
  }
}
