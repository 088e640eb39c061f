/**
 * A Driver's completion that finds no chain waits for one (bounded) instead of failing at once. The testbed's
 * node-failover run (4 nodes on home links, a Worker killed every minute) failed 8 of 61 completions with
 * `NoRouteError: no chain of live, unbanned spans covers slots [2, 4) (1 candidates)` while the one remaining
 * holder of [2, 4) was not routable for a few seconds. The router here is a stand-in (pure logic): it has no
 * chain for its first calls, then one.
 */
import { NoRouteError } from '@neuroshard/pipeline'
import { describe, expect, it } from 'vitest'
import { NodeRouter } from '../../src/network/node.js'
import type { ChainOptions, PipelineRouter, RouteHop } from '@neuroshard/pipeline'

/** A hop (the router under test never looks at the peer) */
function hop (): RouteHop {
  return { peer: { toString: () => '12D3KooW-stand-in' } as unknown as RouteHop['peer'], start: 2, end: 4 }
}

/** No chain until `readyAt` (ms since creation); counts its calls */
function laterRouter (readyAt: number, chain: RouteHop[]): PipelineRouter & { calls: number } {
  const t0 = Date.now()
  return {
    calls: 0,
    chain (_: ChainOptions) {
      this.calls++
      if (Date.now() - t0 < readyAt) throw new NoRouteError('no chain of live, unbanned spans covers slots [2, 4) (1 candidates)')
      return chain
    },
    reportFailure () {}
  }
}

describe('NodeRouter: waiting for a chain', () => {
  it('an inference chain that forms within the wait is returned (was: NoRouteError at once)', async () => {
    const chain = [hop()]
    const inner = laterRouter(1500, chain)
    const router = new NodeRouter(() => inner, 10_000)
    const t0 = Date.now()
    await expect(Promise.resolve(router.chain({ from: 2, to: 4, purpose: 'inference' }))).resolves.toEqual(chain)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400)
    expect(inner.calls).toBeGreaterThan(1)
  })

  it('gives up with the NoRouteError after the wait', async () => {
    const router = new NodeRouter(() => laterRouter(Infinity, []), 600)
    const t0 = Date.now()
    await expect(Promise.resolve().then(() => router.chain({ from: 2, to: 4, purpose: 'inference' }))).rejects.toThrow(NoRouteError)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550)
  })

  it('stops waiting when the request is aborted', async () => {
    const router = new NodeRouter(() => laterRouter(Infinity, []), 60_000)
    const controller = new AbortController()
    setTimeout(() => { controller.abort() }, 300)
    const t0 = Date.now()
    await expect(Promise.resolve().then(() => router.chain({ from: 2, to: 4, purpose: 'inference', signal: controller.signal }))).rejects.toThrow()
    expect(Date.now() - t0).toBeLessThan(10_000)
  })

  it('with a wait of 0 fails at once, and other errors are not waited on', async () => {
    expect(() => new NodeRouter(() => laterRouter(Infinity, []), 0).chain({ from: 2, to: 4, purpose: 'inference' })).toThrow(NoRouteError)
    const broken: PipelineRouter = { chain () { throw new TypeError('broken') }, reportFailure () {} }
    expect(() => new NodeRouter(() => broken, 60_000).chain({ from: 2, to: 4, purpose: 'inference' })).toThrow(TypeError)
  })
})

describe('NodeRouter: standbys', () => {
  it('passes the swarm router\'s standbys through (the pipeline warms and pre-connects them only when its router has them)', async () => {
    const chain = [hop()]
    const spare = { ...hop(), peer: { toString: () => '12D3KooW-standby' } as unknown as RouteHop['peer'] }
    const asked: Array<[RouteHop[], { tokens?: number } | undefined]> = []
    const inner: PipelineRouter = {
      chain: () => chain,
      standbys: (c, o) => { asked.push([c, o]); return [spare] },
      reportFailure () {}
    }
    const router: PipelineRouter = new NodeRouter(() => inner, 10_000)
    expect(typeof router.standbys).toBe('function')
    expect(await router.standbys!(chain, { tokens: 40 })).toEqual([spare])
    expect(asked).toEqual([[chain, { tokens: 40 }]])
    // a router without standbys: none
    expect(await new NodeRouter(() => laterRouter(0, chain), 10_000).standbys(chain)).toEqual([])
  })
})
