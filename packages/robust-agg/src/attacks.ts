/**
 * An attack suite for tests and research: each attack crafts the f Byzantine vectors of a round from the honest
 * ones (an omniscient adversary, as in the papers). `byzantineRound()` mixes them into one input list.
 */
import { InvalidParametersError } from '@neuroshard/interface'
import { LengthMismatchError } from './errors.js'
import { createNormalRng, createRng } from './rng.js'
import { normalQuantile } from './stats.js'

/** An attack: honest vectors and f in, f Byzantine vectors out */
export interface Attack {
  readonly name: string
  craft(honest: readonly Float32Array[], f: number): Float32Array[]
}

const BLOCK = 4096

function checkHonest (name: string, honest: readonly Float32Array[], f: number): number {
  if (!Number.isInteger(f) || f < 0) throw new InvalidParametersError(`${name}: f must be a non-negative integer, got ${f}`)
  if (honest.length === 0) throw new InvalidParametersError(`${name}: needs at least one honest vector`)
  const d = honest[0].length
  for (let i = 1; i < honest.length; i++) {
    if (honest[i].length !== d) throw new LengthMismatchError(`${name}: honest vector ${i} has length ${honest[i].length}, vector 0 has ${d}`)
  }
  return d
}

/**
 * Per-coordinate mean μ and (with `withStd`) the sample standard deviation σ (divisor h − 1, 0 when h = 1) of the
 * honest vectors, handed to `emit` block by block so nothing d-sized beyond the outputs is allocated.
 */
function honestStats (honest: readonly Float32Array[], withStd: boolean, emit: (s: number, len: number, mu: Float64Array, sd: Float64Array) => void): void {
  const d = honest[0].length
  const h = honest.length
  const mu = new Float64Array(BLOCK)
  const sd = new Float64Array(BLOCK)
  for (let s = 0; s < d; s += BLOCK) {
    const len = Math.min(BLOCK, d - s)
    mu.fill(0)
    sd.fill(0)
    for (const x of honest) for (let t = 0; t < len; t++) mu[t] += x[s + t]
    for (let t = 0; t < len; t++) mu[t] /= h
    if (withStd && h > 1) {
      for (const x of honest) {
        for (let t = 0; t < len; t++) {
          const q = x[s + t] - mu[t]
          sd[t] += q * q
        }
      }
      for (let t = 0; t < len; t++) sd[t] = Math.sqrt(sd[t] / (h - 1))
    }
    emit(s, len, mu, sd)
  }
}

/** f vectors, each `scale × μ` (μ the honest mean) */
function scaledMean (name: string, honest: readonly Float32Array[], f: number, scale: number): Float32Array[] {
  const d = checkHonest(name, honest, f)
  const out = Array.from({ length: f }, () => new Float32Array(d))
  honestStats(honest, false, (s, len, mu) => {
    for (const o of out) for (let t = 0; t < len; t++) o[s + t] = scale * mu[t]
  })
  return out
}

export interface SignFlippingInit {
  /** Multiplier of the flipped vector. @default 1 */
  scale?: number
  /**
   * `'mean'`: every Byzantine vector is −scale × the honest mean (omniscient); `'own'`: Byzantine j sends
   * −scale × honest[j mod h], i.e. a worker flipping its own gradient (Allen-Zhu et al. 2021; Karimireddy et al.
   * 2021 "bit flipping"). @default 'mean'
   */
  of?: 'mean' | 'own'
}

/** Sign flipping: send the negated (scaled) honest direction */
export function signFlipping (init?: SignFlippingInit): Attack {
  const scale = init?.scale ?? 1
  const of = init?.of ?? 'mean'
  return {
    name: 'sign-flipping',
    craft (honest, f) {
      if (of === 'mean') return scaledMean('sign-flipping', honest, f, -scale)
      checkHonest('sign-flipping', honest, f)
      return Array.from({ length: f }, (_, j) => {
        const x = honest[j % honest.length]
        return Float32Array.from(x, v => -scale * v)
      })
    }
  }
}

export interface InnerProductManipulationInit {
  /**
   * ε: every Byzantine vector is −ε × the honest mean (Xie, Koyejo & Gupta 2020, "Fall of empires: breaking
   * Byzantine-tolerant SGD by inner product manipulation", UAI). A small ε (0.1) slips past distance-based
   * rules; a large one (100) makes the mean's inner product with the true gradient negative. @default 0.1
   */
  epsilon?: number
}

/** Inner-product manipulation (Xie et al. 2020) */
export function innerProductManipulation (init?: InnerProductManipulationInit): Attack {
  const epsilon = init?.epsilon ?? 0.1
  return { name: 'inner-product-manipulation', craft: (honest, f) => scaledMean('inner-product-manipulation', honest, f, -epsilon) }
}

/**
 * z_max of "a little is enough" (Baruch, Baruch & Goldberg 2019, NeurIPS, Section 3): with n workers of which f
 * are Byzantine, the attacker needs s = ⌊n/2 + 1⌋ − f honest workers on its side, and z_max = Φ⁻¹((n − s)/n).
 * For example n = 50, f = 24 gives s = 2 and z = Φ⁻¹(0.96) ≈ 1.7507.
 */
export function alieZ (n: number, f: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(f) || n < 1 || f < 0 || f > n) {
    throw new InvalidParametersError(`alieZ: needs integers 0 ≤ f ≤ n, n ≥ 1; got n = ${n}, f = ${f}`)
  }
  const s = Math.floor(n / 2 + 1) - f
  const p = (n - s) / n
  if (!(p > 0 && p < 1)) {
    throw new InvalidParametersError(`alieZ: (n − s)/n = ${p} is outside (0, 1) for n = ${n}, f = ${f} (s = ${s})`)
  }
  return normalQuantile(p)
}

export interface ALittleIsEnoughInit {
  /** z; by default `alieZ(h + f, f)` from the number of workers of the round. */
  z?: number
  /** `-1` sends μ − zσ (Baruch et al.), `+1` sends μ + zσ. @default -1 */
  direction?: 1 | -1
}

/**
 * "A little is enough" (Baruch et al. 2019): every Byzantine vector is μ − zσ per coordinate, with μ and σ the
 * honest per-coordinate mean and sample standard deviation. It stays inside the honest spread on every
 * coordinate, so it passes median and trimmed-mean style filters while biasing the result.
 */
export function aLittleIsEnough (init?: ALittleIsEnoughInit): Attack {
  const direction = init?.direction ?? -1
  return {
    name: 'a-little-is-enough',
    craft (honest, f) {
      const d = checkHonest('a-little-is-enough', honest, f)
      if (f === 0) return []
      const z = init?.z ?? alieZ(honest.length + f, f)
      const out = Array.from({ length: f }, () => new Float32Array(d))
      honestStats(honest, true, (s, len, mu, sd) => {
        for (const o of out) for (let t = 0; t < len; t++) o[s + t] = mu[t] + direction * z * sd[t]
      })
      return out
    }
  }
}

export interface GaussianNoiseInit {
  /** Standard deviation of every coordinate. @default 1 */
  sigma?: number
  /** Centre of the noise: the origin or the honest mean. @default 'zero' */
  centre?: 'zero' | 'honest-mean'
  /** Seed of the generator (advances on every call). @default 0 */
  seed?: number
}

/** Gaussian noise: Byzantine vectors drawn from N(centre, σ²I) */
export function gaussianNoise (init?: GaussianNoiseInit): Attack {
  const sigma = init?.sigma ?? 1
  const centre = init?.centre ?? 'zero'
  const normal = createNormalRng(createRng(init?.seed ?? 0))
  return {
    name: 'gaussian-noise',
    craft (honest, f) {
      const out = centre === 'zero'
        ? Array.from({ length: f }, () => new Float32Array(checkHonest('gaussian-noise', honest, f)))
        : scaledMean('gaussian-noise', honest, f, 1)
      for (const o of out) for (let j = 0; j < o.length; j++) o[j] += sigma * normal()
      return out
    }
  }
}

export interface MimicInit {
  /** The honest vector every Byzantine input copies. @default 0 */
  target?: number
}

/**
 * Mimic (Karimireddy, He & Jaggi 2022, bucketing paper, Section 3): all Byzantine inputs copy one honest input,
 * over-representing it; harmless on identical data, harmful under heterogeneity. The paper picks the target that
 * maximises heterogeneity; here it is an explicit index.
 */
export function mimic (init?: MimicInit): Attack {
  const target = init?.target ?? 0
  return {
    name: 'mimic',
    craft (honest, f) {
      checkHonest('mimic', honest, f)
      if (!Number.isInteger(target) || target < 0 || target >= honest.length) {
        throw new InvalidParametersError(`mimic: target ${target} is not an honest index (0..${honest.length - 1})`)
      }
      return Array.from({ length: f }, () => honest[target].slice())
    }
  }
}

export interface NonFiniteValuesInit {
  /** What to write: NaN, +Infinity, −Infinity, or cycle through the three. @default 'nan' */
  value?: 'nan' | 'inf' | '-inf' | 'mixed'
  /** How many coordinates to poison, evenly spaced (at least 1). @default 1 */
  count?: number
}

/** Non-finite values: copies of the honest mean with some coordinates set to NaN / ±Infinity */
export function nonFiniteValues (init?: NonFiniteValuesInit): Attack {
  const value = init?.value ?? 'nan'
  const count = init?.count ?? 1
  const values = value === 'nan' ? [NaN] : value === 'inf' ? [Infinity] : value === '-inf' ? [-Infinity] : [NaN, Infinity, -Infinity]
  return {
    name: 'non-finite',
    craft (honest, f) {
      const out = scaledMean('non-finite', honest, f, 1)
      out.forEach((o, j) => {
        const c = Math.max(1, Math.min(count, o.length))
        for (let k = 0; k < c; k++) o[Math.floor(k * o.length / c)] = values[(j + k) % values.length]
      })
      return out
    }
  }
}

export interface ByzantineRoundInit {
  /** Where the Byzantine inputs go: after the honest ones, before them, or shuffled in. @default 'end' */
  placement?: 'end' | 'start' | 'shuffle'
  /** Seed for `'shuffle'`. @default 0 */
  seed?: number
}

/** Craft f Byzantine vectors and return the round's inputs with the Byzantine indices */
export function byzantineRound (honest: readonly Float32Array[], attack: Attack, f: number, init?: ByzantineRoundInit): { inputs: Float32Array[], byzantine: number[] } {
  const bad = attack.craft(honest, f)
  const placement = init?.placement ?? 'end'
  const all = placement === 'start' ? [...bad, ...honest] : [...honest, ...bad]
  const flags = placement === 'start' ? [...bad.map(() => true), ...honest.map(() => false)] : [...honest.map(() => false), ...bad.map(() => true)]
  const order = all.map((_, i) => i)
  if (placement === 'shuffle') {
    const random = createRng(init?.seed ?? 0)
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      const t = order[i]
      order[i] = order[j]
      order[j] = t
    }
  }
  const inputs = order.map(i => all[i])
  const byzantine: number[] = []
  order.forEach((i, k) => { if (flags[i]) byzantine.push(k) })
  return { inputs, byzantine }
}
