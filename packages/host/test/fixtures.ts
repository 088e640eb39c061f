import type { TypedEventTarget } from 'main-event'

/**
 * Resolves with the first `event` on `emitter` whose detail satisfies `predicate` (checked immediately
 * through `already` too, so a condition that is already true does not wait), rejects after `timeoutMs`.
 */
export async function waitFor<Events extends Record<string, any>, K extends keyof Events & string> (
  emitter: TypedEventTarget<Events>,
  event: K,
  predicate: (evt: Events[K]) => boolean = () => true,
  timeoutMs = 10_000
): Promise<Events[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeEventListener(event, listener)
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${event}`))
    }, timeoutMs)
    const listener = (evt: Events[K]): void => {
      let ok = false
      try {
        ok = predicate(evt)
      } catch (err) {
        clearTimeout(timer)
        emitter.removeEventListener(event, listener)
        reject(err)
        return
      }
      if (ok) {
        clearTimeout(timer)
        emitter.removeEventListener(event, listener)
        resolve(evt)
      }
    }
    emitter.addEventListener(event, listener)
  })
}

/**
 * Waits until `condition()` is true, re-checking each time `event` fires on `emitter`.
 */
export async function waitUntil<Events extends Record<string, any>, K extends keyof Events & string> (
  emitter: TypedEventTarget<Events>,
  event: K,
  condition: () => boolean,
  timeoutMs = 10_000
): Promise<void> {
  if (condition()) {
    return
  }
  await waitFor(emitter, event, () => condition(), timeoutMs)
}
