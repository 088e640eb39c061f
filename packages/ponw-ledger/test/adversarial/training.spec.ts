/**
 * Attack class (c): training rewards without training. Before the fix, under the default (sampled)
 * re-execution a proof whose batch losses were honest but whose `loss_after` and pseudo-gradient hash were
 * invented passed and collected the 1.5× quality bonus, and an all-zero pseudo-gradient hash was accepted.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { Wallet, createBinding } from '../../src/keys.js'
import { networkWitness } from '../../src/pol.js'
import { ponwLedger } from '../../src/service.js'
import { PeerBindings } from '../../src/uptime.js'
import type { PonwLedgerInit } from '../../src/service.js'
import { toHex } from '../../src/keys.js'
import { assignShards } from '../../src/shards.js'
import * as tiny from '../../src/tiny-model.js'
import * as verify from '../../src/verify.js'
import { alice, bob, carol, sign, testGenesis, validators } from '../fixtures.js'
import { loadChain } from '../../src/genesis.js'
import { txDigest } from '../../src/messages.js'
import { SignedTx, Tx } from '../../src/pb/ledger.js'
import { buildTx } from '../../src/messages.js'
import type { TrainingClaim } from '../../src/verify.js'
import { Net } from './helpers.js'
import type { TxBody } from '../../src/messages.js'

// the tiny model's loss starts at ≈ ln 32 ≈ 3.47: a threshold it reaches in a few steps, so the bonus is in play
const genesis = testGenesis()
genesis.params = { ...genesis.params, qualityLossThresholdMicro: 3_450_000n }
const chain = loadChain(genesis)
const ROUND = 3n
const now = (): number => Number(ROUND) * chain.genesis.params.roundMs + 1000
const base = tiny.tinyInit('adv-round-3')
const modelHash = tiny.hashWeights(base)
const getWeights = (h: Uint8Array): Float32Array | undefined => toHex(h) === toHex(modelHash) ? base : undefined

describe('adversarial (c): no training reward without checked work', () => {
  let net: Net | undefined
  afterEach(async () => { await net?.close(); net = undefined })

  it('invented loss_after and pseudo-gradient hash (honest batch losses) get no vote under the default sampled check', async () => {
    // even with round records that accept the invented pseudo-gradient (a careless aggregator)
    const aggregation = { acceptedPseudoGradient: async () => true }
    net = await Net.open(chain, new verify.ProofVerifier({ training: new tiny.TinyModelTrainingVerifier({ getWeights, samples: 3 }), aggregation } as any), now)
    const shardIds = assignShards(chain, alice.address, ROUND)
    // the attacker computes the cheap part (losses under the known base weights) and invents the rest
    const batchLossMicro = Array.from({ length: 20 }, (_, i) => tiny.toMicro(tiny.tinyLoss(base, tiny.tinyBatch(shardIds, ROUND, i))))
    const lossBeforeMicro = batchLossMicro.reduce((a, b) => a + b, 0n) / 20n
    const body: TxBody = { kind: 'training', round: ROUND, modelHash, shardIds, tokens: 20n * BigInt(tiny.TINY_SEQ), batches: 20n, lossBeforeMicro, lossAfterMicro: 100_000n, pseudoGradientHash: new Uint8Array(32).fill(7), batchLossMicro }
    for (let i = 0; i < 3; i++) {
      await expect(net.vals[i].vote(sign(chain, alice, 0n, body))).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
    }
    // an all-zero pseudo-gradient hash is not even a valid message
    const zeroBody = { ...body, shardIds: assignShards(chain, bob.address, ROUND), pseudoGradientHash: new Uint8Array(32) }
    const t = Tx.encode(buildTx(chain, bob.publicKey, 0n, 0n, zeroBody))
    const zero = SignedTx.encode({ tx: t, signature: Uint8Array.from(bob.signDigest(txDigest(chain.chainId, t))) })
    await expect(net.vals[0].vote(zero)).rejects.toHaveProperty('name', 'InvalidMessageError')
    expect(net.vals[0].state.totals.minted).toBe(0n)
    await net.expectRestartMatchesHonest()
  })

  it('Proof-of-Learning: committed checkpoints are re-executed, the aggregation must have accepted the pseudo-gradient, the bonus needs a verified loss_after', async () => {
    const aggregation = new verify.MemoryAggregationRecords()
    const K = 4
    const N = 12
    /** what each prover serves when a validator fetches its committed weights */
    const served = new Map<string, Float32Array[]>()
    const witness = { fetchWeights: async (c: TrainingClaim, j: number) => j === 0 ? base : served.get(c.sender)?.[j - 1] }
    const verifier = new verify.ProofVerifier({ training: new tiny.TinyModelTrainingVerifier({ getWeights, witness, segments: 3 }), aggregation })
    net = await Net.open(chain, verifier, now)
    const proof = (w: typeof alice, work: ReturnType<typeof tiny.runTinyTraining>, over: Partial<Extract<TxBody, { kind: 'training' }>> = {}): Extract<TxBody, { kind: 'training' }> => ({
      kind: 'training', round: ROUND, modelHash, shardIds: assignShards(chain, w.address, ROUND), tokens: work.tokens, batches: BigInt(N), lossBeforeMicro: work.lossBeforeMicro, lossAfterMicro: work.lossAfterMicro, pseudoGradientHash: work.pseudoGradientHash, batchLossMicro: work.batchLossMicro, checkpointInterval: K, checkpointHashes: work.checkpointHashes, ...over
    })
    const accept = (w: typeof alice, pg: Uint8Array): void => { aggregation.accept({ round: ROUND, sender: w.address, baseWeightsHash: modelHash, pseudoGradientHash: pg }) }

    // honest: trained, committed every K steps, Δ accepted by the round's aggregation → rewarded with the bonus
    const honest = tiny.runTinyTraining(base, assignShards(chain, alice.address, ROUND), ROUND, N, 0.5, K)
    served.set(alice.address, [...honest.checkpoints, honest.finalWeights])
    accept(alice, honest.pseudoGradientHash)
    const bonus = honest.lossAfterMicro < honest.lossBeforeMicro && honest.lossAfterMicro <= chain.genesis.params.qualityLossThresholdMicro
    expect(bonus).toBe(true)
    await net.finalise(sign(chain, alice, 0n, proof(alice, honest)))
    expect(net.vals[3].state.totals.minted).toBe(12n * 10n ** 15n * 3n / 2n)

    // bob did the work but the aggregation rejected his Δ (robust-agg outcome): no reward
    const bobWork = tiny.runTinyTraining(base, assignShards(chain, bob.address, ROUND), ROUND, N, 0.5, K)
    served.set(bob.address, [...bobWork.checkpoints, bobWork.finalWeights])
    await expect(net.vals[0].vote(sign(chain, bob, 0n, proof(bob, bobWork)))).rejects.toHaveProperty('name', 'PseudoGradientNotAcceptedError')

    // carol skips the middle segment (commits weights she did not reach from the previous checkpoint)
    const carolWork = tiny.runTinyTraining(base, assignShards(chain, carol.address, ROUND), ROUND, N, 0.5, K)
    const skipped = [carolWork.checkpoints[0], Float32Array.from(carolWork.checkpoints[0]), carolWork.finalWeights]
    const fakeHashes = [tiny.hashWeights(skipped[0]), tiny.hashWeights(skipped[1])]
    served.set(carol.address, skipped)
    accept(carol, carolWork.pseudoGradientHash)
    await expect(net.vals[1].vote(sign(chain, carol, 0n, proof(carol, carolWork, { checkpointHashes: fakeHashes })))).rejects.toHaveProperty('name', 'ReExecutionMismatchError')

    // a real run with an invented, better loss_after (for the bonus) is refused: loss_after is recomputed
    const dave = (await import('../fixtures.js')).dave
    const daveWork = tiny.runTinyTraining(base, assignShards(chain, dave.address, ROUND), ROUND, N, 0.5, K)
    served.set(dave.address, [...daveWork.checkpoints, daveWork.finalWeights])
    accept(dave, daveWork.pseudoGradientHash)
    await expect(net.vals[2].vote(sign(chain, dave, 0n, proof(dave, daveWork, { lossAfterMicro: daveWork.lossAfterMicro / 2n })))).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
    // claiming no bonus (loss_after = loss_before) needs no loss_after check, and the work is still checked
    await net.finalise(sign(chain, dave, 0n, proof(dave, daveWork, { lossAfterMicro: daveWork.lossBeforeMicro })))
    expect(net.vals[3].state.totals.minted).toBe(12n * 10n ** 15n * 3n / 2n + 12n * 10n ** 15n)
    await net.expectRestartMatchesHonest()
  })

  it('over the network: committed weights are fetched from the prover\'s bound peer (2 real hosts)', async () => {
    const aggregation = new verify.MemoryAggregationRecords()
    const bindings = new PeerBindings()
    const K = 4
    const N = 12
    const prover = Wallet.generate()
    const work = tiny.runTinyTraining(base, assignShards(chain, prover.address, ROUND), ROUND, N, 0.5, K)
    aggregation.accept({ round: ROUND, sender: prover.address, baseWeightsHash: modelHash, pseudoGradientHash: work.pseudoGradientHash })
    const body: TxBody = { kind: 'training', round: ROUND, modelHash, shardIds: assignShards(chain, prover.address, ROUND), tokens: work.tokens, batches: BigInt(N), lossBeforeMicro: work.lossBeforeMicro, lossAfterMicro: work.lossAfterMicro, pseudoGradientHash: work.pseudoGradientHash, batchLossMicro: work.batchLossMicro, checkpointInterval: K, checkpointHashes: work.checkpointHashes }
    const served = [base, ...work.checkpoints, work.finalWeights]
    let cheat = false
    let v: any
    const witness = networkWitness(() => v.services.ledger, tiny.tinyWeightsFromBytes, { timeoutMs: 5_000 })
    const verifier = new verify.ProofVerifier({ training: new tiny.TinyModelTrainingVerifier({ getWeights, witness, segments: 3 }), aggregation })
    const dirs = [await mkdtemp(join(tmpdir(), 'ponw-adv-pol-')), await mkdtemp(join(tmpdir(), 'ponw-adv-pol-'))]
    const host = async (privateKey: any, init: PonwLedgerInit): Promise<any> => await createLibp2p({
      privateKey,
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }), ledger: ponwLedger(init) }
    })
    const pKey = await generateKeyPair('Ed25519')
    // the prover serves what it committed (or, cheating, the base weights for every checkpoint)
    const p = await host(pKey, { genesis: chain, path: dirs[0], wallet: prover, syncOnConnect: false, trainingProver: (_id, j) => tiny.tinyWeightsToBytes(cheat ? base : served[j]) })
    v = await host(await generateKeyPair('Ed25519'), { genesis: chain, path: dirs[1], wallet: validators[0], verifier, now, syncOnConnect: false, heartbeat: { bindings } })
    try {
      await bindings.add(await createBinding(prover, pKey, p.peerId.toString()))
      await v.dial(p.getMultiaddrs()[0])
      const ledger = v.services.ledger.ledger
      cheat = true
      await expect(ledger.vote(sign(chain, prover, 0n, body))).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
      cheat = false
      expect((await ledger.vote(sign(chain, prover, 0n, body))).validator).toBe(0)
    } finally {
      await v.stop()
      await p.stop()
      for (const d of dirs) await rm(d, { recursive: true, force: true })
    }
  })
})
