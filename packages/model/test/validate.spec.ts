import { describe, it, expect } from 'vitest'
import { validateConfig, preset } from '../src/index.js'
import type { ModelConfig } from '../src/index.js'

function expectInvalid (patch: Partial<Record<keyof ModelConfig, unknown>>, match: RegExp): void {
  const c = { ...preset('tiny'), ...patch } as ModelConfig
  expect(() => validateConfig(c)).toThrow(match)
  try { validateConfig(c) } catch (err: any) { expect(err.name).toBe('InvalidConfigError') }
}

describe('validateConfig', () => {
  it('accepts the presets', () => {
    expect(validateConfig(preset('tiny'))).toEqual(preset('tiny'))
  })
  it('rejects d not divisible by heads', () => { expectInvalid({ dModel: 66 }, /divisible by nHeads/) })
  it('rejects heads not divisible by kv heads', () => { expectInvalid({ nKvHeads: 3 }, /divisible by nKvHeads/) })
  it('rejects odd head dims (RoPE)', () => { expectInvalid({ dModel: 60, nHeads: 4, nKvHeads: 2 }, /even/) })
  it('rejects non-positive or fractional sizes', () => {
    expectInvalid({ nLayers: 0 }, /nLayers/)
    expectInvalid({ vocabSize: -1 }, /vocabSize/)
    expectInvalid({ ffnHidden: 1.5 }, /ffnHidden/)
    expectInvalid({ maxSeqLen: 'x' }, /maxSeqLen/)
    expectInvalid({ normEps: 0 }, /normEps/)
    expectInvalid({ ropeTheta: Number.POSITIVE_INFINITY }, /ropeTheta/)
    expectInvalid({ tieEmbeddings: 1 }, /tieEmbeddings/)
  })
})
