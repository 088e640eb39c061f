/**
 * NetworkNode.roundWork / tokensPerStep: what a `--json` round line says a round trained (issue 15: the testbed
 * compares validation losses at equal tokens with it). The slot's DiLoCo group is a stand-in whose `record(round)`
 * answers a round record as the diloco package keeps it; no hosts are started.
 */
import { TINY } from '@neuroshard/model'
import { describe, expect, it } from 'vitest'
import { NetworkNode } from '../../src/network/node.js'
import type { RoundRecord } from '@neuroshard/diloco'

const contribution = (sender: string, accepted: boolean, innerSteps = 5, dataShards: string[] = []): RoundRecord['contributions'][number] =>
  ({ sender, payloadHash: '00'.repeat(32), dataShards, innerSteps, tokens: 0, accepted, distance: 0 })

function record (round: number, contributions: RoundRecord['contributions']): RoundRecord {
  return { group: 'g', span: 's', round, baseHash: '', leader: 'a', commit: new Uint8Array(), aggregator: 'nnm-trimmed-mean', contributions, resultHash: '' }
}

function nodeWith (records: Map<number, RoundRecord>, init: { batchSize?: number, seqLen?: number } = {}): NetworkNode {
  const node = new NetworkNode({ config: { ...TINY, vocabSize: 320 }, memoryBytes: 2 ** 30, innerSteps: 5, batchSize: init.batchSize ?? 4, seqLen: init.seqLen ?? 32 })
  ;(node as any).groups.set(0, { record: (r: number) => records.get(r) })
  return node
}

describe('NetworkNode.roundWork', () => {
  it('round r is the record of round r - 1: accepted contributions x their inner steps x batch x sequence length', () => {
    const records = new Map([
      [0, record(0, [contribution('a', true), contribution('b', true)])],
      [1, record(1, [contribution('a', true), contribution('b', false)])],
      [2, record(2, [contribution('a', true, 3)])]
    ])
    const node = nodeWith(records)
    expect(node.tokensPerStep).toBe(4 * 32)
    expect(node.roundWork(0, 1)).toEqual({ contributions: 2, accepted: 2, innerSteps: 10, tokens: 1280, distinctTokens: 1280 })
    // a rejected contribution's steps are not in the model
    expect(node.roundWork(0, 2)).toEqual({ contributions: 2, accepted: 1, innerSteps: 5, tokens: 640, distinctTokens: 640 })
    // the inner steps each sender announced
    expect(node.roundWork(0, 3)).toEqual({ contributions: 1, accepted: 1, innerSteps: 3, tokens: 384, distinctTokens: 384 })
    // round 0 (genesis), a round without a record, a slot without a group: nothing
    expect(node.roundWork(0, 0)).toBeUndefined()
    expect(node.roundWork(0, 4)).toBeUndefined()
    expect(node.roundWork(1, 1)).toBeUndefined()
  })

  it('distinctTokens: contributions naming the same data shards (in any order) trained the same batches and count once', () => {
    // the testbed's scenarios: 2 train shards, DEFAULT_SHARDS_PER_ROUND 2, so both Drivers train both shards with the
    // round's seed - the same batches; a round with both replicas is no more distinct tokens than one with one
    const records = new Map([
      [0, record(0, [contribution('a', true, 5, ['s1', 's2']), contribution('b', true, 5, ['s2', 's1'])])],
      [1, record(1, [contribution('a', true, 5, ['s1', 's2']), contribution('b', true, 3, ['s1', 's2']), contribution('c', true, 5, ['s3'])])],
      [2, record(2, [contribution('a', true, 5, ['s1']), contribution('b', false, 5, ['s2'])])]
    ])
    const node = nodeWith(records)
    expect(node.roundWork(0, 1)).toEqual({ contributions: 2, accepted: 2, innerSteps: 10, tokens: 1280, distinctTokens: 640 })
    // the same shards: the most steps of them (5); other shards: their own
    expect(node.roundWork(0, 2)).toEqual({ contributions: 3, accepted: 3, innerSteps: 13, tokens: 13 * 128, distinctTokens: 10 * 128 })
    // a rejected contribution's shards do not count
    expect(node.roundWork(0, 3)).toEqual({ contributions: 2, accepted: 1, innerSteps: 5, tokens: 640, distinctTokens: 640 })
  })

  it('tokensPerStep: the Driver batch, its sequence length capped at the model maximum', () => {
    expect(nodeWith(new Map(), { batchSize: 2, seqLen: 10_000 }).tokensPerStep).toBe(2 * TINY.maxSeqLen)
  })
})
