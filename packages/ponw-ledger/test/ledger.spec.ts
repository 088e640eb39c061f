import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { Ledger } from '../src/ledger.js'
import { signVote } from '../src/messages.js'
import { designatedReporter } from '../src/state.js'
import { alice, bob, carol, dave, sign, testChain, validators } from './fixtures.js'
import type { Evidence, LedgerTx, VoteSigData } from '../src/messages.js'

const chain = testChain()
const clock = { t: 0 }

describe('ledger: validator rule, finality, equivocation, slashing', () => {
  let dirs: string[] = []
  let vals: Ledger[] = []

  beforeEach(async () => {
    clock.t = 0
    vals = []
    for (const w of validators) {
      const dir = await mkdtemp(join(tmpdir(), 'ponw-ledger-'))
      dirs.push(dir)
      vals.push(await Ledger.open({ genesis: chain, path: dir, wallet: w, now: () => clock.t }))
    }
  })

  afterEach(async () => {
    await Promise.allSettled(vals.map(async l => l.close()))
    await Promise.allSettled(dirs.map(async d => rm(d, { recursive: true, force: true })))
    dirs = []
  })

  /** asks validators `who` to vote; delivers every vote to every ledger; returns the votes */
  async function run (tx: LedgerTx, who = [0, 1, 2, 3]): Promise<VoteSigData[]> {
    const votes: VoteSigData[] = []
    for (const i of who) {
      votes.push(await vals[i].vote(tx))
    }
    for (const l of vals) {
      for (const v of votes) {
        await l.addVote(tx, v)
      }
    }
    return votes
  }

  it('finalises a transfer with > 2/3 of the stake and applies it everywhere', async () => {
    const tx = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 3n * NEURO })
    await run(tx, [0, 1])
    expect(vals[0].balance(bob.address)).toBe(100n * NEURO) // 2 of 4 is not a quorum
    await run(tx, [2])
    for (const l of vals) {
      expect(l.balance(bob.address)).toBe(103n * NEURO)
      expect(l.balance(alice.address)).toBe(997n * NEURO)
    }
    expect((await vals[0].history(bob.address)).map(o => o.id)).toEqual([tx.idHex])
  })

  it('overspending, replays and sequence gaps are refused with typed errors and change nothing', async () => {
    const before = vals[0].stateHash()
    const over = sign(chain, carol, 0n, { kind: 'transfer', to: bob.address, amount: 11n * NEURO })
    await expect(vals[0].vote(over)).rejects.toHaveProperty('name', 'InsufficientFundsError')
    const gap = sign(chain, carol, 5n, { kind: 'transfer', to: bob.address, amount: 1n })
    await expect(vals[0].vote(gap)).rejects.toHaveProperty('name', 'SequenceGapError')
    const stakeTooMuch = sign(chain, carol, 0n, { kind: 'stake', amount: 11n * NEURO })
    await expect(vals[0].vote(stakeTooMuch)).rejects.toHaveProperty('name', 'InsufficientFundsError')
    const unbondTooMuch = sign(chain, carol, 0n, { kind: 'unbond', amount: 1n })
    await expect(vals[0].vote(unbondTooMuch)).rejects.toHaveProperty('name', 'InsufficientFundsError')
    expect(vals[0].stateHash()).toBe(before)

    const ok = sign(chain, carol, 0n, { kind: 'transfer', to: bob.address, amount: NEURO })
    await run(ok, [0, 1, 2])
    const after = vals[0].stateHash()
    await expect(vals[3].vote(ok)).rejects.toHaveProperty('name', 'ReplayError')
    // the same certificate delivered again changes nothing
    const cert = await vals[0].addVote(ok, signVote(chain, validators[3], 3, ok.id))
    expect(cert).toBeUndefined()
    expect(vals[0].stateHash()).toBe(after)
    // a message for an already-final slot
    const conflicting = sign(chain, carol, 0n, { kind: 'transfer', to: dave.address, amount: 1n })
    await expect(vals[3].vote(conflicting)).rejects.toHaveProperty('name', 'ReplayError')
    // a validator that signed the slot sees the conflict as equivocation evidence
    await expect(vals[0].vote(conflicting)).rejects.toHaveProperty('name', 'EquivocationError')
    expect(vals[0].stateHash()).toBe(after)
  })

  it('account equivocation: two transfers with one sequence never both finalise; the fraud proof slashes the sender', async () => {
    // carol stakes 8 NEURO first so there is something to slash
    await run(sign(chain, carol, 0n, { kind: 'stake', amount: 8n * NEURO }))
    const a = sign(chain, carol, 1n, { kind: 'transfer', to: bob.address, amount: NEURO })
    const b = sign(chain, carol, 1n, { kind: 'transfer', to: dave.address, amount: NEURO })
    const evidence: Evidence[] = []
    vals.forEach(l => l.addEventListener('ponw-ledger:evidence', e => evidence.push(e.detail)))
    // split view: validators 0,1 see a first, 2,3 see b first
    await run(a, [0, 1])
    await run(b, [2, 3])
    for (const [i, other] of [[0, b], [1, b], [2, a], [3, a]] as const) {
      await expect(vals[i].vote(other)).rejects.toHaveProperty('name', 'EquivocationError')
    }
    for (const l of vals) {
      expect(l.balance(bob.address)).toBe(100n * NEURO)
      expect(l.balance(dave.address)).toBe(0n)
    }
    expect(evidence.length).toBeGreaterThanOrEqual(4)
    // the validator designated for this evidence and epoch reports it
    const r = designatedReporter(chain, `account/${carol.address}`, 0n)
    const report = vals[r].createTx({ kind: 'slash', evidence: evidence[0] })
    await run(report)
    const penalty = 4n * NEURO // slashFraction 1/2 of the 8 NEURO bonded before sequence 1
    const reward = penalty / 10n
    for (const l of vals) {
      expect(l.account(carol.address).slashed).toBe(penalty)
      expect(l.balance(validators[r].address)).toBe(reward)
      expect(l.state.totals.burned).toBe(penalty - reward)
      expect(l.state.holdings()).toBe(l.state.totals.genesisSupply + l.state.totals.minted - l.state.totals.burned)
    }
    // the same evidence cannot be used twice
    const again = vals[(r + 1) % 4].createTx({ kind: 'slash', evidence: evidence[0] })
    await expect(vals[(r + 1) % 4].vote(again)).rejects.toHaveProperty('name', 'ReplayError')
  })

  it('when one of the two conflicting messages reaches the quorum, the other can never finalise', async () => {
    const a = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO })
    const b = sign(chain, alice, 0n, { kind: 'transfer', to: dave.address, amount: 500n * NEURO })
    const voteB = await vals[3].vote(b)
    await run(a, [0, 1, 2])
    for (const l of vals) {
      expect(await l.addVote(b, voteB)).toBeUndefined()
    }
    for (const i of [0, 1, 2]) {
      await expect(vals[i].vote(b)).rejects.toHaveProperty('name', 'EquivocationError')
    }
    for (const l of vals) {
      expect(l.balance(bob.address)).toBe(101n * NEURO)
      expect(l.balance(dave.address)).toBe(0n)
    }
  })

  it('validator equivocation: two votes of one validator for one slot are a fraud proof that slashes it', async () => {
    const a = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO })
    const b = sign(chain, alice, 0n, { kind: 'transfer', to: dave.address, amount: NEURO })
    const evidence: Evidence[] = []
    vals[0].addEventListener('ponw-ledger:evidence', e => evidence.push(e.detail))
    // validator 3 is faulty: it signs both (bypassing its first-seen rule)
    await vals[0].addVote(a, signVote(chain, validators[3], 3, a.id))
    await vals[0].addVote(b, signVote(chain, validators[3], 3, b.id))
    expect(evidence).toHaveLength(1)
    expect(evidence[0].kind).toBe('validator-equivocation')
    const r = designatedReporter(chain, 'validator/3', 0n, 3)
    const report = vals[r].createTx({ kind: 'slash', evidence: evidence[0] })
    await run(report, [0, 1, 2])
    for (const l of vals) {
      expect(l.account(validators[3].address).slashed).toBe(500n * NEURO)
      expect(l.balance(validators[r].address)).toBe(50n * NEURO)
    }
  })

  it('a forged fraud proof (no conflict) is refused', async () => {
    const a = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO })
    const b = sign(chain, alice, 1n, { kind: 'transfer', to: bob.address, amount: NEURO })
    const report = vals[0].createTx({ kind: 'slash', evidence: { kind: 'account-equivocation', a: a.signed, b: b.signed } })
    await expect(vals[1].vote(report)).rejects.toHaveProperty('name', 'InvalidEvidenceError')
  })

  it('staking, unbonding period and withdrawal', async () => {
    const l = vals[0]
    await run(sign(chain, bob, 0n, { kind: 'stake', amount: 50n * NEURO }))
    await run(sign(chain, bob, 1n, { kind: 'unbond', amount: 20n * NEURO }))
    expect(l.account(bob.address).bonded).toBe(50n * NEURO - 20n * NEURO)
    // released unbondingEpochs + 2 · epochWindow after the stamped epoch (the window's two edges cannot shorten it)
    expect(l.account(bob.address).unbonding).toEqual([{ amount: 20n * NEURO, releaseEpoch: 9n }])
    const early = sign(chain, bob, 2n, { kind: 'withdraw' })
    await expect(l.vote(early)).rejects.toHaveProperty('name', 'InsufficientFundsError')
    const late = sign(chain, bob, 2n, { kind: 'withdraw' }, 9n)
    // validators' clocks are at epoch 0: epoch 9 is outside their window
    await expect(l.vote(late)).rejects.toHaveProperty('name', 'ImplausibleProofError')
    clock.t = 8 * chain.genesis.params.epochMs
    await run(late)
    for (const v of vals) {
      expect(v.balance(bob.address)).toBe(100n * NEURO - 50n * NEURO + 20n * NEURO)
      expect(v.account(bob.address).unbonding).toEqual([])
    }
  })
})
