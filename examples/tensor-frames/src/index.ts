/**
 * Example: tensor frames with `@neuroshard/tensor`.
 *
 * A NeuroShard node hands activations to the next node as binary tensor frames, and publishes
 * pseudo-gradients int8-quantized. This program walks through what a sender and a receiver do:
 *
 * 1. encode a float32 activation tensor (batch 2 × seq 8 × hidden 64) into one frame,
 * 2. decode it on the "receiving side" with a size cap (zero-copy view into the frame),
 * 3. quantize the same values to blockwise int8, send that (4× smaller) and check every
 *    dequantized value against the documented error bound,
 * 4. hash the tensor (the same hash from the tensor and from its frame bytes),
 * 5. show the typed error a corrupted frame produces.
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-tensor-frames start`
 */
import { pathToFileURL } from 'node:url'
import {
  decodeTensorFrame, dequantizeInt8, encodeTensorFrame, int8ErrorBound, quantizeInt8, tensorHashHex
} from '@neuroshard/tensor'

export interface TensorFramesResult {
  /** bytes of the float32 frame */
  float32FrameBytes: number
  /** bytes of the int8 frame (values + one float32 scale per block) */
  int8FrameBytes: number
  /** the decoded float32 tensor equals the original, element for element */
  roundTripExact: boolean
  /** largest |x − dequantized(x)| over all elements */
  maxInt8Error: number
  /** number of elements whose error exceeds their block's bound (0 is the promise) */
  boundViolations: number
  /** SHA-256 of the tensor, computed from the tensor object and from the frame bytes */
  hashFromTensor: string
  hashFromFrame: string
  /** `err.name` of decoding a frame with a flipped magic byte */
  corruptFrameError: string
}

export async function main (log: (line: string) => void = console.log): Promise<TensorFramesResult> {
  // --- 1. an activation tensor, as a transformer block would output it ---------------------------
  const shape = [2, 8, 64]
  const acts = new Float32Array(2 * 8 * 64).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 7)))
  const frame = encodeTensorFrame({ dtype: 'float32', shape, name: 'block.3.out', data: acts })
  log(`encoded float32 activations ${JSON.stringify(shape)} → ${frame.byteLength} bytes (${acts.byteLength} of payload)`)

  // --- 2. the receiver decodes it. `maxBytes` is the cap a network reader must always pass: ---------
  // the header is validated against it before anything is allocated.
  const received = decodeTensorFrame(frame, { maxBytes: 1024 * 1024 })
  if (received.dtype !== 'float32') throw new Error(`expected float32, got ${received.dtype}`)
  const roundTripExact = received.data.length === acts.length && received.data.every((v, i) => v === acts[i])
  log(`decoded '${received.name ?? ''}' ${received.dtype} ${JSON.stringify(received.shape)}, identical to the original: ${roundTripExact}`)

  // --- 3. int8: one float32 scale per block of 64 values, each value rounded to scale × q -----------
  const q = quantizeInt8(acts, { blockSize: 64 })
  const small = encodeTensorFrame({ dtype: 'int8', shape, ...q })
  const back = decodeTensorFrame(small, { maxBytes: 1024 * 1024 })
  if (back.dtype !== 'int8') throw new Error(`expected int8, got ${back.dtype}`)
  const approx = dequantizeInt8(back)
  let maxInt8Error = 0
  let boundViolations = 0
  for (let i = 0; i < acts.length; i++) {
    const err = Math.abs(acts[i] - approx[i])
    maxInt8Error = Math.max(maxInt8Error, err)
    // the bound is per block: about absmax(block) / 254
    if (err > int8ErrorBound(q.scales[Math.floor(i / q.blockSize)])) boundViolations++
  }
  log(`int8 frame: ${small.byteLength} bytes (${(frame.byteLength / small.byteLength).toFixed(2)}× smaller), ` +
    `max error ${maxInt8Error.toExponential(3)}, bound of the first block ${int8ErrorBound(q.scales[0]).toExponential(3)}, ` +
    `elements over their bound: ${boundViolations}`)

  // --- 4. content hash: the same from the tensor object and from the canonical frame bytes ---------
  const hashFromTensor = tensorHashHex({ dtype: 'float32', shape, name: 'block.3.out', data: acts })
  const hashFromFrame = tensorHashHex(frame)
  log(`sha256 from tensor ${hashFromTensor.slice(0, 16)}…, from frame ${hashFromFrame.slice(0, 16)}…, equal: ${hashFromTensor === hashFromFrame}`)

  // --- 5. bad input is a typed error, never a crash or garbage ---------------------------------------
  const corrupt = Uint8Array.from(frame)
  corrupt[0] ^= 0xff
  let corruptFrameError = 'none'
  try {
    decodeTensorFrame(corrupt)
  } catch (err) {
    corruptFrameError = (err as Error).name
    log(`a frame with a flipped magic byte → ${corruptFrameError}: ${(err as Error).message}`)
  }

  return {
    float32FrameBytes: frame.byteLength,
    int8FrameBytes: small.byteLength,
    roundTripExact,
    maxInt8Error,
    boundViolations,
    hashFromTensor,
    hashFromFrame,
    corruptFrameError
  }
}

// run only when executed directly (`node dist/src/index.js`), not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
