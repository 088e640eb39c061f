import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { Wallet, toHex } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { buildTx, encodeCertificate, parseCertificate, parseSignedTx, signVote, txDigest } from '../src/messages.js'
import { SignedTx, Tx } from '../src/pb/ledger.js'
import { assignShards } from '../src/shards.js'
import { LedgerState, designatedReporter } from '../src/state.js'
import { TinyModelTrainingVerifier, hashWeights, runTinyTraining, tinyBatch, tinyInit, tinyLoss, toMicro } from '../src/tiny-model.js'
import { sampleBatches } from '../src/verify.js'
import { alice, bob, carol, certify, dave, prng, shuffle, sign, testChain, validators } from './fixtures.js'
import type { Evidence, LedgerTx, TxBody } from '../src/messages.js'
import type { TrainingClaim } from '../src/verify.js'

const chain = testChain()

function final (t: LedgerTx): LedgerTx {
  return parseCertificate(chain, certify(chain, t)).tx
}

/**
 * Slash debt that no stake stands behind: Σ max(0, slashed − bonded − unbonding). Reporter shares are paid
 * out of `slashed`, so any such debt is money that was paid out of nothing.
 */
function uncovered (s: LedgerState): bigint {
  let x = 0n
  for (const a of s.accounts.values()) {
    const d = a.slashed - a.bonded - a.unbonding.reduce((y, e) => y + e.amount, 0n)
    x += d > 0n ? d : 0n
  }
  return x
}

describe('security: slashing cannot mint', () => {
  it('an account that equivocates on many slots is slashed once; reports cannot pay out of an uncollectable debt', () => {
    // carol stakes 8 NEURO, then signs two messages for each of the sequences 1..5 (one of each pair is
    // final); dave reports every pair. Before the fix every report charged another 4 NEURO of "debt" to
    // carol and paid dave 0.4 NEURO, far past carol's 8 NEURO stake: money from nothing.
    const txs: LedgerTx[] = [sign(chain, carol, 0n, { kind: 'stake', amount: 8n * NEURO })]
    for (let q = 1n; q <= 5n; q++) {
      const a = sign(chain, carol, q, { kind: 'transfer', to: bob.address, amount: 1n })
      const b = sign(chain, carol, q, { kind: 'transfer', to: alice.address, amount: 1n })
      txs.push(a)
      txs.push(sign(chain, dave, q - 1n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: a.signed, b: b.signed } }))
    }
    const finals = txs.map(final)
    const hashes = new Set<string>()
    for (let seed = 0; seed < 6; seed++) {
      const s = new LedgerState(chain)
      for (const t of seed === 0 ? finals : shuffle(finals, prng(seed))) {
        s.addFinal([t])
      }
      const c = s.get(carol.address)
      expect(c.slashed).toBe(4n * NEURO) // half the 8 NEURO bonded, once
      expect(s.get(dave.address).balance).toBe(4n * NEURO / 10n)
      expect(s.totals.slashed).toBe(4n * NEURO)
      expect(uncovered(s)).toBe(0n)
      const reports = [...s.outcomes.values()].filter(o => o.kind === 'slash')
      expect(reports.filter(o => o.status === 'applied')).toHaveLength(1)
      expect(reports.filter(o => o.status === 'failed').every(o => o.reason === 'evidence already used')).toBe(true)
      hashes.add(s.stateHash())
    }
    // dave's reports apply in his own sequence order, so the same one wins in every arrival order
    expect(hashes.size).toBe(1)
  })

  it('a validator that equivocates on many slots is slashed once (at most slashFraction of its genesis stake)', () => {
    const txs: LedgerTx[] = []
    for (let q = 0n; q < 4n; q++) {
      const a = sign(chain, alice, q, { kind: 'transfer', to: bob.address, amount: 1n })
      const b = sign(chain, alice, q, { kind: 'transfer', to: dave.address, amount: 1n })
      txs.push(a)
      const voteA = signVote(chain, validators[3], 3, a.id).signature
      const voteB = signVote(chain, validators[3], 3, b.id).signature
      txs.push(sign(chain, carol, q, { kind: 'slash', evidence: { kind: 'validator-equivocation', validator: 3, a: a.signed, voteA, b: b.signed, voteB } }))
    }
    const s = new LedgerState(chain)
    s.addFinal(txs.map(final))
    const v3 = s.get(validators[3].address)
    expect(v3.slashed).toBe(500n * NEURO)
    expect(s.get(carol.address).balance).toBe(10n * NEURO + 50n * NEURO)
    expect(uncovered(s)).toBe(0n)
  })
})

describe('security: validator rule', () => {
  let dirs: string[] = []
  let vals: Ledger[] = []
  let clock = 0

  beforeEach(async () => {
    vals = []
    clock = 0
    for (const w of validators) {
      const dir = await mkdtemp(join(tmpdir(), 'ponw-ledger-sec-'))
      dirs.push(dir)
      vals.push(await Ledger.open({ genesis: chain, path: dir, wallet: w, now: () => clock }))
    }
  })

  afterEach(async () => {
    await Promise.allSettled(vals.map(async l => l.close()))
    await Promise.allSettled(dirs.map(async d => rm(d, { recursive: true, force: true })))
    dirs = []
  })

  /** the validator whose report of carol's evidence validators vote for in `epoch` */
  const reporter = (epoch: bigint): Wallet => validators[designatedReporter(chain, `account/${carol.address}`, epoch)]

  async function finalise (tx: LedgerTx, who = [0, 1, 2, 3]): Promise<void> {
    const votes = []
    for (const i of who) {
      votes.push(await vals[i].vote(tx))
    }
    for (const l of vals) {
      for (const v of votes) {
        await l.addVote(tx, v)
      }
    }
  }

  it('validators refuse a second slash report against an offender already reported', async () => {
    await finalise(sign(chain, carol, 0n, { kind: 'stake', amount: 8n * NEURO }))
    const reports: LedgerTx[] = []
    for (let q = 1n; q <= 2n; q++) {
      const a = sign(chain, carol, q, { kind: 'transfer', to: bob.address, amount: 1n })
      const b = sign(chain, carol, q, { kind: 'transfer', to: alice.address, amount: 1n })
      await finalise(a)
      reports.push(sign(chain, reporter(0n), q - 1n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: a.signed, b: b.signed } }))
    }
    await finalise(reports[0])
    await expect(vals[0].vote(reports[1])).rejects.toHaveProperty('name', 'ReplayError')
    for (const l of vals) {
      expect(l.account(carol.address).slashed).toBe(4n * NEURO)
      expect(l.balance(reporter(0n).address)).toBe(4n * NEURO / 10n)
    }
  })

  it('one message under a second valid signature is the same message: no equivocation, no evidence', async () => {
    const a = sign(chain, bob, 0n, { kind: 'transfer', to: alice.address, amount: NEURO })
    // ECDSA with fresh randomness gives another valid low-S signature over the same id
    const secret = (bob as any).exportSecret() as Uint8Array
    let sig2: Uint8Array
    do {
      sig2 = secp256k1.sign(a.id, secret, { prehash: true, lowS: true, extraEntropy: true })
    } while (Buffer.from(sig2).equals(Buffer.from(a.signature)))
    const a2 = parseSignedTx(chain, SignedTx.encode({ tx: Uint8Array.from(a.txBytes), signature: Uint8Array.from(sig2) }))
    expect(a2.idHex).toBe(a.idHex)
    expect(Buffer.from(a2.signed).equals(Buffer.from(a.signed))).toBe(false)
    const evidence: Evidence[] = []
    vals[0].addEventListener('ponw-ledger:evidence', e => evidence.push(e.detail))
    const v1 = await vals[0].vote(a)
    // before the fix: EquivocationError, and the "evidence" made a validator sign a slash report that can
    // never be final (the two messages do not conflict), leaving a hole in its own sequence
    const v2 = await vals[0].vote(a2)
    expect(Buffer.from(v2.signature).equals(Buffer.from(v1.signature))).toBe(true)
    expect(evidence).toHaveLength(0)
  })

  describe('a withdrawal and a slash of the same stake are never both final', () => {
    /** carol bonds 8 NEURO, equivocates on sequence 1 (validator 3 sees the other message first), then unbonds */
    async function equivocate (): Promise<{ a: LedgerTx, b: LedgerTx }> {
      await finalise(sign(chain, carol, 0n, { kind: 'stake', amount: 8n * NEURO }), [0, 1, 2, 3])
      const a = sign(chain, carol, 1n, { kind: 'transfer', to: bob.address, amount: 1n })
      const b = sign(chain, carol, 1n, { kind: 'transfer', to: alice.address, amount: 1n })
      await vals[3].vote(b)
      await finalise(a, [0, 1, 2])
      await expect(vals[3].vote(a)).rejects.toHaveProperty('name', 'EquivocationError')
      await finalise(sign(chain, carol, 2n, { kind: 'unbond', amount: 8n * NEURO }), [0, 1, 2, 3])
      return { a, b }
    }

    it('withdrawal first: validators that voted for it refuse the report, so the reporter is never paid from stake that left', async () => {
      // Before the fix all four validators voted for both; the report was final and paid dave 0.4 NEURO out of
      // a debt that nothing stood behind (carol's 8 NEURO had been withdrawn): minted money.
      const { a, b } = await equivocate()
      clock = 8 * chain.genesis.params.epochMs
      const w = sign(chain, carol, 3n, { kind: 'withdraw' }, 9n)
      // validator 3 holds the evidence: carol's stake waits for the slash
      await expect(vals[3].vote(w)).rejects.toHaveProperty('name', 'EvidenceConflictError')
      await finalise(w, [0, 1, 2])
      expect(vals[0].balance(carol.address)).toBe(10n * NEURO - 1n)
      const report = sign(chain, reporter(7n), 0n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: a.signed, b: b.signed } }, 7n)
      for (const i of [0, 1, 2]) {
        expect(await vals[i].slashConflicts(carol.address, 1n)).toBe(true)
        await expect(vals[i].vote(report)).rejects.toHaveProperty('name', 'EvidenceConflictError')
      }
      // validator 3 did not vote for the withdrawal, but it is final: a reporter would only get stuck
      expect(await vals[3].slashConflicts(carol.address, 1n)).toBe(true)
      for (const l of vals) {
        expect(l.balance(reporter(7n).address)).toBe(0n)
        expect(l.account(carol.address).slashed).toBe(0n)
        expect(uncovered(l.state)).toBe(0n)
      }
    })

    it('evidence first: the slash is final and no validator votes for the offender\'s withdrawal', async () => {
      const { a, b } = await equivocate()
      expect(await vals[0].slashConflicts(carol.address, 1n)).toBe(false)
      const report = sign(chain, reporter(0n), 0n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: a.signed, b: b.signed } })
      await finalise(report, [0, 1, 2, 3])
      clock = 8 * chain.genesis.params.epochMs
      const w = sign(chain, carol, 3n, { kind: 'withdraw' }, 9n)
      for (const l of vals) {
        // final slash: the stake stays (the older rule); before it is final the evidence alone is enough
        await expect(l.vote(w)).rejects.toHaveProperty('name', 'InsufficientFundsError')
        expect(l.account(carol.address).slashed).toBe(4n * NEURO)
        expect(l.balance(reporter(0n).address)).toBe(4n * NEURO / 10n)
        expect(uncovered(l.state)).toBe(0n)
      }
    })

    it('the refusals survive a restart', async () => {
      await equivocate()
      const dir = dirs[3]
      await vals[3].close()
      vals[3] = await Ledger.open({ genesis: chain, path: dir, wallet: validators[3], now: () => clock })
      clock = 8 * chain.genesis.params.epochMs
      await expect(vals[3].vote(sign(chain, carol, 3n, { kind: 'withdraw' }, 9n))).rejects.toHaveProperty('name', 'EvidenceConflictError')
    })
  })
})

describe('security: malformed certificates and vote memory', () => {
  it('a certificate vote from an index outside the genesis is malformed even when signatures are checked later', () => {
    const t = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 1n })
    const votes = [0, 1, 2].map(i => signVote(chain, validators[i], i, t.id))
    votes.push({ validator: 7, signature: new Uint8Array(64).fill(1) })
    const bytes = encodeCertificate(t, votes)
    // the bulk (worker pool) path parses without vote checks, then looks up each voter's key
    expect(() => parseCertificate(chain, bytes, { verifySignature: false, verifyVotes: false })).toThrow(expect.objectContaining({ name: 'InvalidMessageError' }))
    expect(() => parseCertificate(chain, bytes)).toThrow(expect.objectContaining({ name: 'InvalidMessageError' }))
  })

  it('votes of a faulty validator for many large junk messages cannot grow memory past the byte cap', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-ledger-sec-'))
    const cap = 256 * 1024
    const l = await Ledger.open({ genesis: chain, path: dir, now: () => 0, maxVoteMemoryBytes: cap })
    try {
      for (let i = 0; i < 60; i++) {
        // ~14 KiB each: a training proof with many batch losses, from a fresh sender
        const w = Wallet.fromSeed(`junk-${i}`)
        const n = 1500
        const t = sign(chain, w, 0n, { kind: 'training', round: 0n, modelHash: new Uint8Array(32), shardIds: [1], tokens: 1n, batches: BigInt(n), lossBeforeMicro: 0n, lossAfterMicro: 0n, pseudoGradientHash: new Uint8Array(32).fill(1), batchLossMicro: new Array(n).fill(1n << 60n) })
        expect(t.signed.byteLength).toBeGreaterThan(8 * 1024)
        await l.addVote(t, signVote(chain, validators[3], 3, t.id))
        expect(l.voteMemoryBytes).toBeLessThanOrEqual(2 * cap)
      }
    } finally {
      await l.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('security: a validator\'s genesis stake stays bonded', () => {
  it('a validator cannot unbond (and later withdraw) the genesis stake that backs its voting power; extra stake it may', () => {
    // Before the fix a validator could unbond its whole genesis stake, withdraw it 7 epochs later and keep
    // voting with the full weight: its slashing penalty became a debt with nothing behind it.
    const v0 = validators[0]
    const s = new LedgerState(chain)
    const all = s.addFinal([
      sign(chain, alice, 0n, { kind: 'transfer', to: v0.address, amount: 5n * NEURO }),
      sign(chain, v0, 0n, { kind: 'unbond', amount: 1000n * NEURO }),
      sign(chain, v0, 1n, { kind: 'stake', amount: 5n * NEURO }),
      sign(chain, v0, 2n, { kind: 'unbond', amount: 5n * NEURO }),
      sign(chain, v0, 3n, { kind: 'unbond', amount: 1n })
    ].map(final))
    const status = (seq: bigint): string | undefined => all.outcomes.find(o => o.sender === v0.address && o.sequence === seq)?.status
    expect(status(0n)).toBe('failed')
    expect(status(1n)).toBe('applied')
    expect(status(2n)).toBe('applied')
    expect(status(3n)).toBe('failed')
    expect(s.get(v0.address).bonded).toBe(1000n * NEURO)
    expect(s.get(v0.address).unbonding).toEqual([{ amount: 5n * NEURO, releaseEpoch: 9n }])
  })

  it('validators refuse to sign an unbond of genesis stake', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-ledger-sec-'))
    const l = await Ledger.open({ genesis: chain, path: dir, wallet: validators[1], now: () => 0 })
    try {
      await expect(l.vote(sign(chain, validators[0], 0n, { kind: 'unbond', amount: NEURO }))).rejects.toHaveProperty('name', 'InsufficientFundsError')
    } finally {
      await l.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('security: re-execution sampling cannot be ground', () => {
  it('a prover that computed a tenth of the batches and ground its proof id past the public sampler is caught by a salted verifier', async () => {
    const ROUND = 5n
    const weights = tinyInit('grind')
    const modelHash = hashWeights(weights)
    const shardIds = assignShards(chain, alice.address, ROUND)
    const batches = 100
    // the prover computes only batches 0..9 honestly and invents the other 90 losses
    const honest = new Set([...Array(10).keys()])
    const batchLossMicro = [...Array(batches).keys()].map(i => honest.has(i) ? toMicro(tinyLoss(weights, tinyBatch(shardIds, ROUND, i))) : 1_000_000n)
    const lossBeforeMicro = batchLossMicro.reduce((a, b) => a + b, 0n) / BigInt(batches)
    const body = (nonce: number): Extract<TxBody, { kind: 'training' }> => {
      const pg = new Uint8Array(32)
      new DataView(pg.buffer).setUint32(0, nonce)
      return { kind: 'training', round: ROUND, modelHash, shardIds, tokens: 6400n, batches: BigInt(batches), lossBeforeMicro, lossAfterMicro: 0n, pseudoGradientHash: pg, batchLossMicro }
    }
    // grinding: the id is the digest of bytes the prover chooses (here the unchecked pseudo-gradient hash),
    // so it can compute ids offline until the publicly derived sample hits its honest batches
    let nonce = 0
    while (!sampleBatches(toHex(txDigest(chain.chainId, Tx.encode(buildTx(chain, alice.publicKey, 0n, 0n, body(nonce))))), batches, 2).every(i => honest.has(i))) {
      nonce++
    }
    const tx = sign(chain, alice, 0n, body(nonce))
    const claim: TrainingClaim = { proofId: tx.idHex, sender: tx.sender, round: ROUND, modelHash, shardIds, tokens: 6400n, batches: BigInt(batches), lossBeforeMicro, lossAfterMicro: 0n, pseudoGradientHash: body(nonce).pseudoGradientHash, batchLossMicro, checkpointInterval: 0, checkpointHashes: [], qualityBonus: false }
    // a verifier with a secret salt (each validator has its own) samples batches the prover could not predict
    const fair = runTinyTraining(weights, shardIds, ROUND, 12)
    const verifier = new TinyModelTrainingVerifier({ getWeights: () => weights, samples: 2, salt: new Uint8Array(32).fill(7), witness: { fetchWeights: async (_c, j) => j === 1 ? fair.finalWeights : undefined } })
    await expect(verifier.verifyTraining(claim)).rejects.toHaveProperty('name', 'ReExecutionMismatchError')
    // the honest batches are still accepted under the same salt when the whole claim is honest
    const ok = sign(chain, alice, 1n, { kind: 'training', round: ROUND, modelHash, shardIds, tokens: fair.tokens, batches: 12n, lossBeforeMicro: fair.lossBeforeMicro, lossAfterMicro: fair.lossAfterMicro, pseudoGradientHash: fair.pseudoGradientHash, batchLossMicro: fair.batchLossMicro })
    await verifier.verifyTraining({ proofId: ok.idHex, sender: ok.sender, round: ROUND, modelHash, shardIds, tokens: fair.tokens, batches: 12n, lossBeforeMicro: fair.lossBeforeMicro, lossAfterMicro: fair.lossAfterMicro, pseudoGradientHash: fair.pseudoGradientHash, batchLossMicro: fair.batchLossMicro, checkpointInterval: 0, checkpointHashes: [], qualityBonus: false })
  })
})

describe('security: a restart never makes an honest sender equivocate', () => {
  it('a message signed and recorded before a crash keeps its sequence: the next one takes the following sequence', async () => {
    // Before the fix the next sequence lived only in memory: after a restart, a message still on its way to
    // finality had its sequence handed out again to a different message, i.e. the node equivocated and
    // validators that had seen the first emitted evidence that slashes the (honest) sender.
    const dir = await mkdtemp(join(tmpdir(), 'ponw-ledger-sec-'))
    try {
      let l = await Ledger.open({ genesis: chain, path: dir, wallet: carol, now: () => 0 })
      const first = l.createTx({ kind: 'transfer', to: bob.address, amount: NEURO })
      await l.recordOwn(first)
      await l.close()
      l = await Ledger.open({ genesis: chain, path: dir, wallet: carol, now: () => 0 })
      const second = l.createTx({ kind: 'transfer', to: dave.address, amount: NEURO })
      expect(first.sequence).toBe(0n)
      expect(second.sequence).toBe(1n)
      // the unfinished message is kept so the service can gossip it again
      expect((await l.unfinishedOwn()).map(t => t.idHex)).toEqual([first.idHex])
      // once it is final it is no longer unfinished
      await l.addCertificates([certify(chain, first)])
      expect(await l.unfinishedOwn()).toEqual([])
      await l.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
