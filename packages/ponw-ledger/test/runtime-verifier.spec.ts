import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { preset } from '@neuroshard/model'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toHex } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { NeuroLlmLoss, NeuroLlmTrainingVerifier, hashParameters, neuroLlmParameters } from '../src/runtime-verifier.js'
import { assignShards } from '../src/shards.js'
import { toMicro } from '../src/tiny-model.js'
import { ProofVerifier } from '../src/verify.js'
import { alice, sign, testChain, validators } from './fixtures.js'
import type { TxBody } from '../src/messages.js'

const chain = testChain()
const ROUND = 3n
const NOW = Number(ROUND) * chain.genesis.params.roundMs + 1000
const config = preset('tiny')

describe('re-execution on onnxruntime (NeuroLLM tiny, @neuroshard/runtime)', () => {
  const loss = new NeuroLlmLoss({ config, seq: 16 })
  const params = neuroLlmParameters(config, 7)
  const modelHash = hashParameters(config, params)
  let dir: string
  let ledger: Ledger

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ponw-ort-'))
    const verifier = new ProofVerifier({
      training: new NeuroLlmTrainingVerifier({ loss, getParameters: h => toHex(h) === toHex(modelHash) ? params : undefined, samples: 2 })
    })
    ledger = await Ledger.open({ genesis: chain, path: dir, wallet: validators[0], verifier, now: () => NOW })
  })

  afterAll(async () => {
    await ledger?.close()
    await loss.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('an honest claim passes; a forged loss for the claimed batch and weights is caught', async () => {
    const shardIds = assignShards(chain, alice.address, ROUND)
    const batches = 3
    const batchLossMicro: bigint[] = []
    for (let i = 0; i < batches; i++) {
      batchLossMicro.push(toMicro(await loss.batchLoss(params, shardIds, ROUND, i)))
    }
    // an untrained tiny model on 256 tokens: loss ≈ ln(256) ≈ 5.5
    expect(Number(batchLossMicro[0]) / 1e6).toBeGreaterThan(4)
    const mean = batchLossMicro.reduce((a, b) => a + b, 0n) / BigInt(batches)
    const body: Extract<TxBody, { kind: 'training' }> = { kind: 'training', round: ROUND, modelHash, shardIds, tokens: 48n, batches: BigInt(batches), lossBeforeMicro: mean, lossAfterMicro: mean - 1000n, pseudoGradientHash: new Uint8Array(32), batchLossMicro }
    const forged = { ...body, batchLossMicro: batchLossMicro.map(l => l - 300_000n), lossBeforeMicro: mean - 300_000n }
    await expect(ledger.vote(sign(chain, alice, 0n, forged, 0n))).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
    const vote = await ledger.vote(sign(chain, alice, 0n, body, 0n))
    expect(vote.validator).toBe(0)
  })
})
