import { createHash } from 'node:crypto'
import { InvalidParametersError } from '@neuroshard/interface'
import { windowOrder } from '@neuroshard/genesis-data'
import { DataError } from './errors.js'

/** Token ids of one shard (what `@neuroshard/genesis-data`'s loader yields as `Shard.tokens`) */
export type Tokens = ArrayLike<number>

/** Where a {@link TrainBatchStream} is: epoch and micro-batch within it. Part of the checkpoint. */
export interface DataPosition {
  epoch: number
  batch: number
}

/** A micro-batch of next-token pairs, int64 as the model's `input_ids`/`targets` take */
export interface TokenBatch {
  input: BigInt64Array
  target: BigInt64Array
  batchSize: number
  seqLen: number
}

/**
 * The seed of epoch `e`'s window order: the first 8 bytes of sha256("neuroshard/trainer/epoch" ‖ u64(seed) ‖ u64(e)),
 * so every epoch has its own order and any epoch can be recomputed from the checkpoint alone.
 */
export function epochSeed (seed: number, epoch: number): bigint {
  const b = Buffer.alloc(16)
  b.writeBigUInt64BE(BigInt(seed), 0)
  b.writeBigUInt64BE(BigInt(epoch), 8)
  const h = createHash('sha256').update('neuroshard/trainer/epoch').update(Buffer.of(0)).update(b).digest()
  return h.readBigUInt64BE(0)
}

function fill (shards: readonly Tokens[], windows: ReadonlyArray<[number, number]>, from: number, rows: number, seqLen: number): TokenBatch {
  const input = new BigInt64Array(rows * seqLen)
  const target = new BigInt64Array(rows * seqLen)
  for (let r = 0; r < rows; r++) {
    const [s, start] = windows[from + r]
    const tok = shards[s]
    const o = r * seqLen
    for (let t = 0; t < seqLen; t++) {
      input[o + t] = BigInt(tok[start + t])
      target[o + t] = BigInt(tok[start + t + 1])
    }
  }
  return { input, target, batchSize: rows, seqLen }
}

function checkShape (shards: readonly Tokens[], seqLen: number, batchSize: number): void {
  if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw new InvalidParametersError('seqLen must be a positive integer')
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new InvalidParametersError('batchSize must be a positive integer')
  if (!Array.isArray(shards) || shards.length === 0) throw new DataError('no token shards')
}

/**
 * An endless, seekable stream of training micro-batches over token shards. Windows of `seqLen + 1`
 * tokens start at multiples of `seqLen` inside each shard, exactly as `@neuroshard/genesis-data`'s
 * `batches()` cuts them (it reuses its `windowOrder`), shuffled per epoch with {@link epochSeed}; the
 * last incomplete batch of an epoch is dropped. Unlike `batches()` it can start at any
 * {@link DataPosition}, which is what exact resume needs.
 */
export class TrainBatchStream {
  readonly seqLen: number
  readonly batchSize: number
  readonly seed: number
  /** Full micro-batches per epoch */
  readonly batchesPerEpoch: number
  private readonly shards: readonly Tokens[]
  private epoch: number
  private batch: number
  private order: Array<[number, number]> | undefined
  private orderEpoch = -1

  constructor (shards: readonly Tokens[], options: { seqLen: number, batchSize: number, seed?: number, position?: DataPosition }) {
    checkShape(shards, options.seqLen, options.batchSize)
    this.shards = shards
    this.seqLen = options.seqLen
    this.batchSize = options.batchSize
    this.seed = options.seed ?? 0
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new InvalidParametersError('data seed must be a non-negative integer')
    let windows = 0
    for (const s of shards) windows += Math.max(0, Math.floor((s.length - 1) / this.seqLen))
    this.batchesPerEpoch = Math.floor(windows / this.batchSize)
    if (this.batchesPerEpoch === 0) {
      throw new DataError(`the training data holds ${windows} windows of ${this.seqLen + 1} tokens, fewer than one batch of ${this.batchSize}`)
    }
    const p = options.position ?? { epoch: 0, batch: 0 }
    if (!Number.isSafeInteger(p.epoch) || p.epoch < 0 || !Number.isSafeInteger(p.batch) || p.batch < 0 || p.batch > this.batchesPerEpoch) {
      throw new InvalidParametersError(`invalid data position ${JSON.stringify(p)}`)
    }
    this.epoch = p.epoch
    this.batch = p.batch
  }

  /** Position of the next batch */
  get position (): DataPosition {
    return { epoch: this.epoch, batch: this.batch }
  }

  /** The next micro-batch (wraps into the next epoch) */
  next (): TokenBatch {
    if (this.batch >= this.batchesPerEpoch) {
      this.epoch++
      this.batch = 0
    }
    if (this.orderEpoch !== this.epoch || this.order === undefined) {
      this.order = windowOrder(this.shards.map(s => s.length), this.seqLen, epochSeed(this.seed, this.epoch), true)
      this.orderEpoch = this.epoch
    }
    const b = fill(this.shards, this.order, this.batch * this.batchSize, this.batchSize, this.seqLen)
    this.batch++
    return b
  }
}

/**
 * The fixed validation batches: windows in shard order (no shuffle), at most `maxBatches` batches of
 * `batchSize` (the last one may be smaller), so every evaluation sees the same tokens.
 */
export function validationBatches (shards: readonly Tokens[], options: { seqLen: number, batchSize: number, maxBatches: number }): TokenBatch[] {
  checkShape(shards, options.seqLen, options.batchSize)
  const order = windowOrder(shards.map(s => s.length), options.seqLen, 0, false)
  const out: TokenBatch[] = []
  for (let i = 0; i < order.length && out.length < options.maxBatches; i += options.batchSize) {
    out.push(fill(shards, order, i, Math.min(options.batchSize, order.length - i), options.seqLen))
  }
  if (out.length === 0) throw new DataError(`the validation data holds no window of ${options.seqLen + 1} tokens`)
  return out
}

/** Check that every token id is below the vocabulary size (a wrong tokenizer/model pairing otherwise fails deep in onnxruntime) */
export function checkTokenRange (shards: readonly Tokens[], vocabSize: number): void {
  for (let s = 0; s < shards.length; s++) {
    const t = shards[s]
    for (let i = 0; i < t.length; i++) {
      const x = t[i]
      if (!(x >= 0 && x < vocabSize) || !Number.isInteger(x)) throw new DataError(`shard ${s} holds token ${x} at ${i}, outside the model's vocabulary of ${vocabSize}`)
    }
  }
}

/**
 * Unigram statistics of a token stream, in nats per token: `entropy` is the entropy of the empirical
 * distribution of `tokens` itself; `crossEntropy` (when `reference` is given) is the cost of coding
 * `tokens` with the add-one-smoothed unigram distribution of `reference` (e.g. the training split),
 * the loss a model that ignores context would reach.
 */
export function unigramEntropy (tokens: readonly Tokens[], vocabSize: number, reference?: readonly Tokens[]): { entropy: number, crossEntropy?: number, tokens: number } {
  const count = (arrs: readonly Tokens[]): { c: Float64Array, n: number } => {
    const c = new Float64Array(vocabSize)
    let n = 0
    for (const a of arrs) for (let i = 0; i < a.length; i++) { c[a[i]]++; n++ }
    return { c, n }
  }
  const { c, n } = count(tokens)
  let entropy = 0
  for (let i = 0; i < vocabSize; i++) if (c[i] > 0) entropy -= (c[i] / n) * Math.log(c[i] / n)
  if (reference === undefined) return { entropy, tokens: n }
  const r = count(reference)
  let ce = 0
  for (let i = 0; i < vocabSize; i++) if (c[i] > 0) ce -= (c[i] / n) * Math.log((r.c[i] + 1) / (r.n + vocabSize))
  return { entropy, crossEntropy: ce, tokens: n }
}
