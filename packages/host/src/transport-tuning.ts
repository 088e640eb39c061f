import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { ConnectionEncrypter, MessageStream, SecureConnectionOptions, SecuredConnection } from '@libp2p/interface'

/** A piece list as libp2p passes it around (`Uint8ArrayList`), recognised by shape: several copies of the class may be loaded */
interface PieceList { readonly bufs: Uint8Array[], readonly byteLength: number, subarray(): Uint8Array }

function isPieceList (data: unknown): data is PieceList {
  return data != null && !(data instanceof Uint8Array) && Array.isArray((data as PieceList).bufs)
}

/**
 * Hand the stream under the encryption each encrypted frame as one buffer. Noise writes a frame as a list of pieces
 * (its 2-byte length, the ciphertext of each piece it was given: the yamux header, the message's length prefix and
 * body, then the 16-byte tag) and @libp2p/tcp writes each piece to the socket by itself: five `write` calls (five TCP
 * segments, each waking the receiver's event loop) for one small message. Joining the pieces costs one copy of at most
 * one yamux frame (≤ 256 KiB).
 */
function coalesceSends<S extends MessageStream> (stream: S): S {
  const send = stream.send.bind(stream)
  stream.send = (data) => send(isPieceList(data) && data.bufs.length > 1 ? data.subarray() : data)
  return stream
}

/**
 * The 2-byte big-endian length of a Noise transport frame, for @chainsafe/libp2p-noise's frame decoder (@libp2p/utils'
 * LengthPrefixedDecoder), which calls it once more after every frame it takes. Noise's own `uint16BEDecode` throws a
 * new RangeError when fewer than 2 bytes are buffered (a stack trace per received frame, under async stack traces)
 * and reads a buffer list through a new DataView. This one reads the two bytes and, with fewer than 2 buffered,
 * returns 0 instead of throwing: the decoder then needs 2 bytes (the length's own, `encodingLength`) for a frame and
 * waits for more, as it does after the RangeError. A throw, even of one preallocated error, cost more than the rest
 * of decoding a 1.7 KB frame (host README, design note). Same frames, same errors.
 */
export function noiseFrameLength (data: Uint8Array | { byteLength: number, get(i: number): number }): number {
  if (data.byteLength < 2) return 0
  return data instanceof Uint8Array ? (data[0] << 8) | data[1] : (data.get(0) << 8) | data.get(1)
}

/** The frame decoder of a Noise-encrypted stream (a field of @chainsafe/libp2p-noise 17's EncryptedMessageStream) */
interface NoiseDecoderHolder { decoder?: { lengthDecoder?: unknown } }

/** Gives a secured connection's Noise frame decoder `noiseFrameLength` (left as it is if the shape is not Noise 17's) */
function fastFrameLength (secured: SecuredConnection): SecuredConnection {
  const decoder = (secured.connection as unknown as NoiseDecoderHolder).decoder
  if (decoder != null && typeof decoder.lengthDecoder === 'function') decoder.lengthDecoder = noiseFrameLength
  return secured
}

/**
 * `factory`'s encrypter, whose encrypted frames reach the transport as one buffer each (see `coalesceSends`) and whose
 * received frames' lengths are read without a new error per frame (see `noiseFrameLength`)
 */
export function coalescingEncrypter<Components> (factory: (components: Components) => ConnectionEncrypter): (components: Components) => ConnectionEncrypter {
  return (components) => {
    const encrypter = factory(components)
    return Object.assign(Object.create(encrypter) as ConnectionEncrypter, {
      protocol: encrypter.protocol,
      async secureInbound (connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
        return fastFrameLength(await encrypter.secureInbound(coalesceSends(connection), options))
      },
      async secureOutbound (connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
        return fastFrameLength(await encrypter.secureOutbound(coalesceSends(connection), options))
      }
    })
  }
}

let windowUpdatesPatched = false

/**
 * Yamux window updates at half a window, as go-yamux and rust-yamux send them. @chainsafe/libp2p-yamux 8 answers every
 * data frame it receives with a window update, so each small message (a token's activation, its acknowledgement) costs
 * a second frame in the other direction: one more encryption, socket write and wake-up of the sender's event loop.
 * Here an established stream sends its update once less than half of its receive window is left (the sender still
 * holds at least half a window of credit while the update travels); updates carrying flags (SYN/ACK) are unchanged, and
 * yamux's window growth (doubling when a window is used within 4 RTTs) is decided when an update is due, as before but
 * less often. Patches `YamuxStream.prototype` once per process (every host of the process shares it).
 */
export function halfWindowUpdates (): void {
  if (windowUpdatesPatched) return
  windowUpdatesPatched = true
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate(this: YamuxWindow): void }
  const sendWindowUpdate = proto.sendWindowUpdate
  if (typeof sendWindowUpdate !== 'function') return
  proto.sendWindowUpdate = function (this: YamuxWindow) {
    if ((this.state === StreamState.Established || this.state === StreamState.SYNSent) && this.recvWindowCapacity > this.recvWindow / 2) return
    sendWindowUpdate.call(this)
  }
}

/** The private fields of a yamux stream that the window rule reads */
interface YamuxWindow { state: StreamState, recvWindow: number, recvWindowCapacity: number }
