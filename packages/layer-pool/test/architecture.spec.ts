import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { buildModelGraph, modelParameters, TINY } from '@neuroshard/model'
import { createRuntime, int64 } from '@neuroshard/runtime'
import { describe, expect, it } from 'vitest'
import {
  checkArchitectureLimits, genesisArchitecture, genesisSlotParameters, growArchitecture, grownSlotParameters, openArchitecture,
  signArchitecture, slotCount, slotParameters
} from '../src/index.js'
import type { ModelArchitecture } from '../src/index.js'
import type { ModelConfig } from '@neuroshard/model'

const SEQ = 16

/** The loss of the whole model (float64 graph) on a fixed batch, from per-slot weights */
async function loss (config: ModelConfig, slotWeights: (slot: number) => Map<string, Float32Array>): Promise<number> {
  const all = new Map<string, Float32Array>()
  for (let s = 0; s < slotCount(config); s++) for (const [k, v] of slotWeights(s)) all.set(k, v)
  const rt = await createRuntime({ intraOpNumThreads: 1 })
  try {
    const resident: Record<string, any> = {}
    for (const p of modelParameters(config)) resident[p.name] = { type: 'float64', dims: p.shape, data: Float64Array.from(all.get(p.name)!) }
    await rt.setResident(resident)
    const session = await rt.createSession(buildModelGraph(config, 'forward', { dtype: 'float64' }).bytes)
    const ids = BigInt64Array.from({ length: SEQ }, (_, i) => BigInt((i * 37 + 11) % config.vocabSize))
    const targets = BigInt64Array.from({ length: SEQ }, (_, i) => BigInt((i * 53 + 5) % config.vocabSize))
    const out = await session.run({ input_ids: int64(ids, [1, SEQ]), targets: int64(targets, [1, SEQ]) })
    return (out.loss.data as Float64Array)[0]
  } finally {
    await rt.close()
  }
}

describe('model versions', () => {
  const parent = genesisArchitecture('devnet', TINY, 7)
  const child = growArchitecture(parent, 4)
  // the parent as trained: genesis plus a deterministic change, so the growth carries real weights over
  const trained = (slot: number): Map<string, Float32Array> => {
    const w = genesisSlotParameters(TINY, slot, 7)
    for (const v of w.values()) for (let i = 0; i < v.length; i++) v[i] += 0.01 * Math.sin(i + slot)
    return w
  }

  it('a grown model computes exactly what its parent computed (new blocks start as the identity)', async () => {
    const before = await loss(TINY, trained)
    const after = await loss(child.config, slot => grownSlotParameters(parent, child, slot, trained))
    expect(Math.abs(after - before)).toBeLessThan(1e-12 * Math.abs(before) + 1e-12)
    // and the check can fail: a new block with its genesis output projections changes the function
    const plain = await loss(child.config, slot => slot >= 3 && slot <= 4 ? genesisSlotParameters(child.config, slot, 7) : grownSlotParameters(parent, child, slot, trained))
    expect(Math.abs(plain - before)).toBeGreaterThan(1e-6)
  })

  it('carries embed, blocks and head over and zeroes only the new output projections', () => {
    const head = grownSlotParameters(parent, child, slotCount(child.config) - 1, trained)
    expect(head.get('lm_head.weight')).toEqual(trained(slotCount(TINY) - 1).get('lm_head.weight'))
    const fresh = grownSlotParameters(parent, child, 3, trained)
    expect(slotParameters(child.config, 3).map(s => s.name)).toEqual([...fresh.keys()])
    expect(fresh.get('blocks.2.attn.wo')!.every(x => x === 0)).toBe(true)
    expect(fresh.get('blocks.2.mlp.w_down')!.every(x => x === 0)).toBe(true)
    expect(fresh.get('blocks.2.attn.wq')!.some(x => x !== 0)).toBe(true)
  })

  it('refuses growths that change anything but depth, skip versions or shrink', () => {
    expect(() => growArchitecture(parent, 2)).toThrow(expect.objectContaining({ name: 'UnsupportedArchitectureError' }))
    const wider: ModelArchitecture = { ...child, config: { ...child.config, dModel: 128 } }
    expect(() => grownSlotParameters(parent, wider, 1, trained)).toThrow(expect.objectContaining({ name: 'UnsupportedArchitectureError' }))
    const skipped: ModelArchitecture = { ...child, version: 3, parentVersion: 1 }
    expect(() => grownSlotParameters(parent, skipped, 1, trained)).toThrow(expect.objectContaining({ name: 'UnsupportedArchitectureError' }))
  })

  it('a node refuses a version it cannot run', () => {
    expect(() => checkArchitectureLimits(child, { maxParameters: 1000 })).toThrow(expect.objectContaining({ name: 'UnsupportedArchitectureError' }))
    expect(() => checkArchitectureLimits(child, { maxSeqLen: 64 })).toThrow(expect.objectContaining({ name: 'UnsupportedArchitectureError' }))
    expect(() => checkArchitectureLimits(child, { maxParameters: 10_000_000 })).not.toThrow()
    expect(modelParameters(child.config).length).toBeGreaterThan(modelParameters(TINY).length)
  })

  it('architecture records are accepted only from the network\'s authorities, canonical, and as valid growths', async () => {
    const authority = await generateKeyPair('Ed25519')
    const stranger = await generateKeyPair('Ed25519')
    const authorities = [peerIdFromPrivateKey(authority)]
    const bytes = await signArchitecture(child, authority)
    expect(await openArchitecture(bytes, { authorities, parent })).toEqual(child)
    await expect(openArchitecture(await signArchitecture(child, stranger), { authorities, parent })).rejects.toHaveProperty('name', 'ForgedLayerRecordError')
    await expect(openArchitecture(await signArchitecture({ ...child, version: 5 }, authority), { authorities, parent })).rejects.toHaveProperty('name', 'UnsupportedArchitectureError')
    await expect(openArchitecture(await signArchitecture(child, authority), { authorities, parent, limits: { maxParameters: 10 } })).rejects.toHaveProperty('name', 'UnsupportedArchitectureError')
    await expect(openArchitecture(Uint8Array.of(9, 9, 9), { authorities })).rejects.toHaveProperty('name', 'InvalidLayerRecordError')
    const tampered = bytes.slice()
    tampered[tampered.length - 70] ^= 1
    await expect(openArchitecture(tampered, { authorities, parent })).rejects.toMatchObject({ name: expect.stringMatching(/ForgedLayerRecordError|InvalidLayerRecordError/) })
  })
})
