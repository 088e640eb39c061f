import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { toHex } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { floor, mul, rational } from '../src/rational.js'
import { reward, stakingMultiplier, dataBase } from '../src/rewards.js'
import { assignShards } from '../src/shards.js'
import { TINY_VOCAB, TinyModelTrainingVerifier, hashWeights, runTinyTraining, tinyBatch, tinyInit, tinyLoss } from '../src/tiny-model.js'
import { MemoryAggregationRecords, ProofVerifier } from '../src/verify.js'
import { alice, bob, sign, testChain, validators } from './fixtures.js'
import type { LedgerTx, TxBody } from '../src/messages.js'

const chain = testChain()
const p = chain.genesis.params
const ROUND = 5n
const NOW = Number(ROUND) * p.roundMs + 1000
const weights = tinyInit('round-5-start')
const modelHash = hashWeights(weights)
/** the DiLoCo round records: the aggregation accepted alice's honest pseudo-gradients */
const aggregation = new MemoryAggregationRecords()

describe('proofs of neural work: verification, re-execution, rewards', () => {
  let dirs: string[] = []
  let vals: Ledger[] = []
  let attested: string[] = []

  beforeEach(async () => {
    vals = []
    attested = []
    const verifier = new ProofVerifier({
      training: new TinyModelTrainingVerifier({ getWeights: h => toHex(h) === toHex(modelHash) ? weights : undefined, samples: 3, full: true }),
      aggregation,
      // attestation doubles: these tests check the reward arithmetic; the attestations have their own tests
      uptime: { verifyUptime: async c => { attested.push(`uptime/${c.epoch}/${c.heartbeats}`) } },
      inference: { verifyInference: async c => { attested.push(`inference/${c.tokens}`) } }
    })
    for (const w of validators) {
      const dir = await mkdtemp(join(tmpdir(), 'ponw-proofs-'))
      dirs.push(dir)
      vals.push(await Ledger.open({ genesis: chain, path: dir, wallet: w, verifier, now: () => NOW }))
    }
  })

  afterEach(async () => {
    await Promise.allSettled(vals.map(async l => l.close()))
    await Promise.allSettled(dirs.map(async d => rm(d, { recursive: true, force: true })))
    dirs = []
  })

  async function finalise (tx: LedgerTx): Promise<void> {
    const votes = []
    for (const l of vals.slice(0, 3)) {
      votes.push(await l.vote(tx))
    }
    for (const l of vals) {
      for (const v of votes) {
        await l.addVote(tx, v)
      }
    }
  }

  function trainingBody (batches = 8): Extract<TxBody, { kind: 'training' }> {
    const shardIds = assignShards(chain, alice.address, ROUND)
    const r = runTinyTraining(weights, shardIds, ROUND, batches)
    aggregation.accept({ round: ROUND, sender: alice.address, baseWeightsHash: modelHash, pseudoGradientHash: r.pseudoGradientHash })
    return { kind: 'training', round: ROUND, modelHash, shardIds, tokens: r.tokens, batches: BigInt(batches), lossBeforeMicro: r.lossBeforeMicro, lossAfterMicro: r.lossAfterMicro, pseudoGradientHash: r.pseudoGradientHash, batchLossMicro: r.batchLossMicro }
  }

  it('tiny model gradient matches finite differences', () => {
    const b = tinyBatch([3, 9], 1n, 0)
    const w = tinyInit('fd')
    const g = new Float32Array(w.length)
    tinyLoss(w, b, g)
    for (const k of [0, 5, 3 * TINY_VOCAB + 4, 100, 700]) {
      const eps = 1e-2
      const wp = Float32Array.from(w)
      const wm = Float32Array.from(w)
      wp[k] += eps
      wm[k] -= eps
      const fd = (tinyLoss(wp, b) - tinyLoss(wm, b)) / (2 * eps)
      expect(Math.abs(fd - g[k])).toBeLessThan(2e-3)
    }
  })

  it('an honest training proof passes re-execution and mints the compute reward (with the quality bonus when earned)', async () => {
    const body = trainingBody()
    expect(body.lossAfterMicro).toBeLessThan(body.lossBeforeMicro)
    const tx = sign(chain, alice, 0n, body, 0n)
    await finalise(tx)
    const bonus = body.lossAfterMicro <= p.qualityLossThresholdMicro
    const expected = bonus ? 8n * NEURO / 1000n * 3n / 2n : 8n * NEURO / 1000n
    for (const l of vals) {
      expect(l.balance(alice.address)).toBe(1000n * NEURO + expected)
      expect(l.state.totals.minted).toBe(expected)
    }
    // the same round cannot be rewarded twice
    const again = sign(chain, alice, 1n, trainingBody(4), 0n)
    await expect(vals[0].vote(again)).rejects.toHaveProperty('name', 'ReplayError')
  })

  it('a forged training proof (wrong loss for the claimed batch and weights) is caught by re-execution', async () => {
    const before = vals[0].stateHash()
    const body = trainingBody()
    // claim a lower loss on every batch (mean kept consistent, so only re-execution can tell)
    const forged = { ...body, batchLossMicro: body.batchLossMicro.map(l => l - 200_000n) }
    forged.lossBeforeMicro = forged.batchLossMicro.reduce((a, b) => a + b, 0n) / forged.batches
    await expect(vals[0].vote(sign(chain, alice, 0n, forged, 0n))).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
    // claims a loss_after the claimed work does not reach
    const fakeAfter = { ...body, lossAfterMicro: body.lossAfterMicro / 2n }
    await expect(vals[0].vote(sign(chain, alice, 0n, fakeAfter, 0n))).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
    // unknown starting weights (not the round's base: the aggregation never accepted a Δ from them)
    const otherModel = { ...body, modelHash: new Uint8Array(32).fill(7) }
    await expect(vals[0].vote(sign(chain, alice, 0n, otherModel, 0n))).rejects.toHaveProperty('name', 'PseudoGradientNotAcceptedError')
    // shards it was not assigned
    const wrongShards = { ...body, shardIds: body.shardIds.map(s => (s + 1) % p.totalShards) }
    await expect(vals[0].vote(sign(chain, alice, 0n, wrongShards, 0n))).rejects.toHaveProperty('name', 'ShardAssignmentError')
    // a round outside the window
    await expect(vals[0].vote(sign(chain, alice, 0n, { ...body, round: ROUND + 1n }, 0n))).rejects.toHaveProperty('name', 'ImplausibleProofError')
    // nothing was signed, nothing changed
    expect(vals[0].stateHash()).toBe(before)
    // the honest proof still goes through (the slot was never taken by a refused proof)
    await finalise(sign(chain, alice, 0n, body, 0n))
    expect(vals[3].state.totals.minted).toBeGreaterThan(0n)
  })

  it('uptime and inference rewards follow R = (R_base·T/60 + R_inference·tokens/1M)·(1 + β·stake/1000), exactly', async () => {
    await finalise(sign(chain, bob, 0n, { kind: 'stake', amount: 50n * NEURO }, 0n))
    // 60 heartbeats of 60 s = 60 min → 6 NEURO; stake 50 → ×1.005 → 6.03 NEURO
    await finalise(sign(chain, bob, 1n, { kind: 'uptime', epoch: 0n, heartbeats: 60, stakeClaim: 50n * NEURO }, 0n))
    expect(vals[0].state.totals.minted).toBe(603n * NEURO / 100n)
    // 1,000,000 tokens in 250 s → 0.9 NEURO × 1.005
    // the session is alice's final payment to bob for the tokens (its burn, 2 NEURO, does not cap the reward)
    const pay = sign(chain, alice, 0n, { kind: 'payment', provider: bob.address, tokens: 1_000_000n, pricePerToken: 10n ** 13n, sessionId: new Uint8Array([1]) }, 0n)
    await finalise(pay)
    await finalise(sign(chain, bob, 2n, { kind: 'inference', sessionId: pay.id, tokens: 1_000_000n, outputHash: new Uint8Array(32), startedMs: BigInt(NOW - 250_000), endedMs: BigInt(NOW), stakeClaim: 50n * NEURO }, 0n))
    expect(vals[0].state.totals.minted).toBe(603n * NEURO / 100n + 9045n * NEURO / 10000n)
    // each of the 3 voting validators ran the configured attestation before signing
    expect(attested.filter(a => a === 'uptime/0/60')).toHaveLength(3)
    expect(attested.filter(a => a === 'inference/1000000')).toHaveLength(3)
    // a stake claim above the bonded stake is refused
    await expect(vals[0].vote(sign(chain, bob, 3n, { kind: 'uptime', epoch: 0n, heartbeats: 1, stakeClaim: 51n * NEURO }, 0n))).rejects.toHaveProperty('name', 'ImplausibleProofError')
    // an implausible token rate is refused
    await expect(vals[0].vote(sign(chain, bob, 3n, { kind: 'inference', sessionId: pay.id, tokens: 10_000_000n, outputHash: new Uint8Array(32), startedMs: BigInt(NOW - 1000), endedMs: BigInt(NOW) }, 0n))).rejects.toHaveProperty('name', 'ImplausibleProofError')
  })

  it('staking multiplier caps at 2× and rewards round down once', () => {
    expect(floor(mul(stakingMultiplier(p, 0n), rational(1000n)))).toBe(1000n)
    expect(floor(mul(stakingMultiplier(p, 5000n * NEURO), rational(1000n)))).toBe(1500n)
    expect(floor(mul(stakingMultiplier(p, 10_000n * NEURO), rational(1000n)))).toBe(2000n)
    expect(stakingMultiplier(p, 1_000_000n * NEURO)).toEqual(p.stakingMultiplierCap)
    // 3 samples × 0.0001 × (1 + 0.1·(1 base unit)/1000 NEURO) = 3·10^14 + 3·10^14·10^-22 → floor to 3·10^14
    expect(reward(p, dataBase(p, 3n), 1n)).toBe(3n * 10n ** 14n)
    expect(reward(p, dataBase(p, 3n), NEURO)).toBe(3n * 10n ** 14n + 3n * 10n ** 14n / 10000n)
  })

  it('inference market: the client pays per token, part of the fee is burned', async () => {
    await finalise(sign(chain, alice, 0n, { kind: 'payment', provider: bob.address, tokens: 1000n, pricePerToken: 10n ** 15n, sessionId: new Uint8Array([9]) }, 0n))
    for (const l of vals) {
      expect(l.balance(alice.address)).toBe(999n * NEURO)
      expect(l.balance(bob.address)).toBe(100n * NEURO + NEURO * 4n / 5n)
      expect(l.state.totals.burned).toBe(NEURO / 5n)
    }
  })
})
