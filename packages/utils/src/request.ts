import { isConnection } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { AbortError, InvalidParametersError, MalformedMessageError, MessageTooLargeError, StreamClosedError, TimeoutError } from '@neuroshard/interface'
import { assertTimeout, timeoutSignal } from './abort.js'
import { DEFAULT_MESSAGE_TIMEOUT_MS } from './constants.js'
import { assertMessageSize, toStreamError } from './framing.js'
import { messageStream } from './message-stream.js'
import type { MessageDecoder, MessageEncoder, MessageStreamOptions } from './message-stream.js'
import type { AbortOptions, Connection, DialTarget, Logger, Stream, StreamHandlerOptions } from '@libp2p/interface'

/** libp2p's `connectionManager` component - what protocol services are given */
export interface StreamOpener {
  openStream(peer: DialTarget, protocol: string | string[], options?: AbortOptions): Promise<Stream>
}

/** A `Libp2p` node - what applications hold */
export interface ProtocolDialer {
  dialProtocol(peer: DialTarget, protocols: string | string[], options?: AbortOptions): Promise<Stream>
}

/** Anything `sendRequest` can open a stream with */
export type Dialer = StreamOpener | ProtocolDialer

/** libp2p's `registrar` component or a `Libp2p` node */
export interface HandlerRegistrar {
  handle(protocol: string, handler: (stream: Stream, connection: Connection) => void | Promise<void>, options?: StreamHandlerOptions): Promise<void>
  unhandle(protocol: string, options?: AbortOptions): Promise<void>
}

export interface SendRequestOptions<Req, Res> extends MessageStreamOptions, AbortOptions {
  /** Encodes the request, e.g. a protons message namespace */
  requestCodec: MessageEncoder<Req>
  /** Decodes the response, e.g. a protons message namespace */
  responseCodec: MessageDecoder<Res>
}

/**
 * Send one request on a new stream and read one response.
 *
 * Opens a stream for `protocol` (on `peer` when it is a `Connection`, otherwise through `dialer`),
 * writes the request, closes the writable end, reads the response and returns it. Opening the
 * stream, writing and reading each have `timeout` ms. On any failure the stream is aborted and a
 * typed error is thrown: `TimeoutError`, `AbortError`, `MessageTooLargeError`,
 * `MalformedMessageError`, `StreamClosedError` (the peer reset or closed the stream before a full
 * response, e.g. because its handler failed), or the error libp2p threw when opening the stream
 * (e.g. `UnsupportedProtocolError`).
 *
 * @example
 * ```ts
 * const response = await sendRequest(libp2p, peerId, '/neuroshard/echo/1.0.0', { text: 'hi' }, {
 *   requestCodec: EchoRequest,
 *   responseCodec: EchoResponse
 * })
 * ```
 */
export async function sendRequest<Req, Res> (dialer: Dialer | undefined, peer: DialTarget | Connection, protocol: string, request: Req, options: SendRequestOptions<Req, Res>): Promise<Res> {
  const timeout = options.timeout ?? DEFAULT_MESSAGE_TIMEOUT_MS
  assertTimeout(timeout)

  const stream = await openStream(dialer, peer, protocol, timeout, options.signal)
  const messages = messageStream(stream, options)

  try {
    await messages.write(request, options.requestCodec, { signal: options.signal })
    await messages.close({ signal: options.signal })
    const response = await messages.read(options.responseCodec, { signal: options.signal })
    releaseWhenRemoteCloses(stream, timeout)
    return response
  } catch (err) {
    // messageStream already aborted the stream; this covers encode errors and oversized requests
    if (stream.status === 'open') {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }

    throw err
  }
}

/**
 * Open a stream for `protocol` on a `Connection`, or through `dialer`, within `timeout` ms (a `TimeoutError`
 * or `AbortError` when it does not open in time; libp2p's own errors pass through).
 */
export async function openStream (dialer: Dialer | undefined, peer: DialTarget | Connection, protocol: string, timeout: number, signal?: AbortSignal): Promise<Stream> {
  const deadline = timeoutSignal(timeout, { signal, name: `open ${protocol} stream` })

  try {
    if (isConnection(peer)) {
      return await peer.newStream(protocol, { signal: deadline.signal })
    }

    if (dialer == null) {
      throw new InvalidParametersError('sendRequest needs a dialer unless it is given a Connection')
    }

    if ('openStream' in dialer) {
      return await dialer.openStream(peer, protocol, { signal: deadline.signal })
    }

    return await dialer.dialProtocol(peer, protocol, { signal: deadline.signal })
  } catch (err) {
    // dial and negotiation errors (UnsupportedProtocolError, DialError, ...) pass through unchanged
    throw deadline.signal.aborted ? toStreamError(err, deadline.signal, `open ${protocol} stream`) : err
  } finally {
    deadline.clear()
  }
}

/**
 * Our end is closed and the last message read; the stream is done once the peer closes its end, which
 * normally follows at once. A peer that never does would pin the stream, so it is aborted after
 * `timeout` ms. Nothing waits on this.
 */
export function releaseWhenRemoteCloses (stream: Stream, timeout: number): void {
  if (stream.status !== 'open' || stream.remoteWriteStatus !== 'writable') {
    return
  }

  const done = (): void => {
    clearTimeout(timer)
    stream.removeEventListener('remoteCloseWrite', done)
    stream.removeEventListener('close', done)
  }
  const timer = setTimeout(() => {
    done()
    stream.abort(new TimeoutError(`peer did not close its end of the stream within ${timeout}ms of its last message`))
  }, timeout)

  stream.addEventListener('remoteCloseWrite', done)
  stream.addEventListener('close', done)
}

/** What a request handler gets besides the request */
export interface RequestContext {
  /** The inbound stream (do not read or write it; return the response instead) */
  stream: Stream
  /** The connection the stream arrived on; `connection.remotePeer` is the requester */
  connection: Connection
  /** Aborts when the stream closes or resets before the handler returns, e.g. the requester gave up */
  signal: AbortSignal
}

/** Answers one request; throwing resets the stream (the requester sees `StreamClosedError`) */
export interface RequestHandler<Req, Res> {
  (request: Req, context: RequestContext): Res | Promise<Res>
}

export interface HandleRequestsOptions<Req, Res> extends MessageStreamOptions, StreamHandlerOptions {
  /** Decodes requests, e.g. a protons message namespace */
  requestCodec: MessageDecoder<Req>
  /** Encodes responses, e.g. a protons message namespace */
  responseCodec: MessageEncoder<Res>
  /**
   * Where failures are logged
   *
   * @default logger('neuroshard:utils:handle-requests')
   */
  log?: Logger
  /** Called with each failed request's typed error (e.g. to count them in a metric); must not throw */
  onError?(error: Error, connection: Connection): void
}

/** Failures caused by the remote peer, logged at the normal level rather than as errors */
const REMOTE_FAULTS = new Set([
  TimeoutError.name, AbortError.name, MessageTooLargeError.name, MalformedMessageError.name, StreamClosedError.name
])

/**
 * Register a request/response handler for `protocol`: for each inbound stream, read one request
 * (with the timeout and size cap), call `handler`, write its response and close the stream.
 *
 * Bad input, a slow peer or a throwing handler resets that stream only; the error is logged and
 * passed to `onError`, never thrown into libp2p. Resolves to a function that unregisters the
 * handler.
 *
 * @example
 * ```ts
 * const unhandle = await handleRequests(libp2p, '/neuroshard/echo/1.0.0', (req) => ({ text: req.text }), {
 *   requestCodec: EchoRequest,
 *   responseCodec: EchoResponse
 * })
 * ```
 */
export async function handleRequests<Req, Res> (registrar: HandlerRegistrar, protocol: string, handler: RequestHandler<Req, Res>, options: HandleRequestsOptions<Req, Res>): Promise<() => Promise<void>> {
  const { requestCodec, responseCodec, log = logger('neuroshard:utils:handle-requests'), onError, maxMessageSize, maxOutgoingMessageSize, timeout, readHighWaterMark, ...handlerOptions } = options
  // maxMessageSize caps the requests read, maxOutgoingMessageSize the responses written (a handler of small
  // requests and large responses must not let a peer make it buffer a response-sized request)
  const streamOptions: MessageStreamOptions = { maxMessageSize, maxOutgoingMessageSize, timeout, readHighWaterMark }
  // validate now rather than on the first inbound stream
  messageStreamOptionsCheck(streamOptions)

  const onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const controller = new AbortController()
    const onClose = (): void => {
      controller.abort(new StreamClosedError('the stream closed before the response was sent'))
    }
    stream.addEventListener('close', onClose)

    try {
      const messages = messageStream(stream, streamOptions)
      const request = await messages.read(requestCodec)
      const response = await handler(request, { stream, connection, signal: controller.signal })
      await messages.write(response, responseCodec)
      await messages.close()
    } catch (err) {
      const error = toStreamError(err, undefined, `${protocol} request`)

      if (REMOTE_FAULTS.has(error.name)) {
        log('%s request from %p failed - %s: %s', protocol, connection.remotePeer, error.name, error.message)
      } else {
        log.error('%s handler failed for %p - %e', protocol, connection.remotePeer, error)
      }

      if (stream.status === 'open') {
        stream.abort(error)
      }

      try {
        onError?.(error, connection)
      } catch (e) {
        log.error('onError threw - %e', e)
      }
    } finally {
      stream.removeEventListener('close', onClose)
    }
  }

  await registrar.handle(protocol, onStream, handlerOptions)

  return async () => registrar.unhandle(protocol)
}

function messageStreamOptionsCheck (options: MessageStreamOptions): void {
  if (options.timeout != null) {
    assertTimeout(options.timeout)
  }

  if (options.maxMessageSize != null) {
    assertMessageSize(options.maxMessageSize)
  }

  if (options.readHighWaterMark != null) {
    assertMessageSize(options.readHighWaterMark, 'readHighWaterMark')
  }
}
