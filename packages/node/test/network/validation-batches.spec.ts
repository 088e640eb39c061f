/**
 * The validation set a node measures the network's model on (issue 15: the testbed's home-links vs loopback check
 * compares these losses across runs, and 4 batches × 4 × 32 tokens is a quarter of the scenario's validation split).
 * `evalBatches` 0 takes every batch of the split (it took one batch before), the loss comes per batch
 * (`modelBatchLosses`, whose mean is `modelLoss`), and `neuroshard start --eval-batches` sets it. No hosts are started.
 */
import { TINY, initParameter, modelParameters } from '@neuroshard/model'
import { createPipelineStage } from '@neuroshard/pipeline'
import { describe, expect, it } from 'vitest'
import { startCommand } from '../../src/commands/network.js'
import { NetworkNode, modelBatchLosses, modelLoss } from '../../src/network/node.js'
import type { TrainBatch } from '@neuroshard/pipeline'

const config = { ...TINY, vocabSize: 64 }

/** a validation split of `tokens` tokens in one shard */
function nodeWith (tokens: number, evalBatches?: number): NetworkNode {
  const validation = [Uint16Array.from({ length: tokens }, (_, i) => (i * 7) % config.vocabSize)]
  return new NetworkNode({
    config,
    memoryBytes: 2 ** 30,
    batchSize: 2,
    seqLen: 8,
    ...(evalBatches != null ? { evalBatches } : {}),
    data: { manifest: { shards: [] } as any, train: [], validation }
  })
}

describe('NetworkNode.validationBatches', () => {
  it('the first evalBatches batches of the split (default 4); 0 takes every batch', () => {
    // 2 sequences of 8 (+1 target) tokens a batch: 200 tokens hold more than 4 batches
    const all = nodeWith(200, 0).validationBatches()
    expect(all.length).toBeGreaterThan(4)
    expect(nodeWith(200).validationBatches()).toHaveLength(4)
    expect(nodeWith(200, 3).validationBatches()).toHaveLength(3)
    // the same batches, in the same order: a prefix of the whole split
    const three = nodeWith(200, 3).validationBatches()
    for (let i = 0; i < 3; i++) expect(three[i].inputIds).toEqual(all[i].inputIds)
    // more than the split holds: the split
    expect(nodeWith(200, 1000).validationBatches()).toHaveLength(all.length)
    expect(() => nodeWith(200, -1).validationBatches()).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
  })
})

describe('modelBatchLosses', () => {
  it('each batch\'s loss, as modelLoss measures that batch alone; modelLoss is their mean', async () => {
    const params = new Map(modelParameters(config).map(spec => [spec.name, initParameter(config, spec, 1)]))
    const list: TrainBatch[] = Array.from({ length: 3 }, (_, k) => ({
      inputIds: BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 7 + k * 13) % config.vocabSize)),
      targets: BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * (k + 2) + 1) % config.vocabSize)),
      batch: 2,
      seq: 8
    }))
    const stage = await createPipelineStage({ config, start: 0, end: config.nLayers + 2, parameters: params })
    try {
      const stageOf = async (): Promise<typeof stage> => stage
      const losses = await modelBatchLosses(params, list, stageOf)
      expect(losses).toHaveLength(3)
      for (let i = 0; i < 3; i++) expect(losses[i]).toBeCloseTo(await modelLoss(params, [list[i]], stageOf), 5)
      // different batches, different losses (not one number repeated)
      expect(new Set(losses.map(x => x.toFixed(5))).size).toBe(3)
      expect(await modelLoss(params, list, stageOf)).toBeCloseTo((losses[0] + losses[1] + losses[2]) / 3, 5)
    } finally {
      await stage.close()
    }
  })
})

describe('neuroshard start --eval-batches', () => {
  it('is an option (an integer >= 0)', async () => {
    let err = ''
    const io = { stdout: { write: () => true, isTTY: false }, stderr: { write: (s: string) => { err += s; return true } } } as any
    expect(await startCommand(['--eval-batches=-1'], io)).toBe(2)
    expect(err).toContain('--eval-batches must be an integer from 0')
  })
})
