/**
 * Replays specs/diloco/vectors/vectors.json, written by the independent Python generator next to it
 * (float32 emulated with struct; no NeuroShard code).
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { decodePayload, encodePayload, ErrorFeedback, leaderKey, outerStep, privacyEpsilon, resolveCodec } from '../src/index.js'
import type { CodecParams } from '../src/index.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = here.includes('/dist/') ? join(here, '..', '..', '..', '..') : join(here, '..', '..', '..')
const vectors = JSON.parse(readFileSync(join(root, 'specs', 'diloco', 'vectors', 'vectors.json'), 'utf8'))

const fromBits = (bits: number[]): Float32Array => new Float32Array(Uint32Array.from(bits).buffer)
const toBits = (x: Float32Array): number[] => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('specs/diloco vectors', () => {
  it('outer Nesterov steps, bit for bit', () => {
    for (const v of vectors.outer) {
      const theta = fromBits(v.theta)
      const mom = fromBits(v.momentum)
      outerStep(theta, mom, fromBits(v.g), { lr: v.lr, momentum: v.mu })
      expect(toBits(theta)).toEqual(v.theta_out)
      expect(toBits(mom)).toEqual(v.momentum_out)
    }
  })

  it('codec payloads and decoded values, bit for bit', () => {
    expect(vectors.codecs.length).toBeGreaterThanOrEqual(8)
    for (const v of vectors.codecs) {
      const codec = resolveCodec(v.codec as CodecParams)
      const input = fromBits(v.input)
      expect(hex(encodePayload(input, codec)), JSON.stringify(v.codec)).toBe(v.payload)
      expect(toBits(decodePayload(Buffer.from(v.payload, 'hex'), input.length, codec))).toEqual(v.decoded)
    }
  })

  it('error feedback over three rounds', () => {
    const v = vectors.errorFeedback
    const codec = resolveCodec(v.codec)
    const ef = new ErrorFeedback(8, v.decay)
    for (const r of v.rounds) {
      expect(hex(ef.compress(fromBits(r.delta), codec).payload)).toBe(r.payload)
      expect(toBits(ef.residual)).toEqual(r.residual_after)
    }
  })

  it('malformed payloads are refused with the named error', () => {
    for (const v of vectors.malformed) {
      expect(() => decodePayload(Buffer.from(v.payload, 'hex'), v.elements, resolveCodec(v.codec)), v.why).toThrow(expect.objectContaining({ name: v.error }))
    }
  })

  it('leader keys and privacy ε', () => {
    for (const v of vectors.leader) expect(leaderKey(v.round, Buffer.from(v.peer, 'hex'))).toBe(v.key)
    for (const v of vectors.privacy) expect(privacyEpsilon(v.rounds, v.noiseMultiplier, v.delta)).toBeCloseTo(v.epsilon, 12)
  })
})
