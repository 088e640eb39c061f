import { describe, it, expect } from 'vitest'
import { PRESETS, preset, TINY, countParameters, modelParameters, validateConfig, architectureForCapacity, BYTES_PER_PARAMETER } from '../src/index.js'

describe('presets', () => {
  it('are valid configs with the advertised sizes', () => {
    for (const c of Object.values(PRESETS)) expect(validateConfig({ ...c })).toBeTruthy()
    const n = (c: typeof TINY): number => countParameters(modelParameters(c))
    expect(n(PRESETS.tiny)).toBeLessThan(500_000)
    expect(n(PRESETS.small)).toBeGreaterThan(25e6)
    expect(n(PRESETS.small)).toBeLessThan(35e6)
    expect(n(PRESETS.bootstrap)).toBeGreaterThan(115e6)
    expect(n(PRESETS.bootstrap)).toBeLessThan(135e6)
  })

  it('tiny has the shape the devnet and vectors rely on', () => {
    expect(TINY.dModel).toBe(64)
    expect(TINY.nHeads).toBe(4)
    expect(TINY.nKvHeads).toBe(2)
    expect(TINY.vocabSize).toBeGreaterThanOrEqual(256)
  })

  it('preset() returns a mutable copy', () => {
    const c = preset('tiny')
    c.nLayers = 7
    expect(PRESETS.tiny.nLayers).toBe(2)
    expect(Object.isFrozen(PRESETS.tiny)).toBe(true)
  })
})

describe('architectureForCapacity', () => {
  // seed 003: Architecture Scaling table
  const rows = [
    { nodes: 10, mem: 40e9, layers: 16, width: 1024, params: 350e6 },
    { nodes: 100, mem: 800e9, layers: 32, width: 3072, params: 9.2e9 },
    { nodes: 1000, mem: 8e12, layers: 64, width: 7168, params: 123e9 }
  ]
  for (const row of rows) {
    it(`${row.nodes} nodes / ${row.mem / 1e9} GB ≈ ${row.layers}L × ${row.width}H (${row.params / 1e9}B)`, () => {
      const c = architectureForCapacity({ nodes: row.nodes, totalMemoryBytes: row.mem })
      validateConfig(c)
      const p = countParameters(modelParameters(c))
      expect(p / row.params).toBeGreaterThan(0.1)
      expect(p / row.params).toBeLessThan(10)
      expect(c.nLayers / row.layers).toBeGreaterThanOrEqual(0.75)
      expect(c.nLayers / row.layers).toBeLessThanOrEqual(1.25)
      expect(c.dModel / row.width).toBeGreaterThanOrEqual(0.5)
      expect(c.dModel / row.width).toBeLessThanOrEqual(1.5)
      // the rule never exceeds its memory budget
      expect(p * BYTES_PER_PARAMETER).toBeLessThanOrEqual(row.mem)
    })
  }

  it('grows monotonically with capacity and stays valid for small networks', () => {
    let prev = 0
    for (const mem of [1e9, 4e9, 16e9, 64e9, 256e9, 1e12, 4e12]) {
      const c = architectureForCapacity({ nodes: Math.max(1, Math.round(mem / 4e9)), totalMemoryBytes: mem })
      validateConfig(c)
      const p = countParameters(modelParameters(c))
      expect(p).toBeGreaterThanOrEqual(prev)
      prev = p
    }
  })

  it('rejects nonsense capacity', () => {
    expect(() => architectureForCapacity({ nodes: 0, totalMemoryBytes: 1e9 })).toThrow(expect.objectContaining({ name: 'InvalidConfigError' }))
    expect(() => architectureForCapacity({ nodes: 2, totalMemoryBytes: Number.NaN })).toThrow(expect.objectContaining({ name: 'InvalidConfigError' }))
  })
})
