/**
 * Example: the Proof-of-Neural-Work ledger (`@neuroshard/ponw-ledger`), in one process.
 *
 * Four validators each keep their own copy of the ledger (its own level database). Nothing moves until
 * validators holding more than 2/3 of the stake have signed it. The program:
 *
 * 1. creates wallets (secp256k1) for 4 validators and two users, Alice and Bob,
 * 2. writes a genesis: the validators with 1,000 NEURO stake each, Alice with 100 NEURO,
 * 3. opens the 4 validator ledgers, with a proof verifier that re-executes training work,
 * 4. Alice sends Bob 2.5 NEURO: 2 of 4 validator votes are not enough, the 3rd makes it final everywhere,
 * 5. Alice claims a training reward for a round of work on the ledger's tiny reference model; validators
 *    re-run the claimed batches before voting, the reward is minted,
 * 6. a forged training proof (a lower loss than the work reaches) is refused by re-execution,
 * 7. prints the balances, which every validator agrees on (same state hash).
 *
 * Here we carry votes between the ledgers by hand; the `ponwLedger()` libp2p service does exactly this
 * over gossipsub (see the package README).
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-ledger start`
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  Ledger, MemoryAggregationRecords, NEURO, ProofVerifier, TinyModelTrainingVerifier, Wallet, assignShards, createGenesis, currentRound, formatNeuro,
  hashWeights, loadChain, parseNeuro, runTinyTraining, signTx, tinyInit, toHex
} from '@neuroshard/ponw-ledger'
import type { LedgerTx, TxBody, VoteSigData } from '@neuroshard/ponw-ledger'

export interface LedgerExampleResult {
  /** Bob's balance after only 2 of 4 votes (still the genesis value: 0) */
  bobAfterTwoVotes: bigint
  /** final balances, in base units (1 NEURO = 10^18) */
  alice: bigint
  bob: bigint
  /** the training reward Alice was minted */
  trainingReward: bigint
  /** total minted by the ledger */
  minted: bigint
  /** `err.name` of the forged training proof */
  forgedProofError: string
  /** every validator's state hash (all equal) */
  stateHashes: string[]
}

export async function main (log: (line: string) => void = console.log): Promise<LedgerExampleResult> {
  const dir = await mkdtemp(join(tmpdir(), 'neuroshard-ledger-example-'))
  const ledgers: Ledger[] = []
  try {
    // --- 1. wallets: a secp256k1 key; the address is a hash of the public key ---------------------------
    const validators = Array.from({ length: 4 }, () => Wallet.generate())
    const alice = Wallet.generate()
    const bob = Wallet.generate()
    log(`alice ${alice.address}, bob ${bob.address}`)

    // --- 2. genesis: everything every node must agree on, including all economic parameters -------------
    const genesis = createGenesis({
      network: 'example-devnet',
      genesisTimeMs: Date.now(), // epoch 0 / round 0 start now
      validators: validators.map(v => ({ publicKey: toHex(v.publicKey), stake: 1000n * NEURO })),
      allocations: [{ address: alice.address, balance: 100n * NEURO }]
    })
    const chain = loadChain(genesis)

    // the training work of this round starts from a model everyone knows by its hash
    const weights = tinyInit('example-round-start')
    const modelHash = hashWeights(weights)
    // the DiLoCo round records: which pseudo-gradients the round's robust aggregation accepted (a node
    // rebuilds them from the round's signed messages); a training proof is rewarded only for an accepted one
    const aggregation = new MemoryAggregationRecords()
    const verifier = new ProofVerifier({
      // re-run 3 of the claimed batches (and the whole claimed run: `full`) before signing
      training: new TinyModelTrainingVerifier({ getWeights: h => toHex(h) === toHex(modelHash) ? weights : undefined, samples: 3, full: true }),
      aggregation
    })

    // --- 3. one ledger per validator, each in its own level database --------------------------------------
    for (const [i, wallet] of validators.entries()) {
      ledgers.push(await Ledger.open({ genesis, path: join(dir, `validator-${i}`), wallet, verifier }))
    }
    log(`4 validators with 1000 NEURO stake each; a transaction is final with > 2/3 of the stake (3 of 4 votes)`)

    /** validators `who` check and sign the transaction; every ledger receives every vote */
    const vote = async (tx: LedgerTx, who: number[]): Promise<void> => {
      const votes: VoteSigData[] = []
      for (const i of who) votes.push(await ledgers[i].vote(tx)) // throws a typed error if invalid
      for (const l of ledgers) {
        for (const v of votes) await l.addVote(tx, v)
      }
    }
    const epoch = ledgers[0].currentEpoch()

    // --- 4. a transfer: Alice signs it (sequence 0), validators vote ---------------------------------------
    const transfer = signTx(chain, alice, 0n, epoch, { kind: 'transfer', to: bob.address, amount: parseNeuro('2.5') })
    await vote(transfer, [0, 1])
    const bobAfterTwoVotes = ledgers[3].balance(bob.address)
    log(`transfer of 2.5 NEURO with 2 of 4 votes: bob has ${formatNeuro(bobAfterTwoVotes)} NEURO (not final yet)`)
    await vote(transfer, [2])
    log(`with the 3rd vote it is final: bob's balance on the 4 validators: ${ledgers.map(l => formatNeuro(l.balance(bob.address))).join(', ')} NEURO`)

    // --- 5. a training proof: Alice trained on the shards assigned to her for this round ------------------
    const round = currentRound(chain, Date.now())
    const shardIds = assignShards(chain, alice.address, round) // deterministic: anyone can recompute it
    const batches = 8
    const work = runTinyTraining(weights, shardIds, round, batches)
    aggregation.accept({ round, sender: alice.address, baseWeightsHash: modelHash, pseudoGradientHash: work.pseudoGradientHash })
    const training: Extract<TxBody, { kind: 'training' }> = {
      kind: 'training',
      round,
      modelHash,
      shardIds,
      tokens: work.tokens,
      batches: BigInt(batches),
      lossBeforeMicro: work.lossBeforeMicro,
      lossAfterMicro: work.lossAfterMicro,
      pseudoGradientHash: work.pseudoGradientHash,
      batchLossMicro: work.batchLossMicro
    }
    log(`alice trained ${batches} batches on shards [${shardIds.join(', ')}]: loss ${(Number(work.lossBeforeMicro) / 1e6).toFixed(3)} → ${(Number(work.lossAfterMicro) / 1e6).toFixed(3)}`)

    // --- 6. first a forged claim: same work, but a loss_after the work does not reach ------------------------
    let forgedProofError = 'none'
    try {
      await ledgers[0].vote(signTx(chain, alice, 1n, epoch, { ...training, lossAfterMicro: work.lossAfterMicro / 2n }))
    } catch (err) {
      forgedProofError = (err as Error).name
      log(`a forged proof claiming loss ${(Number(work.lossAfterMicro / 2n) / 1e6).toFixed(3)} → ${forgedProofError}`)
    }

    // then the honest one
    const before = ledgers[0].balance(alice.address)
    await vote(signTx(chain, alice, 1n, epoch, training), [0, 1, 2, 3])
    const trainingReward = ledgers[0].balance(alice.address) - before
    log(`honest proof re-executed by the validators and finalised: +${formatNeuro(trainingReward)} NEURO ` +
      `(0.001 NEURO per batch${work.lossAfterMicro <= genesis.params.qualityLossThresholdMicro ? ', × 1.5 quality bonus' : ''})`)

    // --- 7. balances and agreement ----------------------------------------------------------------------
    const alicePlain = ledgers[0].balance(alice.address)
    const bobPlain = ledgers[0].balance(bob.address)
    const stateHashes = ledgers.map(l => l.stateHash())
    log(`balances: alice ${formatNeuro(alicePlain)} NEURO, bob ${formatNeuro(bobPlain)} NEURO; minted ${formatNeuro(ledgers[0].state.totals.minted)} NEURO`)
    log(`state hash on the 4 validators: ${stateHashes.map(h => h.slice(0, 12)).join(' ')} (${new Set(stateHashes).size === 1 ? 'all equal' : 'DIFFERENT'})`)

    return {
      bobAfterTwoVotes,
      alice: alicePlain,
      bob: bobPlain,
      trainingReward,
      minted: ledgers[0].state.totals.minted,
      forgedProofError,
      stateHashes
    }
  } finally {
    await Promise.allSettled(ledgers.map(async l => { await l.close() }))
    await rm(dir, { recursive: true, force: true })
  }
}

// run only when executed directly (`node dist/src/index.js`), not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
