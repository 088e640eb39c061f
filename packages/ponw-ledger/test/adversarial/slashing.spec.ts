/**
 * Attack class (e): slashing without teeth. Before the fix (1) a slashed validator kept its full voting power,
 * (2) a report with zero penalty used up the offender's once-per-offender evidence key, and (3) racing the
 * designated reporter with another report of the same evidence split the validators' votes: neither report
 * became final, the offender stayed unslashed and the honest reporter's account was stuck.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { NEURO } from '../../src/amount.js'
import { createGenesis, loadChain } from '../../src/genesis.js'
import { toHex } from '../../src/keys.js'
import { encodeCertificate, parseCertificate, signVote } from '../../src/messages.js'
import { rational } from '../../src/rational.js'
import * as svc from '../../src/service.js'
import { LedgerState } from '../../src/state.js'
import { alice, bob, carol, certify, dave, sign, testChain, validators } from '../fixtures.js'
import { Net } from './helpers.js'
import type { Chain } from '../../src/genesis.js'
import type { LedgerTx } from '../../src/messages.js'

/** the validator whose report of `key` validators accept in `epoch` (before the fix: rank 0 of the old turn order) */
function designated (chain: Chain, key: string, epoch: bigint, offender?: number): number {
  const fn = (svc as any).designatedReporter as ((c: Chain, k: string, e: bigint, o?: number) => number) | undefined
  if (fn != null) return fn(chain, key, epoch, offender)
  return validators.findIndex((_, i) => svc.reporterRank(validators.length, key, i, offender) === 0)
}

describe('adversarial (e): slashing has teeth', () => {
  let net: Net | undefined
  afterEach(async () => { await net?.close(); net = undefined })

  it('a slashed validator loses voting power in proportion to its penalty', async () => {
    // slashFraction 1: validator 3 loses all of its power
    const g = createGenesis({
      network: 'adv-slash',
      genesisTimeMs: 0,
      validators: validators.map(v => ({ publicKey: toHex(v.publicKey), stake: 1000n * NEURO })),
      allocations: [{ address: alice.address, balance: 1000n * NEURO }, { address: bob.address, balance: 100n * NEURO }]
    })
    g.params = { ...g.params, slashFraction: rational(1n, 1n) }
    const chain = loadChain(g)
    net = await Net.open(chain)
    // validator 3 votes for two messages of alice's slot 0: evidence; bob reports it
    const a = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 1n })
    const b = sign(chain, alice, 0n, { kind: 'transfer', to: carol.address, amount: 1n })
    const voteA = signVote(chain, validators[3], 3, a.id).signature
    const voteB = signVote(chain, validators[3], 3, b.id).signature
    const key = 'validator/3'
    const r = designated(chain, key, 0n, 3)
    await net.finalise(sign(chain, validators[r], 0n, { kind: 'slash', evidence: { kind: 'validator-equivocation', validator: 3, a: a.signed, voteA, b: b.signed, voteB } }))
    expect(net.vals[0].account(validators[3].address).slashed).toBe(1000n * NEURO)
    // a certificate that needs validator 3's vote (0, 1, 3: 3000 of 4000 by genesis stake) is no longer a quorum
    const t = sign(chain, bob, 0n, { kind: 'transfer', to: carol.address, amount: 1n })
    const cert = encodeCertificate(t, [0, 1, 3].map(i => signVote(chain, validators[i], i, t.id)))
    expect(() => parseCertificate(chain, cert)).not.toThrow() // the stateless check still passes…
    await expect(net.vals[0].addCertificates([cert])).rejects.toHaveProperty('name', 'InsufficientQuorumError')
    expect(net.vals[0].state.known.has(t.idHex)).toBe(false)
    // …and votes of 0, 1 and 3 collected by a node do not make a certificate either; 0, 1, 2 do
    for (const i of [0, 1, 3]) expect(await net.vals[2].addVote(t, signVote(chain, validators[i], i, t.id))).toBeUndefined()
    expect(await net.vals[2].addVote(t, signVote(chain, validators[2], 2, t.id))).toBeDefined()
    net.honest.push(parseCertificate(chain, encodeCertificate(t, [0, 1, 2].map(i => signVote(chain, validators[i], i, t.id)))))
    // a batch (a sync page) with the short certificate and one of the same message with enough votes applies
    for (const l of net.vals) await l.addCertificates([cert, net.honest.at(-1)!.bytes])
    expect(net.vals[0].state.known.has(t.idHex)).toBe(true)
    await net.expectRestartMatchesHonest()
  })

  it('a zero-penalty report does not use up the offender\'s evidence key', () => {
    const chain = testChain()
    const final = (t: LedgerTx): LedgerTx => parseCertificate(chain, certify(chain, t)).tx
    // carol equivocates at sequence 0 with nothing bonded: a report of it has penalty 0
    const a0 = sign(chain, carol, 0n, { kind: 'transfer', to: bob.address, amount: 1n })
    const b0 = sign(chain, carol, 0n, { kind: 'transfer', to: alice.address, amount: 1n })
    const zero = sign(chain, dave, 0n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: a0.signed, b: b0.signed } })
    // then she bonds 8 NEURO and equivocates again
    const stake = sign(chain, carol, 1n, { kind: 'stake', amount: 8n * NEURO })
    const a2 = sign(chain, carol, 2n, { kind: 'transfer', to: bob.address, amount: 1n })
    const b2 = sign(chain, carol, 2n, { kind: 'transfer', to: alice.address, amount: 1n })
    const real = sign(chain, dave, 1n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: a2.signed, b: b2.signed } })
    const s = new LedgerState(chain)
    s.addFinal([a0, zero, stake, a2, real].map(final))
    expect(s.get(carol.address).slashed).toBe(4n * NEURO)
    expect(s.get(dave.address).balance).toBe(4n * NEURO / 10n)
  })

  it('validators refuse a zero-penalty report', async () => {
    const chain = testChain()
    net = await Net.open(chain)
    const a0 = sign(chain, carol, 0n, { kind: 'transfer', to: bob.address, amount: 1n })
    const b0 = sign(chain, carol, 0n, { kind: 'transfer', to: alice.address, amount: 1n })
    await net.finalise(a0)
    const key = `account/${carol.address}`
    const r = designated(chain, key, 0n)
    await expect(net.vals[0].vote(sign(chain, validators[r], 0n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: a0.signed, b: b0.signed } }))).rejects.toHaveProperty('name', 'InvalidEvidenceError')
    await net.expectRestartMatchesHonest()
  })

  it('racing the designated reporter with the same evidence cannot split the votes; the honest reporter is not stuck', async () => {
    const chain = testChain()
    net = await Net.open(chain)
    await net.finalise(sign(chain, carol, 0n, { kind: 'stake', amount: 8n * NEURO }))
    const a = sign(chain, carol, 1n, { kind: 'transfer', to: bob.address, amount: 1n })
    const b = sign(chain, carol, 1n, { kind: 'transfer', to: alice.address, amount: 1n })
    await net.finalise(a)
    const evidence = { kind: 'account-equivocation' as const, a: a.signed, b: b.signed }
    const r = designated(chain, `account/${carol.address}`, 0n)
    const racerIndex = (r + 1) % 4
    const honestReport = sign(chain, validators[r], 0n, { kind: 'slash', evidence })
    const racerReport = sign(chain, validators[racerIndex], 0n, { kind: 'slash', evidence })
    // validators 0 and 1 see the racer's report first, 2 and 3 the designated reporter's
    const votesFor = new Map<string, Array<Awaited<ReturnType<typeof net.vals[0]['vote']>>>>()
    for (const [i, l] of net.vals.entries()) {
      for (const rep of i < 2 ? [racerReport, honestReport] : [honestReport, racerReport]) {
        try {
          const v = await l.vote(rep)
          votesFor.set(rep.idHex, [...(votesFor.get(rep.idHex) ?? []), v])
        } catch {}
      }
    }
    for (const [id, votes] of votesFor) {
      const rep = id === honestReport.idHex ? honestReport : racerReport
      for (const l of net.vals) for (const v of votes) await l.addVote(rep, v)
    }
    for (const l of net.vals) {
      expect(l.account(carol.address).slashed).toBe(4n * NEURO)
      // the designated reporter's sequence 0 is final: its account can send again
      expect(l.account(validators[r].address).nextSeq).toBe(1n)
    }
    net.honest.push(parseCertificate(chain, encodeCertificate(honestReport, votesFor.get(honestReport.idHex)!)))
    await net.expectRestartMatchesHonest()
  })
})
