/**
 * The group state a joiner downloads (specs/diloco §4): `u64le(round) ‖ base f32le[n] ‖ momentum f32le[n]` —
 * the base weights of `round` and the outer Nesterov momentum. Inner AdamW state is per replica and not part
 * of it.
 */

import { StateSyncError } from './errors.js'

export function encodeState (round: number, base: Float32Array, momentum: Float32Array): Uint8Array<ArrayBuffer> {
  const n = base.length
  const out = new Uint8Array(8 + 8 * n)
  new DataView(out.buffer).setBigUint64(0, BigInt(round), true)
  out.set(new Uint8Array(base.buffer, base.byteOffset, 4 * n), 8)
  out.set(new Uint8Array(momentum.buffer, momentum.byteOffset, 4 * n), 8 + 4 * n)
  return out
}

export function decodeState (blob: Uint8Array, n: number): { round: number, base: Float32Array, momentum: Float32Array } {
  if (blob.byteLength !== 8 + 8 * n) throw new StateSyncError(`state of ${blob.byteLength} bytes, expected ${8 + 8 * n}`)
  const copy = new Uint8Array(blob)
  const round = new DataView(copy.buffer).getBigUint64(0, true)
  if (round > BigInt(Number.MAX_SAFE_INTEGER)) throw new StateSyncError('state round is not a safe integer')
  const base = new Float32Array(copy.buffer.slice(8, 8 + 4 * n))
  const momentum = new Float32Array(copy.buffer.slice(8 + 4 * n))
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(base[i]) || !Number.isFinite(momentum[i])) throw new StateSyncError(`state value ${i} is not finite`)
  }
  return { round: Number(round), base, momentum }
}
