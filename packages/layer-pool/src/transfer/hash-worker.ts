/**
 * The weight transfer's helper thread (see `hash-thread.ts`). For the main thread it
 *
 * - owns the destination of a fetch into new memory: the main thread copies each received chunk into a
 *   shared staging slot with its expected sha256; here the chunk is hashed, compared, copied to its place
 *   (the first write to that memory, whose page faults cost as much as a hash pass on some machines)
 *   and fed to the whole-span `contentHash` once the verified prefix reaches it; the buffers go back to
 *   the main thread (transferred, not copied) at the end;
 * - computes a chunk's sha256 from a staging slot (fetches into the caller's buffer);
 * - computes a whole-span `contentHash` from bytes the main thread copies into staging slots as the
 *   verified prefix of the stream grows;
 * - touches the pages of new buffers (`prefaultedBuffer`).
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
  | { op: 'chunk', id: number, slot: number, length: number }
  | { op: 'own-open', job: number, prefix: Uint8Array, sizes: number[], headers: Uint8Array[], chunkSize: number }
  | { op: 'own-chunk', id: number, job: number, index: number, slot: number, length: number, expected: Uint8Array }
  | { op: 'own-finish', id: number, job: number, digest: boolean }

/**
 * A fetch's destination, owned here: one buffer per tensor (canonical order), the chunks verified, and
 * the `contentHash` fed the verified prefix (each tensor's header, then its bytes)
 */
interface Owned {
  buffers: Uint8Array[]
  starts: number[]
  headers: Uint8Array[]
  total: number
  chunkSize: number
  verified: Set<number>
  /** Chunks [0, frontier) are verified */
  frontier: number
  hash: Hash
  /** Tensor whose bytes the hash takes next, whether its header was fed, stream position fed */
  segment: number
  headerFed: boolean
  fed: number
}

const PAGE = 4096
const jobs = new Map<number, Hash>()
const owned = new Map<number, Owned>()

/** Copy `bytes` to stream offset `at` of an owned destination, across tensor boundaries */
function place (o: Owned, bytes: Uint8Array, at: number): void {
  let done = 0
  let i = 0
  while (i < o.buffers.length && o.starts[i] + o.buffers[i].byteLength <= at) i++
  while (done < bytes.byteLength && i < o.buffers.length) {
    const offset = at + done - o.starts[i]
    const n = Math.min(o.buffers[i].byteLength - offset, bytes.byteLength - done)
    if (n > 0) {
      o.buffers[i].set(bytes.subarray(done, done + n), offset)
      done += n
    }
    i++
  }
}

/** Feed the hash the stream up to `to` (headers of tensors as the position reaches them, empty ones included) */
function feed (o: Owned, to: number): void {
  while (o.segment < o.buffers.length) {
    const start = o.starts[o.segment]
    const buffer = o.buffers[o.segment]
    if (!o.headerFed) {
      if (start > to || (start === to && to < o.total && buffer.byteLength > 0)) return
      o.hash.update(o.headers[o.segment])
      o.headerFed = true
    }
    const end = Math.min(start + buffer.byteLength, to)
    if (end > o.fed) {
      o.hash.update(buffer.subarray(o.fed - start, end - start))
      o.fed = end
    }
    if (o.fed < start + buffer.byteLength) return
    o.segment++
    o.headerFed = false
  }
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}
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
    case 'chunk': {
      // a chunk's sha256 (rule R12): the main thread compares it with the manifest's
      // a copy in its own 32-byte buffer: a view would clone whatever buffer it sits in
      const hash = new Uint8Array(createHash('sha256').update(slots[msg.slot].subarray(0, msg.length)).digest())
      parentPort?.postMessage({ op: 'chunk', id: msg.id, slot: msg.slot, length: msg.length, hash })
      break
    }
    case 'own-open': {
      const buffers: Uint8Array[] = []
      const starts: number[] = []
      let at = 0
      for (const n of msg.sizes) {
        // new memory: its pages are first written (faulted in) here
        buffers.push(new Uint8Array(new ArrayBuffer(n)))
        starts.push(at)
        at += n
      }
      owned.set(msg.job, {
        buffers, starts, headers: msg.headers, total: at, chunkSize: msg.chunkSize, verified: new Set(), frontier: 0,
        hash: createHash('sha256').update(msg.prefix), segment: 0, headerFed: false, fed: 0
      })
      break
    }
    case 'own-chunk': {
      // R12: the chunk's sha256 against the manifest's; only a matching chunk is written
      const bytes = slots[msg.slot].subarray(0, msg.length)
      const hash = new Uint8Array(createHash('sha256').update(bytes).digest())
      const o = owned.get(msg.job)
      const ok = equalBytes(hash, msg.expected)
      if (o != null && ok && !o.verified.has(msg.index)) {
        place(o, bytes, msg.index * o.chunkSize)
        o.verified.add(msg.index)
        while (o.verified.has(o.frontier)) o.frontier++
        feed(o, Math.min(o.frontier * o.chunkSize, o.total))
      }
      parentPort?.postMessage({ op: 'own-chunk', id: msg.id, slot: msg.slot, ok, hash })
      break
    }
    case 'own-finish': {
      // the buffers go back to the main thread (moved, not copied), with the contentHash when every chunk is in
      const o = owned.get(msg.job)
      owned.delete(msg.job)
      if (o == null) {
        parentPort?.postMessage({ op: 'own-finish', id: msg.id })
        break
      }
      let hex: string | undefined
      if (msg.digest && o.verified.size * o.chunkSize >= o.total) {
        feed(o, o.total)
        hex = o.hash.digest('hex')
      }
      const buffers = o.buffers.map(b => b.buffer as ArrayBuffer)
      parentPort?.postMessage({ op: 'own-finish', id: msg.id, hex, buffers }, buffers)
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
      owned.delete(msg.job)
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
