import { peerIdFromMultihash } from '@libp2p/peer-id'
import { InvalidRouteError } from './errors.js'
import type { PeerId } from '@libp2p/interface'

/** The multihash bytes of a peer id (what a Hop carries) */
export function peerBytes (peer: PeerId): Uint8Array<ArrayBuffer> {
  return peer.toMultihash().bytes as Uint8Array<ArrayBuffer>
}

function varint (bytes: Uint8Array, at: number): [number, number] {
  let value = 0
  for (let i = 0; i < 4; i++) {
    if (at + i >= bytes.length) throw new InvalidRouteError('truncated peer id')
    const b = bytes[at + i]
    value += (b & 0x7f) * 2 ** (7 * i)
    if ((b & 0x80) === 0) return [value, at + i + 1]
  }
  throw new InvalidRouteError('peer id varint too long')
}

/** Parse a Hop's peer bytes; throws InvalidRouteError for anything that is not a peer id */
export function peerFromBytes (bytes: Uint8Array): PeerId {
  if (bytes.length < 2 || bytes.length > 128) throw new InvalidRouteError(`peer id of ${bytes.length} bytes`)
  const [code, a] = varint(bytes, 0)
  const [size, b] = varint(bytes, a)
  if (b + size !== bytes.length) throw new InvalidRouteError('peer id length does not match its multihash')
  try {
    return peerIdFromMultihash({ code, size, digest: bytes.subarray(b), bytes } as any)
  } catch (err: any) {
    throw new InvalidRouteError(`not a peer id: ${String(err?.message ?? err)}`)
  }
}
