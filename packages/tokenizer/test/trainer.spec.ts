import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { trainBpe, pretokenize } from '../src/index.js'
import { corpusSlice } from './helpers.js'

/** The textbook algorithm: recount every pair after every merge (slow, obviously correct) */
function naiveMerges (texts: string[], merges: number, minFrequency = 2): Array<[number, number]> {
  const counts = new Map<string, number>()
  for (const t of texts) for (const p of pretokenize(t)) counts.set(p, (counts.get(p) ?? 0) + 1)
  const words = [...counts].map(([p, c]) => ({ s: [...new TextEncoder().encode(p)] as number[], c }))
  const out: Array<[number, number]> = []
  let next = 259
  const bytesOf = new Map<number, string>()
  for (let b = 0; b < 256; b++) bytesOf.set(b, String.fromCharCode(b))
  const idOf = new Map<string, number>([...bytesOf].map(([k, v]) => [v, k]))
  while (out.length < merges) {
    const pc = new Map<number, number>()
    for (const w of words) for (let i = 0; i + 1 < w.s.length; i++) {
      const k = w.s[i] * 2 ** 21 + w.s[i + 1]
      pc.set(k, (pc.get(k) ?? 0) + w.c)
    }
    let best = -1
    let bestC = 0
    for (const [k, c] of pc) if (c > bestC || (c === bestC && k < best)) { best = k; bestC = c }
    if (best < 0 || bestC < minFrequency) break
    const a = Math.floor(best / 2 ** 21)
    const b = best - a * 2 ** 21
    const spelled = (bytesOf.get(a) as string) + (bytesOf.get(b) as string)
    let id = idOf.get(spelled)
    if (id === undefined) {
      id = next++
      idOf.set(spelled, id)
      bytesOf.set(id, spelled)
    }
    out.push([a, b])
    for (const w of words) {
      const t: number[] = []
      for (let i = 0; i < w.s.length; i++) {
        if (i + 1 < w.s.length && w.s[i] === a && w.s[i + 1] === b) { t.push(id); i++ } else t.push(w.s[i])
      }
      w.s = t
    }
  }
  return out
}

function mergeIds (tokJson: string): Array<[number, number]> {
  const d = JSON.parse(tokJson)
  return d.model.merges.map((m: string) => m.split(' ').map(x => d.model.vocab[x]))
}

describe('trainBpe', () => {
  it('is deterministic: same corpus and settings → byte-identical tokenizer.json', () => {
    const texts = corpusSlice(2000)
    const a = trainBpe(texts, { vocabSize: 600 }).toTokenizerJson()
    const b = trainBpe(texts, { vocabSize: 600 }).toTokenizerJson()
    expect(b).toBe(a)
    // and it depends only on the multiset of texts, not their order
    expect(trainBpe([...texts].reverse(), { vocabSize: 600 }).toTokenizerJson()).toBe(a)
  })

  it('makes the same merges as the textbook recount-everything algorithm', () => {
    const texts = corpusSlice(300)
    const ours = mergeIds(trainBpe(texts, { vocabSize: 259 + 150 }).toTokenizerJson())
    expect(ours).toEqual(naiveMerges(texts, 150))
  })

  it('matches the textbook algorithm on random small corpora (repeats, ties, aaaa runs)', () => {
    fc.assert(fc.property(
      fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'aa', 'é'), maxLength: 20 }), { minLength: 1, maxLength: 20 }),
      texts => {
        const ours = mergeIds(trainBpe(texts, { vocabSize: 259 + 30 }).toTokenizerJson())
        expect(ours).toEqual(naiveMerges(texts, 30))
      }
    ), { numRuns: 150 })
  })

  it('stops early when no pair reaches minFrequency', () => {
    const t = trainBpe(['abcd'], { vocabSize: 1000 })
    expect(t.mergeCount).toBe(0)
    expect(t.vocabSize).toBe(259)
    const t1 = trainBpe(['abcd'], { vocabSize: 1000, minFrequency: 1 })
    expect(t1.encode('abcd')).toHaveLength(1)
  })

  it('reports progress and rejects bad settings with typed errors', () => {
    const seen: number[] = []
    trainBpe(corpusSlice(200), { vocabSize: 300, onProgress: p => seen.push(p.vocabSize) })
    expect(seen.at(-1)).toBe(300)
    expect(() => trainBpe([], { vocabSize: 100 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => trainBpe([], { vocabSize: 300, minFrequency: 0 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => trainBpe([], { vocabSize: 300, specialTokens: ['x', 'x'] })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => trainBpe([42 as unknown as string], { vocabSize: 300 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => trainBpe('one string' as unknown as string[], { vocabSize: 300 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})
