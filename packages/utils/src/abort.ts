import { AbortError, InvalidParametersError, TimeoutError } from '@neuroshard/interface'
import type { AbortOptions } from '@libp2p/interface'

export interface TimeoutSignalOptions extends AbortOptions {
  /**
   * What is being timed, used in error messages ("read timed out after 10000ms")
   *
   * @default 'operation'
   */
  name?: string
}

/**
 * A signal that aborts when a deadline passes or a caller's signal aborts, whichever comes first.
 * Call `clear()` when the operation settles: it stops the timer and detaches from the caller's
 * signal, so nothing stays behind.
 */
export interface TimeoutSignal {
  /** Aborts with a `TimeoutError` when the deadline passes, or an `AbortError` when the caller aborts */
  readonly signal: AbortSignal
  /** `true` once the deadline has passed */
  readonly timedOut: boolean
  /** Stop the timer and detach from the caller's signal. Idempotent. */
  clear(): void
}

/**
 * Create a signal that aborts after `ms` milliseconds or when `options.signal` aborts.
 *
 * The abort reason is typed: a `TimeoutError` for the deadline, an `AbortError` (with the caller's
 * reason as `cause`) for the caller. `ms = Infinity` means no deadline.
 *
 * `AbortSignal.timeout()` is not used because its timer cannot be cleared: every settled operation
 * would leave a timer behind until it fires. `AbortSignal.any()` is not used because it keeps the
 * composed signal registered on the caller's (often long-lived) signal; here one listener is added
 * and removed explicitly.
 *
 * @example
 * ```ts
 * const deadline = timeoutSignal(5_000, { signal: options?.signal, name: 'fetch layer' })
 * try {
 *   await work({ signal: deadline.signal })
 * } finally {
 *   deadline.clear()
 * }
 * ```
 */
export function timeoutSignal (ms: number, options: TimeoutSignalOptions = {}): TimeoutSignal {
  assertTimeout(ms)
  const name = options.name ?? 'operation'
  const caller = options.signal
  const controller = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  let timedOut = false

  const clear = (): void => {
    if (timer != null) {
      clearTimeout(timer)
      timer = undefined
    }
    caller?.removeEventListener('abort', onCallerAbort)
  }

  function onCallerAbort (): void {
    clear()
    controller.abort(new AbortError(`${name} was aborted`, { cause: caller?.reason }))
  }

  if (caller?.aborted === true) {
    onCallerAbort()
  } else {
    caller?.addEventListener('abort', onCallerAbort, { once: true })

    if (Number.isFinite(ms)) {
      timer = setTimeout(() => {
        timedOut = true
        clear()
        controller.abort(new TimeoutError(`${name} timed out after ${ms}ms`))
      }, ms)
    }
  }

  return {
    signal: controller.signal,
    get timedOut () { return timedOut },
    clear
  }
}

/**
 * Run `fn` with a signal that aborts after `ms` milliseconds or when `options.signal` aborts.
 *
 * Rejects with a `TimeoutError` or `AbortError` as soon as the signal aborts, even if `fn` ignores
 * the signal (its eventual result is then discarded). The timer is always cleared.
 *
 * @example
 * ```ts
 * const peers = await withTimeout(async (signal) => findPeers({ signal }), 2_000, { name: 'find peers' })
 * ```
 */
export async function withTimeout<T> (fn: (signal: AbortSignal) => T | Promise<T>, ms: number, options: TimeoutSignalOptions = {}): Promise<T> {
  const deadline = timeoutSignal(ms, options)

  try {
    return await raceSignal(Promise.resolve().then(async () => fn(deadline.signal)), deadline.signal)
  } finally {
    deadline.clear()
  }
}

/**
 * Settle with `promise`, or reject with `signal.reason` as soon as `signal` aborts. The listener is
 * removed when either happens.
 */
export async function raceSignal<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) {
    return promise
  }

  if (signal.aborted) {
    // the abandoned promise may still reject; nobody is waiting for it any more
    promise.catch(() => {})
    throw signal.reason
  }

  let onAbort: (() => void) | undefined

  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        onAbort = () => { reject(signal.reason) }
        signal.addEventListener('abort', onAbort, { once: true })
      })
    ])
  } finally {
    if (onAbort != null) {
      signal.removeEventListener('abort', onAbort)
    }
  }
}

/** Longest delay `setTimeout` honours; longer ones fire after 1 ms */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Throws `InvalidParametersError` unless `ms` is a positive number of milliseconds (at most 2^31 - 1) or Infinity */
export function assertTimeout (ms: number, name = 'timeout'): void {
  if (typeof ms !== 'number' || Number.isNaN(ms) || ms <= 0 || (Number.isFinite(ms) && ms > MAX_TIMER_MS)) {
    throw new InvalidParametersError(`${name} must be a positive number of milliseconds up to ${MAX_TIMER_MS} or Infinity, got ${String(ms)}`)
  }
}
