import { MessageTooLargeError, MalformedMessageError, StreamClosedError } from '@neuroshard/interface'
import { lpStream } from '@libp2p/utils'
import { assertTimeout, timeoutSignal } from './abort.js'
import { DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MESSAGE_TIMEOUT_MS, DEFAULT_READ_HIGH_WATER_MARK } from './constants.js'
import { assertMessageSize, strictLengthDecoder, toStreamError, varintLength } from './framing.js'
import type { AbortOptions, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Turns a message into bytes. A protons-generated message namespace (e.g. `EchoRequest`) is one. */
export interface MessageEncoder<T> {
  encode(message: T): Uint8Array
}

/** Turns bytes into a message, throwing on bytes that are not one. A protons-generated message namespace is one. */
export interface MessageDecoder<T> {
  decode(bytes: Uint8Array): T
}

/** Both directions; a protons-generated message namespace (e.g. `EchoRequest`) is a `MessageCodec<EchoRequest>` */
export interface MessageCodec<T> extends MessageEncoder<T>, MessageDecoder<T> {}

export interface MessageStreamOptions {
  /**
   * Largest message body, in bytes, that may be read or written
   *
   * @default 4_194_304 (DEFAULT_MAX_MESSAGE_SIZE)
   */
  maxMessageSize?: number

  /**
   * Largest message body that may be written, when it differs from what may be read (a request handler
   * reads small requests and writes large responses)
   *
   * @default maxMessageSize
   */
  maxOutgoingMessageSize?: number

  /**
   * Milliseconds each read or write may take (Infinity: no limit)
   *
   * @default 10_000 (DEFAULT_MESSAGE_TIMEOUT_MS)
   */
  timeout?: number

  /**
   * Unread bytes at which the stream is paused until reads catch up (backpressure: the peer's
   * writes then wait). Raised to one whole message if smaller.
   *
   * @default max(1_048_576, maxMessageSize + its prefix) (DEFAULT_READ_HIGH_WATER_MARK)
   */
  readHighWaterMark?: number
}

export interface MessageOptions extends AbortOptions {
  /** Overrides the stream's per-message timeout for this one read or write */
  timeout?: number
}

/**
 * Length-prefixed messages over a libp2p stream, each read and write with a timeout and a size cap.
 *
 * Any failure of a read or write (timeout, abort, oversized/truncated/malformed input, the stream
 * closing) aborts the underlying stream - after a partial read the framing cannot be recovered - and
 * every later call throws `StreamClosedError`. Rejecting an oversized outgoing message is the one
 * exception: nothing was sent, so the stream stays usable.
 */
export interface FramedStream<S extends Stream = Stream> {
  /** Read one message and decode it with `codec` */
  read<T>(codec: MessageDecoder<T>, options?: MessageOptions): Promise<T>

  /** Encode one message with `codec` and write it */
  write<T>(message: T, codec: MessageEncoder<T>, options?: MessageOptions): Promise<void>

  /** Read one message body as raw bytes */
  readBytes(options?: MessageOptions): Promise<Uint8Array>

  /**
   * Read one message body as the pieces it arrived in, without joining them: the pieces are views
   * of the transport's buffers (iterate the list, or `sublist` it, to hash or copy a large body piece
   * by piece; `subarray()` joins it)
   */
  readList(options?: MessageOptions): Promise<Uint8ArrayList>

  /** Write `bytes` as one message */
  writeBytes(bytes: Uint8Array | Uint8ArrayList, options?: MessageOptions): Promise<void>

  /** Gracefully close the writable end (the peer reads EOF after the last message), with the per-message timeout */
  close(options?: MessageOptions): Promise<void>

  /** Stop using the helper and return the stream; any bytes read ahead are pushed back onto it */
  unwrap(): S
}

/**
 * Wrap a libp2p stream for length-prefixed messages (unsigned-varint length + body, see
 * `specs/README.md`).
 *
 * @example
 * ```ts
 * const messages = messageStream(stream, { maxMessageSize: 1024, timeout: 5_000 })
 * await messages.write({ text: 'hi', payload: new Uint8Array() }, EchoRequest)
 * const response = await messages.read(EchoResponse)
 * ```
 */
export function messageStream<S extends Stream> (stream: S, options: MessageStreamOptions = {}): FramedStream<S> {
  const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
  const maxOutgoing = options.maxOutgoingMessageSize ?? maxMessageSize
  const timeout = options.timeout ?? DEFAULT_MESSAGE_TIMEOUT_MS
  assertMessageSize(maxMessageSize)
  assertMessageSize(maxOutgoing, 'maxOutgoingMessageSize')
  assertTimeout(timeout)
  const prefixLength = varintLength(maxMessageSize)
  assertMessageSize(options.readHighWaterMark ?? 1, 'readHighWaterMark')
  // at least one whole message: then a paused stream always holds a complete message to read
  const highWaterMark = Math.max(options.readHighWaterMark ?? DEFAULT_READ_HIGH_WATER_MARK, maxMessageSize + prefixLength)

  const lp = lpStream(stream, {
    maxDataLength: maxMessageSize,
    maxLengthLength: prefixLength,
    lengthDecoder: strictLengthDecoder(maxMessageSize),
    // a safety net only: pausing at the high-water mark keeps the buffer far below this. After a
    // pause the stream may still hand over what it buffered (up to its own maxReadBufferLength).
    maxBufferSize: highWaterMark + stream.maxReadBufferLength + maxMessageSize + prefixLength
  })

  // Backpressure. byteStream buffers everything the stream emits and Yamux grants window as soon as
  // data is emitted, so without this a fast writer could fill memory ahead of a slow reader.
  let unread = 0
  let paused = false

  const onMessage = (evt: StreamMessageEvent): void => {
    unread += evt.data.byteLength

    if (!paused && unread >= highWaterMark && stream.readStatus === 'readable') {
      paused = true
      stream.pause()
    }
  }
  stream.addEventListener('message', onMessage)

  function consumed (bytes: number): void {
    unread = Math.max(0, unread - bytes)

    if (paused && unread < highWaterMark) {
      paused = false

      if (stream.readStatus === 'paused') {
        stream.resume()
      }
    }
  }

  let failure: Error | undefined

  /** Run one read/write under its own deadline; on failure reset the stream and remember why */
  async function run<R> (what: string, opts: MessageOptions | undefined, fn: (signal: AbortSignal) => Promise<R>): Promise<R> {
    if (failure != null) {
      throw new StreamClosedError(`cannot ${what}: the stream was reset after an earlier ${failure.name}`, { cause: failure })
    }

    const ms = opts?.timeout ?? timeout
    assertTimeout(ms)
    const deadline = timeoutSignal(ms, { signal: opts?.signal, name: what })

    try {
      deadline.signal.throwIfAborted()
      return await fn(deadline.signal)
    } catch (err) {
      const error = toStreamError(err, deadline.signal, what)
      failure = error
      stream.log('%s failed, resetting stream - %s: %s', what, error.name, error.message)
      stream.abort(error)
      throw error
    } finally {
      deadline.clear()
    }
  }

  function checkOutgoing (bytes: Uint8Array | Uint8ArrayList): void {
    if (bytes.byteLength > maxOutgoing) {
      throw new MessageTooLargeError(`message of ${bytes.byteLength} bytes exceeds the ${maxOutgoing} byte limit`)
    }
  }

  async function readList (opts?: MessageOptions): Promise<Uint8ArrayList> {
    return run('read message', opts, async (signal) => {
      const body = await lp.read({ signal })
      consumed(varintLength(body.byteLength) + body.byteLength)
      return body
    })
  }

  async function readBytes (opts?: MessageOptions): Promise<Uint8Array> {
    return run('read message', opts, async (signal) => {
      const body = await lp.read({ signal })
      consumed(varintLength(body.byteLength) + body.byteLength)
      // one copy at most: only when the body arrived in several chunks
      const bytes = body.subarray()
      // chunks from Node sockets are Buffers; hand out a plain Uint8Array view of the same memory
      return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    })
  }

  async function writeBytes (bytes: Uint8Array | Uint8ArrayList, opts?: MessageOptions): Promise<void> {
    checkOutgoing(bytes)
    await run('write message', opts, async (signal) => {
      await lp.write(bytes, { signal })
    })
  }

  return {
    async read<T> (codec: MessageDecoder<T>, opts?: MessageOptions): Promise<T> {
      const body = await readBytes(opts)

      try {
        return codec.decode(body)
      } catch (err) {
        const error = new MalformedMessageError(`message of ${body.byteLength} bytes does not decode: ${(err as Error)?.message ?? String(err)}`, { cause: err })
        failure = error
        stream.abort(error)
        throw error
      }
    },

    async write<T> (message: T, codec: MessageEncoder<T>, opts?: MessageOptions): Promise<void> {
      await writeBytes(codec.encode(message), opts)
    },

    readBytes,
    readList,
    writeBytes,

    async close (opts?: MessageOptions): Promise<void> {
      await run('close stream', opts, async (signal) => {
        await stream.close({ signal })
      })
    },

    unwrap (): S {
      stream.removeEventListener('message', onMessage)

      if (paused && stream.readStatus === 'paused') {
        stream.resume()
      }

      return lp.unwrap()
    }
  }
}
