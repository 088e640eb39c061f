// The README's example, kept here so that it compiles and runs (imports by package name in the README).
import { describe, expect, it } from 'vitest'
import { byzantineRound, compose, krum, nnm, signFlipping, trimmedMean } from '../src/index.js'

describe('README example', () => {
  it('aggregates five honest and two sign-flipping peers', () => {
    const honest = [
      Float32Array.from([1.0, 2.0, 3.0]),
      Float32Array.from([1.1, 1.9, 3.2]),
      Float32Array.from([0.9, 2.1, 2.9]),
      Float32Array.from([1.0, 2.2, 3.1]),
      Float32Array.from([1.2, 1.8, 3.0])
    ]
    // two Byzantine peers send −100 × the honest mean
    const { inputs, byzantine } = byzantineRound(honest, signFlipping({ scale: 100 }), 2)

    const robust = compose(nnm({ f: 2 }), trimmedMean({ f: 2 }))
    const { value, stages } = robust.aggregate(inputs)
    // value ≈ [1.04, 2.0, 3.04]; stages[0].neighbours says whom each input was mixed with

    const chosen = krum({ f: 2 }).aggregate(inputs)
    // chosen.selected: an honest index; chosen.scores: one Krum score per input

    expect(byzantine).toEqual([5, 6])
    for (let j = 0; j < 3; j++) expect(Math.abs(value[j] - [1.04, 2.0, 3.04][j])).toBeLessThan(0.1)
    expect(stages?.[0].neighbours?.[0]).not.toContain(5)
    expect(byzantine).not.toContain(chosen.selected?.[0])
  })
})
