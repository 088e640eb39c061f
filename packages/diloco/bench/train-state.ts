/**
 * The bench's full training-state file (issue #11, "continued run" protocol of the README): what a sync-DP run
 * holds after `step` optimizer steps, so that sync DP and every DiLoCo worker continue it as one run — the weights,
 * the AdamW moments m and v (each in the span layout's order, float32), the step count (the schedule and AdamW's bias
 * correction go on from it) and the position of each of the run's data streams (stream i = worker i's shards).
 *
 * Layout, little-endian: "NSDLTS01" (8 bytes), u32 step, u32 n (floats per tensor), u32 streams,
 * then per stream u32 epoch, u32 batch, then the weights, m and v (n float32 each).
 * Bench-only: not a wire format and not in specs/.
 */

import { InvalidParametersError } from '@neuroshard/interface'
import type { DataPosition } from '@neuroshard/trainer'

export interface TrainState {
  step: number
  weights: Float32Array
  m: Float32Array
  v: Float32Array
  positions: DataPosition[]
}

const MAGIC = 'NSDLTS01'
const U32_MAX = 0xffffffff

const u32 = (name: string, x: number): number => {
  if (!Number.isSafeInteger(x) || x < 0 || x > U32_MAX) throw new InvalidParametersError(`${name} must be an integer in [0, 2^32), got ${x}`)
  return x
}

export function encodeTrainState (s: TrainState): Uint8Array {
  const n = s.weights.length
  if (s.m.length !== n || s.v.length !== n) throw new InvalidParametersError(`m (${s.m.length}) and v (${s.v.length}) must have the weights' ${n} elements`)
  const head = 8 + 12 + 8 * s.positions.length
  const out = new Uint8Array(head + 12 * n)
  const dv = new DataView(out.buffer)
  out.set(new TextEncoder().encode(MAGIC), 0)
  dv.setUint32(8, u32('step', s.step), true)
  dv.setUint32(12, u32('n', n), true)
  dv.setUint32(16, u32('streams', s.positions.length), true)
  s.positions.forEach((p, i) => {
    dv.setUint32(20 + 8 * i, u32(`positions[${i}].epoch`, p.epoch), true)
    dv.setUint32(24 + 8 * i, u32(`positions[${i}].batch`, p.batch), true)
  })
  for (const [k, a] of [s.weights, s.m, s.v].entries()) {
    const o = head + 4 * n * k
    for (let i = 0; i < n; i++) dv.setFloat32(o + 4 * i, a[i], true)
  }
  return out
}

/** Decode a training-state file; `n` (the span layout's size) must match */
export function decodeTrainState (bytes: Uint8Array, n: number): TrainState {
  if (bytes.byteLength < 20 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) throw new InvalidParametersError(`not a training-state file (no ${MAGIC} header)`)
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const step = dv.getUint32(8, true)
  const size = dv.getUint32(12, true)
  const streams = dv.getUint32(16, true)
  if (size !== n) throw new InvalidParametersError(`training-state file holds ${size} floats per tensor, this model has ${n}`)
  const head = 20 + 8 * streams
  if (bytes.byteLength !== head + 12 * n) throw new InvalidParametersError(`training-state file is ${bytes.byteLength} bytes, expected ${head + 12 * n}`)
  const positions = Array.from({ length: streams }, (_, i) => ({ epoch: dv.getUint32(20 + 8 * i, true), batch: dv.getUint32(24 + 8 * i, true) }))
  const [weights, m, v] = [0, 1, 2].map(k => {
    const a = new Float32Array(n)
    for (let i = 0; i < n; i++) a[i] = dv.getFloat32(head + 4 * n * k + 4 * i, true)
    return a
  })
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(weights[i]) || !Number.isFinite(m[i]) || !(v[i] >= 0 && Number.isFinite(v[i]))) {
      throw new InvalidParametersError(`training-state file: weights, m or v not finite (or v negative) at ${i}`)
    }
  }
  return { step, weights, m, v, positions }
}
