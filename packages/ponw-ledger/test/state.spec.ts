import { describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { parseCertificate } from '../src/messages.js'
import { LedgerState } from '../src/state.js'
import { alice, bob, carol, certify, dave, prng, shuffle, sign, testChain } from './fixtures.js'
import type { LedgerTx } from '../src/messages.js'

const chain = testChain()

function apply (s: LedgerState, txs: LedgerTx[]): void {
  s.addFinal(txs.map(t => parseCertificate(chain, certify(chain, t)).tx))
}

describe('state machine', () => {
  it('applies transfers and keeps supply', () => {
    const s = new LedgerState(chain)
    apply(s, [sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 5n * NEURO })])
    expect(s.get(alice.address).balance).toBe(995n * NEURO)
    expect(s.get(bob.address).balance).toBe(105n * NEURO)
    expect(s.holdings()).toBe(s.totals.genesisSupply + s.totals.minted - s.totals.burned)
  })

  it('holds a later sequence until the earlier one is final, and unfunded spends until funded', () => {
    const s = new LedgerState(chain)
    const t0 = sign(chain, carol, 0n, { kind: 'transfer', to: dave.address, amount: 10n * NEURO })
    const t1 = sign(chain, carol, 1n, { kind: 'transfer', to: dave.address, amount: 15n * NEURO })
    const fund = sign(chain, alice, 0n, { kind: 'transfer', to: carol.address, amount: 15n * NEURO })
    apply(s, [t1])
    expect(s.get(dave.address).balance).toBe(0n)
    apply(s, [t0])
    expect(s.get(dave.address).balance).toBe(10n * NEURO)
    expect(s.get(carol.address).nextSeq).toBe(1n) // t1 waits for funds
    apply(s, [fund])
    expect(s.get(dave.address).balance).toBe(25n * NEURO)
    expect(s.get(carol.address).balance).toBe(0n)
  })

  it('is a function of the set of final messages, whatever the order (randomised)', () => {
    // a funded history built in order, then replayed in 30 random orders
    const wallets = [alice, bob, carol, dave]
    const seqs = new Map<string, bigint>()
    const rnd = prng(7)
    const txs: LedgerTx[] = []
    for (let i = 0; i < 120; i++) {
      const from = wallets[Math.floor(rnd() * 3)]
      const to = wallets[Math.floor(rnd() * 4)]
      const seq = seqs.get(from.address) ?? 0n
      seqs.set(from.address, seq + 1n)
      const r = rnd()
      const body = r < 0.6
        ? { kind: 'transfer' as const, to: to.address, amount: BigInt(1 + Math.floor(rnd() * 5)) * NEURO / 10n }
        : r < 0.7
          ? { kind: 'stake' as const, amount: NEURO / 100n }
          : r < 0.85
            ? { kind: 'uptime' as const, epoch: BigInt(i), heartbeats: 30 }
            : { kind: 'payment' as const, provider: to.address, tokens: 1000n, pricePerToken: 10n ** 12n, sessionId: new Uint8Array([i]) }
      txs.push(sign(chain, from, seq, body))
    }
    const final = txs.map(t => parseCertificate(chain, certify(chain, t)).tx)
    const reference = new LedgerState(chain)
    reference.addFinal(final)
    expect(reference.queued.size).toBe(0)
    for (let k = 0; k < 30; k++) {
      const s = new LedgerState(chain)
      for (const t of shuffle(final, prng(100 + k))) {
        s.addFinal([t])
      }
      expect(s.stateHash()).toBe(reference.stateHash())
    }
    expect(reference.holdings()).toBe(reference.totals.genesisSupply + reference.totals.minted - reference.totals.burned)
  })
})
