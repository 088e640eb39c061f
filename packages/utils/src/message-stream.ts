import { AbortError, MessageTooLargeError, MalformedMessageError, StreamClosedError, TimeoutError } from '@neuroshard/interface'
import { byteStream, InvalidDataLengthError, UnexpectedEOFError } from '@libp2p/utils'
import { Uint8ArrayList as PieceList } from 'uint8arraylist'
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

  const bytes = byteStream(stream, {
    // a safety net only: pausing at the high-water mark keeps the buffer far below this. After a
    // pause the stream may still hand over what it buffered (up to its own maxReadBufferLength).
    maxBufferSize: highWaterMark + stream.maxReadBufferLength + maxMessageSize + prefixLength
  })
  const decodePrefix = strictLengthDecoder(maxMessageSize)

  /**
   * One length-prefixed body, as @libp2p/utils' lpStream reads it (same checks, same errors), but a prefix that has
   * arrived whole (it usually comes with its body) is parsed where it lies in the read buffer: one read of the body
   * instead of a read per prefix byte and the body, and no RangeError per multi-byte prefix
   */
  async function readFrame (): Promise<Uint8ArrayList> {
    // what the byte stream has buffered (a field of @libp2p/utils 7's byteStream, not in its type)
    const buffered = (bytes as unknown as { readBuffer: Uint8ArrayList }).readBuffer
    const scan = Math.min(buffered.byteLength, prefixLength)
    let end = 0
    for (let i = 0; i < scan; i++) {
      if ((buffered.get(i) & 0x80) === 0) { end = i + 1; break }
    }
    let length: number
    if (end > 0) {
      length = decodePrefix(buffered.sublist(0, end))
      buffered.consume(end)
    } else {
      // the prefix is not all here: a byte at a time, as lpStream
      const prefix = new PieceList()
      for (;;) {
        prefix.append(await bytes.read({ bytes: 1 }))
        try {
          length = decodePrefix(prefix)
          break
        } catch (err) {
          if (err instanceof RangeError) continue
          throw err
        }
      }
    }
    if (length > maxMessageSize) throw new InvalidDataLengthError(`Message length too long - ${length} > ${maxMessageSize}`)
    const body = await bytes.read({ bytes: length })
    if (body.byteLength !== length) throw new UnexpectedEOFError(`Unexpected EOF - read ${body.byteLength}/${length} bytes before the stream closed`)
    return body
  }

  /** Bodies up to this size are written with their prefix as one buffer (one copy); larger ones as a list of the two */
  const JOIN_LIMIT = 64 * 1024

  async function writeFrame (body: Uint8Array | Uint8ArrayList): Promise<void> {
    const n = body.byteLength
    const k = varintLength(n)
    let frame: Uint8Array | Uint8ArrayList
    if (n <= JOIN_LIMIT) {
      const out = new Uint8Array(k + n)
      let v = n
      for (let i = 0; i < k - 1; i++) { out[i] = (v & 0x7f) | 0x80; v = Math.floor(v / 0x80) }
      out[k - 1] = v
      if (body instanceof Uint8Array) out.set(body, k)
      else { let at = k; for (const piece of body) { out.set(piece, at); at += piece.byteLength } }
      frame = out
    } else {
      const prefix = new Uint8Array(k)
      let v = n
      for (let i = 0; i < k - 1; i++) { prefix[i] = (v & 0x7f) | 0x80; v = Math.floor(v / 0x80) }
      prefix[k - 1] = v
      frame = new PieceList(prefix, body)
    }
    await bytes.write(frame)
  }

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

  // Deadlines of reads and writes: one timer per stream, re-armed lazily, instead of a timer and an AbortController
  // (and a listener on it in every buffered read) per read and write. An operation records its deadline; the timer
  // fires at the earliest deadline it was armed for, and then either times out the operations past theirs or re-arms
  // for the next one. Ending an operation does not touch the timer (unref'd while none is in flight; cleared when
  // the stream closes). A timed-out or aborted operation resets the stream, which ends what waits on it.
  interface Deadline { at: number, what: string, ms: number, error?: Error }
  const inFlight = new Set<Deadline>()
  let timer: ReturnType<typeof setTimeout> | undefined
  let timerAt = Infinity

  function arm (at: number): void {
    if (timer != null) clearTimeout(timer)
    timerAt = at
    timer = setTimeout(onDeadline, Math.max(1, Math.ceil(at - performance.now())))
  }

  function onDeadline (): void {
    timer = undefined
    timerAt = Infinity
    const now = performance.now()
    let next = Infinity
    for (const op of inFlight) {
      if (op.at <= now) {
        expire(op, new TimeoutError(`${op.what} timed out after ${op.ms}ms`))
        return
      }
      next = Math.min(next, op.at)
    }
    if (next < Infinity) arm(next)
  }

  /** `op` fails with `error`: the stream is reset, which rejects the read or write in flight */
  function expire (op: Deadline, error: Error): void {
    if (op.error != null) return
    op.error = error
    if (stream.status === 'open' || stream.status === 'closing') stream.abort(error)
  }

  const onClose = (): void => {
    if (timer != null) clearTimeout(timer)
    timer = undefined
    timerAt = Infinity
  }
  stream.addEventListener('close', onClose)

  /** Run one read/write under its deadline; on failure reset the stream and remember why */
  async function run<R> (what: string, opts: MessageOptions | undefined, fn: () => Promise<R>): Promise<R> {
    if (failure != null) {
      throw new StreamClosedError(`cannot ${what}: the stream was reset after an earlier ${failure.name}`, { cause: failure })
    }

    const ms = opts?.timeout ?? timeout
    assertTimeout(ms)
    const caller = opts?.signal
    const op: Deadline = { at: performance.now() + ms, what, ms }
    const onAbort = (): void => { expire(op, new AbortError(`${what} was aborted`, { cause: caller?.reason })) }

    try {
      if (caller?.aborted === true) throw new AbortError(`${what} was aborted`, { cause: caller.reason })
      caller?.addEventListener('abort', onAbort, { once: true })
      if (Number.isFinite(ms)) {
        inFlight.add(op)
        if (op.at < timerAt) arm(op.at)
        else timer?.ref()
      }
      return await fn()
    } catch (err) {
      const error = op.error ?? toStreamError(err, undefined, what)
      failure = error
      stream.log('%s failed, resetting stream - %s: %s', what, error.name, error.message)
      stream.abort(error)
      throw error
    } finally {
      caller?.removeEventListener('abort', onAbort)
      inFlight.delete(op)
      if (inFlight.size === 0) timer?.unref()
    }
  }

  function checkOutgoing (bytes: Uint8Array | Uint8ArrayList): void {
    if (bytes.byteLength > maxOutgoing) {
      throw new MessageTooLargeError(`message of ${bytes.byteLength} bytes exceeds the ${maxOutgoing} byte limit`)
    }
  }

  async function readList (opts?: MessageOptions): Promise<Uint8ArrayList> {
    return run('read message', opts, async () => {
      const body = await readFrame()
      consumed(varintLength(body.byteLength) + body.byteLength)
      return body
    })
  }

  async function readBytes (opts?: MessageOptions): Promise<Uint8Array> {
    return run('read message', opts, async () => {
      const body = await readFrame()
      consumed(varintLength(body.byteLength) + body.byteLength)
      // one copy at most: only when the body arrived in several chunks
      const bytes = body.subarray()
      // chunks from Node sockets are Buffers; hand out a plain Uint8Array view of the same memory
      return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    })
  }

  async function writeBytes (bytes: Uint8Array | Uint8ArrayList, opts?: MessageOptions): Promise<void> {
    checkOutgoing(bytes)
    await run('write message', opts, async () => {
      await writeFrame(bytes)
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
      if (failure != null) {
        throw new StreamClosedError(`cannot close stream: the stream was reset after an earlier ${failure.name}`, { cause: failure })
      }
      const ms = opts?.timeout ?? timeout
      assertTimeout(ms)
      // once per stream: a timer and a signal of its own, which stream.close takes
      const deadline = timeoutSignal(ms, { signal: opts?.signal, name: 'close stream' })
      try {
        deadline.signal.throwIfAborted()
        await stream.close({ signal: deadline.signal })
      } catch (err) {
        const error = toStreamError(err, deadline.signal, 'close stream')
        failure = error
        stream.log('%s failed, resetting stream - %s: %s', 'close stream', error.name, error.message)
        stream.abort(error)
        throw error
      } finally {
        deadline.clear()
      }
    },

    unwrap (): S {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      onClose()

      if (paused && stream.readStatus === 'paused') {
        stream.resume()
      }

      return bytes.unwrap()
    }
  }
}
