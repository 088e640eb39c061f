import { describe, it, expect } from 'vitest'
import { initParameter, initShardParameters, initStd, parameterRng, Xoshiro128, preset, modelParameters, shardParameters, INIT_STD } from '../src/index.js'

describe('xoshiro128**', () => {
  it('matches the reference implementation for state [1, 2, 3, 4]', () => {
    // reference values computed with the C code from prng.di.unimi.it/xoshiro128starstar.c
    const rng = new Xoshiro128(Uint32Array.of(1, 2, 3, 4))
    const out = Array.from({ length: 6 }, () => rng.nextUint32())
    expect(out).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492])
  })
  it('rejects the all-zero state', () => {
    expect(() => new Xoshiro128(new Uint32Array(4))).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
  it('uniforms stay in the open unit interval', () => {
    const rng = parameterRng(1, 'x')
    for (let i = 0; i < 10000; i++) {
      const u = rng.nextOpenUnit()
      expect(u > 0 && u < 1).toBe(true)
    }
  })
})

describe('parameter init', () => {
  const config = preset('tiny')

  it('depends only on (seed, name): a shard inits exactly the full model slice', () => {
    const full = new Map(modelParameters(config).map(s => [s.name, initParameter(config, s, 42)]))
    const shard = initShardParameters(config, { kind: 'blocks', start: 1, end: 2 }, 42)
    expect([...shard.keys()]).toEqual(shardParameters(config, { kind: 'blocks', start: 1, end: 2 }).map(s => s.name))
    for (const [name, v] of shard) expect(v).toEqual(full.get(name))
    // a different seed or a different name gives different values
    const other = initShardParameters(config, { kind: 'blocks', start: 1, end: 2 }, 43)
    expect(other.get('blocks.1.attn.wq')).not.toEqual(shard.get('blocks.1.attn.wq'))
    expect(full.get('blocks.0.attn.wq')).not.toEqual(full.get('blocks.1.attn.wq'))
  })

  it('gives norms 1 and the documented standard deviations', () => {
    const params = initShardParameters(config, { kind: 'blocks', start: 0, end: 2 }, 7)
    expect(params.get('blocks.0.attn_norm.weight')!.every(v => v === 1)).toBe(true)
    const stats = (a: Float32Array): { mean: number, std: number } => {
      let s = 0; let s2 = 0
      for (const v of a) { s += v; s2 += v * v }
      const mean = s / a.length
      return { mean, std: Math.sqrt(s2 / a.length - mean * mean) }
    }
    const gate = stats(params.get('blocks.0.mlp.w_gate')!)
    expect(Math.abs(gate.mean)).toBeLessThan(0.002)
    expect(gate.std).toBeGreaterThan(INIT_STD * 0.95)
    expect(gate.std).toBeLessThan(INIT_STD * 1.05)
    const down = stats(params.get('blocks.1.mlp.w_down')!)
    const expected = INIT_STD / Math.sqrt(2 * config.nLayers)
    expect(initStd(config, 'blocks.1.mlp.w_down')).toBeCloseTo(expected)
    expect(initStd(config, 'blocks.1.attn.wo')).toBeCloseTo(expected)
    expect(down.std).toBeGreaterThan(expected * 0.95)
    expect(down.std).toBeLessThan(expected * 1.05)
  })

  it('is reproducible (pinned values, so other clients can check their implementation)', () => {
    const v = initParameter(config, { name: 'embed.weight', shape: [256, 64] }, 0)
    const again = initParameter(config, { name: 'embed.weight', shape: [256, 64] }, 0n)
    expect(again).toEqual(v)
    expect(Array.from(v.subarray(0, 4))).toEqual([-0.03507082909345627, 0.03677385672926903, -0.03948464244604111, -0.006571159232407808])
  })

  it('handles odd element counts and rejects bad seeds', () => {
    expect(initParameter(config, { name: 'odd', shape: [3] }, 1).length).toBe(3)
    expect(() => initParameter(config, { name: 'x', shape: [2] }, -1)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => initParameter(config, { name: 'x', shape: [2] }, 1.5)).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})
