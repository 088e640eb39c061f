import { createHash } from 'node:crypto'
import { InvalidParametersError } from '@neuroshard/interface'
import { shardParameters } from './params.js'
import type { ModelConfig } from './config.js'
import type { ParameterSpec, ShardRole } from './params.js'

/** Base standard deviation of the normal init */
export const INIT_STD = 0.02
const SEED_DOMAIN = 'neuroshard/init/v1'
const TWO_POW_26 = 67108864
const TWO_POW_53 = 9007199254740992

/**
 * xoshiro128** (Blackman & Vigna), a small fast generator with 128 bits of state and 32-bit outputs.
 * Written by hand because the init must be bit-for-bit reproducible by other clients from the spec.
 */
export class Xoshiro128 {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  constructor (state: Uint32Array) {
    if (state.length !== 4 || (state[0] | state[1] | state[2] | state[3]) === 0) {
      throw new InvalidParametersError('xoshiro128** needs four 32-bit state words, not all zero')
    }
    this.s0 = state[0]; this.s1 = state[1]; this.s2 = state[2]; this.s3 = state[3]
  }

  /** The next 32-bit unsigned output */
  nextUint32 (): number {
    const s1 = this.s1
    const m = Math.imul(s1, 5)
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0
    const t = s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21)
    return result
  }

  /** A uniform double in the open interval (0, 1) built from two outputs (27 + 26 bits) */
  nextOpenUnit (): number {
    const a = this.nextUint32() >>> 5
    const b = this.nextUint32() >>> 6
    return (a * TWO_POW_26 + b + 0.5) / TWO_POW_53
  }
}

function seedBigInt (seed: number | bigint): bigint {
  const s = typeof seed === 'bigint' ? seed : Number.isSafeInteger(seed) ? BigInt(seed) : -1n
  if (s < 0n || s >= (1n << 64n)) throw new InvalidParametersError(`seed must be an integer in [0, 2^64), got ${String(seed)}`)
  return s
}

/**
 * The generator for one parameter: state = first 16 bytes (four little-endian u32) of
 * `sha256("neuroshard/init/v1" ‖ 0x00 ‖ u64le(seed) ‖ utf8(name))`. The stream depends only on
 * (seed, name), so any shard inits its parameters identically to the full model.
 */
export function parameterRng (seed: number | bigint, name: string): Xoshiro128 {
  const seedBytes = Buffer.alloc(8)
  seedBytes.writeBigUInt64LE(seedBigInt(seed))
  const digest = createHash('sha256').update(SEED_DOMAIN).update(Buffer.of(0)).update(seedBytes).update(name, 'utf8').digest()
  const state = new Uint32Array(4)
  for (let i = 0; i < 4; i++) state[i] = digest.readUInt32LE(4 * i)
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 1 // unreachable in practice; keeps xoshiro valid
  return new Xoshiro128(state)
}

/**
 * Init rule per parameter: RMSNorm weights are 1; the residual output projections (`attn.wo`, `mlp.w_down`)
 * are N(0, (0.02 / √(2·nLayers))²); every other matrix is N(0, 0.02²). Returns 0 for norms (meaning "constant 1").
 */
export function initStd (config: ModelConfig, name: string): number {
  if (name.endsWith('norm.weight')) return 0
  if (name.endsWith('.attn.wo') || name.endsWith('.mlp.w_down')) return INIT_STD / Math.sqrt(2 * config.nLayers)
  return INIT_STD
}

/**
 * Initial values of one parameter (row-major, float32). Normals come in Box–Muller pairs: for each pair k,
 * u1 and u2 are `nextOpenUnit()` in that order, r = √(−2 ln u1), θ = 2π u2, element 2k = std · r cos θ and
 * element 2k+1 = std · r sin θ (dropped past the end), each rounded to float32.
 */
export function initParameter (config: ModelConfig, spec: ParameterSpec, seed: number | bigint): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1)
  const out = new Float32Array(n)
  const std = initStd(config, spec.name)
  if (std === 0) {
    out.fill(1)
    return out
  }
  const rng = parameterRng(seed, spec.name)
  for (let i = 0; i < n; i += 2) {
    const u1 = rng.nextOpenUnit()
    const u2 = rng.nextOpenUnit()
    const r = Math.sqrt(-2 * Math.log(u1)) * std
    const theta = 2 * Math.PI * u2
    out[i] = r * Math.cos(theta)
    if (i + 1 < n) out[i + 1] = r * Math.sin(theta)
  }
  return out
}

/** Initial values of every parameter a shard owns, by name, in canonical order */
export function initShardParameters (config: ModelConfig, role: ShardRole, seed: number | bigint): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  for (const spec of shardParameters(config, role)) out.set(spec.name, initParameter(config, spec, seed))
  return out
}
