import type { Connection, Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
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

/** Number of distinct peers `host` has an open connection to */
export function peerCount (host: Libp2p): number {
  return new Set(host.getConnections().map(c => c.remotePeer.toString())).size
}

/** Resolves once `host` is connected to at least `n` distinct peers (re-checked on every new connection) */
export async function peersAtLeast (host: Libp2p, n: number, timeoutMs: number): Promise<void> {
  await waitUntil(host, 'connection:open', () => peerCount(host) >= n, timeoutMs)
}

/**
 * Dials `addr` until a dial succeeds or `timeoutMs` has passed: for topologies a test builds by hand, where
 * one dial timing out on a loaded machine (libp2p gives an address 6 s) must not fail the test.
 */
export async function dialWithRetry (host: Libp2p, addr: Multiaddr, timeoutMs: number): Promise<Connection> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await host.dial(addr)
    } catch (err) {
      if (Date.now() >= deadline) {
        throw err
      }
      // a short pause so that an address that refuses at once is not hammered
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }
}
