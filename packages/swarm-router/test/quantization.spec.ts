/**
 * Quantized spans (layer records' `quantization`, specs/layer-pool §2.4): the router reports each hop's format and a
 * Driver can keep its inference chains to the formats it accepts; training chains take any span.
 */
import { describe, it, expect } from 'vitest'
import { defaultLogger } from '@libp2p/logger'
import { peerFromBytes } from '@neuroshard/pipeline'
import { swarmRouter } from '../src/index.js'
import type { RecordSource } from '../src/index.js'
import type { PeerId } from '@libp2p/interface'

let next = 1
/** A peer id (identity multihash of an Ed25519 public key; the key bytes do not matter to routing) */
async function peer (): Promise<PeerId> {
  return peerFromBytes(Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...new Array(32).fill(next++)]))
}

describe('quantized spans in routing', () => {
  it('hops carry their format; quantization: [fp32] avoids the 4-bit replica; training ignores the filter', async () => {
    const [me, fast4, slow32, head] = await Promise.all([peer(), peer(), peer(), peer()])
    const records = new Map<string, { record: { peerId: PeerId, spans: Array<{ start: number, end: number, state: string, throughput: number, quantization?: 'fp32' | 'int8' | 'int4' }> } }>([
      [fast4.toString(), { record: { peerId: fast4, spans: [{ start: 1, end: 3, state: 'serving', throughput: 500, quantization: 'int4' }] } }],
      [slow32.toString(), { record: { peerId: slow32, spans: [{ start: 1, end: 3, state: 'serving', throughput: 50 }] } }],
      [head.toString(), { record: { peerId: head, spans: [{ start: 3, end: 4, state: 'serving', throughput: 100, quantization: 'int8' }] } }]
    ])
    const source: RecordSource = { records: () => records }
    const components = { peerId: me, logger: defaultLogger() }
    const any = swarmRouter({ records: source, probeIntervalMs: 0 })(components)
    const chain = await any.chain({ from: 1, to: 4, purpose: 'inference' })
    expect(chain.map(h => [h.peer.toString(), h.quantization])).toEqual([[fast4.toString(), 'int4'], [head.toString(), 'int8']])
    const strict = swarmRouter({ records: source, probeIntervalMs: 0, quantization: ['fp32', 'int8'] })(components)
    const chain2 = await strict.chain({ from: 1, to: 4, purpose: 'inference' })
    expect(chain2.map(h => [h.peer.toString(), h.quantization])).toEqual([[slow32.toString(), undefined], [head.toString(), 'int8']])
    const fp32Only = swarmRouter({ records: source, probeIntervalMs: 0, quantization: ['fp32'] })(components)
    expect(() => fp32Only.chain({ from: 1, to: 4, purpose: 'inference' })).toThrow(expect.objectContaining({ name: 'NoRouteError' }))
    // training routes over any replica (they train the float32 weights)
    const train = await fp32Only.chain({ from: 1, to: 4, purpose: 'training' })
    expect(train.map(h => h.end)).toEqual([3, 4])
  })

  it('a hop carries its record\'s quant_block_size (layer-pool 1.7.0); 32 (absent) and float32 spans carry none', async () => {
    const [me, w128, head32] = await Promise.all([peer(), peer(), peer()])
    const records = new Map<string, { record: { peerId: PeerId, spans: Array<{ start: number, end: number, state: string, throughput: number, quantization?: 'fp32' | 'int8' | 'int4', quantBlockSize?: number }> } }>([
      [w128.toString(), { record: { peerId: w128, spans: [{ start: 1, end: 3, state: 'serving', throughput: 100, quantization: 'int4', quantBlockSize: 128 }] } }],
      [head32.toString(), { record: { peerId: head32, spans: [{ start: 3, end: 4, state: 'serving', throughput: 100, quantization: 'int4' }] } }]
    ])
    const router = swarmRouter({ records: { records: () => records }, probeIntervalMs: 0 })({ peerId: me, logger: defaultLogger() })
    const chain = await router.chain({ from: 1, to: 4, purpose: 'inference' })
    expect(chain.map(h => [h.peer.toString(), h.quantization, h.quantBlockSize])).toEqual([[w128.toString(), 'int4', 128], [head32.toString(), 'int4', undefined]])
  })
})
