import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { Ledger } from '../src/ledger.js'
import { LedgerState } from '../src/state.js'
import { alice, bob, carol, sign, testChain, validators } from './fixtures.js'
import type { LedgerTx, TxBody } from '../src/messages.js'

const chain = testChain()
const NOW = 5 * chain.genesis.params.roundMs + 1000

function proof (session: Uint8Array, tokens: bigint): TxBody {
  return { kind: 'inference', sessionId: session, tokens, outputHash: new Uint8Array(32).fill(3), startedMs: BigInt(NOW - 250_000), endedMs: BigInt(NOW) }
}

function payment (tokens: bigint, pricePerToken: bigint, provider = bob.address): TxBody {
  return { kind: 'payment', provider, tokens, pricePerToken, sessionId: new Uint8Array([7]) }
}

describe('inference proofs: bound to the client\'s final payment', () => {
  let dirs: string[] = []
  let vals: Ledger[] = []

  beforeEach(async () => {
    for (const w of validators) {
      const dir = await mkdtemp(join(tmpdir(), 'ponw-inf-'))
      dirs.push(dir)
      // the default verifier: the payment binding is part of the ledger, no extra check configured
      vals.push(await Ledger.open({ genesis: chain, path: dir, wallet: w, now: () => NOW }))
    }
  })

  afterEach(async () => {
    await Promise.allSettled(vals.map(async l => l.close()))
    await Promise.allSettled(dirs.map(async d => rm(d, { recursive: true, force: true })))
    dirs = []
    vals = []
  })

  async function finalise (tx: LedgerTx): Promise<void> {
    const votes = []
    for (const l of vals.slice(0, 3)) votes.push(await l.vote(tx))
    for (const l of vals) for (const v of votes) await l.addVote(tx, v)
  }

  it('mints only for a paid session, to its provider, once, for at most the paid tokens', async () => {
    // no payment: a sender-chosen session id mints nothing
    await expect(vals[0].vote(sign(chain, bob, 0n, proof(new Uint8Array([1]), 1000n)))).rejects.toHaveProperty('name', 'UnpaidInferenceError')
    const pay = sign(chain, alice, 0n, payment(1_000_000n, 10n ** 13n))
    await finalise(pay)
    // another provider cannot claim alice's payment to bob
    await expect(vals[0].vote(sign(chain, carol, 0n, proof(pay.id, 1000n)))).rejects.toHaveProperty('name', 'UnpaidInferenceError')
    // more tokens than paid
    await expect(vals[0].vote(sign(chain, bob, 0n, proof(pay.id, 1_000_001n)))).rejects.toHaveProperty('name', 'UnpaidInferenceError')
    await finalise(sign(chain, bob, 0n, proof(pay.id, 1_000_000n)))
    // 1M tokens → 0.9 NEURO (bob has no stake); the fee burned 2 NEURO, so the cap does not bind
    expect(vals[3].state.totals.minted).toBe(9n * NEURO / 10n)
    // the session is rewarded once
    await expect(vals[0].vote(sign(chain, bob, 1n, proof(pay.id, 1n)))).rejects.toHaveProperty('name', 'ReplayError')
  })

  it('self-dealing cannot mint more than the payment burned', async () => {
    // a client paying its own second wallet 1 base unit per token
    const pay = sign(chain, alice, 0n, payment(1_000_000n, 1n))
    await finalise(pay)
    await finalise(sign(chain, bob, 0n, proof(pay.id, 1_000_000n)))
    const t = vals[3].state.totals
    expect(t.burned).toBe(200_000n)
    expect(t.minted).toBe(200_000n)
  })

  it('a certified proof that arrives before its payment waits for it; the state does not depend on the order', () => {
    const pay = sign(chain, alice, 0n, payment(1000n, 10n ** 15n))
    const inf = sign(chain, bob, 0n, proof(pay.id, 1000n))
    const tr = sign(chain, bob, 1n, { kind: 'transfer', to: carol.address, amount: 1n })
    const a = new LedgerState(chain)
    a.addFinal([inf, tr])
    expect(a.totals.minted).toBe(0n)
    expect(a.queued.get(bob.address)?.size).toBe(2)
    a.addFinal([pay])
    const b = new LedgerState(chain)
    b.addFinal([pay, tr, inf])
    expect(a.totals.minted).toBeGreaterThan(0n)
    expect(a.queued.size).toBe(0)
    expect(a.stateHash()).toBe(b.stateHash())
  })

  it('a certified proof naming another provider\'s payment, or claiming more than paid, fails and mints nothing', () => {
    const pay = sign(chain, alice, 0n, payment(1000n, 10n ** 15n))
    const s = new LedgerState(chain)
    s.addFinal([pay, sign(chain, carol, 0n, proof(pay.id, 1000n)), sign(chain, bob, 0n, proof(pay.id, 1001n))])
    expect([...s.outcomes.values()].filter(o => o.kind === 'inference').map(o => o.status)).toEqual(['failed', 'failed'])
    expect(s.totals.minted).toBe(0n)
  })
})
