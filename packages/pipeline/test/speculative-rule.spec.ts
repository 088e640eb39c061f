/**
 * The acceptance rule on a toy Markov "model" (logits depend on the previous token only), so the exact
 * distribution of every output sequence is known in closed form: speculative sampling must reproduce it.
 */
import { describe, it, expect } from 'vitest'
import { GammaController, ngramDrafter, sampleToken, samplingDistribution, splitmix64, verifyDraft } from '../src/index.js'
import type { DraftToken, SamplingOptions } from '../src/index.js'

const V = 12
/** Model logits after token `prev`, and a different draft model's */
function table (salt: bigint, scale: number): Float32Array[] {
  return Array.from({ length: V }, (_, prev) => Float32Array.from({ length: V }, (_, v) => {
    const r = Number(splitmix64(BigInt(prev * V + v) ^ salt) >> 11n) / 2 ** 53
    return scale * (r - 0.5)
  }))
}
const MODEL = table(0x1234n, 6)
const DRAFT = table(0x9876n, 4)
const START = 3
const N = 40_000
const LENGTH = 3

/** Exact probability of each length-3 continuation of START under `sampling` */
function exact (sampling: SamplingOptions): Map<string, number> {
  const out = new Map<string, number>()
  const walk = (prev: number, seq: number[], p: number): void => {
    if (seq.length === LENGTH) { out.set(seq.join(','), p); return }
    const d = samplingDistribution(MODEL[prev], sampling)
    d.ids.forEach((id, i) => walk(id, [...seq, id], p * d.probs[i]))
  }
  walk(START, [], 1)
  return out
}

/** A draft model that samples from its own distribution (q sent with each token) with its own draws */
function sampledDraft (sampling: SamplingOptions, seed: number): (context: number[], gamma: number) => DraftToken[] {
  return (context, gamma) => {
    const out: DraftToken[] = []
    let prev = context[context.length - 1]
    for (let i = 0; i < gamma; i++) {
      const q = samplingDistribution(DRAFT[prev], sampling)
      const u = Number(splitmix64(BigInt(seed) * 1000003n + BigInt(context.length + i) + 0xabcdefn) >> 11n) / 2 ** 53
      let acc = 0
      let token = q.ids[q.ids.length - 1]
      for (let k = 0; k < q.ids.length; k++) { acc += q.probs[k]; if (u < acc) { token = q.ids[k]; break } }
      out.push({ token, ids: q.ids, probs: q.probs })
      prev = token
    }
    return out
  }
}

type Verify = (rows: Float32Array[], draft: DraftToken[], sampling: SamplingOptions, position: number) => { tokens: number[] }

/** Generate LENGTH tokens after START with speculative rounds of γ (context position = its length) */
function speculate (sampling: SamplingOptions, propose: (context: number[], gamma: number) => DraftToken[], gamma: number, verify: Verify = verifyDraft): number[] {
  const context = [START]
  while (context.length - 1 < LENGTH) {
    const draft = propose(context, Math.min(gamma, LENGTH - context.length))
    const rows = [context[context.length - 1], ...draft.map(d => d.token)].map(prev => MODEL[prev])
    const { tokens } = verify(rows, draft, sampling, context.length)
    context.push(...tokens)
  }
  return context.slice(1, 1 + LENGTH)
}

function plain (sampling: SamplingOptions): number[] {
  const context = [START]
  while (context.length - 1 < LENGTH) context.push(sampleToken(MODEL[context[context.length - 1]], sampling, context.length))
  return context.slice(1)
}

/** Largest |empirical − exact| over every sequence and every per-position marginal */
function deviation (samples: number[][], want: Map<string, number>): number {
  const counts = new Map<string, number>()
  for (const s of samples) counts.set(s.join(','), (counts.get(s.join(',')) ?? 0) + 1)
  let worst = 0
  for (const [k, p] of want) worst = Math.max(worst, Math.abs((counts.get(k) ?? 0) / samples.length - p))
  for (let pos = 0; pos < LENGTH; pos++) {
    for (let v = 0; v < V; v++) {
      let p = 0
      for (const [k, q] of want) if (Number(k.split(',')[pos]) === v) p += q
      const f = samples.filter(s => s[pos] === v).length / samples.length
      worst = Math.max(worst, Math.abs(f - p))
    }
  }
  return worst
}

// N = 40 000 samples: the standard error of a frequency is at most 0.0025, so a 2 % shift in any probability is
// 8 standard errors; the bound 0.0125 (5 standard errors at the worst case p = 0.5) is not crossed by chance
// (p < 1e-6 per cell) and is crossed by any shift of 2 % or more.
const BOUND = 0.0125

describe('speculative acceptance rule', () => {
  const sampling = { temperature: 0.9, topK: 8, topP: 0.95 }

  it('with a sampled draft model (q sent along) the output has exactly the plain sampler\'s distribution', () => {
    const want = exact(sampling)
    const samples = Array.from({ length: N }, (_, seed) => speculate({ ...sampling, seed }, sampledDraft(sampling, seed), 2))
    expect(deviation(samples, want)).toBeLessThan(BOUND)
    // the plain sampler itself, for scale
    expect(deviation(Array.from({ length: N }, (_, seed) => plain({ ...sampling, seed })), want)).toBeLessThan(BOUND)
  })

  it('the check detects wrong rules: keeping every draft token, or resampling from p instead of the residual', () => {
    const want = exact(sampling)
    const acceptAll: Verify = (rows, draft, s, position) => ({ tokens: [...draft.map(d => d.token), sampleToken(rows[draft.length], s, position + draft.length)] })
    const fromP: Verify = (rows, draft, s, position) => {
      // accept with min(1, p/q) as the paper says, but on rejection draw from p itself (biased towards the draft token)
      const tokens: number[] = []
      for (let i = 0; i < draft.length; i++) {
        const p = samplingDistribution(rows[i], s)
        const d = draft[i]
        const pd = p.probs[p.ids.indexOf(d.token)] ?? 0
        const qd = d.probs![d.ids!.indexOf(d.token)]
        const u = Number(splitmix64(BigInt(s.seed!) * 7n + BigInt(position + i)) >> 11n) / 2 ** 53
        if (u * qd < pd) { tokens.push(d.token); continue }
        tokens.push(sampleToken(rows[i], s, position + i))
        return { tokens }
      }
      tokens.push(sampleToken(rows[draft.length], s, position + draft.length))
      return { tokens }
    }
    for (const wrong of [acceptAll, fromP]) {
      const samples = Array.from({ length: N }, (_, seed) => speculate({ ...sampling, seed }, sampledDraft(sampling, seed), 2, wrong))
      expect(deviation(samples, want)).toBeGreaterThan(0.02)
    }
  })

  it('with point-mass drafts (greedy draft model, n-gram) the output is the plain sampler\'s, token for token', () => {
    const greedyDraft = (context: number[], gamma: number): DraftToken[] => {
      const out: DraftToken[] = []
      let prev = context[context.length - 1]
      for (let i = 0; i < gamma; i++) {
        // a draft model that mostly agrees with the model's most likely token
        const z = (v: number): number => MODEL[prev][v] + 0.5 * DRAFT[prev][v]
        let best = 0
        for (let v = 1; v < V; v++) if (z(v) > z(best)) best = v
        out.push({ token: best })
        prev = best
      }
      return out
    }
    let accepted = 0
    for (let seed = 0; seed < 2000; seed++) {
      const s = { ...sampling, seed }
      const got = speculate(s, (c, g) => { const d = greedyDraft(c, g); return d }, 2)
      expect(got).toEqual(plain(s))
      if (got[0] === greedyDraft([START], 1)[0].token) accepted++
    }
    // some drafts are accepted, some rejected: both branches ran
    expect(accepted).toBeGreaterThan(100)
    expect(accepted).toBeLessThan(1900)
    // greedy (temperature 0): identical to argmax decoding with any draft
    for (const d of [greedyDraft, sampledDraft(sampling, 1)]) expect(speculate({ temperature: 0 }, d, 2)).toEqual(plain({ temperature: 0 }))
  })

  it('verifyDraft returns the accepted prefix and one token of the model', () => {
    const rows = [MODEL[0], MODEL[1], MODEL[2]]
    const a0 = sampleToken(MODEL[0], {}, 5)
    const a1 = sampleToken(MODEL[1], {}, 6)
    // greedy: the first draft token is the model's argmax (kept), the second is not (replaced by the model's)
    const r = verifyDraft(rows, [{ token: a0 }, { token: (a1 + 1) % V }], {}, 5)
    expect(r).toEqual({ tokens: [a0, a1], accepted: 1 })
    // every draft token kept: the bonus token from the last row
    expect(verifyDraft(rows, [{ token: a0 }, { token: a1 }], {}, 5)).toEqual({ tokens: [a0, a1, sampleToken(MODEL[2], {}, 7)], accepted: 2 })
    expect(() => verifyDraft(rows, [{ token: 1 }], {}, 5)).toThrow(/logit rows/)
  })
})

describe('drafters and γ', () => {
  it('the n-gram drafter proposes what followed the latest earlier match of the longest suffix', async () => {
    const d = ngramDrafter({ maxN: 3 })
    const o = { position: 0 }
    expect(await d.propose([1, 2, 3, 4, 5, 1, 2, 3], 3, o)).toEqual([{ token: 4 }, { token: 5 }, { token: 1 }])
    expect(await d.propose([1, 2, 3, 9, 1, 2, 3, 7, 2, 3], 2, o)).toEqual([{ token: 7 }, { token: 2 }])
    expect(await d.propose([1, 2, 3, 4], 2, o)).toEqual([])
    expect(await d.propose([5, 5, 5], 4, o)).toEqual([{ token: 5 }])
  })

  it('γ grows with the acceptance rate and shrinks when drafts are rejected', () => {
    const high = new GammaController({ max: 8, initial: 2 })
    for (let i = 0; i < 20; i++) high.update(high.next(), high.next(), 0.5 * high.next(), 100 + 2 * high.next())
    expect(high.next()).toBeGreaterThanOrEqual(6)
    const low = new GammaController({ max: 8, initial: 8 })
    for (let i = 0; i < 20; i++) low.update(low.next(), 0, 5 * low.next(), 10 + 6 * low.next())
    expect(low.next()).toBe(1)
  })
})
