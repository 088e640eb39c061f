/**
 * Codecs simulated in the bench only (not on the wire, not in specs/diloco): their exact payload size and what a
 * receiver would decode, with error feedback as the service applies it. Used by bench/experiments.ts (issue #11,
 * the bytes goal) to try a codec before it is worth a spec revision.
 *
 * - `lowRank`: PowerSGD-style (Vogels et al. 2019) rank-r factors of every 2-D parameter of the pseudo-gradient,
 *   one power iteration per round warm-started from the worker's previous Q; P is orthonormalised, P and Q sent as
 *   int8 with one float32 scale per column; 1-D parameters (norm weights) as int8 with one scale per tensor.
 * - `packedSparse`: the package's sparse codec (chunk-wise top-k, b-bit values) with its indices packed in
 *   ⌈log2 chunk⌉ bits instead of 16: decoded values are the sparse codec's own, only the byte count differs.
 */

import { InvalidParametersError } from '@neuroshard/interface'
import { decodePayload, encodePayload } from '../src/index.js'
import type { ResolvedCodec, SpanLayout } from '../src/index.js'

export interface SimCodec {
  label: string
  /** payload bytes of one node in round `round` */
  bytes: (round: number) => number
  /** what receivers decode from the payload that worker `worker` encodes from `e` in round `round` */
  roundTrip: (e: Float32Array, round: number, worker: number) => Float32Array
}

/**
 * Error feedback for a simulated codec, as `ErrorFeedback.compress` does it for the wire codecs:
 * `e ← β·e + Δ`; decode(encode(e)) is what is sent; `e ← e − decoded`. Returns the decoded vector.
 */
export function simCompress (residual: Float32Array, delta: Float32Array, codec: SimCodec, round: number, worker: number, decay = 1): Float32Array {
  if (delta.length !== residual.length) throw new InvalidParametersError(`delta has ${delta.length} elements, the residual ${residual.length}`)
  if (!(decay >= 0 && decay <= 1)) throw new InvalidParametersError(`error-feedback decay must be in [0, 1], got ${decay}`)
  for (let k = 0; k < residual.length; k++) residual[k] = Math.fround(Math.fround(decay * residual[k]) + delta[k])
  const decoded = codec.roundTrip(residual, round, worker)
  for (let k = 0; k < residual.length; k++) residual[k] = Math.fround(residual[k] - decoded[k])
  return decoded
}

/** Deterministic N(0, 1)-ish draws (Box–Muller on a 32-bit LCG) */
function gaussian (seed: number): () => number {
  let s = seed >>> 0
  const u = (): number => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 0.5) / 4294967296 }
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u())
}

/** int8 with one absmax scale: what a receiver decodes from (scale, round(x / scale · 127)) */
function int8RoundTrip (x: Float64Array | Float32Array): Float64Array {
  let absmax = 0
  for (let i = 0; i < x.length; i++) absmax = Math.max(absmax, Math.abs(x[i]))
  const out = new Float64Array(x.length)
  const scale = Math.fround(absmax / 127)
  if (scale === 0) return out
  for (let i = 0; i < x.length; i++) out[i] = Math.fround(Math.max(-127, Math.min(127, Math.round(x[i] / scale))) * scale)
  return out
}

interface Matrix { offset: number, rows: number, cols: number }

/**
 * Rank-`rank` PowerSGD with int8 factors for every 2-D parameter of `layout`, int8 for the others.
 * Bytes per round: Σ_matrices rank·(rows + cols) + 2·rank·4, plus Σ_vectors size + 4. `workers` workers keep their
 * own warm-start Q (seeded identically, so worker i's run does not depend on the others).
 */
export function lowRank (layout: SpanLayout, rank: number, workers: number): SimCodec {
  if (!Number.isSafeInteger(rank) || rank < 1) throw new InvalidParametersError(`rank must be a positive integer, got ${rank}`)
  const matrices: Matrix[] = []
  const vectors: Array<{ offset: number, size: number }> = []
  for (const e of layout.entries) {
    if (e.shape.length === 2 && Math.min(e.shape[0], e.shape[1]) > rank) matrices.push({ offset: e.offset, rows: e.shape[0], cols: e.shape[1] })
    else vectors.push({ offset: e.offset, size: e.size })
  }
  let perRound = 0
  for (const m of matrices) perRound += rank * (m.rows + m.cols) + 2 * rank * 4
  for (const v of vectors) perRound += v.size + 4
  // warm-start Q per worker and matrix (cols × rank, column-major: Q[c][j] at j·cols + c)
  const qs: Float64Array[][] = Array.from({ length: workers }, () => matrices.map((m, mi) => {
    const g = gaussian(0x5eed + mi)
    return Float64Array.from({ length: m.cols * rank }, g)
  }))
  return {
    label: `lowrank(r ${rank}, int8)`,
    bytes: () => perRound,
    roundTrip: (e, _round, worker) => {
      if (worker < 0 || worker >= workers) throw new InvalidParametersError(`worker ${worker} out of range`)
      const out = new Float32Array(e.length)
      matrices.forEach((m, mi) => {
        const { offset, rows, cols } = m
        const q = qs[worker][mi]
        // P = M Q (rows × rank, column-major)
        const p = new Float64Array(rows * rank)
        for (let i = 0; i < rows; i++) {
          const row = offset + i * cols
          for (let j = 0; j < rank; j++) {
            let s = 0
            const qj = j * cols
            for (let c = 0; c < cols; c++) s += e[row + c] * q[qj + c]
            p[j * rows + i] = s
          }
        }
        // orthonormalise P's columns (modified Gram–Schmidt); a zero column stays zero
        for (let j = 0; j < rank; j++) {
          for (let k = 0; k < j; k++) {
            let d = 0
            for (let i = 0; i < rows; i++) d += p[j * rows + i] * p[k * rows + i]
            for (let i = 0; i < rows; i++) p[j * rows + i] -= d * p[k * rows + i]
          }
          let nrm = 0
          for (let i = 0; i < rows; i++) nrm += p[j * rows + i] ** 2
          nrm = Math.sqrt(nrm)
          for (let i = 0; i < rows; i++) p[j * rows + i] = nrm > 1e-30 ? p[j * rows + i] / nrm : 0
        }
        // Q = Mᵀ P (cols × rank)
        const qn = new Float64Array(cols * rank)
        for (let i = 0; i < rows; i++) {
          const row = offset + i * cols
          for (let j = 0; j < rank; j++) {
            const pij = p[j * rows + i]
            if (pij === 0) continue
            const qj = j * cols
            for (let c = 0; c < cols; c++) qn[qj + c] += e[row + c] * pij
          }
        }
        qs[worker][mi] = qn // warm start of the next round (the unquantised Q, local)
        // what travels: P and Q column by column, int8 with one scale each
        const ph = new Float64Array(rows * rank)
        const qh = new Float64Array(cols * rank)
        for (let j = 0; j < rank; j++) {
          ph.set(int8RoundTrip(p.subarray(j * rows, (j + 1) * rows)), j * rows)
          qh.set(int8RoundTrip(qn.subarray(j * cols, (j + 1) * cols)), j * cols)
        }
        for (let i = 0; i < rows; i++) {
          for (let c = 0; c < cols; c++) {
            let s = 0
            for (let j = 0; j < rank; j++) s += ph[j * rows + i] * qh[j * cols + c]
            out[offset + i * cols + c] = Math.fround(s)
          }
        }
      })
      for (const v of vectors) out.set(int8RoundTrip(e.subarray(v.offset, v.offset + v.size)), v.offset)
      return out
    }
  }
}

/** The sparse codec's top-k values with indices packed in ⌈log2 chunk⌉ bits: Σ_chunks 4 + ⌈k·idx/8⌉ + ⌈k·b/8⌉ */
export function packedSparse (n: number, codec: ResolvedCodec): SimCodec {
  if (codec.codec !== 'sparse') throw new InvalidParametersError('packedSparse needs the sparse codec')
  const idxBits = Math.max(1, Math.ceil(Math.log2(codec.chunk)))
  let size = 0
  for (let start = 0; start < n; start += codec.chunk) {
    const k = Math.min(codec.topK, codec.chunk, n - start)
    size += 4 + Math.ceil(k * idxBits / 8) + Math.ceil(k * codec.bits / 8)
  }
  return {
    label: `sparse(k ${codec.topK}/${codec.chunk}, ${idxBits}-bit idx, ${codec.bits}-bit)`,
    bytes: () => size,
    roundTrip: (e) => decodePayload(encodePayload(e, codec), n, codec)
  }
}

/**
 * Bits of a chunk's sorted indices as Rice-coded gaps (g₁ = i₁, gⱼ = iⱼ − iⱼ₋₁ − 1), with the chunk's best Rice
 * parameter p ∈ [0, 15] sent in 4 bits: 4 + Σ (⌊g / 2^p⌋ + 1 + p)
 */
export function riceIndexBits (sorted: ArrayLike<number>): number {
  let best = Infinity
  for (let p = 0; p < 16; p++) {
    let bits = 4
    let prev = -1
    for (let j = 0; j < sorted.length; j++) {
      const g = sorted[j] - prev - 1
      prev = sorted[j]
      bits += Math.floor(g / 2 ** p) + 1 + p
    }
    best = Math.min(best, bits)
  }
  return best
}

/**
 * Chunk-wise top-k (the wire codec's choice: largest |x|, ties to the lower index) with Rice-coded index gaps, the
 * size measured on each payload (its largest over the workers of a round is what `bytes(round)` counts). Values:
 * `'2bit'` = the wire sparse codec's (its absmax scale and 2-bit levels, decoded by it); `'sign'` = the sign of each
 * kept value times the chunk's mean |x| over the kept values (one float32 per chunk, 1 bit per value).
 * Per chunk: 4 + ⌈(index bits + k·value bits) / 8⌉ bytes.
 */
export function riceSparse (n: number, chunk: number, topK: number, values: '2bit' | 'sign'): SimCodec {
  const wire = values === '2bit' ? { codec: 'sparse' as const, blockSize: 0, chunk, topK, bits: 2 } : undefined
  const sizes = new Map<number, number>()
  const order = new Uint32Array(chunk)
  return {
    label: `sparse(k ${topK}/${chunk}, Rice idx, ${values === '2bit' ? '2-bit' : 'sign + mean'})`,
    bytes: (round) => {
      const s = sizes.get(round)
      if (s === undefined) throw new InvalidParametersError(`no payload encoded in round ${round}`)
      return s
    },
    roundTrip: (e, round) => {
      const out = wire !== undefined ? decodePayload(encodePayload(e, wire), n, wire) : new Float32Array(n)
      let size = 0
      for (let start = 0; start < n; start += chunk) {
        const len = Math.min(chunk, n - start)
        const k = Math.min(topK, len)
        const idx = order.subarray(0, len)
        for (let i = 0; i < len; i++) idx[i] = i
        idx.sort((a, b) => {
          const d = Math.abs(e[start + b]) - Math.abs(e[start + a])
          return d !== 0 ? d : a - b
        })
        const chosen = idx.slice(0, k).sort()
        size += 4 + Math.ceil((riceIndexBits(chosen) + k * (values === '2bit' ? 2 : 1)) / 8)
        if (values === 'sign') {
          let mean = 0
          for (let j = 0; j < k; j++) mean += Math.abs(e[start + chosen[j]])
          const scale = Math.fround(mean / k)
          for (let j = 0; j < k; j++) out[start + chosen[j]] = e[start + chosen[j]] < 0 ? -scale : scale
        }
      }
      sizes.set(round, Math.max(sizes.get(round) ?? 0, size))
      return out
    }
  }
}
