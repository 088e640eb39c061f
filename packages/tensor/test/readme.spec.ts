// The example of README.md, kept compiling and passing
import { describe, expect, it } from 'vitest'
import {
  decodeTensorFrame, dequantizeInt8, encodeTensorFrame, int8ErrorBound, quantizeInt8, tensorHashHex
} from '../src/index.js'

describe('README example', () => {
  it('runs', () => {
    // an activation tensor: batch 2, sequence 3, hidden 4
    const acts = new Float32Array(24).map((_, i) => Math.sin(i))
    const frame = encodeTensorFrame({ dtype: 'float32', shape: [2, 3, 4], name: 'block.7.out', data: acts })

    // on the receiving side: validated against a cap, then viewed in place
    const t = decodeTensorFrame(frame, { maxBytes: 64 * 1024 * 1024 })
    if (t.dtype !== 'float32') throw new Error('expected float32')
    expect(t.data).toEqual(acts)

    // compress a pseudo-gradient to int8 (one float32 scale per 64 values) and send that instead
    const q = quantizeInt8(acts)
    const small = encodeTensorFrame({ dtype: 'int8', shape: [2, 3, 4], ...q })
    const back = decodeTensorFrame(small)
    if (back.dtype !== 'int8') throw new Error('expected int8')
    const approx = dequantizeInt8(back)
    const worst = Math.max(...acts.map((x, i) => Math.abs(x - approx[i])))
    expect(worst).toBeLessThanOrEqual(int8ErrorBound(q.scales[0]))

    // the same content hash from the tensor and from its frame
    expect(tensorHashHex(t)).toBe(tensorHashHex(frame))
  })
})
