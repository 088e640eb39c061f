import { describe, expect, it } from 'vitest'
import { NEURO } from '@neuroshard/ponw-ledger'
import { main } from '../src/index.js'

describe('example: ledger', () => {
  it('finalises a transfer with a quorum, mints a re-executed training reward, refuses a forged proof', async () => {
    const r = await main(() => {})
    expect(r.bobAfterTwoVotes).toBe(0n) // 2 of 4 equal stakes is not > 2/3
    expect(r.bob).toBe(5n * NEURO / 2n)
    // 8 batches × 0.001 NEURO, × 1.5 if the loss after training is ≤ 3.0 (depends on the random wallet's shards)
    expect([8n * NEURO / 1000n, 12n * NEURO / 1000n]).toContain(r.trainingReward)
    expect(r.minted).toBe(r.trainingReward)
    expect(r.alice).toBe(100n * NEURO - 5n * NEURO / 2n + r.trainingReward)
    expect(r.forgedProofError).toBe('ReExecutionMismatchError')
    expect(r.stateHashes).toHaveLength(4)
    expect(new Set(r.stateHashes).size).toBe(1)
  })
})
