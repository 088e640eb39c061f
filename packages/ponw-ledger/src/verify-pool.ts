import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { verifyDigest } from './keys.js'

const RECORD = 64 + 32 + 33

/** One signature check: 64-byte compact signature over a 32-byte digest by a 33-byte key */
export interface SignatureCheck {
  signature: Uint8Array
  digest: Uint8Array
  publicKey: Uint8Array
}

export interface SignatureVerifierPoolInit {
  /**
   * worker threads
   *
   * @default availableParallelism()
   */
  workers?: number
}

/**
 * Verifies secp256k1 signatures in worker threads, in parallel (a certificate carries 1 + quorum signatures;
 * one core verifies ≈ 4,200/s with OpenSSL). Batches are split evenly across workers.
 * If the compiled worker file is not present (running from TypeScript sources), it verifies inline.
 */
export class SignatureVerifierPool {
  readonly #workers: Worker[] = []
  readonly #waiting = new Map<number, (out: Uint8Array) => void>()
  #next = 0

  constructor (init: SignatureVerifierPoolInit = {}) {
    const file = fileURLToPath(new URL('./verify-worker.js', import.meta.url))
    if (!existsSync(file)) {
      return
    }
    const n = Math.max(1, init.workers ?? availableParallelism())
    for (let i = 0; i < n; i++) {
      const w = new Worker(file)
      w.on('message', (m: { id: number, out: Uint8Array }) => {
        const cb = this.#waiting.get(m.id)
        this.#waiting.delete(m.id)
        if (this.#waiting.size === 0) {
          this.#workers.forEach(x => x.unref())
        }
        cb?.(m.out)
      })
      // idle workers do not keep the process alive; in-flight requests do
      w.unref()
      this.#workers.push(w)
    }
  }

  /** number of worker threads (0 = verifying inline) */
  get size (): number {
    return this.#workers.length
  }

  /** One boolean per check, in order */
  async verify (checks: SignatureCheck[]): Promise<boolean[]> {
    if (this.#workers.length === 0 || checks.length < 16) {
      return checks.map(c => verifyDigest(c.signature, c.digest, c.publicKey))
    }
    const per = Math.ceil(checks.length / this.#workers.length)
    const parts = await Promise.all(this.#workers.map(async (w, k) => {
      const slice = checks.slice(k * per, (k + 1) * per)
      const data = new Uint8Array(slice.length * RECORD)
      slice.forEach((c, i) => {
        if (c.signature.byteLength === 64 && c.digest.byteLength === 32 && c.publicKey.byteLength === 33) {
          data.set(c.signature, i * RECORD)
          data.set(c.digest, i * RECORD + 64)
          data.set(c.publicKey, i * RECORD + 96)
        }
      })
      const id = this.#next++
      return new Promise<Uint8Array>((resolve) => {
        w.ref()
        this.#waiting.set(id, resolve)
        w.postMessage({ id, data }, [data.buffer])
      })
    }))
    return parts.flatMap(p => [...p].map(b => b === 1))
  }

  async close (): Promise<void> {
    await Promise.all(this.#workers.map(async w => w.terminate()))
    this.#workers.length = 0
  }
}
