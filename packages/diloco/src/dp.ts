/**
 * Optional differential privacy of a node's pseudo-gradient (seed 000/004): clip Δ to L2 norm C, add
 * N(0, (z·C)²) to every coordinate before compression. Accountant: zero-concentrated DP (Bun & Steinke 2016):
 * one Gaussian release with sensitivity C and noise σ = z·C is ρ = 1/(2z²)-zCDP, T releases compose to
 * ρ_T = T/(2z²), and ρ-zCDP implies (ε, δ)-DP with ε = ρ + 2·√(ρ·ln(1/δ)) (Bun & Steinke, Prop. 1.3).
 *
 * The guarantee is node-level and local: it protects everything in one node's Δ (its data shards) against
 * every other party, whatever the others add, without subsampling amplification.
 */

import { randomBytes } from 'node:crypto'
import { InvalidParametersError } from '@neuroshard/interface'

export interface PrivacyOptions {
  /** L2 clipping norm C of a node's pseudo-gradient */
  clipNorm: number
  /** Noise multiplier z: σ = z·C */
  noiseMultiplier: number
  /** δ of the reported (ε, δ) @default 1e-5 */
  delta?: number
  /** Seed of the noise (tests, reproducible experiments); without it the noise is from the OS CSPRNG */
  seed?: number
}

/** ε after `rounds` releases (zCDP accountant, see the module comment) */
export function privacyEpsilon (rounds: number, noiseMultiplier: number, delta = 1e-5): number {
  if (!Number.isSafeInteger(rounds) || rounds < 0) throw new InvalidParametersError('rounds must be a non-negative integer')
  if (!(noiseMultiplier > 0)) throw new InvalidParametersError('noiseMultiplier must be positive')
  if (!(delta > 0 && delta < 1)) throw new InvalidParametersError('delta must be in (0, 1)')
  if (rounds === 0) return 0
  const rho = rounds / (2 * noiseMultiplier * noiseMultiplier)
  return rho + 2 * Math.sqrt(rho * Math.log(1 / delta))
}

/** xoshiro128** seeded by splitmix32 (only used for reproducible noise when a seed is given) */
function seededUniform (seed: number): () => number {
  let x = seed >>> 0
  const next = (): number => { x = (x + 0x9e3779b9) >>> 0; let z = x; z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0; z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0; return (z ^ (z >>> 16)) >>> 0 }
  const s = [next(), next(), next(), next()]
  return () => {
    const r = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0
    const t = (s[1] << 9) >>> 0
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11)
    return (r + 0.5) / 4294967296
  }
}

function rotl (x: number, k: number): number { return ((x << k) | (x >>> (32 - k))) >>> 0 }

function cryptoUniform (): () => number {
  let buf = new Uint32Array(0)
  let i = 0
  return () => {
    if (i >= buf.length) { const b = randomBytes(4096); buf = new Uint32Array(b.buffer, b.byteOffset, 1024); i = 0 }
    return (buf[i++] + 0.5) / 4294967296
  }
}

/** Clips `delta` in place to L2 norm C and adds Gaussian noise σ = z·C; returns the norm before clipping */
export class GaussianPrivatizer {
  readonly options: Required<Omit<PrivacyOptions, 'seed'>>
  private readonly uniform: () => number
  rounds = 0

  constructor (options: PrivacyOptions) {
    if (!(options.clipNorm > 0)) throw new InvalidParametersError('clipNorm must be positive')
    if (!(options.noiseMultiplier > 0)) throw new InvalidParametersError('noiseMultiplier must be positive')
    this.options = { clipNorm: options.clipNorm, noiseMultiplier: options.noiseMultiplier, delta: options.delta ?? 1e-5 }
    this.uniform = options.seed !== undefined ? seededUniform(options.seed) : cryptoUniform()
  }

  apply (delta: Float32Array): number {
    let sq = 0
    for (let i = 0; i < delta.length; i++) sq += delta[i] * delta[i]
    const norm = Math.sqrt(sq)
    const c = this.options.clipNorm
    const scale = norm > c ? c / norm : 1
    const sigma = this.options.noiseMultiplier * c
    for (let i = 0; i < delta.length; i += 2) {
      // Box–Muller: two normals per pair of uniforms
      const r = Math.sqrt(-2 * Math.log(this.uniform()))
      const th = 2 * Math.PI * this.uniform()
      delta[i] = Math.fround(delta[i] * scale + sigma * r * Math.cos(th))
      if (i + 1 < delta.length) delta[i + 1] = Math.fround(delta[i + 1] * scale + sigma * r * Math.sin(th))
    }
    this.rounds++
    return norm
  }

  /** ε spent so far (δ from the options) */
  epsilon (): number {
    return privacyEpsilon(this.rounds, this.options.noiseMultiplier, this.options.delta)
  }
}
