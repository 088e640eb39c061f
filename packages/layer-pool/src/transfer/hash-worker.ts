/**
 * The weight transfer's helper thread (see `hash-thread.ts`): it computes a fetch's whole-span
 * `contentHash` from bytes the main thread copies into shared staging slots as the verified prefix of
 * the stream grows, and touches the pages of new destination buffers so that their first-write page
 * faults are taken here, not on the thread that runs the network.
 *
 * Node builtins only, no TypeScript-only syntax: from the sources (tests) Node runs this file with type
 * stripping, from dist the compiled `.js`.
 */

import { createHash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'
import type { Hash } from 'node:crypto'

/** Messages from the main thread */
type Request =
  | { op: 'slots', slots: SharedArrayBuffer[] }
  | { op: 'open', job: number, prefix: Uint8Array }
  | { op: 'update', job: number, header?: Uint8Array, slot: number, length: number }
  | { op: 'digest', job: number }
  | { op: 'close', job: number }
  | { op: 'prefault', id: number, buffer: ArrayBuffer }

const PAGE = 4096
const jobs = new Map<number, Hash>()
let slots: Uint8Array[] = []

parentPort?.on('message', (msg: Request) => {
  switch (msg.op) {
    case 'slots':
      slots = msg.slots.map(s => new Uint8Array(s))
      break
    case 'open':
      jobs.set(msg.job, createHash('sha256').update(msg.prefix))
      break
    case 'update': {
      const h = jobs.get(msg.job)
      if (h != null) {
        if (msg.header != null) h.update(msg.header)
        h.update(slots[msg.slot].subarray(0, msg.length))
      }
      // the slot is free again whether or not the job still exists
      parentPort?.postMessage({ op: 'free', slot: msg.slot })
      break
    }
    case 'digest': {
      const h = jobs.get(msg.job)
      jobs.delete(msg.job)
      parentPort?.postMessage({ op: 'digest', job: msg.job, hex: h?.digest('hex') })
      break
    }
    case 'close':
      jobs.delete(msg.job)
      break
    case 'prefault': {
      // a write per page maps it (a read would map the shared zero page and fault again on the write)
      const bytes = new Uint8Array(msg.buffer)
      for (let i = 0; i < bytes.byteLength; i += PAGE) bytes[i] = 0
      parentPort?.postMessage({ op: 'prefault', id: msg.id, buffer: msg.buffer }, [msg.buffer])
      break
    }
  }
})
