import { describe, expect, it } from 'vitest'
import { raceSignal, timeoutSignal, withTimeout } from '../src/index.js'
import { trackResources } from './fixtures/hosts.js'

describe('timeoutSignal', () => {
  it('aborts with a named TimeoutError after the deadline', async () => {
    const start = Date.now()
    const deadline = timeoutSignal(50, { name: 'fetch shard' })
    await new Promise((resolve) => { deadline.signal.addEventListener('abort', resolve) })

    expect(Date.now() - start).toBeGreaterThanOrEqual(45)
    expect(deadline.timedOut).toBe(true)
    expect(deadline.signal.reason).toHaveProperty('name', 'TimeoutError')
    expect(deadline.signal.reason.message).toBe('fetch shard timed out after 50ms')
  })

  it('aborts with AbortError carrying the caller\'s reason when the caller aborts', () => {
    const controller = new AbortController()
    const deadline = timeoutSignal(60_000, { signal: controller.signal })
    const reason = new Error('user cancelled')
    controller.abort(reason)

    expect(deadline.timedOut).toBe(false)
    expect(deadline.signal.reason).toHaveProperty('name', 'AbortError')
    expect(deadline.signal.reason.cause).toBe(reason)
  })

  it('is aborted at once for an already-aborted caller signal', () => {
    expect(timeoutSignal(60_000, { signal: AbortSignal.abort() }).signal.aborted).toBe(true)
  })

  it('clear() stops the timer and detaches from the caller', async () => {
    const tracker = trackResources()
    const controller = new AbortController()
    const deadline = timeoutSignal(60_000, { signal: controller.signal })
    expect(tracker.open()).toEqual(['Timeout'])

    deadline.clear()
    controller.abort()
    expect(deadline.signal.aborted).toBe(false)
    await tracker.expectAllClosed(1_000)
    tracker.disable()
  })

  it('never fires for Infinity, and rejects invalid timeouts', () => {
    const deadline = timeoutSignal(Infinity)
    expect(deadline.signal.aborted).toBe(false)
    deadline.clear()

    for (const bad of [0, -1, Number.NaN, 2 ** 31]) {
      expect(() => timeoutSignal(bad)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    }
  })
})

describe('withTimeout', () => {
  it('returns the result and clears its timer', async () => {
    const tracker = trackResources()
    await expect(withTimeout(async () => 42, 60_000)).resolves.toBe(42)
    await tracker.expectAllClosed(1_000)
    tracker.disable()
  })

  it('rejects with TimeoutError even when fn ignores the signal', async () => {
    await expect(withTimeout(async () => new Promise(() => {}), 30)).rejects.toHaveProperty('name', 'TimeoutError')
  })

  it('passes fn a signal that aborts on timeout', async () => {
    let seen: AbortSignal | undefined
    await expect(withTimeout(async (signal) => {
      seen = signal
      return new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(signal.reason) }) })
    }, 30)).rejects.toHaveProperty('name', 'TimeoutError')
    expect(seen?.aborted).toBe(true)
  })

  it('rejects with AbortError when the caller aborts', async () => {
    const controller = new AbortController()
    setTimeout(() => { controller.abort() }, 10)
    await expect(withTimeout(async () => new Promise(() => {}), 60_000, { signal: controller.signal })).rejects.toHaveProperty('name', 'AbortError')
  })

  it('passes fn\'s own errors through', async () => {
    await expect(withTimeout(async () => { throw new RangeError('boom') }, 1_000)).rejects.toThrow(RangeError)
  })
})

describe('raceSignal', () => {
  it('settles with the promise when the signal does not abort', async () => {
    await expect(raceSignal(Promise.resolve('ok'), new AbortController().signal)).resolves.toBe('ok')
  })

  it('rejects with the signal reason when it aborts first, and removes its listener', async () => {
    const controller = new AbortController()
    const reason = new Error('stop')
    const raced = raceSignal(new Promise(() => {}), controller.signal)
    controller.abort(reason)
    await expect(raced).rejects.toBe(reason)
  })
})
