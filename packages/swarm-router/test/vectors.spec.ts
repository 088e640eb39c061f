/** Replays specs/swarm-router/vectors/routing.json (made by an independent brute-force Python generator) */
import { readFileSync } from 'node:fs'
import { describe, it, expect } from 'vitest'
import { BanList, shortestChain, standbys, weightedPick } from '../src/index.js'

const v = JSON.parse(readFileSync(new URL('../../../specs/swarm-router/vectors/routing.json', import.meta.url), 'utf8'))

describe('routing vectors', () => {
  for (const c of v.chains) {
    it(c.name, () => {
      const excluded = new Set<string>(c.excluded)
      const chain = shortestChain(c.candidates, c.from, c.to, c.cost, excluded)
      if (c.chain == null) {
        expect(chain).toBeUndefined()
        return
      }
      expect(chain!.hops.map(h => [h.peer, h.start, h.end])).toEqual(c.chain)
      expect(chain!.cost).toBeCloseTo(c.chainCost, 9)
      expect(standbys(chain!, c.candidates, c.cost, excluded).map(s => s?.peer ?? null)).toEqual(c.standbys)
    })
  }

  it('weighted pick', () => {
    const items = v.weightedPick.weights.map((_: number, i: number) => i)
    for (const d of v.weightedPick.draws) expect(weightedPick(items, (i: number) => v.weightedPick.weights[i], d.u), String(d.u)).toBe(d.index)
  })

  it('bans with exponential backoff', () => {
    const bans = new BanList({ baseMs: v.bans.baseMs, maxMs: v.bans.maxMs, forgetMs: v.bans.forgetMs })
    for (const e of v.bans.events) {
      expect(bans.fail(e.peer, e.failAt)).toBe(e.bannedUntil)
      expect(bans.failures(e.peer)).toBe(e.failures)
    }
  })
})
