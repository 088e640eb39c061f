/**
 * Worker thread of {@link SignatureVerifierPool}: verifies packed (signature 64 ‖ digest 32 ‖ key 33)
 * records and answers one byte per record (1 = valid).
 */
import { parentPort } from 'node:worker_threads'
import { verifyDigest } from './keys.js'

const RECORD = 64 + 32 + 33

parentPort?.on('message', (msg: { id: number, data: Uint8Array }) => {
  const n = msg.data.byteLength / RECORD
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const o = i * RECORD
    out[i] = verifyDigest(msg.data.subarray(o, o + 64), msg.data.subarray(o + 64, o + 96), msg.data.subarray(o + 96, o + RECORD)) ? 1 : 0
  }
  parentPort?.postMessage({ id: msg.id, out }, [out.buffer])
})
