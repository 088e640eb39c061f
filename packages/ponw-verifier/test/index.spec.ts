import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { preset } from '@neuroshard/model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Ledger, MemoryAggregationRecords, NEURO, ProofVerifier, Wallet, assignShards, createGenesis, loadChain, signTx, toHex, toMicro } from '@neuroshard/ponw-ledger'
import { NeuroLlmLoss, NeuroLlmTrainingVerifier, hashParameters, neuroLlmParameters } from '../src/index.js'
import type { TxBody } from '@neuroshard/ponw-ledger'

const validators = [0, 1, 2, 3].map(i => Wallet.fromSeed(`validator-${i}`))
const alice = Wallet.fromSeed('alice')
const chain = loadChain(createGenesis({
  network: 'neuroshard-test',
  genesisTimeMs: 0,
  validators: validators.map(v => ({ publicKey: toHex(v.publicKey), stake: 1000n * NEURO })),
  allocations: [{ address: alice.address, balance: 1000n * NEURO }]
}))
const sign = (w: Wallet, seq: bigint, body: TxBody): ReturnType<typeof signTx> => signTx(chain, w, seq, 0n, body)
const ROUND = 3n
const NOW = Number(ROUND) * chain.genesis.params.roundMs + 1000
const config = preset('tiny')

describe('re-execution on onnxruntime (NeuroLLM tiny, @neuroshard/runtime)', () => {
  const loss = new NeuroLlmLoss({ config, seq: 16 })
  const params = neuroLlmParameters(config, 7)
  const modelHash = hashParameters(config, params)
  let dir: string
  let ledger: Ledger
  const aggregation = new MemoryAggregationRecords()
  const verifierOf = new NeuroLlmTrainingVerifier({ loss, getParameters: h => toHex(h) === toHex(modelHash) ? params : undefined, samples: 2 })

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ponw-ort-'))
    const verifier = new ProofVerifier({ training: verifierOf, aggregation })
    ledger = await Ledger.open({ genesis: chain, path: dir, wallet: validators[0], verifier, now: () => NOW })
  })

  afterAll(async () => {
    await ledger?.close()
    await loss.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('honest starting losses pass, a forged loss is caught; losses alone earn no vote (no segment re-executed)', async () => {
    const shardIds = assignShards(chain, alice.address, ROUND)
    const batches = 3
    const batchLossMicro: bigint[] = []
    for (let i = 0; i < batches; i++) {
      batchLossMicro.push(toMicro(await loss.batchLoss(params, shardIds, ROUND, i)))
    }
    // an untrained tiny model on 256 tokens: loss ≈ ln(256) ≈ 5.5
    expect(Number(batchLossMicro[0]) / 1e6).toBeGreaterThan(4)
    const mean = batchLossMicro.reduce((a, b) => a + b, 0n) / BigInt(batches)
    const body: Extract<TxBody, { kind: 'training' }> = { kind: 'training', round: ROUND, modelHash, shardIds, tokens: 48n, batches: BigInt(batches), lossBeforeMicro: mean, lossAfterMicro: mean - 1000n, pseudoGradientHash: new Uint8Array(32).fill(1), batchLossMicro }
    const forged = { ...body, batchLossMicro: batchLossMicro.map(l => l - 300_000n), lossBeforeMicro: mean - 300_000n }
    aggregation.accept({ round: ROUND, sender: alice.address, baseWeightsHash: modelHash, pseudoGradientHash: body.pseudoGradientHash })
    await expect(ledger.vote(sign(alice, 0n, forged))).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
    // the honest starting losses pass the onnxruntime re-execution…
    const tx = sign(alice, 0n, body)
    const verdict = await verifierOf.verifyTraining({ proofId: tx.idHex, sender: tx.sender, round: ROUND, modelHash, shardIds, tokens: 48n, batches: 3n, lossBeforeMicro: mean, lossAfterMicro: mean - 1000n, pseudoGradientHash: body.pseudoGradientHash, batchLossMicro, checkpointInterval: 0, checkpointHashes: [], qualityBonus: false })
    expect(verdict).toEqual({ batchesChecked: 2, segmentsChecked: 0, pseudoGradientVerified: false, lossAfterVerified: false })
    // …but starting losses alone prove no training: the ledger does not vote on them (issue 13 c)
    await expect(ledger.vote(tx)).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
  })
})
