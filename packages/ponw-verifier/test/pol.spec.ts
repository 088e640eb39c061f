import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildModelGraph, modelParameters, preset } from '@neuroshard/model'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Ledger, MemoryAggregationRecords, NEURO, ProofOfLearningVerifier, ProofVerifier, Wallet, assignShards, createGenesis, defaultParams, loadChain, signTx, toHex, toMicro } from '@neuroshard/ponw-ledger'
import { NeuroLlmTrainingModel, claimTokens, decodeTrainingState, encodeTrainingState, hashTrainingState, initialTrainingState, neuroLlmParameters, neuroLlmPseudoGradientHash } from '../src/index.js'
import type { NeuroLlmTrainingState } from '../src/index.js'
import type { TrainingClaim, TrainingReExecutor, TxBody } from '@neuroshard/ponw-ledger'

const validators = [0, 1, 2, 3].map(i => Wallet.fromSeed(`validator-${i}`))
const alice = Wallet.fromSeed('alice')
const bob = Wallet.fromSeed('bob')
const chain = loadChain(createGenesis({
  network: 'neuroshard-test',
  genesisTimeMs: 0,
  validators: validators.map(v => ({ publicKey: toHex(v.publicKey), stake: 1000n * NEURO })),
  allocations: [{ address: alice.address, balance: 1000n * NEURO }, { address: bob.address, balance: 1000n * NEURO }],
  // an untrained tiny model starts near ln(256) ≈ 5.5: a threshold it can pass, so the quality bonus (and the
  // loss_after check) is in play
  params: { ...defaultParams(), qualityLossThresholdMicro: 9_000_000n }
}))
const ROUND = 3n
const NOW = Number(ROUND) * chain.genesis.params.roundMs + 1000
const config = preset('tiny')
const SEQ = 16
const N = 4 // inner steps
const K = 2 // committed every K steps: 2 segments
const OPT = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1, schedule: () => 5e-3 }

interface Work { states: NeuroLlmTrainingState[], batchLossMicro: bigint[], lossAfterMicro: bigint }

/**
 * The prover: N real training steps with @neuroshard/runtime's executor (backward graph + AdamW), committing
 * the state every K steps. Written against the runtime directly, not through the verifier's model.
 */
async function train (base: Map<string, Float32Array>, shardIds: number[]): Promise<Work> {
  const ex = await createShardExecutor({
    config,
    role: { kind: 'blocks', start: 0, end: config.nLayers },
    parameterSpecs: modelParameters(config),
    parameters: base,
    graphs: { backward: buildModelGraph(config, 'backward').bytes, forward: buildModelGraph(config, 'forward').bytes },
    optimizer: OPT,
    intraOpNumThreads: 1
  })
  try {
    const feeds = (i: number): Record<string, ReturnType<typeof int64>> => {
      const t = claimTokens(shardIds, ROUND, i, SEQ, config.vocabSize)
      return { input_ids: int64(t.subarray(0, SEQ), [1, SEQ]), targets: int64(t.subarray(1), [1, SEQ]) }
    }
    const loss = async (i: number): Promise<bigint> => toMicro(Number(((await ex.forward(feeds(i))).loss.data as Float32Array)[0]))
    const batchLossMicro: bigint[] = []
    for (let i = 0; i < N; i++) batchLossMicro.push(await loss(i))
    const states: NeuroLlmTrainingState[] = [initialTrainingState(config, base)]
    for (let i = 0; i < N; i++) {
      await ex.backward(feeds(i))
      await ex.step()
      if ((i + 1) % K === 0) {
        const { m, v } = await ex.getOptimizerState()
        states.push({ parameters: await ex.getParameters(), m, v, step: i + 1 })
      }
    }
    let sum = 0n
    for (let i = 0; i < N; i++) sum += await loss(i)
    return { states, batchLossMicro, lossAfterMicro: sum / BigInt(N) }
  } finally {
    await ex.close()
  }
}

function body (shardIds: number[], w: Work): Extract<TxBody, { kind: 'training' }> {
  const base = w.states[0]
  const final = w.states[w.states.length - 1]
  return {
    kind: 'training',
    round: ROUND,
    modelHash: hashTrainingState(config, base),
    shardIds,
    tokens: BigInt(N * SEQ),
    batches: BigInt(N),
    lossBeforeMicro: w.batchLossMicro.reduce((a, b) => a + b, 0n) / BigInt(N),
    lossAfterMicro: w.lossAfterMicro,
    pseudoGradientHash: neuroLlmPseudoGradientHash(config, base.parameters, final.parameters),
    batchLossMicro: w.batchLossMicro,
    checkpointInterval: K,
    checkpointHashes: w.states.slice(1, -1).map(s => hashTrainingState(config, s))
  }
}

/** the name of the error a verifier refuses a message with, or 'accepted' */
async function outcome (verifier: ProofVerifier, ledger: Ledger, tx: ReturnType<typeof signTx>): Promise<string> {
  try {
    await verifier.check(chain, ledger.state, tx, NOW)
    return 'accepted'
  } catch (err: any) {
    return err.name
  }
}

describe('Proof-of-Learning re-execution of NeuroLLM training steps in onnxruntime', () => {
  const base = neuroLlmParameters(config, 11)
  const model = new NeuroLlmTrainingModel({ config, seq: SEQ, optimizer: OPT })
  /** what each prover serves when a validator fetches its committed states (wire form, as over the pol-weights protocol) */
  const served = new Map<string, Uint8Array[]>()
  const witness = { fetchWeights: async (c: TrainingClaim, j: number) => { const b = served.get(c.sender)?.[j]; return b == null ? undefined : decodeTrainingState(config, b) } }
  const aggregation = new MemoryAggregationRecords()
  const verifier = new ProofVerifier({ training: new ProofOfLearningVerifier({ model, witness, segments: 2 }), aggregation })
  let dir: string
  let ledger: Ledger

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ponw-pol-'))
    ledger = await Ledger.open({ genesis: chain, path: dir, wallet: validators[0], verifier, now: () => NOW })
  })

  afterAll(async () => {
    await ledger?.close()
    await model.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('an honest proof is re-executed segment by segment and gets a vote; forged training is caught (and would pass a verifier that accepts everything)', async () => {
    // honest: alice trains for real
    const aliceShards = assignShards(chain, alice.address, ROUND)
    const work = await train(base, aliceShards)
    expect(work.lossAfterMicro).toBeLessThan(work.batchLossMicro.reduce((a, b) => a + b, 0n) / BigInt(N)) // it learned (bonus claimed)
    served.set(alice.address, work.states.map(s => encodeTrainingState(config, s)))
    const honest = body(aliceShards, work)
    aggregation.accept({ round: ROUND, sender: alice.address, baseWeightsHash: honest.modelHash, pseudoGradientHash: honest.pseudoGradientHash })
    const tx = signTx(chain, alice, 0n, 0n, honest)
    const claim = { proofId: tx.idHex, sender: alice.address, round: ROUND, modelHash: honest.modelHash, shardIds: aliceShards, tokens: honest.tokens, batches: honest.batches, lossBeforeMicro: honest.lossBeforeMicro, lossAfterMicro: honest.lossAfterMicro, pseudoGradientHash: honest.pseudoGradientHash, batchLossMicro: honest.batchLossMicro, checkpointInterval: K, checkpointHashes: honest.checkpointHashes!, qualityBonus: true }
    const verdict = await new ProofOfLearningVerifier({ model, witness, segments: 2 }).verifyTraining(claim)
    expect(verdict).toEqual({ batchesChecked: 2, segmentsChecked: 2, pseudoGradientVerified: true, lossAfterVerified: true })
    await expect(ledger.vote(tx)).resolves.toHaveProperty('validator', 0)

    // forged: bob computes the cheap part (starting losses under the public base) and invents the training:
    // committed states near the base (a little noise, step counts and moments as if trained), a pseudo-gradient
    // and a loss_after to match
    const bobShards = assignShards(chain, bob.address, ROUND)
    const honestBob = await train(base, bobShards) // only for his starting losses and a plausible loss_after
    const noisy = (s: number, step: number): NeuroLlmTrainingState => {
      const p = new Map<string, Float32Array>()
      let x = s
      for (const [k, a] of base) {
        p.set(k, a.map(y => { x = (x * 1103515245 + 12345) % 2147483648; return y + (x / 2147483648 - 0.5) * 1e-3 }))
      }
      return { ...initialTrainingState(config, p), step }
    }
    const fake: Work = { states: [initialTrainingState(config, base), noisy(1, K), noisy(2, N)], batchLossMicro: honestBob.batchLossMicro, lossAfterMicro: honestBob.lossAfterMicro }
    served.set(bob.address, fake.states.map(s => encodeTrainingState(config, s)))
    const forged = body(bobShards, fake)
    aggregation.accept({ round: ROUND, sender: bob.address, baseWeightsHash: forged.modelHash, pseudoGradientHash: forged.pseudoGradientHash })
    const ftx = signTx(chain, bob, 0n, 0n, forged)
    // the control: a re-executor that accepts everything lets the forged proof through, so the next assertion
    // is what catches it
    const acceptAll: TrainingReExecutor = { verifyTraining: async () => ({ batchesChecked: 2, segmentsChecked: 2, pseudoGradientVerified: true, lossAfterVerified: true }) }
    expect(await outcome(new ProofVerifier({ training: acceptAll, aggregation }), ledger, ftx)).toBe('accepted')
    expect(await outcome(verifier, ledger, ftx)).toBe('ReExecutionMismatchError')
    await expect(ledger.vote(ftx)).rejects.toHaveProperty('name', 'ReExecutionMismatchError')

    // honest weights, invented loss_after: the bonus needs a verified loss_after
    served.set(bob.address, honestBob.states.map(s => encodeTrainingState(config, s)))
    const inflated = { ...body(bobShards, honestBob), lossAfterMicro: honestBob.lossAfterMicro - 500_000n }
    aggregation.accept({ round: ROUND, sender: bob.address, baseWeightsHash: inflated.modelHash, pseudoGradientHash: inflated.pseudoGradientHash })
    expect(await outcome(verifier, ledger, signTx(chain, bob, 0n, 0n, inflated))).toBe('ReExecutionMismatchError')
    // …and bob's real work passes
    expect(await outcome(verifier, ledger, signTx(chain, bob, 0n, 0n, body(bobShards, honestBob)))).toBe('accepted')
  }, 300_000)

  it('training states round-trip their wire form; malformed bytes are refused', () => {
    const s = initialTrainingState(config, base)
    const bytes = encodeTrainingState(config, s)
    const back = decodeTrainingState(config, bytes)!
    expect(toHex(hashTrainingState(config, back))).toBe(toHex(hashTrainingState(config, s)))
    expect(decodeTrainingState(config, bytes.subarray(1))).toBeUndefined()
    const nan = Uint8Array.from(bytes)
    new DataView(nan.buffer).setFloat32(8, Number.NaN, true)
    expect(decodeTrainingState(config, nan)).toBeUndefined()
  })
})
