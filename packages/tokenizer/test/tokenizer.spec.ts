import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Tokenizer as HfTokenizer } from 'tokenizers'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  BpeTokenizer, trainBpe, loadTokenizer, pretokenize, pretokenizeRegExp, BOS_ID, EOS_ID, PAD_ID, BYTE_TO_CHAR
} from '../src/index.js'
import { corpusSlice, TRICKY, wellFormed } from './helpers.js'

let tok: BpeTokenizer

beforeAll(() => {
  tok = trainBpe(corpusSlice(3000), { vocabSize: 700 })
})

const anyUtf16 = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 80 }).map(a => String.fromCharCode(...a))
// text-like strings: mostly the characters the pre-tokenizer cares about
const textLike = fc.array(fc.oneof(
  fc.constantFrom(' ', '  ', "'", "'s", "'ll", 'a', 'the', 'A', '1', '42', '.', ',', '!', '\n', '\t', '\r\n', '\u00a0', '\u0085', '\ufeff', '\u3000', 'é', '中', '😀', '👩‍👧', '\ud800', '\udc00', '<|eos|>'),
  fc.string({ unit: 'grapheme', maxLength: 4 })
), { maxLength: 40 }).map(parts => parts.join(''))

describe('layout', () => {
  it('has 256 byte tokens at id = byte, then the special tokens at fixed ids', () => {
    expect(tok.vocabSize).toBe(700)
    for (let b = 0; b < 256; b++) expect([...tok.tokenBytes(b)]).toEqual([b])
    expect(tok.bosId).toBe(BOS_ID)
    expect(tok.eosId).toBe(EOS_ID)
    expect(tok.padId).toBe(PAD_ID)
    expect(tok.idToToken(BOS_ID)).toBe('<|bos|>')
    expect(tok.mergeCount).toBe(700 - 259)
  })

  it('learns real merges (common words become one token)', () => {
    expect(tok.encode(' the')).toHaveLength(1)
    const text = corpusSlice(3000).join('\n')
    // even 441 merges compress English past 2 bytes per token (raw bytes: 1)
    expect(new TextEncoder().encode(text).length / tok.encode(text).length).toBeGreaterThan(2)
  })
})

describe('round trip', () => {
  it('decode(encode(s)) === s for any well-formed string (emoji, astral, combining)', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), textLike, (a, b) => {
      expect(tok.decode(tok.encode(a))).toBe(a)
      expect(tok.decode(tok.encode(b))).toBe(wellFormed(b))
    }), { numRuns: 500 })
    for (const s of TRICKY) expect(tok.decode(tok.encode(s))).toBe(s)
  })

  it('lone surrogates: encode() replaces each with U+FFFD, exactly as TextEncoder does', () => {
    fc.assert(fc.property(anyUtf16, s => {
      expect(tok.decode(tok.encode(s))).toBe(wellFormed(s))
      expect([...tok.decodeBytes(tok.encode(s))]).toEqual([...new TextEncoder().encode(s)])
    }), { numRuns: 500 })
    expect(tok.decode(tok.encode('a\ud800b\udfffc'))).toBe('a\ufffdb\ufffdc')
  })

  it('decodeBytes(encodeBytes(b)) === b for any bytes, valid UTF-8 or not', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), b => {
      expect(tok.decodeBytes(tok.encodeBytes(b))).toEqual(b)
    }), { numRuns: 1000 })
    const invalid = Uint8Array.from([0xff, 0x61, 0xc3, 0x20, 0xe2, 0x82, 0x74, 0x68, 0x65, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xc0, 0xaf])
    expect(tok.decodeBytes(tok.encodeBytes(invalid))).toEqual(invalid)
  })

  it('encodeBytes on well-formed UTF-8 gives the same ids as encode on the string', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 100 }), s => {
      expect(tok.encodeBytes(new TextEncoder().encode(s))).toEqual(tok.encode(s))
    }), { numRuns: 300 })
  })

  it('the encoding does not depend on the cache (cache off, tiny cache, default)', () => {
    const json = tok.toTokenizerJson()
    const noCache = BpeTokenizer.fromTokenizerJson(json, { cacheSize: 0 })
    const tiny = BpeTokenizer.fromTokenizerJson(json, { cacheSize: 3 })
    const text = corpusSlice(400).join('\n')
    const expected = noCache.encode(text)
    expect(tiny.encode(text)).toEqual(expected)
    expect(tok.encode(text)).toEqual(expected)
    expect(tok.encode(text)).toEqual(expected) // warm
  })
})

describe('pre-tokenizer', () => {
  it('the hand-written scanner splits exactly like the GPT-2 regex', () => {
    fc.assert(fc.property(fc.oneof(textLike, anyUtf16, fc.string({ unit: 'binary' })), s => {
      expect(pretokenize(s)).toEqual(s.match(pretokenizeRegExp()) ?? [])
    }), { numRuns: 2000 })
    for (const s of TRICKY) expect(pretokenize(s)).toEqual(s.match(pretokenizeRegExp()) ?? [])
    expect(pretokenize("Hello world's  end\n\n")).toEqual(['Hello', ' world', "'s", ' ', ' end', '\n\n'])
  })
})

describe('special tokens', () => {
  it('are plain text unless allowSpecial, as Hugging Face does with allowSpecial', () => {
    expect(tok.encode('<|eos|>')).not.toContain(EOS_ID)
    expect(tok.encode('<|eos|>', { allowSpecial: true })).toEqual([EOS_ID])
    expect(tok.encode('a<|bos|>b', { allowSpecial: true })).toContain(BOS_ID)
    const ids = tok.encode('hi', { addBos: true, addEos: true })
    expect(ids[0]).toBe(BOS_ID)
    expect(ids[ids.length - 1]).toBe(EOS_ID)
    expect(tok.decode(ids)).toBe('<|bos|>hi<|eos|>')
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hi')
  })

  it('training never builds a merged token spelled like a special token', () => {
    const t = trainBpe(Array(50).fill('<|eos|> <|eos|><|eos|>'), { vocabSize: 300 })
    expect(t.encode('<|eos|>')).not.toContain(t.eosId)
    expect(t.decode(t.encode('<|eos|>'))).toBe('<|eos|>')
  })

  it('custom special tokens get consecutive ids after the bytes', () => {
    const t = trainBpe(['abc abc'], { vocabSize: 262, specialTokens: ['<|a|>', '<|b|>'] })
    expect(t.addedTokenId('<|a|>')).toBe(256)
    expect(t.addedTokenId('<|b|>')).toBe(257)
    expect(t.bosId).toBeUndefined()
    expect(() => t.encode('x', { addBos: true })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})

describe('tokenizer.json', () => {
  it('reloads to identical encodings and identical bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ns-tok-'))
    try {
      const path = join(dir, 'tokenizer.json')
      await tok.save(path)
      const again = await loadTokenizer(path)
      const text = corpusSlice(1500).join('\n')
      expect(again.encode(text)).toEqual(tok.encode(text))
      for (const s of TRICKY) expect(again.encode(s, { allowSpecial: true })).toEqual(tok.encode(s, { allowSpecial: true }))
      expect(again.toTokenizerJson()).toBe(await readFile(path, 'utf8'))
      // HF's newer ["left", "right"] merge form loads too
      const doc = JSON.parse(tok.toTokenizerJson())
      doc.model.merges = doc.model.merges.map((m: string) => m.split(' '))
      expect(BpeTokenizer.fromTokenizerJson(JSON.stringify(doc)).encode(text)).toEqual(tok.encode(text))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('Hugging Face tokenizers loads our tokenizer.json and produces the same ids and text', async () => {
    const hf = HfTokenizer.fromString(tok.toTokenizerJson())
    const samples = [...corpusSlice(300), ...TRICKY]
    for (const s of samples) {
      const hfIds = (await hf.encode(s)).getIds()
      expect(hfIds).toEqual(tok.encode(s, { allowSpecial: true }))
      expect(await hf.decode(hfIds, false)).toBe(tok.decode(hfIds))
    }
    // lone surrogates: the napi binding turns them into U+FFFD too
    for (const s of ['a\ud800b', '\udfff', 'x\ud83d', '\ud83d\ude00\ud800 z']) {
      expect((await hf.encode(s)).getIds()).toEqual(tok.encode(s))
    }
    // random text-like strings
    await fc.assert(fc.asyncProperty(fc.oneof(textLike, anyUtf16), async s => {
      expect((await hf.encode(s)).getIds()).toEqual(tok.encode(s, { allowSpecial: true }))
    }), { numRuns: 300 })
    // every BMP code point (except surrogates) in a few contexts: \s, \p{L}, \p{N} must agree with Oniguruma
    const parts: string[] = []
    for (let cp = 1; cp < 0x10000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue
      const c = String.fromCharCode(cp)
      parts.push(`a${c}b ${c}${c}1 ${c}`)
    }
    const big = parts.join('')
    expect((await hf.encode(big)).getIds()).toEqual(tok.encode(big, { allowSpecial: true }))
  })

  it('refuses malformed or unsupported files with TokenizerFormatError', () => {
    const good = JSON.parse(tok.toTokenizerJson())
    const bad = (mutate: (d: any) => void): string => {
      const d = structuredClone(good)
      mutate(d)
      return JSON.stringify(d)
    }
    const cases = [
      '{not json',
      '[]',
      bad(d => { d.model.type = 'WordPiece' }),
      bad(d => { d.pre_tokenizer = { type: 'Whitespace' } }),
      bad(d => { d.pre_tokenizer.add_prefix_space = true }),
      bad(d => { d.normalizer = { type: 'Lowercase' } }),
      bad(d => { delete d.model.vocab[BYTE_TO_CHAR[0x41]] }),
      bad(d => { d.model.merges.push('zzz qqq') }),
      bad(d => { d.model.merges.push(42) }),
      bad(d => { d.model.vocab.extra = 100000 }),
      bad(d => { d.model.vocab.dup = 5 }),
      bad(d => { d.model.vocab['not byte-level ☃'] = 700 })
    ]
    for (const c of cases) {
      expect(() => BpeTokenizer.fromTokenizerJson(c), c.slice(0, 60)).toThrow(expect.objectContaining({ name: 'TokenizerFormatError' }))
    }
  })

  it('decode of an unknown id is a typed error', () => {
    expect(() => tok.decode([1, 99999])).toThrow(expect.objectContaining({ name: 'UnknownTokenIdError' }))
    expect(() => tok.decode([-1])).toThrow(expect.objectContaining({ name: 'UnknownTokenIdError' }))
  })
})
