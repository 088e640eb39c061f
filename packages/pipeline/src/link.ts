import { AbortError, TimeoutError } from '@neuroshard/interface'
import { Response } from './pb/pipeline.js'
import type { Request } from './pb/pipeline.js'
import type { Stream } from '@libp2p/interface'
import type { FramedStream } from '@neuroshard/utils'

interface Waiter {
  /** The request was `direct` (its answer, on success, is an acknowledgement) */
  direct: boolean
  resolve(res: Response | undefined): void
  reject(err: Error): void
  timer?: ReturnType<typeof setTimeout>
}

/**
 * One outbound session stream (spec §2): requests written in order, and one reader for the whole link that hands each
 * response to the request it answers. A request answers with one response, except a `quiet` INFER (spec §2, 1.5.0),
 * which answers only when it fails: its response is `Response.quiet` (an error, with the request's `position`), or,
 * from a node before 1.5.0, an acknowledgement (`direct`, no error: dropped unless the request that waits is direct
 * and not quiet) or an unmarked answer while no other request waits. A quiet request is settled (with no response) when the next request is written or the link closes.
 *
 * Reads have no timer of their own: a request that waits for an answer has one deadline (`timeout`), and a quiet one
 * none (its sender waits for the token elsewhere). When the deadline passes, or the stream fails, every waiting
 * request fails and the link is dead (its framing cannot be trusted again).
 */
export class SessionLink {
  readonly stream: Stream
  readonly messages: FramedStream
  lastUsed = Date.now()
  /** How long opening the stream took, ms (0: a spare adopted) */
  readonly openMs: number
  /** Why the link died (a read or write failed, or a deadline passed) */
  failure?: Error
  private writes: Promise<unknown> = Promise.resolve()
  private readonly waiting: Waiter[] = []
  private quiet?: Waiter & { position: number }
  private reading = false
  private readonly timeout: number
  private readonly onFailure: (err: Error, unanswered: boolean) => void
  private readonly log: (fmt: string, ...args: unknown[]) => void

  /**
   * `onFailure(err, unanswered)`: the link died; `unanswered` when no request that waits for an answer got the error
   * (nobody waited, or only a quiet request did)
   */
  constructor (stream: Stream, messages: FramedStream, init: { openMs: number, timeout: number, onFailure(err: Error, unanswered: boolean): void, log(fmt: string, ...args: unknown[]): void }) {
    this.stream = stream
    this.messages = messages
    this.openMs = init.openMs
    this.timeout = init.timeout
    this.onFailure = init.onFailure
    this.log = init.log
  }

  /**
   * Write `req` and wait for its answer. With `quiet` the promise resolves with `undefined` when the link moves on
   * to the next request (or closes) without an answer, and with the answer when one comes (a failure).
   */
  async request (req: Request, codec: { encode(r: Request): Uint8Array }, options: { quiet: boolean, signal?: AbortSignal }): Promise<Response | undefined> {
    if (this.failure != null) throw this.failure
    this.lastUsed = Date.now()
    this.settleQuiet()
    const answer = new Promise<Response | undefined>((resolve, reject) => {
      const w: Waiter = { direct: req.direct, resolve, reject }
      if (options.quiet) {
        this.quiet = { ...w, position: req.position }
      } else {
        w.timer = setTimeout(() => { this.fail(new TimeoutError(`no answer on the session link within ${this.timeout} ms`)) }, this.timeout)
        this.waiting.push(w)
        // an aborted wait leaves an answer on the way that nobody would take: the link's framing is lost, as before
        const signal = options.signal
        if (signal != null) {
          const onAbort = (): void => { this.fail(signal.reason instanceof Error ? signal.reason : new AbortError('aborted')) }
          if (signal.aborted) onAbort()
          else {
            signal.addEventListener('abort', onAbort, { once: true })
            const done = (): void => { signal.removeEventListener('abort', onAbort) }
            w.resolve = (res) => { done(); resolve(res) }
            w.reject = (err) => { done(); reject(err) }
          }
        }
      }
    })
    const wrote = this.writes.then(async () => { await this.messages.write(req, codec, { signal: options.signal }) })
    this.writes = wrote.catch(() => {})
    wrote.catch(err => { this.fail(err instanceof Error ? err : new Error(String(err))) })
    this.startReading()
    return await answer
  }

  /** The link is being closed on purpose: a quiet request still open succeeded */
  close (): void {
    this.settleQuiet()
  }

  private settleQuiet (): void {
    const q = this.quiet
    this.quiet = undefined
    q?.resolve(undefined)
  }

  private startReading (): void {
    if (this.reading) return
    this.reading = true
    void (async () => {
      while (this.failure == null) {
        const res = await this.messages.read(Response, { timeout: Infinity })
        this.dispatch(res)
      }
    })().catch(err => { this.fail(err instanceof Error ? err : new Error(String(err))) })
  }

  private dispatch (res: Response): void {
    const ack = res.direct && res.error === ''
    // an acknowledgement answers a direct request that waits for one; otherwise it is from a node before 1.5.0, which
    // acknowledges quiet INFERs too: dropped
    if (ack && this.waiting[0]?.direct !== true) return
    if (!res.quiet && this.waiting.length > 0) {
      const w = this.waiting.shift()!
      clearTimeout(w.timer)
      w.resolve(res)
      return
    }
    const q = this.quiet
    if (q != null && (!res.quiet || res.position === q.position)) {
      this.quiet = undefined
      q.resolve(res)
      return
    }
    if (res.quiet) {
      // a quiet request that another one has followed since (its failure came after its token, e.g. the next hop died)
      this.log('late answer to a quiet request at position %d: %s %s', res.position, res.error, res.message)
      return
    }
    this.fail(new Error('an answer on the session link that no request waits for'))
  }

  /** The link is dead: every waiting request fails with `err`, the stream is reset */
  fail (err: Error): void {
    if (this.failure != null) return
    this.failure = err
    const waiting = this.waiting.splice(0)
    const q = this.quiet
    this.quiet = undefined
    for (const w of waiting) {
      clearTimeout(w.timer)
      w.reject(err)
    }
    q?.reject(err)
    if (this.stream.status === 'open') this.stream.abort(err)
    this.onFailure(err, waiting.length === 0)
  }
}
