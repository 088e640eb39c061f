import { secp256k1 } from '@noble/curves/secp256k1.js'
import { NEURO, checkAmount } from './amount.js'
import { InvalidGenesisError } from './errors.js'
import { addressOf, digest, fromHex, toHex } from './keys.js'
import { rational } from './rational.js'
import type { Address } from './keys.js'
import type { Rational } from './rational.js'

/** One initial validator: its ledger public key and the stake bonded at genesis (its voting power) */
export interface GenesisValidator {
  publicKey: string
  stake: bigint
}

/** An initial balance */
export interface GenesisAllocation {
  address: Address
  balance: bigint
}

/**
 * Every economic and protocol parameter. Money parameters are rationals in base units
 * (1 NEURO = 10^18) so rewards are computed exactly; each reward is rounded down once (floor).
 */
export interface LedgerParams {
  /** R_base: uptime reward per minute — 0.1 NEURO */
  uptimeRewardPerMinute: Rational
  /** R_inference: reward per 1,000,000 tokens served — 0.9 NEURO */
  inferenceRewardPerMillionTokens: Rational
  /** compute reward per training batch — 0.001 NEURO */
  computeRewardPerBatch: Rational
  /** data reward per sample contributed — 0.0001 NEURO */
  dataRewardPerSample: Rational
  /** quality bonus multiplier for training proofs with a low loss — 1.5 */
  qualityBonus: Rational
  /** a training proof gets the quality bonus when loss_after_micro <= this and loss went down */
  qualityLossThresholdMicro: bigint
  /** β: staking coefficient — 0.1 */
  stakingBeta: Rational
  /** the "1000" of stake/1000, in base units — 1000 NEURO */
  stakingUnit: bigint
  /** cap of the staking multiplier (1 + β·stake/1000) — 2 */
  stakingMultiplierCap: Rational
  /** unbonded stake becomes withdrawable this many epochs after the UNBOND message's epoch */
  unbondingEpochs: bigint
  /** share of the bonded stake taken by a slash — 1/2 */
  slashFraction: Rational
  /** share of a slash paid to the reporter; the rest is burned — 1/10 */
  reporterShare: Rational
  /** share of an inference payment burned; the rest goes to the provider — 1/5 */
  inferenceFeeBurn: Rational
  /** epoch length in ms (uptime epochs, unbonding) */
  epochMs: number
  /** training round length in ms */
  roundMs: number
  /** validators sign a message only when its epoch (and a proof's round) is within this many of theirs */
  epochWindow: number
  roundWindow: number
  /** uptime: seconds credited per heartbeat, and heartbeats per epoch at most */
  heartbeatSeconds: number
  /** rate plausibility */
  maxInferenceTokensPerSecond: number
  maxTrainingTokensPerProof: bigint
  maxBatchesPerProof: number
  maxSamplesPerProof: bigint
  /** data shard assignment: shards in the dataset and shards assigned per (node, round) */
  totalShards: number
  shardsPerAssignment: number
}

export interface GenesisConfig {
  /** free-form network name, part of the chain id */
  network: string
  /** unix ms of epoch 0 / round 0 */
  genesisTimeMs: number
  validators: GenesisValidator[]
  allocations: GenesisAllocation[]
  params: LedgerParams
  /**
   * hex sha256 of the data-shard manifest ({@link shardManifestHash} in verify.ts): the shard list data proofs
   * are checked against. Optional (absent, it is not part of the chain id); without it no validator can
   * check data proofs, so none are voted for.
   */
  dataManifestHash?: string
}

/** The parameters from seeds 000/002, with protocol defaults for the rest */
export function defaultParams (): LedgerParams {
  return {
    uptimeRewardPerMinute: rational(NEURO, 10n),
    inferenceRewardPerMillionTokens: rational(9n * NEURO, 10n),
    computeRewardPerBatch: rational(NEURO, 1000n),
    dataRewardPerSample: rational(NEURO, 10000n),
    qualityBonus: rational(3n, 2n),
    qualityLossThresholdMicro: 3_000_000n,
    stakingBeta: rational(1n, 10n),
    stakingUnit: 1000n * NEURO,
    stakingMultiplierCap: rational(2n),
    unbondingEpochs: 7n,
    slashFraction: rational(1n, 2n),
    reporterShare: rational(1n, 10n),
    inferenceFeeBurn: rational(1n, 5n),
    epochMs: 3_600_000,
    roundMs: 600_000,
    epochWindow: 1,
    roundWindow: 2,
    heartbeatSeconds: 60,
    maxInferenceTokensPerSecond: 5000,
    maxTrainingTokensPerProof: 10_000_000n,
    maxBatchesPerProof: 1000,
    maxSamplesPerProof: 1_000_000n,
    totalShards: 1024,
    shardsPerAssignment: 4
  }
}

/** A genesis with default parameters */
export function createGenesis (init: Partial<GenesisConfig> & Pick<GenesisConfig, 'validators'>): GenesisConfig {
  const g: GenesisConfig = {
    network: init.network ?? 'neuroshard-devnet',
    genesisTimeMs: init.genesisTimeMs ?? 0,
    validators: init.validators,
    allocations: init.allocations ?? [],
    params: { ...defaultParams(), ...(init.params ?? {}) },
    dataManifestHash: init.dataManifestHash
  }
  validateGenesis(g)
  return g
}

/** Canonical JSON: object keys sorted, bigints and numbers as decimal strings, no whitespace */
export function canonicalJSON (v: unknown): string {
  if (v === null || v === undefined) {
    return 'null'
  }
  if (typeof v === 'bigint' || typeof v === 'number') {
    return JSON.stringify(v.toString())
  }
  if (typeof v === 'string' || typeof v === 'boolean') {
    return JSON.stringify(v)
  }
  if (Array.isArray(v)) {
    return '[' + v.map(canonicalJSON).join(',') + ']'
  }
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>
    return '{' + Object.keys(o).filter(k => o[k] !== undefined).sort().map(k => JSON.stringify(k) + ':' + canonicalJSON(o[k])).join(',') + '}'
  }
  throw new InvalidGenesisError(`cannot canonicalise ${typeof v}`)
}

export function validateGenesis (g: GenesisConfig): void {
  if (!Array.isArray(g.validators) || g.validators.length === 0 || g.validators.length > 1000) {
    throw new InvalidGenesisError('genesis needs 1..1000 validators')
  }
  const seen = new Set<string>()
  for (const v of g.validators) {
    try {
      secp256k1.Point.fromBytes(fromHex(v.publicKey))
    } catch {
      throw new InvalidGenesisError(`validator key ${v.publicKey} is not a secp256k1 point`)
    }
    if (fromHex(v.publicKey).byteLength !== 33 || seen.has(v.publicKey)) {
      throw new InvalidGenesisError('validator keys must be distinct compressed keys')
    }
    seen.add(v.publicKey)
    checkAmount(v.stake, 'validator stake')
    if (v.stake === 0n) {
      throw new InvalidGenesisError('validator stake must be positive')
    }
  }
  for (const a of g.allocations) {
    if (!/^[0-9a-f]{40}$/.test(a.address)) {
      throw new InvalidGenesisError(`allocation address ${a.address} is not 20 bytes of hex`)
    }
    checkAmount(a.balance, 'allocation')
  }
  if (g.dataManifestHash !== undefined && (typeof g.dataManifestHash !== 'string' || !/^[0-9a-f]{64}$/.test(g.dataManifestHash))) {
    throw new InvalidGenesisError('dataManifestHash must be 32 bytes of lowercase hex')
  }
  if (typeof g.network !== 'string' || g.network.length > 256) {
    throw new InvalidGenesisError('network must be a string of at most 256 characters')
  }
  if (!Number.isSafeInteger(g.genesisTimeMs) || g.genesisTimeMs < 0) {
    throw new InvalidGenesisError('genesisTimeMs must be a finite non-negative integer (ms)')
  }
  const p = g.params
  if (p == null) {
    throw new InvalidGenesisError('params missing')
  }
  for (const k of ['epochMs', 'roundMs', 'heartbeatSeconds', 'maxInferenceTokensPerSecond', 'maxBatchesPerProof', 'totalShards', 'shardsPerAssignment'] as const) {
    if (!Number.isSafeInteger(p[k]) || p[k] <= 0) {
      throw new InvalidGenesisError(`params.${k} must be a positive integer`)
    }
  }
  for (const k of ['epochWindow', 'roundWindow'] as const) {
    if (!Number.isSafeInteger(p[k]) || p[k] < 0 || p[k] > 1000) {
      throw new InvalidGenesisError(`params.${k} must be an integer in [0, 1000]`)
    }
  }
  if (p.heartbeatSeconds * 1000 > p.epochMs) {
    throw new InvalidGenesisError('params.heartbeatSeconds must fit in an epoch')
  }
  if (p.maxBatchesPerProof > 1_000_000 || p.totalShards > 0xffffffff) {
    throw new InvalidGenesisError('params.maxBatchesPerProof ≤ 10^6 and totalShards < 2^32')
  }
  for (const k of ['unbondingEpochs', 'stakingUnit', 'maxTrainingTokensPerProof', 'maxSamplesPerProof'] as const) {
    if (typeof p[k] !== 'bigint' || p[k] <= 0n) {
      throw new InvalidGenesisError(`params.${k} must be a positive integer`)
    }
  }
  if (typeof p.qualityLossThresholdMicro !== 'bigint' || p.qualityLossThresholdMicro < 0n) {
    throw new InvalidGenesisError('params.qualityLossThresholdMicro must be a non-negative integer')
  }
  for (const k of ['uptimeRewardPerMinute', 'inferenceRewardPerMillionTokens', 'computeRewardPerBatch', 'dataRewardPerSample', 'qualityBonus', 'stakingBeta', 'stakingMultiplierCap'] as const) {
    const r = p[k]
    if (r == null || typeof r.num !== 'bigint' || typeof r.den !== 'bigint' || r.den <= 0n || r.num < 0n) {
      throw new InvalidGenesisError(`params.${k} must be a non-negative rational with a positive denominator`)
    }
  }
  for (const k of ['qualityBonus', 'stakingMultiplierCap'] as const) {
    if (p[k].num < p[k].den) {
      throw new InvalidGenesisError(`params.${k} must be at least 1`)
    }
  }
  if (p.shardsPerAssignment > p.totalShards) {
    throw new InvalidGenesisError('shardsPerAssignment > totalShards')
  }
  for (const k of ['slashFraction', 'reporterShare', 'inferenceFeeBurn'] as const) {
    if (p[k] == null || typeof p[k].num !== 'bigint' || typeof p[k].den !== 'bigint' || p[k].num > p[k].den || p[k].den <= 0n || p[k].num < 0n) {
      throw new InvalidGenesisError(`params.${k} must be in [0, 1]`)
    }
  }
}

/** chain id = sha256("neuroshard/ledger/v1/genesis" || 0 || canonicalJSON(genesis)); every signature commits to it */
export function chainIdOf (g: GenesisConfig): Uint8Array {
  return digest('neuroshard/ledger/v1/genesis', new TextEncoder().encode(canonicalJSON(g)))
}

/** Genesis plus derived lookups */
export interface Chain {
  genesis: GenesisConfig
  chainId: Uint8Array
  chainIdHex: string
  validatorKeys: Uint8Array[]
  validatorAddresses: Address[]
  totalVotingPower: bigint
}

export function loadChain (g: GenesisConfig): Chain {
  validateGenesis(g)
  const chainId = chainIdOf(g)
  const validatorKeys = g.validators.map(v => fromHex(v.publicKey))
  return {
    genesis: g,
    chainId,
    chainIdHex: toHex(chainId),
    validatorKeys,
    validatorAddresses: validatorKeys.map(k => addressOf(k)),
    totalVotingPower: g.validators.reduce((a, v) => a + v.stake, 0n)
  }
}

/** JSON form of a genesis (bigints as strings) and back */
export function genesisToJSON (g: GenesisConfig): string {
  return JSON.stringify(g, (_k, v) => typeof v === 'bigint' ? v.toString() : v, 2)
}

/** An integer of a genesis file: a JSON number up to 2^53 − 1 or a decimal string (spec §2); anything else is refused */
function genesisInt (v: unknown, what: string): bigint {
  if ((typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && /^-?[0-9]+$/.test(v))) {
    return BigInt(v)
  }
  throw new InvalidGenesisError(`${what} must be an integer (a JSON number below 2^53 or a decimal string)`)
}

export function genesisFromJSON (s: string): GenesisConfig {
  let g: GenesisConfig
  try {
    const raw = JSON.parse(s)
    const d = defaultParams()
    const params: any = {}
    for (const [k, def] of Object.entries(d)) {
      const v = raw.params?.[k]
      if (v === undefined) {
        throw new InvalidGenesisError(`params.${k} missing`)
      }
      if (typeof def === 'bigint') {
        params[k] = genesisInt(v, `params.${k}`)
      } else if (typeof def === 'number') {
        params[k] = Number(genesisInt(v, `params.${k}`))
      } else {
        params[k] = rational(genesisInt(v.num, `params.${k}.num`), genesisInt(v.den, `params.${k}.den`))
      }
    }
    g = {
      network: String(raw.network),
      genesisTimeMs: Number(genesisInt(raw.genesisTimeMs, 'genesisTimeMs')),
      validators: raw.validators.map((v: any) => ({ publicKey: String(v.publicKey), stake: genesisInt(v.stake, 'validator stake') })),
      allocations: raw.allocations.map((a: any) => ({ address: String(a.address), balance: genesisInt(a.balance, 'allocation balance') })),
      params,
      dataManifestHash: raw.dataManifestHash == null ? undefined : String(raw.dataManifestHash)
    }
  } catch (err: any) {
    // a missing member, a non-integer, JSON that does not parse: all are an invalid genesis (spec §12)
    throw err instanceof InvalidGenesisError ? err : new InvalidGenesisError(`malformed genesis: ${err.message}`)
  }
  validateGenesis(g)
  return g
}
