/**
 * The Driver's end of a tokens stream (specs/pipeline/README.md §2, `/neuroshard/pipeline/tokens/1.0.0`): the
 * Validator writes its answer to each `direct` INFER of the session here, straight to the Driver, instead of
 * sending it back along the route. That takes the way back through every Worker off the critical path of
 * a token: Driver → Worker(s) → Validator → Driver.
 */
import { AbortError, TimeoutError } from '@neuroshard/interface'
import { messageStream } from '@neuroshard/utils'
import { PipelineRequestError } from './errors.js'
import { Response } from './pb/pipeline.js'
import type { Request } from './pb/pipeline.js'
import type { Logger, PeerId, Stream } from '@libp2p/interface'
import type { FramedStream, StreamOpener } from '@neuroshard/utils'

export interface TokenWatchOptions {
  protocol: string
  maxMessageSize: number
  /** Opening the stream and the Validator's acknowledgement, ms */
  timeout: number
  /** How long the stream may stay idle, ms (the Validator's session TTL) */
  idleTimeout: number
  log: Logger
  /** Encodes the TOKENS request */
  encode(req: Request): Uint8Array
}

/** One session's tokens stream to one Validator; `ready` once the Validator acknowledged it */
export class TokenWatch {
  /** Hex of the Validator's peer bytes (the route's last hop this watch is for) */
  readonly peer: string
  ready = false
  /**
   * The TOKENS request is written (the stream is negotiated), the acknowledgement may still be on its way. The
   * Validator gets TOKENS one message after it left here; an INFER sent now reaches it through at least one Worker
   * (two messages), so it normally finds the stream registered. When it does not, the Validator answers on the route,
   * as for a session without a tokens stream.
   */
  written = false
  closed = false
  private stream?: Stream
  private messages?: FramedStream
  private readonly queue: Response[] = []
  private waiter?: { resolve(r: Response): void, reject(e: Error): void }
  private failure?: Error
  private readonly log: Logger

  constructor (opener: StreamOpener, peer: PeerId, peerHex: string, req: Request, options: TokenWatchOptions) {
    this.peer = peerHex
    this.log = options.log
    void this.run(opener, peer, req, options)
  }

  private async run (opener: StreamOpener, peer: PeerId, req: Request, o: TokenWatchOptions): Promise<void> {
    try {
      const stream = await opener.openStream(peer, o.protocol, { signal: AbortSignal.timeout(o.timeout) })
      this.stream = stream
      if (this.closed) throw new AbortError('closed before it opened')
      const messages = messageStream(stream, { maxMessageSize: o.maxMessageSize, timeout: o.timeout })
      this.messages = messages
      await messages.writeBytes(o.encode(req))
      this.written = !this.closed
      const ack = await messages.read(Response)
      if (ack.error !== '') throw new PipelineRequestError(`the Validator refused the tokens stream: ${ack.error}: ${ack.message}`)
      this.ready = true
      for (;;) {
        const res = await messages.read(Response, { timeout: o.idleTimeout })
        if (this.waiter != null) {
          const w = this.waiter
          this.waiter = undefined
          w.resolve(res)
        } else {
          this.queue.push(res)
        }
      }
    } catch (err: any) {
      this.fail(err instanceof Error ? err : new Error(String(err)))
    }
  }

  private fail (err: Error): void {
    if (this.failure != null) return
    this.failure = err
    this.ready = false
    this.written = false
    this.closed = true
    if (!(err instanceof AbortError)) this.log('tokens stream to %s ended: %s', this.peer.slice(0, 16), err.name)
    this.waiter?.reject(err)
    this.waiter = undefined
    if (this.stream?.status === 'open') this.stream.abort(err)
  }

  /** Forget answers that arrived for requests no longer awaited (none are expected) */
  clear (): void {
    this.queue.length = 0
  }

  /** The next answer the Validator sends; rejects when the stream fails, after `timeout` ms, or on abort */
  async next (timeout: number, signal?: AbortSignal): Promise<Response> {
    const queued = this.queue.shift()
    if (queued != null) return queued
    if (this.failure != null) throw this.failure
    return await new Promise<Response>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      const onAbort = (): void => {
        this.waiter = undefined
        done()
        reject(new AbortError('generation aborted'))
      }
      const timer = setTimeout(() => {
        this.waiter = undefined
        done()
        reject(new TimeoutError(`no token on the tokens stream within ${timeout} ms`))
      }, timeout)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiter = {
        resolve: r => { done(); resolve(r) },
        reject: e => { done(); reject(e) }
      }
    })
  }

  /** Stop waiting for the current answer (it came another way) */
  cancel (): void {
    const w = this.waiter
    this.waiter = undefined
    w?.reject(new AbortError('answered on the route'))
  }

  /** End the stream gracefully (the Validator drops the session's watch at EOF) */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.ready = false
    this.written = false
    this.cancel()
    const m = this.messages
    const s = this.stream
    if (m != null) void m.close().catch(() => { if (s?.status === 'open') s.abort(new AbortError('tokens stream closed')) })
    else this.fail(new AbortError('closed'))
  }
}
