import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Tokenizer as HfTokenizer } from 'tokenizers'
import { describe, expect, it } from 'vitest'
import { BpeTokenizer, pretokenize, pretokenizeRegExp } from '../src/index.js'

// replays specs/tokenizer/vectors (computed by the independent Python implementation reference.py there)
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs', 'tokenizer', 'vectors')
const files = readdirSync(dir).filter(f => f.endsWith('.json') && f !== 'tokenizer.json').sort()
const load = (f: string): any => JSON.parse(readFileSync(join(dir, f), 'utf8'))
const tok = BpeTokenizer.fromTokenizerJson(readFileSync(join(dir, 'tokenizer.json'), 'utf8'))

describe('specs/tokenizer/vectors', () => {
  it('has every kind of vector', () => {
    for (const kind of ['pretokenize-', 'encode-', 'decode-', 'invalid-']) {
      expect(files.filter(f => f.startsWith(kind)).length, kind).toBeGreaterThan(3)
    }
  })

  it.each(files.filter(f => f.startsWith('pretokenize-')))('%s', (f) => {
    const v = load(f)
    expect(pretokenize(v.text)).toEqual(v.pieces)
    // the regex of the spec gives the same pieces as the hand-written scanner
    expect(v.text.match(pretokenizeRegExp()) ?? []).toEqual(v.pieces)
  })

  it.each(files.filter(f => f.startsWith('encode-')))('%s', (f) => {
    const v = load(f)
    expect(tok.encode(v.text, { allowSpecial: v.allowSpecial, addBos: v.addBos, addEos: v.addEos })).toEqual(v.ids)
  })

  it('Hugging Face tokenizers loads vectors/tokenizer.json and gives the same ids (a third implementation)', async () => {
    const hf = HfTokenizer.fromString(readFileSync(join(dir, 'tokenizer.json'), 'utf8'))
    let n = 0
    for (const f of files.filter(f => f.startsWith('encode-'))) {
      const v = load(f)
      // Hugging Face always turns added-token text into its id (allowSpecial) and adds no bos/eos here
      if (v.addBos === true || v.addEos === true) continue
      if (v.allowSpecial !== true && tok.addedTokens.some(t => v.text.includes(t.content))) continue
      expect((await hf.encode(v.text)).getIds(), f).toEqual(v.ids)
      n++
    }
    expect(n).toBeGreaterThan(8)
  })

  it.each(files.filter(f => f.startsWith('decode-')))('%s', (f) => {
    const v = load(f)
    if (v.error !== undefined) {
      expect(() => tok.decodeBytes(v.ids)).toThrow(expect.objectContaining({ name: v.error }))
      return
    }
    const opts = { skipSpecialTokens: v.skipSpecialTokens }
    expect(Buffer.from(tok.decodeBytes(v.ids, opts)).toString('hex')).toBe(v.bytesHex)
    expect(tok.decode(v.ids, opts)).toBe(v.text)
  })

  it.each(files.filter(f => f.startsWith('invalid-')))('%s', (f) => {
    const v = load(f)
    expect(() => BpeTokenizer.fromTokenizerJson(JSON.stringify(v.tokenizerJson))).toThrow(expect.objectContaining({ name: v.error }))
  })
})

// The independent Python checkers next to the vectors (written from the spec text) must agree with the files too.
const hasPython = spawnSync('python3', ['--version']).status === 0
describe('independent Python checkers', () => {
  it.skipIf(!hasPython)('specs/tokenizer/vectors/reference.py', () => {
    const r = spawnSync('python3', [new URL('../../../specs/', import.meta.url).pathname + 'tokenizer/vectors/reference.py'], { encoding: 'utf8', timeout: 120_000 })
    expect(r.status, r.stderr + r.stdout).toBe(0)
  })
})
