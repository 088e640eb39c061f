import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import {
  decodeTensorFrame, dequantizeInt8, encodeTensorFrame, fromBFloat16, fromFloat16, quantizeInt8, tensorHashHex,
  toBFloat16, toFloat16, hasNativeFloat16Array
} from '../src/index.js'
import type { Tensor } from '../src/index.js'

// test/ → packages/tensor → packages → repo root
const vectorsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs', 'tensor-frame', 'vectors')

interface Vector {
  description: string
  frame: string
  dtype?: Tensor['dtype']
  shape?: number[]
  name?: string
  values?: Array<number | string>
  bits?: number[]
  scales?: Array<number | string>
  dequantized?: Array<number | string>
  source?: Array<number | string>
  blockSize?: number
  hash?: string
  error?: string
  maxBytes?: number
}

const allFiles = readdirSync(vectorsDir).filter((f) => f.endsWith('.json')).sort()
// convert-*.json are conversion vectors (written by conversions.py), encoding.json the encoder's cases (encoding.py),
// the rest are frames
const files = allFiles.filter((f) => !f.startsWith('convert-') && f !== 'encoding.json')
const vectors = files.map((f) => ({ file: f, v: JSON.parse(readFileSync(join(vectorsDir, f), 'utf8')) as Vector }))
const validVectors = vectors.filter(({ v }) => v.error === undefined)
const invalidVectors = vectors.filter(({ v }) => v.error !== undefined)

/** JSON number or one of the strings "NaN", "Infinity", "-Infinity", "-0" */
function num (x: number | string): number {
  if (typeof x === 'number') return x
  const special: Record<string, number> = { NaN, Infinity, '-Infinity': -Infinity, '-0': -0 }
  if (!(x in special)) throw new Error(`bad number ${x}`)
  return special[x]
}

const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

/** Element-wise identity: NaN equals NaN, -0 differs from 0 */
function expectSameFloats (actual: ArrayLike<number>, expected: number[]): void {
  expect(actual.length).toBe(expected.length)
  for (let i = 0; i < expected.length; i++) {
    expect(Object.is(actual[i], expected[i]), `element ${i}: ${actual[i]} vs ${expected[i]}`).toBe(true)
  }
}

/** The tensor a vector states, built from its JSON fields alone */
function expectedTensor (v: Vector): Tensor {
  const shape = v.shape ?? []
  const values = v.values ?? []
  const named = v.name !== undefined ? { name: v.name } : {}
  switch (v.dtype) {
    case 'float32': return { dtype: 'float32', shape, data: new Float32Array(values.map(num)), ...named }
    case 'float16': return { dtype: 'float16', shape, data: new Uint16Array(v.bits ?? []), ...named }
    case 'bfloat16': return { dtype: 'bfloat16', shape, data: new Uint16Array(v.bits ?? []), ...named }
    case 'int32': return { dtype: 'int32', shape, data: new Int32Array(values.map(num)), ...named }
    case 'int64': return { dtype: 'int64', shape, data: new BigInt64Array(values.map((x) => BigInt(x))), ...named }
    case 'int8': return { dtype: 'int8', shape, data: new Int8Array(values.map(num)), scales: new Float32Array((v.scales ?? []).map(num)), blockSize: v.blockSize ?? 0, ...named }
    default: throw new Error(`vector has no dtype: ${v.description}`)
  }
}

describe('specs/tensor-frame/vectors', () => {
  it('has a valid vector for every dtype and the edge cases, and invalid vectors', () => {
    const dtypes = new Set(validVectors.map(({ v }) => v.dtype))
    expect([...dtypes].sort()).toEqual(['bfloat16', 'float16', 'float32', 'int32', 'int64', 'int8'])
    expect(validVectors.some(({ v }) => v.shape?.length === 0)).toBe(true) // scalar
    expect(validVectors.some(({ v }) => v.shape?.includes(0))).toBe(true) // empty
    expect(validVectors.some(({ v }) => v.name !== undefined)).toBe(true) // named
    expect(invalidVectors.length).toBeGreaterThanOrEqual(20)
  })

  describe.each(validVectors)('$file', ({ v }) => {
    const frame = unhex(v.frame)

    it('decodes to the stated dtype, shape, name and values', () => {
      const t = decodeTensorFrame(frame)
      expect(t.dtype).toBe(v.dtype)
      expect(t.shape).toEqual(v.shape)
      expect(t.name).toBe(v.name)
      const values = v.values ?? []
      switch (t.dtype) {
        case 'float32': expectSameFloats(t.data, values.map(num)); break
        case 'float16':
          expect(Array.from(t.data)).toEqual(v.bits)
          expectSameFloats(fromFloat16(t.data), values.map(num))
          break
        case 'bfloat16':
          expect(Array.from(t.data)).toEqual(v.bits)
          expectSameFloats(fromBFloat16(t.data), values.map(num))
          break
        case 'int32': expect(Array.from(t.data)).toEqual(values); break
        case 'int64': expect(Array.from(t.data, String)).toEqual(values); break
        case 'int8':
          expect(Array.from(t.data)).toEqual(values)
          expect(t.blockSize).toBe(v.blockSize)
          expectSameFloats(t.scales, (v.scales ?? []).map(num))
          expectSameFloats(dequantizeInt8(t), (v.dequantized ?? []).map(num))
          break
      }
    })

    it('encodes the stated values to exactly the frame bytes', () => {
      expect(Buffer.from(encodeTensorFrame(expectedTensor(v))).toString('hex')).toBe(v.frame)
    })

    it('has the stated content hash, from the frame and from the tensor', () => {
      expect(tensorHashHex(frame)).toBe(v.hash)
      expect(tensorHashHex(expectedTensor(v))).toBe(v.hash)
    })

    if (v.source !== undefined) {
      it('converts "source" to the stated values', () => {
        const source = new Float32Array(v.source!.map(num))
        if (v.dtype === 'int8') {
          const q = quantizeInt8(source, { blockSize: v.blockSize })
          expect(Array.from(q.data)).toEqual(v.values)
          expectSameFloats(q.scales, (v.scales ?? []).map(num))
        } else if (v.dtype === 'float16') {
          expect(Array.from(toFloat16(source, { overflow: 'infinity' }))).toEqual(v.bits)
        } else if (v.dtype === 'bfloat16') {
          expect(Array.from(toBFloat16(source))).toEqual(v.bits)
        }
      })
    }
  })

  describe.each(invalidVectors)('$file', ({ v }) => {
    it(`is rejected with ${v.error}`, () => {
      const frame = unhex(v.frame)
      const options = v.maxBytes !== undefined ? { maxBytes: v.maxBytes } : {}
      expect(() => decodeTensorFrame(frame, options)).toThrow(expect.objectContaining({ name: v.error }))
      expect(() => tensorHashHex(frame, options)).toThrow(expect.objectContaining({ name: v.error }))
    })
  })
})

describe('specs/tensor-frame/vectors conversions (convert-*.json)', () => {
  const conversions = allFiles.filter((f) => f.startsWith('convert-')).map((f) => ({ file: f, v: JSON.parse(readFileSync(join(vectorsDir, f), 'utf8')) }))

  it('covers float16, bfloat16 and int8', () => {
    expect(new Set(conversions.map(({ v }) => v.format))).toEqual(new Set(['float16', 'bfloat16', 'int8']))
  })

  it.each(conversions)('$file', ({ v }) => {
    if (v.format === 'int8') {
      expect(() => quantizeInt8(new Float32Array(v.source.map(num)), { blockSize: v.blockSize })).toThrow(expect.objectContaining({ name: v.error }))
      return
    }
    const input = new Float32Array(new Uint32Array([parseInt(v.float32Bits, 16)]).buffer)
    const convert = v.format === 'float16' ? toFloat16 : toBFloat16
    if (v.error !== undefined) {
      expect(() => convert(input)).toThrow(expect.objectContaining({ name: v.error }))
      expect(convert(input, { overflow: 'infinity' })[0]).toBe(v.bitsWithInfinity)
      return
    }
    const got = convert(input)[0]
    if (v.bits === 'NaN') {
      // float16: any quiet NaN (sign and payload are not specified)
      expect(got & 0x7c00, `native Float16Array: ${String(hasNativeFloat16Array)}`).toBe(0x7c00)
      expect(got & 0x0200).toBe(0x0200)
    } else {
      expect(got).toBe(v.bits)
    }
  })
})

describe('specs/tensor-frame/vectors/encoding.json (Encoding rules: one frame per tensor, refusals)', () => {
  interface EncodeCase { name: string, tensor: { dtype: string, shape: number[], name?: string, dataHex: string, blockSize?: number, scalesHex?: string }, frame?: string, error?: string }
  const cases = (JSON.parse(readFileSync(join(vectorsDir, 'encoding.json'), 'utf8')) as { cases: EncodeCase[] }).cases
  const ARRAYS: Record<string, { new (b: ArrayBuffer, o: number, n: number): ArrayLike<unknown>, BYTES_PER_ELEMENT: number }> = {
    float32: Float32Array, float16: Uint16Array, bfloat16: Uint16Array, int8: Int8Array, int32: Int32Array, int64: BigInt64Array
  }
  it.each(cases)('$name', ({ tensor: t, frame, error }) => {
    const bytes = unhex(t.dataHex)
    const A = ARRAYS[t.dtype] ?? Uint8Array
    const tensor: any = { dtype: t.dtype, shape: t.shape, data: new A(bytes.buffer as ArrayBuffer, 0, bytes.byteLength / A.BYTES_PER_ELEMENT) }
    if (t.name !== undefined) tensor.name = t.name
    if (t.dtype === 'int8') {
      const s = unhex(t.scalesHex ?? '')
      tensor.blockSize = t.blockSize
      tensor.scales = new Float32Array(s.buffer as ArrayBuffer, 0, s.byteLength / 4)
    }
    if (error !== undefined) {
      expect(() => encodeTensorFrame(tensor as Tensor)).toThrow(expect.objectContaining({ name: error }))
    } else {
      expect(Buffer.from(encodeTensorFrame(tensor as Tensor)).toString('hex')).toBe(frame)
    }
  })
})

// The independent Python checkers next to the vectors (written from the spec text) must agree with the files too.
const hasPython = spawnSync('python3', ['--version']).status === 0
describe('independent Python checkers', () => {
  it.skipIf(!hasPython)('specs/tensor-frame/vectors/conversions.py', () => {
    const r = spawnSync('python3', [new URL('../../../specs/', import.meta.url).pathname + 'tensor-frame/vectors/conversions.py'], { encoding: 'utf8', timeout: 120_000 })
    expect(r.status, r.stderr + r.stdout).toBe(0)
  })
})
