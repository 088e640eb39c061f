// The Node 22 path: load the module with no global Float16Array and check it against the native one
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import * as native from '../src/float16.js'

type Float16Module = typeof import('../src/float16.js')

describe('float16 without a native Float16Array (Node 22)', () => {
  const saved = (globalThis as { Float16Array?: unknown }).Float16Array
  let portable: Float16Module

  beforeAll(async () => {
    delete (globalThis as { Float16Array?: unknown }).Float16Array
    vi.resetModules()
    portable = await import('../src/float16.js')
  })

  afterAll(() => {
    if (saved !== undefined) (globalThis as { Float16Array?: unknown }).Float16Array = saved
    vi.resetModules()
  })

  it('uses the portable path and converts exactly like the default path', () => {
    expect(portable.hasNativeFloat16Array).toBe(false)
    const x = new Float32Array(100_000).map((_, i) => Math.fround(Math.sinh((i - 50_000) / 4000) * 1000))
    x[0] = NaN
    x[1] = -Infinity
    x[2] = -0
    x[3] = 1e-8
    const a = portable.toFloat16(x, { overflow: 'infinity' })
    const b = native.toFloat16(x, { overflow: 'infinity' })
    expect(Array.from(a.subarray(1))).toEqual(Array.from(b.subarray(1)))
    expect(Number.isNaN(portable.fromFloat16(a)[0])).toBe(true)
    expect(portable.fromFloat16(a).subarray(1)).toEqual(native.fromFloat16(b).subarray(1))
  })

  it('throws on overflow, or gives Infinity when asked', () => {
    const x = new Float32Array([1, 2, 70000])
    expect(() => portable.toFloat16(x)).toThrow(expect.objectContaining({ name: 'NonFiniteValueError', message: expect.stringContaining('index 2') }))
    expect(Array.from(portable.toFloat16(x, { overflow: 'infinity' }))).toEqual([0x3c00, 0x4000, 0x7c00])
  })
})
