import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { GraphBuilder } from '../src/index.js'
import type { Value } from '../src/index.js'
import { gradCheck, rng, t64 } from './helpers.js'
import type { FeedTensor } from './helpers.js'

const TOL = 1e-6
const RUNS = 8

const shapeArb = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 })

/** A shape that broadcasts against `s`: some leading dims dropped, some dims set to 1 */
function broadcastPartner (s: number[], drop: number, ones: boolean[]): number[] {
  return s.slice(Math.min(drop, s.length - 1)).map((d, i) => ones[i % ones.length] ? 1 : d)
}

async function check (build: (g: GraphBuilder, f: Record<string, FeedTensor>) => Value[], seed: number): Promise<void> {
  const g = new GraphBuilder({ dtype: 'float64' })
  const f: Record<string, FeedTensor> = {}
  build(g, f).forEach((o, i) => { g.output(o, `y${i}`) })
  const res = await gradCheck(g, f, { seed })
  for (const r of res) expect(r.rel, `${r.input}: fd ${r.fd} ad ${r.ad}`).toBeLessThan(TOL)
}

function inp (g: GraphBuilder, f: Record<string, FeedTensor>, name: string, dims: number[], seed: number, positive = false): Value {
  f[name] = t64(rng(seed), dims, positive ? (x => Math.abs(x) + 0.5) : undefined)
  return g.input(name, 'float64', dims)
}

describe('VJP rules on random shapes (float64 finite differences)', () => {
  it('Add / Sub / Mul / Div with random broadcasting (either side)', async () => {
    await fc.assert(fc.asyncProperty(shapeArb, fc.nat(3), fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.nat(1000), async (s, drop, ones, swap, seed) => {
      const p = broadcastPartner(s, drop, ones)
      const [sa, sb] = swap ? [p, s] : [s, p]
      await check((g, f) => {
        const a = inp(g, f, 'a', sa, seed)
        const b = inp(g, f, 'b', sb, seed + 1, true)
        return [g.add(a, b), g.sub(a, b), g.mul(a, b), g.div(a, b)]
      }, seed)
    }), { numRuns: RUNS })
  })

  it('MatMul with random batch broadcasting', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }), fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }), fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })), fc.nat(1000), async (batch, ones, [m, k, n], seed) => {
      const ba = batch.map((d, i) => ones[i] ? 1 : d)
      const bb = batch.slice(ones[0] ? 1 : 0)
      await check((g, f) => [g.matmul(inp(g, f, 'a', [...ba, m, k], seed), inp(g, f, 'b', [...bb, k, n], seed + 1))], seed)
    }), { numRuns: RUNS })
  })

  it('Softmax / LogSoftmax / ReduceSum / ReduceMean / Transpose on random axes', async () => {
    await fc.assert(fc.asyncProperty(shapeArb, fc.nat(), fc.boolean(), fc.nat(1000), async (s, axisSeed, keep, seed) => {
      const r = s.length
      const axis = axisSeed % r
      const axes = [...Array(r).keys()].filter((_, i) => ((axisSeed >> i) & 1) === 1 || i === axis)
      const perm = [...Array(r).keys()].sort((a, b) => ((a * 7 + axisSeed) % 5) - ((b * 7 + axisSeed) % 5))
      await check((g, f) => {
        const x = inp(g, f, 'x', s, seed)
        return [g.softmax(x, axis), g.logSoftmax(x, axis - r), g.reduceSum(x, axes, keep), g.reduceMean(x, axes, keep), g.transpose(x, perm)]
      }, seed)
    }), { numRuns: RUNS })
  })

  it('Slice / Concat / Split on random sizes', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.nat(), fc.nat(1000), async (n, m, cut, seed) => {
      const a = cut % n
      const b = a + 1 + (cut % (n - a))
      await check((g, f) => {
        const x = inp(g, f, 'x', [m, n], seed)
        const y = inp(g, f, 'y', [m, 2], seed + 1)
        const k = 1 + (cut % (n - 1))
        const [p, q] = g.split(x, [k, n - k], 1)
        // negative start, positive end; a concat repeating an input; both split halves
        return [g.slice(x, [a - n], [b], [1]), g.concat([x, y, x], 1), p, q]
      }, seed)
    }), { numRuns: RUNS })
  })
})
