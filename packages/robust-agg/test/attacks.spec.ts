import { describe, expect, it } from 'vitest'
import {
  aLittleIsEnough, alieZ, byzantineRound, coordinateMedian, gaussianNoise, innerProductManipulation, mean, mimic,
  nonFiniteValues, normalQuantile, signFlipping
} from '../src/index.js'
import { arr, thrown, vecs } from './helpers.js'

const honest = vecs([1, 2], [3, 4])

describe('attacks', () => {
  it('sign flipping sends −scale × the honest mean, or each worker its own flipped vector', () => {
    expect(signFlipping().craft(honest, 2).map(arr)).toEqual([[-2, -3], [-2, -3]])
    expect(signFlipping({ scale: 2 }).craft(honest, 1).map(arr)).toEqual([[-4, -6]])
    expect(signFlipping({ of: 'own' }).craft(honest, 3).map(arr)).toEqual([[-1, -2], [-3, -4], [-1, -2]])
  })
  it('inner-product manipulation sends −ε × the honest mean (Xie et al. 2020)', () => {
    expect(innerProductManipulation({ epsilon: 0.5 }).craft(honest, 1).map(arr)).toEqual([[-1, -1.5]])
    expect(innerProductManipulation().craft(honest, 1).map(arr)).toEqual([[-0.2, -0.3].map(Math.fround)])
  })
  it('a little is enough: z from n and f (Baruch et al. 2019)', () => {
    // n = 50, f = 24: s = ⌊26⌋ − 24 = 2, z = Φ⁻¹(48/50)
    expect(alieZ(50, 24)).toBe(normalQuantile(0.96))
    expect(alieZ(50, 24)).toBeCloseTo(1.7507, 4)
    // n = 5, f = 1: s = ⌊3.5⌋ − 1 = 2, z = Φ⁻¹(3/5)
    expect(alieZ(5, 1)).toBe(normalQuantile(0.6))
    // f too large for any s ≥ 1... s ≤ 0 makes (n − s)/n ≥ 1
    expect(thrown(() => alieZ(4, 4)).name).toBe('InvalidParametersError')
  })
  it('a little is enough sends μ − zσ with the sample standard deviation', () => {
    const h = vecs([0], [1], [2], [3])
    // μ = 1.5, σ = √(5/3); n = 5, f = 1 → z = Φ⁻¹(0.6)
    const [b] = aLittleIsEnough().craft(h, 1)
    expect(b[0]).toBe(Math.fround(1.5 - normalQuantile(0.6) * Math.sqrt(5 / 3)))
    const [c] = aLittleIsEnough({ z: 2, direction: 1 }).craft(h, 1)
    expect(c[0]).toBe(Math.fround(1.5 + 2 * Math.sqrt(5 / 3)))
  })
  it('gaussian noise is reproducible and has the asked spread', () => {
    const h = [new Float32Array(20_000)]
    const a = gaussianNoise({ sigma: 3, seed: 5 }).craft(h, 1)[0]
    expect(gaussianNoise({ sigma: 3, seed: 5 }).craft(h, 1)[0]).toEqual(a)
    let s = 0
    let s2 = 0
    for (const v of a) { s += v; s2 += v * v }
    expect(Math.abs(s / a.length)).toBeLessThan(0.1)
    expect(Math.sqrt(s2 / a.length)).toBeGreaterThan(2.9)
    expect(Math.sqrt(s2 / a.length)).toBeLessThan(3.1)
    const centred = gaussianNoise({ sigma: 0, centre: 'honest-mean' }).craft(honest, 1)
    expect(centred.map(arr)).toEqual([[2, 3]])
  })
  it('mimic copies one honest input', () => {
    expect(mimic({ target: 1 }).craft(honest, 2).map(arr)).toEqual([[3, 4], [3, 4]])
    expect(thrown(() => mimic({ target: 5 }).craft(honest, 1)).name).toBe('InvalidParametersError')
  })
  it('non-finite values poison coordinates of the honest mean', () => {
    const [a, b] = nonFiniteValues({ value: 'mixed', count: 2 }).craft(vecs([0, 0, 0, 0]), 2)
    expect(arr(a)).toEqual([NaN, 0, Infinity, 0])
    expect(arr(b)).toEqual([Infinity, 0, -Infinity, 0])
  })
  it('byzantineRound places the crafted inputs and reports where', () => {
    const end = byzantineRound(honest, signFlipping(), 1)
    expect(end.byzantine).toEqual([2])
    const start = byzantineRound(honest, signFlipping(), 1, { placement: 'start' })
    expect(start.byzantine).toEqual([0])
    expect(arr(start.inputs[0])).toEqual([-2, -3])
    const shuffled = byzantineRound(vecs([1], [2], [3], [4], [5]), signFlipping(), 3, { placement: 'shuffle', seed: 3 })
    expect(shuffled.byzantine.map(i => shuffled.inputs[i][0])).toEqual([-3, -3, -3])
    expect(shuffled.inputs.length).toBe(8)
  })
  it('the attacks are real: they move the mean, and median filters fail against ALIE only mildly', () => {
    const h = Array.from({ length: 8 }, (_, i) => Float32Array.from([1 + 0.1 * i]))
    const { inputs } = byzantineRound(h, signFlipping({ scale: 10 }), 2)
    const m = mean().aggregate(inputs).value[0]
    expect(m).toBeLessThan(0) // honest mean is 1.35
    expect(coordinateMedian().aggregate(inputs).value[0]).toBeGreaterThan(1)
  })
})
