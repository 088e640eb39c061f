/**
 * Speculative decoding (specs/pipeline/README.md §4.5 and §6.1): a cheap drafter proposes γ tokens, the
 * model scores all γ + 1 positions in one pass, and the acceptance rule of Leviathan et al. 2023 / Chen et al.
 * 2023 keeps a prefix of the draft plus one token of the model's own, so that the output has exactly the
 * distribution of plain sampling (and equals greedy decoding token for token at temperature 0).
 *
 * A drafter that proposes a token deterministically (n-gram lookup, a greedy draft model) has q = a point mass
 * on it; the rule then reduces to "draw the model's token with the plain sampler's own draw and keep the draft
 * while they agree", so the output is not only equal in distribution but the very tokens plain sampling gives
 * for the same seed.
 */
import { InvalidParametersError } from '@neuroshard/interface'
import { argmax, nucleus, sampleToken, splitmix64 } from './sampling.js'
import type { SamplingOptions } from './sampling.js'
import type { AbortOptions } from '@libp2p/interface'
import type { TensorData } from '@neuroshard/runtime'

/** One drafted token; `ids` / `probs`: the drafter's distribution q it was sampled from (absent: a point mass) */
export interface DraftToken {
  token: number
  ids?: number[]
  probs?: number[]
}

/** Proposes up to `gamma` tokens that follow `context` (fewer, or none, when it has no guess) */
export interface Drafter {
  propose(context: readonly number[], gamma: number, options: SamplingOptions & AbortOptions & { position: number }): Promise<DraftToken[]>
  close?(): Promise<void>
}

/** Most draft tokens per verification (protocol: a Validator refuses more) */
export const MAX_DRAFT_TOKENS = 32

/** Largest support of a drafter's q per token (protocol) */
export const MAX_DRAFT_SUPPORT = 4096

const MASK64 = (1n << 64n) - 1n
/** Separates the acceptance draws from the sampling draws of the same positions */
const ACCEPT_SALT = 0x5bd1e9955bd1e995n

/** The acceptance draw in [0, 1) for the draft token at `position` under `seed` (independent of `uniformDraw`) */
export function acceptDraw (seed: number, position: number): number {
  const r = splitmix64(((BigInt(seed) + BigInt(position)) ^ ACCEPT_SALT) & MASK64)
  return Number(r >> 11n) / 2 ** 53
}

/**
 * The distribution `sampleToken` draws from at temperature > 0: the kept ids in draw order (descending logit,
 * ties by lower id) and their probabilities (normalised as `sampleToken` normalises them).
 */
export function samplingDistribution (logits: Float32Array, options: SamplingOptions): { ids: number[], probs: number[] } {
  if ((options.temperature ?? 0) === 0) return { ids: [argmax(logits)], probs: [1] }
  const { order, weights, n, total } = nucleus(logits, options)
  return { ids: order.slice(0, n), probs: weights.slice(0, n).map(x => x / total) }
}

/** Checks a draft token's q; throws InvalidParametersError */
export function checkDraftToken (d: DraftToken, vocabSize: number): void {
  if (!(Number.isSafeInteger(d.token) && d.token >= 0 && d.token < vocabSize)) throw new InvalidParametersError(`draft token ${d.token} outside [0, ${vocabSize})`)
  const ids = d.ids ?? []
  const probs = d.probs ?? []
  if (ids.length !== probs.length) throw new InvalidParametersError(`draft q has ${ids.length} ids and ${probs.length} probabilities`)
  if (ids.length === 0) return
  if (ids.length > Math.min(MAX_DRAFT_SUPPORT, vocabSize)) throw new InvalidParametersError(`draft q has ${ids.length} ids (at most ${Math.min(MAX_DRAFT_SUPPORT, vocabSize)})`)
  const seen = new Set<number>()
  let sum = 0
  let qToken = 0
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]
    const p = probs[i]
    if (!(Number.isSafeInteger(id) && id >= 0 && id < vocabSize) || seen.has(id)) throw new InvalidParametersError(`draft q id ${id} is outside [0, ${vocabSize}) or repeated`)
    if (!(Number.isFinite(p) && p >= 0)) throw new InvalidParametersError(`draft q probability ${p} is not finite and >= 0`)
    seen.add(id)
    sum += p
    if (id === d.token) qToken = p
  }
  if (Math.abs(sum - 1) > 1e-3) throw new InvalidParametersError(`draft q sums to ${sum}, not 1`)
  if (!(qToken > 0)) throw new InvalidParametersError(`draft token ${d.token} has q = 0`)
}

/**
 * One position of the rule. `p` is the model's distribution (`samplingDistribution`), `d` the draft token.
 * Point-mass q (or greedy): the model's own token drawn as plain sampling draws it; accepted iff it is the draft.
 * Otherwise: accept with probability min(1, p(d) / q(d)) (draw `acceptDraw`); on rejection draw from
 * norm(max(0, p − q)) with the plain sampler's draw, walking p's order.
 */
function verifyOne (logits: Float32Array, d: DraftToken, sampling: SamplingOptions, position: number): { token: number, accepted: boolean } {
  const t = sampling.temperature ?? 0
  if (t === 0 || d.ids == null || d.ids.length === 0) {
    const token = sampleToken(logits, sampling, position)
    return { token, accepted: token === d.token }
  }
  const p = samplingDistribution(logits, sampling)
  const q = new Map<number, number>()
  let qSum = 0
  for (let i = 0; i < d.ids.length; i++) { q.set(d.ids[i], d.probs![i]); qSum += d.probs![i] }
  const qd = (q.get(d.token) ?? 0) / qSum
  const pi = p.ids.indexOf(d.token)
  const pd = pi >= 0 ? p.probs[pi] : 0
  const seed = sampling.seed ?? 0
  if (acceptDraw(seed, position) * qd < pd) return { token: d.token, accepted: true }
  const residual = p.ids.map((id, i) => Math.max(0, p.probs[i] - (q.get(id) ?? 0) / qSum))
  let total = 0
  for (const r of residual) total += r
  // p ≤ q everywhere (up to rounding): nothing left to draw from; the model's own token is as good as any
  if (!(total > 0)) return { token: sampleToken(logits, sampling, position), accepted: false }
  const u = uniformDrawOf(seed, position) * total
  let acc = 0
  for (let i = 0; i < residual.length; i++) {
    acc += residual[i]
    if (residual[i] > 0 && u < acc) return { token: p.ids[i], accepted: false }
  }
  for (let i = residual.length - 1; i >= 0; i--) if (residual[i] > 0) return { token: p.ids[i], accepted: false }
  return { token: p.ids[0], accepted: false }
}

function uniformDrawOf (seed: number, position: number): number {
  const r = splitmix64((BigInt(seed) + BigInt(position)) & MASK64)
  return Number(r >> 11n) / 2 ** 53
}

/**
 * Verify a draft against the model's logits. `rows[i]` are the logits that predict the token at sequence
 * position `position + i` (so `rows[0]` comes from the token before the first draft token); `rows.length` must be
 * `draft.length + 1`. Returns the accepted draft tokens followed by one token of the model's (the correction at
 * the first rejection, or the bonus token after the whole draft).
 */
export function verifyDraft (rows: Float32Array[], draft: DraftToken[], sampling: SamplingOptions, position: number): { tokens: number[], accepted: number } {
  if (rows.length !== draft.length + 1) throw new InvalidParametersError(`${rows.length} logit rows for ${draft.length} draft tokens`)
  const tokens: number[] = []
  for (let i = 0; i < draft.length; i++) {
    const r = verifyOne(rows[i], draft[i], sampling, position + i)
    tokens.push(r.token)
    if (!r.accepted) return { tokens, accepted: i }
  }
  tokens.push(sampleToken(rows[draft.length], sampling, position + draft.length))
  return { tokens, accepted: draft.length }
}

// ------------------------------------------------------------------ drafters

export interface NgramDrafterInit {
  /** Longest n-gram matched @default 4 */
  maxN?: number
  /** Shortest n-gram matched @default 1 */
  minN?: number
  /** How far back to look, tokens @default 2048 */
  window?: number
}

/**
 * Prompt-lookup drafting: find the latest earlier occurrence of the context's last n tokens (longest n first)
 * and propose what followed it. Costs no model; proposals are point masses.
 */
export function ngramDrafter (init: NgramDrafterInit = {}): Drafter {
  const maxN = init.maxN ?? 4
  const minN = init.minN ?? 1
  const window = init.window ?? 2048
  return {
    async propose (context, gamma) {
      const len = context.length
      const lo = Math.max(0, len - window)
      for (let n = Math.min(maxN, len - 1); n >= minN; n--) {
        // latest start j < len - n with context[j..j+n) = the last n tokens
        for (let j = len - n - 1; j >= lo; j--) {
          let k = 0
          while (k < n && context[j + k] === context[len - n + k]) k++
          if (k < n) continue
          const out: DraftToken[] = []
          for (let i = j + n; i < len && out.length < gamma; i++) out.push({ token: context[i] })
          if (out.length > 0) return out
        }
      }
      return []
    }
  }
}

/** A KV-cache session over a whole model (`InferenceEngine.openInference()` of `@neuroshard/runtime`) */
export interface DraftModelSession {
  readonly position: number
  run(feeds: Record<string, TensorData>, options?: AbortOptions): Promise<Record<string, TensorData>>
  truncate(position: number, options?: AbortOptions): Promise<number>
  close(): Promise<void>
}

export interface ModelDrafterInit {
  /** Opens the draft model's KV-cache session (e.g. `() => engine.openInference()` of a small `InferenceEngine`) */
  open(): Promise<DraftModelSession>
  /** Vocabulary size (must equal the target's) */
  vocabSize: number
  /**
   * `'greedy'`: propose the draft model's argmax (a point mass: at temperature > 0 the output tokens are those of
   * plain sampling); `'sample'`: sample from the draft model with the generation's sampling options and send its
   * q (higher acceptance at temperature > 0; q's support is capped at MAX_DRAFT_SUPPORT, beyond it: greedy)
   * @default 'greedy'
   */
  mode?: 'greedy' | 'sample'
}

/**
 * A small model on the Driver (or the client) as the drafter. It keeps its own KV cache in step with the
 * sequence: tokens it proposed that the target rejected are rolled back (`truncate`), so each proposal runs
 * only the tokens it has not seen.
 */
export function modelDrafter (init: ModelDrafterInit): Drafter {
  let session: DraftModelSession | undefined
  /** The tokens its cache holds, in order */
  let seen: number[] = []
  const mode = init.mode ?? 'greedy'
  const run = async (ids: number[], options: AbortOptions): Promise<Float32Array> => {
    const out = await session!.run({ input_ids: { type: 'int64', dims: [1, ids.length], data: BigInt64Array.from(ids, BigInt) } }, options)
    seen.push(...ids)
    const V = init.vocabSize
    const logits = out.logits.data as Float32Array
    return logits.subarray((ids.length - 1) * V, ids.length * V)
  }
  return {
    async propose (context, gamma, options) {
      if (gamma < 1 || context.length === 0) return []
      session ??= await init.open()
      // the longest prefix of the context the cache already holds; keep at most context.length − 1 of it so the
      // last context token runs again and gives the logits of the first draft token
      let c = 0
      const limit = Math.min(seen.length, context.length - 1)
      while (c < limit && seen[c] === context[c]) c++
      if (c < seen.length) {
        await session.truncate(c, options)
        seen = seen.slice(0, c)
      }
      let logits = await run(context.slice(c), options)
      const out: DraftToken[] = []
      for (let i = 0; i < gamma; i++) {
        const position = options.position + i
        let d: DraftToken
        const t = options.temperature ?? 0
        if (mode === 'sample' && t > 0) {
          const q = samplingDistribution(logits, options)
          // the draft's own draws: a different stream from the Validator's
          const token = q.ids.length <= MAX_DRAFT_SUPPORT ? sampleFrom(q, draftDraw(options.seed ?? 0, position)) : argmax(logits)
          d = q.ids.length <= MAX_DRAFT_SUPPORT ? { token, ids: q.ids, probs: q.probs } : { token }
        } else {
          d = { token: argmax(logits) }
        }
        out.push(d)
        if (i + 1 < gamma) logits = await run([d.token], options)
      }
      return out
    },
    async close () {
      await session?.close()
      session = undefined
      seen = []
    }
  }
}

const DRAFT_SALT = 0x2545f4914f6cdd1dn

function draftDraw (seed: number, position: number): number {
  const r = splitmix64(((BigInt(seed) + BigInt(position)) ^ DRAFT_SALT) & MASK64)
  return Number(r >> 11n) / 2 ** 53
}

function sampleFrom (q: { ids: number[], probs: number[] }, u: number): number {
  let acc = 0
  for (let i = 0; i < q.ids.length; i++) {
    acc += q.probs[i]
    if (u < acc) return q.ids[i]
  }
  return q.ids[q.ids.length - 1]
}

// ------------------------------------------------------------------ γ

export interface GammaInit {
  /** Largest γ @default 8 */
  max?: number
  /** γ of the first round @default 4 */
  initial?: number
  /** Weight of a new sample in the running estimates @default 0.3 */
  alpha?: number
}

/**
 * Picks γ from the measured acceptance rate a (per draft token) and the round's cost: a round with γ draft tokens
 * yields (1 − a^(γ+1)) / (1 − a) tokens on average and costs about `fixed + γ · (draft + verify)` ms — the round
 * trip, then per draft token the drafting (measured) and the extra verified position (the slope of a running
 * least-squares fit of the round's time on γ). γ maximises tokens per ms.
 */
export class GammaController {
  private readonly max: number
  private readonly alpha: number
  private gamma: number
  private rate = 0.6
  private draftMs = 0
  private rounds = 0
  /** Exponentially weighted sums for the fit of (round − draft) ms on γ */
  private sw = 0
  private sx = 0
  private sy = 0
  private sxx = 0
  private sxy = 0

  constructor (init: GammaInit = {}) {
    this.max = Math.max(1, Math.min(MAX_DRAFT_TOKENS, init.max ?? 8))
    this.gamma = Math.max(1, Math.min(this.max, init.initial ?? 4))
    this.alpha = init.alpha ?? 0.3
  }

  /** γ for the next round */
  next (): number {
    return this.gamma
  }

  /** Measured acceptance rate per draft token (running estimate) */
  acceptanceRate (): number {
    return this.rate
  }

  /** Report a round: draft tokens proposed and accepted, ms spent drafting, ms of the whole round */
  update (proposed: number, accepted: number, draftMs: number, roundMs: number): void {
    if (proposed <= 0) return
    const a = this.rounds === 0 ? 1 : this.alpha
    this.rounds++
    this.rate = (1 - a) * this.rate + a * (accepted / proposed)
    this.draftMs = (1 - a) * this.draftMs + a * (draftMs / proposed)
    const y = Math.max(0, roundMs - draftMs)
    const f = 1 - this.alpha / 4 // the fit forgets more slowly than the rate: it needs several γ values
    this.sw = f * this.sw + 1
    this.sx = f * this.sx + proposed
    this.sy = f * this.sy + y
    this.sxx = f * this.sxx + proposed * proposed
    this.sxy = f * this.sxy + proposed * y
    const varX = this.sxx / this.sw - (this.sx / this.sw) ** 2
    const slope = varX > 0.05 ? Math.max(0, (this.sxy / this.sw - (this.sx / this.sw) * (this.sy / this.sw)) / varX) : 0
    const fixed = Math.max(0, this.sy / this.sw - slope * (this.sx / this.sw))
    const perToken = this.draftMs + slope
    const r = Math.min(this.rate, 0.999)
    let best = 1
    let bestRate = -Infinity
    for (let g = 1; g <= this.max; g++) {
      const tokens = (1 - r ** (g + 1)) / (1 - r)
      const v = tokens / (fixed + g * perToken + 1e-6)
      if (v > bestRate + 1e-12) { bestRate = v; best = g }
    }
    this.gamma = best
  }
}
