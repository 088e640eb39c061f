/** Real libp2p hosts on loopback for the stream targets, and a raw-bytes exchange on one stream */
import { createNeuroShardHost } from '@neuroshard/host'
import type { NeuroShardHost } from '@neuroshard/host'
import type { PeerId, Stream } from '@libp2p/interface'
import { parseFields, readVarint } from './proto.js'
import type { Field } from './proto.js'

export async function loopbackHost (services: Record<string, (components: any) => unknown> = {}): Promise<NeuroShardHost> {
  return await createNeuroShardHost({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    mdns: false,
    services
  } as any) as NeuroShardHost
}

export interface Exchange {
  /** everything the handler sent back (capped) */
  response: Uint8Array
  /** how the stream ended on our side */
  ended: 'closed' | 'reset' | 'too-large'
}

/**
 * Opens a stream, writes `bytes` exactly as given (no framing added), closes the write side and reads
 * until the handler ends the stream, resets it, or sends more than `maxBytes`
 */
export async function exchange (dialer: NeuroShardHost, peer: PeerId, protocol: string, bytes: Uint8Array, signal: AbortSignal, maxBytes = 1 << 20): Promise<Exchange> {
  const stream: Stream = await dialer.dialProtocol(peer, protocol, { signal })
  const onAbort = (): void => { stream.abort(new Error('fuzz input timed out')) }
  signal.addEventListener('abort', onAbort, { once: true })
  const chunks: Uint8Array[] = []
  let total = 0
  const reader = (async (): Promise<Exchange['ended']> => {
    try {
      for await (const c of stream) {
        const b = c instanceof Uint8Array ? c : c.subarray()
        chunks.push(b)
        total += b.byteLength
        if (total > maxBytes) { stream.abort(new Error('enough')); return 'too-large' }
      }
      return 'closed'
    } catch {
      return 'reset'
    }
  })()
  try {
    if (bytes.byteLength > 0 && !stream.send(bytes)) {
      await new Promise<void>((resolve) => {
        const done = (): void => { stream.removeEventListener('drain', done); stream.removeEventListener('close', done); resolve() }
        stream.addEventListener('drain', done)
        stream.addEventListener('close', done)
      })
    }
    await stream.close({ signal })
  } catch {
    // the handler may reset the stream before we are done writing
  }
  const ended = await reader
  signal.removeEventListener('abort', onAbort)
  const response = new Uint8Array(total)
  let o = 0
  for (const c of chunks) { response.set(c, o); o += c.byteLength }
  return { response, ended }
}

/** The length-prefixed frames of a response (stops at the first incomplete one) */
export function frames (b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  let pos = 0
  while (pos < b.length) {
    let len: bigint
    try { [len, pos] = readVarint(b, pos) } catch { break }
    if (len > BigInt(b.length - pos)) break
    out.push(b.subarray(pos, pos + Number(len)))
    pos += Number(len)
  }
  return out
}

/** Top-level fields of the first response frame, or undefined when there is none or it is malformed */
export function firstMessage (b: Uint8Array): Field[] | undefined {
  const f = frames(b)[0]
  if (f == null) return undefined
  try { return parseFields(f) } catch { return undefined }
}

/** Value of a varint field (proto3 default 0 when absent) */
export function varintField (fields: Field[], no: number): bigint {
  let v = 0n
  for (const f of fields) if (f.no === no && typeof f.value === 'bigint') v = f.value
  return v
}
