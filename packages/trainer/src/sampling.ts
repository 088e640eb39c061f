import { InvalidParametersError } from '@neuroshard/interface'
import { parameterRng } from '@neuroshard/model'

/** How the next token is picked from the logits */
export interface SamplingOptions {
  /** Divide the logits by this; 0 means greedy (argmax) @default 1 */
  temperature?: number
  /** Keep only the k most likely tokens (0 = off) @default 0 */
  topK?: number
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = off) @default 1 */
  topP?: number
}

function check (o: SamplingOptions): Required<SamplingOptions> {
  const temperature = o.temperature ?? 1
  const topK = o.topK ?? 0
  const topP = o.topP ?? 1
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new InvalidParametersError(`temperature must be a finite number >= 0, got ${temperature}`)
  if (!Number.isSafeInteger(topK) || topK < 0) throw new InvalidParametersError(`topK must be a non-negative integer, got ${topK}`)
  if (!(topP > 0 && topP <= 1)) throw new InvalidParametersError(`topP must be in (0, 1], got ${topP}`)
  return { temperature, topK, topP }
}

/** Index of the largest value (the lowest index among ties) */
export function argmax (values: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i
  return best
}

/**
 * The distribution the sampler draws from: softmax(logits / temperature), then top-k, then top-p (on
 * the renormalised top-k distribution, as Hugging Face's warpers do), renormalised. Ties at the
 * top-k / top-p boundary are broken by lower token id. Temperature 0 puts all mass on the argmax.
 * NaN logits are refused.
 */
export function samplingDistribution (logits: ArrayLike<number>, options: SamplingOptions = {}): Float64Array {
  const { temperature, topK, topP } = check(options)
  const n = logits.length
  if (n === 0) throw new InvalidParametersError('empty logits')
  for (let i = 0; i < n; i++) if (Number.isNaN(logits[i])) throw new InvalidParametersError(`logit ${i} is NaN`)
  const probs = new Float64Array(n)
  if (temperature === 0) {
    probs[argmax(logits)] = 1
    return probs
  }
  let max = -Infinity
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i]
  let sum = 0
  for (let i = 0; i < n; i++) { probs[i] = Math.exp((logits[i] - max) / temperature); sum += probs[i] }
  for (let i = 0; i < n; i++) probs[i] /= sum
  if ((topK === 0 || topK >= n) && topP === 1) return probs

  // ids by descending probability, lower id first on ties
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b)
  let keep = topK === 0 ? n : Math.min(topK, n)
  if (topP < 1) {
    let kept = 0
    for (let j = 0; j < keep; j++) kept += probs[order[j]]
    let cum = 0
    for (let j = 0; j < keep; j++) {
      cum += probs[order[j]] / kept
      // float slack so that p = 0.5 over [0.5, 0.5] keeps exactly one token
      if (cum >= topP - 1e-12) { keep = j + 1; break }
    }
  }
  const out = new Float64Array(n)
  let total = 0
  for (let j = 0; j < keep; j++) total += probs[order[j]]
  for (let j = 0; j < keep; j++) out[order[j]] = probs[order[j]] / total
  return out
}

/** Draw from a distribution with a uniform number `u` in [0, 1) (inverse CDF; never returns a zero-probability id) */
export function sampleFrom (probs: ArrayLike<number>, u: number): number {
  if (!(u >= 0 && u < 1)) throw new InvalidParametersError(`u must be in [0, 1), got ${u}`)
  let cum = 0
  let last = -1
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue
    last = i
    cum += probs[i]
    if (u < cum) return i
  }
  if (last < 0) throw new InvalidParametersError('distribution has no mass')
  return last
}

/** A seeded uniform generator in (0, 1) (xoshiro128** seeded like `@neuroshard/model`'s init, domain "sampling") */
export function samplingRng (seed: number | bigint): () => number {
  const rng = parameterRng(seed, 'sampling')
  return () => rng.nextOpenUnit()
}

/** Pick the next token from logits */
export function sampleToken (logits: ArrayLike<number>, options: SamplingOptions, random: () => number): number {
  if ((options.temperature ?? 1) === 0) return argmax(logits)
  return sampleFrom(samplingDistribution(logits, options), random())
}
