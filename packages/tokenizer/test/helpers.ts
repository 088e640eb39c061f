import corpus from 'nlp-corpus'

let cached: string[] | undefined
/** The first `n` sentences of the genesis corpus (nlp-corpus) */
export function corpusSlice (n: number): string[] {
  cached ??= corpus.some(20_000)
  return cached.slice(0, n)
}

/** What TextEncoder → TextDecoder does to a JS string: lone surrogates → U+FFFD */
export function wellFormed (s: string): string {
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(new TextEncoder().encode(s))
}

/** Strings that trip up pre-tokenizers and byte handling */
export const TRICKY = [
  '',
  ' ',
  '  leading and trailing  ',
  "it's we're they've I'm we'll he'd 'S 'quoted' ''s",
  'tabs\tand\nnewlines\r\n\n\nend\n',
  'numbers 12345 3.14 1,000,000 ٣٤ Ⅻ ½',
  'emoji 👩‍👩‍👧‍👦 🇯🇵 👍🏽 😀😀😀',
  'combining e\u0301 and ñ, Ελληνικά, русский, 中文字符, العربية, हिन्दी, 日本語のテキスト',
  'nbsp\u00a0here, nel\u0085there, bom\ufeffhere, ls\u2028ps\u2029, ideographic\u3000space',
  'zero width\u200bjoiner\u200d, \u180e mongolian, \u2000\u2001\u200a thin spaces',
  'symbols ~!@#$%^&*()_+-={}[]|\\:;"<>,.?/ `',
  'control \u0000\u0001\u001f\u007f chars',
  'astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚 𐍈 letters',
  'specials <|bos|> <|eos|><|pad|> inline <|eos',
  'x'.repeat(3000),
  ' '.repeat(50) + 'word' + '\n'.repeat(20)
]
