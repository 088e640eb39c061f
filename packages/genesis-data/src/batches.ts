import { InvalidParametersError } from '@neuroshard/interface'
import { SHUFFLE_DOMAIN } from './constants.js'
import { sha256 } from './hash.js'
import type { TokenArray } from './shard.js'

export interface BatchOptions {
  /** Tokens per sequence (the model's context length) */
  seqLen: number
  /** Sequences per batch */
  batchSize: number
  /** Seed of the batch order, an integer in [0, 2^64); mix in the epoch to get a new order each epoch @default 0 */
  seed?: number | bigint
  /** Shuffle the windows (false: shard order, e.g. for evaluation) @default true */
  shuffle?: boolean
  /** `int64` (`BigInt64Array`, what the model's `input_ids` take) or `int32` @default 'int64' */
  dtype?: 'int64' | 'int32'
  /** Drop the last, smaller batch @default true */
  dropLast?: boolean
}

export interface Batch<T extends BigInt64Array | Int32Array = BigInt64Array | Int32Array> {
  /** `[batchSize, seqLen]`, row-major */
  input: T
  /** `input` shifted left by one token: `target[b, t]` is the token after `input[b, t]` */
  target: T
  batchSize: number
  seqLen: number
}

/**
 * The deterministic random stream of the batch order: block `i` is
 * `sha256(utf8("neuroshard-genesis-shuffle/v1") ‖ 0x00 ‖ u64BE(seed) ‖ u64BE(i))`, read as 8
 * big-endian u32 words.
 */
export class ShuffleStream {
  private readonly prefix: Uint8Array
  private block = 0n
  private words: number[] = []

  constructor (seed: number | bigint) {
    const domain = new TextEncoder().encode(SHUFFLE_DOMAIN)
    this.prefix = new Uint8Array(domain.length + 1 + 8 + 8)
    this.prefix.set(domain, 0)
    new DataView(this.prefix.buffer).setBigUint64(domain.length + 1, BigInt(seed), false)
  }

  nextU32 (): number {
    if (this.words.length === 0) {
      new DataView(this.prefix.buffer).setBigUint64(this.prefix.length - 8, this.block++, false)
      const h = sha256(this.prefix)
      const v = new DataView(h.buffer, h.byteOffset, 32)
      for (let i = 7; i >= 0; i--) this.words.push(v.getUint32(4 * i, false))
    }
    return this.words.pop() as number
  }

  /** Uniform integer in [0, m) by rejection sampling */
  below (m: number): number {
    const limit = 2 ** 32 - (2 ** 32 % m)
    for (;;) {
      const x = this.nextU32()
      if (x < limit) return x % m
    }
  }
}

/**
 * Every window of `seqLen + 1` tokens, starting at multiples of `seqLen` inside each shard (windows
 * never cross shards), as `[shardIndex, start]`, shuffled by Fisher–Yates on {@link ShuffleStream}.
 */
export function windowOrder (shardLengths: readonly number[], seqLen: number, seed: number | bigint, shuffle = true): Array<[number, number]> {
  const order: Array<[number, number]> = []
  for (let s = 0; s < shardLengths.length; s++) {
    const n = Math.floor((shardLengths[s] - 1) / seqLen)
    for (let j = 0; j < n; j++) order.push([s, j * seqLen])
  }
  if (shuffle) {
    const rng = new ShuffleStream(seed)
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.below(i + 1)
      const t = order[i]
      order[i] = order[j]
      order[j] = t
    }
  }
  return order
}

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * Yield `(input, target)` batches from shards (`Shard.tokens` or raw token arrays), in a
 * deterministic order given by `seed`.
 */
export function * batches (shards: ReadonlyArray<TokenArray | { tokens: TokenArray }>, options: BatchOptions): Generator<Batch> {
  const { seqLen, batchSize } = options
  if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw new InvalidParametersError('seqLen must be a positive integer')
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new InvalidParametersError('batchSize must be a positive integer')
  const seed = options.seed ?? 0
  if (typeof seed === 'number' ? !(Number.isSafeInteger(seed) && seed >= 0) : !(typeof seed === 'bigint' && seed >= 0n && seed < 2n ** 64n)) {
    throw new InvalidParametersError('seed must be an integer in [0, 2^64)')
  }
  const int64 = (options.dtype ?? 'int64') === 'int64'
  const arrays = shards.map(s => ('tokens' in s ? s.tokens : s))
  const order = windowOrder(arrays.map(a => a.length), seqLen, seed, options.shuffle ?? true)
  const dropLast = options.dropLast ?? true
  for (let b = 0; b < order.length; b += batchSize) {
    const rows = Math.min(batchSize, order.length - b)
    if (rows < batchSize && dropLast) return
    const size = rows * seqLen
    const input = int64 ? new BigInt64Array(size) : new Int32Array(size)
    const target = int64 ? new BigInt64Array(size) : new Int32Array(size)
    // int64 on little-endian: write the low 32-bit word, the high word stays 0 (ids are < 2^32)
    const in32 = int64 && LE ? new Int32Array(input.buffer) : undefined
    const tg32 = int64 && LE ? new Int32Array(target.buffer) : undefined
    for (let r = 0; r < rows; r++) {
      const [s, start] = order[b + r]
      const tok = arrays[s]
      const o = r * seqLen
      for (let t = 0; t < seqLen; t++) {
        const x = tok[start + t]
        const y = tok[start + t + 1]
        if (in32 !== undefined && tg32 !== undefined) {
          in32[2 * (o + t)] = x
          tg32[2 * (o + t)] = y
        } else if (int64) {
          (input as BigInt64Array)[o + t] = BigInt(x);
          (target as BigInt64Array)[o + t] = BigInt(y)
        } else {
          (input as Int32Array)[o + t] = x;
          (target as Int32Array)[o + t] = y
        }
      }
    }
    yield { input, target, batchSize: rows, seqLen }
  }
}
