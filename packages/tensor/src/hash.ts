/**
 * Content hash of a tensor: SHA-256 of its canonical frame bytes (specs/tensor-frame/README.md §Content hash).
 * Uses Node's native `node:crypto` (several times faster than a JavaScript SHA-256 on 64 MiB payloads);
 * the payload is hashed in place, never copied into a frame first.
 */

import { createHash } from 'node:crypto'
import { encodeTensorFrameParts, validateTensorFrame, type DecodeTensorFrameOptions } from './frame.js'
import type { Tensor } from './types.js'

/**
 * SHA-256 of the canonical frame of `input`: a tensor, or the bytes of a frame (validated first, so a
 * malformed frame throws rather than hashes). A tensor and its encoded frame hash the same, in every client.
 */
export function tensorHash (input: Tensor | Uint8Array, options: Pick<DecodeTensorFrameOptions, 'maxBytes'> = {}): Uint8Array {
  const h = createHash('sha256')
  if (input instanceof Uint8Array) {
    validateTensorFrame(input, options)
    h.update(input)
  } else {
    for (const part of encodeTensorFrameParts(input)) h.update(part)
  }
  const d = h.digest()
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
}

/** `tensorHash` as lowercase hex */
export function tensorHashHex (input: Tensor | Uint8Array, options: Pick<DecodeTensorFrameOptions, 'maxBytes'> = {}): string {
  return Buffer.from(tensorHash(input, options)).toString('hex')
}
