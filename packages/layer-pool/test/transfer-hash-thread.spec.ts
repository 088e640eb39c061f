import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { hashThreadStats, ownedDestination, prefaultedBuffer, stopHashThread, streamContentHash } from '../src/transfer/hash-thread.js'
import { canonicalStream, canonicalTensors, digestChunks, tensorsContentHash } from '../src/transfer/index.js'
import type { SpanTensor } from '../src/transfer/index.js'

interface VectorCase {
  name: string
  tensors: Array<{ name: string, shape: number[], values: number[] }>
  stream: string
  weightsHash: string
}

const vectors = JSON.parse(readFileSync(new URL('../../../specs/layer-pool/vectors/chunks.json', import.meta.url), 'utf8')) as { cases: VectorCase[] }

/** Deterministic pseudo-random F32 tensors of these shapes (names out of canonical order on purpose) */
function makeTensors (shapes: Array<[string, number[]]>, seed: number): SpanTensor[] {
  let state = seed >>> 0
  return shapes.map(([name, shape]) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1))
    for (let i = 0; i < data.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0
      data[i] = state / 2 ** 32 - 0.5
    }
    return { name, shape, data }
  })
}

/** Feeds the stream's prefix in steps of `step` bytes (the last step to the end), then digests */
async function hashInSteps (tensors: SpanTensor[], step: number, options: Parameters<typeof streamContentHash>[2]): Promise<string> {
  const layout = canonicalTensors(tensors)
  const stream = canonicalStream(tensors)
  const h = streamContentHash(layout, stream, options)
  for (let to = step; to < stream.byteLength; to += step) h.advance(to)
  h.advance(stream.byteLength)
  return h.digest()
}

// ≈ 6.3 MB, with empty tensors first, in the middle and last, and tensors that end inside a staging slot
const BIG: Array<[string, number[]]> = [
  ['b.weight', [700, 1024]], ['a.empty', [0]], ['c.bias', [3]], ['a.weight', [513, 1001]], ['m.empty', [4, 0]],
  ['B.scale', [1]], ['d.weight', [1, 257]], ['z.empty', [0, 0]]
]

describe('incremental contentHash (hash-thread)', () => {
  for (const c of vectors.cases) {
    it(`replays the weights hash of vector "${c.name}" fed in 1-, 3- and 16-byte steps, inline and on the thread`, async () => {
      const tensors = c.tensors.map(t => ({ name: t.name, shape: t.shape, data: Float32Array.from(t.values) }))
      for (const step of [1, 3, 16]) {
        expect(await hashInSteps(tensors, step, { thread: false })).toBe(c.weightsHash)
        expect(await hashInSteps(tensors, step, { threadMinBytes: 0 })).toBe(c.weightsHash)
      }
    })
  }

  it('equals contentHash on a multi-MiB stream fed in steps that do not align with tensors or staging slots', async () => {
    const tensors = makeTensors(BIG, 7)
    const expected = tensorsContentHash(tensors)
    for (const step of [1 << 20, 999_983, 5 * (1 << 20) + 3]) {
      const before = hashThreadStats().threadDigests
      expect(await hashInSteps(tensors, step, {})).toBe(expected)
      // it was the thread that hashed it (not the inline fallback)
      expect(hashThreadStats().threadDigests).toBe(before + 1)
      expect(await hashInSteps(tensors, step, { thread: false })).toBe(expected)
    }
    // one changed value changes it
    const changed = makeTensors(BIG, 7)
    changed[3].data[12345] += 1
    expect(await hashInSteps(changed, 1 << 20, {})).not.toBe(expected)
  })

  it('runs several streams on the thread at once, and an aborted one does not disturb the others', async () => {
    const a = makeTensors(BIG, 1)
    const b = makeTensors(BIG, 2)
    const sa = canonicalStream(a)
    const sb = canonicalStream(b)
    const ha = streamContentHash(canonicalTensors(a), sa)
    const hb = streamContentHash(canonicalTensors(b), sb)
    const hc = streamContentHash(canonicalTensors(a), sa)
    for (let to = 0; to <= sa.byteLength; to += 1 << 19) {
      ha.advance(to)
      hb.advance(to)
      hc.advance(to)
      if (to >= 2 << 20) hc.abort()
    }
    ha.advance(sa.byteLength)
    hb.advance(sb.byteLength)
    expect(await Promise.all([ha.digest(), hb.digest()])).toEqual([tensorsContentHash(a), tensorsContentHash(b)])
  })

  it('finishes inline when the thread stops mid-way, and the next stream starts a new thread', async () => {
    const tensors = makeTensors(BIG, 3)
    const stream = canonicalStream(tensors)
    const before = hashThreadStats().threadDigests
    const h = streamContentHash(canonicalTensors(tensors), stream)
    h.advance(3 << 20)
    await stopHashThread()
    h.advance(stream.byteLength)
    expect(await h.digest()).toBe(tensorsContentHash(tensors))
    expect(hashThreadStats().threadDigests).toBe(before)
    expect(await hashInSteps(tensors, 1 << 20, {})).toBe(tensorsContentHash(tensors))
    expect(hashThreadStats().threadDigests).toBe(before + 1)
  })

  it('an owned destination places only matching chunks, in any order, and hashes them as contentHash', async () => {
    const tensors = makeTensors(BIG, 5)
    const layout = canonicalTensors(tensors)
    const stream = canonicalStream(tensors)
    const chunkSize = 1 << 20
    const { chunkHashes } = digestChunks(tensors, { chunkSize })
    const dest = ownedDestination(layout, chunkSize)!
    expect(dest).toBeDefined()
    const chunk = (i: number): Uint8Array => stream.subarray(i * chunkSize, Math.min((i + 1) * chunkSize, stream.byteLength))
    // a wrong chunk is refused, with the hash it has
    const bad = chunk(0).slice()
    bad[17] ^= 1
    const refused = await dest.put(0, [bad], bad.byteLength, chunkHashes[0])
    expect(refused.ok).toBe(false)
    expect(Buffer.from(refused.hash).equals(Buffer.from(chunkHashes[0]))).toBe(false)
    // then every chunk, last first, each given in two pieces
    for (let i = chunkHashes.length - 1; i >= 0; i--) {
      const c = chunk(i)
      const cut = c.byteLength >> 1
      await dest.ready()
      expect((await dest.put(i, [c.subarray(0, cut), c.subarray(cut)], c.byteLength, chunkHashes[i])).ok).toBe(true)
    }
    const { hex, buffers } = await dest.finish(true)
    expect(hex).toBe(tensorsContentHash(tensors))
    // the buffers are the tensors, in canonical order, with the right bytes (the refused chunk left no trace)
    expect(buffers.map(b => b.byteLength)).toEqual(layout.map(t => t.data!.byteLength))
    for (const [i, t] of layout.entries()) {
      expect(Buffer.from(buffers[i]).equals(Buffer.from(t.data!.buffer, t.data!.byteOffset, t.data!.byteLength))).toBe(true)
    }
  })

  it('an owned destination that is not complete gives its buffers back without a hash', async () => {
    const tensors = makeTensors(BIG, 6)
    const layout = canonicalTensors(tensors)
    const stream = canonicalStream(tensors)
    const { chunkHashes } = digestChunks(tensors, { chunkSize: 1 << 20 })
    const dest = ownedDestination(layout, 1 << 20)!
    expect((await dest.put(1, [stream.subarray(1 << 20, 2 << 20)], 1 << 20, chunkHashes[1])).ok).toBe(true)
    const { hex, buffers } = await dest.finish(true)
    expect(hex).toBeUndefined()
    // chunk 1 is in place: bytes [1 MiB, 2 MiB) of the stream the buffers make up
    const joined = Buffer.concat(buffers.map(b => new Uint8Array(b)))
    expect(joined.byteLength).toBe(stream.byteLength)
    expect(joined.subarray(1 << 20, 2 << 20).equals(Buffer.from(stream.subarray(1 << 20, 2 << 20)))).toBe(true)
  })

  it('hands out zeroed, writable buffers of the size asked for', async () => {
    const bytes = 3 * (1 << 20) + 5
    const before = hashThreadStats().prefaults
    const buffer = await prefaultedBuffer(bytes)
    expect(hashThreadStats().prefaults).toBe(before + 1)
    expect(buffer.byteLength).toBe(bytes)
    expect(buffer.every(v => v === 0)).toBe(true)
    buffer.fill(9)
    expect(buffer[bytes - 1]).toBe(9)
  })
})
