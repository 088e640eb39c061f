import { describe, expect, it } from 'vitest'
import { contiguousRuns, slotTrainers, trainingChains, trainingPeers, trainingSpans } from '../../src/network/chains.js'

describe('trainingChains', () => {
  it('pairs Drivers with disjoint chains in peer-id order, long spans first', () => {
    const spans = [
      { peer: 'd2', start: 0, end: 2 }, { peer: 'd1', start: 0, end: 2 },
      { peer: 'v1', start: 2, end: 4 }, { peer: 'w1', start: 2, end: 3 }, { peer: 'h1', start: 3, end: 4 }
    ]
    expect(trainingChains(spans, 4)).toEqual([
      { driver: 'd1', driverEnd: 2, hops: [{ peer: 'v1', start: 2, end: 4 }] },
      { driver: 'd2', driverEnd: 2, hops: [{ peer: 'w1', start: 2, end: 3 }, { peer: 'h1', start: 3, end: 4 }] }
    ])
  })

  it('leaves out a Driver without a free chain and never shares a hop', () => {
    const spans = [{ peer: 'a', start: 0, end: 2 }, { peer: 'b', start: 0, end: 2 }, { peer: 'v', start: 2, end: 4 }]
    const chains = trainingChains(spans, 4)
    expect(chains).toEqual([{ driver: 'a', driverEnd: 2, hops: [{ peer: 'v', start: 2, end: 4 }] }])
    expect([...trainingPeers(chains, 'v')]).toEqual(['a'])
    expect(trainingPeers(chains, 'b').size).toBe(0)
  })

  it('backtracks past a dead end and lets a whole-model Driver train alone', () => {
    const spans = [
      { peer: 'a', start: 0, end: 1 }, { peer: 'x', start: 1, end: 3 }, { peer: 'y', start: 1, end: 2 }, { peer: 'z', start: 2, end: 4 },
      { peer: 'full', start: 0, end: 4 }
    ]
    // x's long span ends at 3 where nobody starts: the chain goes a → y → z instead
    expect(trainingChains(spans, 4)).toEqual([
      { driver: 'a', driverEnd: 1, hops: [{ peer: 'y', start: 1, end: 2 }, { peer: 'z', start: 2, end: 4 }] },
      { driver: 'full', driverEnd: 4, hops: [] }
    ])
  })

  it('ignores spans outside the model', () => {
    expect(trainingChains([{ peer: 'a', start: 0, end: 9 }, { peer: 'b', start: -1, end: 2 }], 4)).toEqual([])
  })
})

describe('trainingSpans', () => {
  it('takes only training spans: a serving-only node (it refuses training requests) is never paired', () => {
    const rec = (spans: Array<[number, number, string]>): { record: { spans: Array<{ start: number, end: number, state: string }> } } => ({ record: { spans: spans.map(([start, end, state]) => ({ start, end, state })) } })
    const records = new Map([
      ['a', rec([[0, 2, 'training']])],
      ['b', rec([[2, 4, 'serving']])],
      ['c', rec([[2, 4, 'training']])],
      ['d', rec([[2, 4, 'loading'], [0, 1, 'leaving']])]
    ])
    expect(trainingSpans(records)).toEqual([{ peer: 'a', start: 0, end: 2 }, { peer: 'c', start: 2, end: 4 }])
    // 'b' sorts before 'c': with its serving span counted, the Driver would be paired with it
    const live = [...records].flatMap(([peer, e]) => e.record.spans.filter(x => x.state === 'serving' || x.state === 'training').map(x => ({ peer, start: x.start, end: x.end })))
    expect(trainingChains(live, 4)[0].hops[0].peer).toBe('b')
    const chains = trainingChains(trainingSpans(records), 4)
    expect(chains).toEqual([{ driver: 'a', driverEnd: 2, hops: [{ peer: 'c', start: 2, end: 4 }] }])
  })
})

describe('adjacent spans of one peer', () => {
  it('merge into contiguous runs', () => {
    expect(contiguousRuns([{ start: 3, end: 4 }, { start: 0, end: 1 }, { start: 1, end: 2 }])).toEqual([{ start: 0, end: 2 }, { start: 3, end: 4 }])
    expect(contiguousRuns([{ start: 1, end: 3 }, { start: 2, end: 4 }])).toEqual([{ start: 1, end: 4 }])
    expect(contiguousRuns([])).toEqual([])
  })

  it('train as one hop: a Driver holding [0, 1) and [1, 2) gets a chain, and so does a Worker holding [2, 3) and [3, 4)', () => {
    // the layout a 4-node devnet reached after a claim next to a held span and a trim (its training stalled:
    // both Drivers' chains needed a peer twice, so one replica of each span never trained and rounds waited)
    const rec = (spans: Array<[number, number]>): { record: { spans: Array<{ start: number, end: number, state: string }> } } => ({ record: { spans: spans.map(([start, end]) => ({ start, end, state: 'training' })) } })
    const records = new Map([
      ['a', rec([[0, 1], [1, 2]])],
      ['b', rec([[0, 2]])],
      ['c', rec([[2, 3], [3, 4]])],
      ['d', rec([[2, 4]])]
    ])
    expect(trainingSpans(records)).toEqual([
      { peer: 'a', start: 0, end: 2 }, { peer: 'b', start: 0, end: 2 }, { peer: 'c', start: 2, end: 4 }, { peer: 'd', start: 2, end: 4 }
    ])
    expect(trainingChains(trainingSpans(records), 4)).toEqual([
      { driver: 'a', driverEnd: 2, hops: [{ peer: 'c', start: 2, end: 4 }] },
      { driver: 'b', driverEnd: 2, hops: [{ peer: 'd', start: 2, end: 4 }] }
    ])
  })
})

describe('slotTrainers', () => {
  it('names the holders that train a slot: a Driver over its span, a hop over its own; not a chain member\'s other span (testbed soak run 5)', () => {
    // run 5: two Drivers hold [0, 2) and, as a separate stage, [3, 4); two Validators hold [2, 4)
    const spans = [
      { peer: 'home-0', start: 0, end: 2 }, { peer: 'home-0', start: 3, end: 4 }, { peer: 'home-3', start: 0, end: 2 }, { peer: 'home-3', start: 3, end: 4 },
      { peer: 'home-1', start: 2, end: 4 }, { peer: 'home-2', start: 2, end: 4 }
    ]
    const chains = trainingChains(spans, 4)
    expect(chains).toEqual([
      { driver: 'home-0', driverEnd: 2, hops: [{ peer: 'home-1', start: 2, end: 4 }] },
      { driver: 'home-3', driverEnd: 2, hops: [{ peer: 'home-2', start: 2, end: 4 }] }
    ])
    // slot 3 has four holders, two of which train it
    expect([...slotTrainers(chains, 3)].sort()).toEqual(['home-1', 'home-2'])
    expect([...slotTrainers(chains, 1)].sort()).toEqual(['home-0', 'home-3'])
    // a holder in no chain (a third Driver without a free chain) trains nothing
    expect([...slotTrainers(trainingChains([...spans, { peer: 'late', start: 0, end: 2 }], 4), 0)].sort()).toEqual(['home-0', 'home-3'])
    // a whole-model Driver trains every slot alone
    expect([...slotTrainers(trainingChains([{ peer: 'full', start: 0, end: 4 }], 4), 3)]).toEqual(['full'])
    expect(slotTrainers([], 0).size).toBe(0)
  })
})
