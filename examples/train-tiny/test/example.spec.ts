import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: train-tiny', () => {
  it('builds tokenizer + genesis data, the validation loss falls, and the model generates tokens', async () => {
    const lines: string[] = []
    const r = await main(line => lines.push(line))
    expect(r.vocabSize).toBe(512)
    expect(r.manifestHash).toMatch(/^[0-9a-f]{64}$/)
    expect(r.trainTokens).toBeGreaterThan(5_000)
    expect(r.steps).toBe(60)
    expect(r.parameters).toBeGreaterThan(100_000)
    // before training the model is about a uniform guess, ln(512) ≈ 6.24 nats/token
    expect(r.lossBefore).toBeGreaterThan(5.8)
    // a few dozen steps already learn the unigram statistics: a clear drop
    expect(r.lossAfter).toBeLessThan(r.lossBefore - 0.5)
    expect(r.generatedIds).toHaveLength(16)
    for (const id of r.generatedIds) expect(id).toBeLessThan(r.vocabSize)
    expect(lines.some(l => l.startsWith('generated after'))).toBe(true)
  })
})
