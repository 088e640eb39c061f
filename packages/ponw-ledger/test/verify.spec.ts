import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { Ledger } from '../src/ledger.js'
import { assignShards } from '../src/shards.js'
import { LedgerState } from '../src/state.js'
import { ProofVerifier } from '../src/verify.js'
import { alice, bob, sign, testChain, validators } from './fixtures.js'
import type { TxBody } from '../src/messages.js'

const chain = testChain()
const p = chain.genesis.params
const ROUND = 5n
const NOW = Number(ROUND) * p.roundMs + 1000

function proofs (): Record<'training' | 'uptime' | 'inference' | 'data', TxBody> {
  const shardIds = assignShards(chain, alice.address, ROUND)
  return {
    training: { kind: 'training', round: ROUND, modelHash: new Uint8Array(32), shardIds, tokens: 10n, batches: 1n, lossBeforeMicro: 5n, lossAfterMicro: 4n, pseudoGradientHash: new Uint8Array(32).fill(1), batchLossMicro: [5n] },
    uptime: { kind: 'uptime', epoch: 0n, heartbeats: 10 },
    inference: { kind: 'inference', sessionId: new Uint8Array([1]), tokens: 1000n, outputHash: new Uint8Array(32), startedMs: BigInt(NOW - 10_000), endedMs: BigInt(NOW) },
    data: { kind: 'data', shardId: shardIds[0], samples: 10n, dataHash: new Uint8Array(32), round: ROUND }
  }
}

describe('ProofVerifier fails closed', () => {
  const dirs: string[] = []

  afterEach(async () => {
    await Promise.allSettled(dirs.splice(0).map(async d => rm(d, { recursive: true, force: true })))
  })

  it('the default verifier refuses every proof kind with NoVerifierError naming the kind (inference: the ledger checks the payment)', async () => {
    const v = new ProofVerifier()
    expect(v.kinds).toEqual([])
    const state = new LedgerState(chain)
    const { inference, ...others } = proofs()
    await expect(v.check(chain, state, sign(chain, alice, 0n, inference), NOW)).rejects.toHaveProperty('name', 'UnpaidInferenceError')
    for (const [kind, body] of Object.entries(others)) {
      const err = await v.check(chain, state, sign(chain, alice, 0n, body), NOW).then(() => undefined, (e: any) => e)
      expect(err?.name).toBe('NoVerifierError')
      expect(err.kind).toBe(kind)
      expect(err.message).toContain(kind)
    }
  })

  it('a verifier configured for one kind still refuses the others, and calls the configured check', async () => {
    const seen: string[] = []
    const v = new ProofVerifier({ uptime: { verifyUptime: async c => { seen.push(`${c.sender}/${c.epoch}/${c.heartbeats}`) } } })
    expect(v.kinds).toEqual(['uptime'])
    const state = new LedgerState(chain)
    const all = proofs()
    await v.check(chain, state, sign(chain, alice, 0n, all.uptime), NOW)
    expect(seen).toEqual([`${alice.address}/0/10`])
    for (const kind of ['training', 'data'] as const) {
      await expect(v.check(chain, state, sign(chain, alice, 0n, all[kind]), NOW)).rejects.toMatchObject({ name: 'NoVerifierError', kind })
    }
    // a configured check that throws refuses the vote
    const refusing = new ProofVerifier({ uptime: { verifyUptime: async () => { throw new Error('no heartbeats seen') } } })
    await expect(refusing.check(chain, state, sign(chain, alice, 0n, all.uptime), NOW)).rejects.toThrow('no heartbeats seen')
  })

  it('a validator ledger opened without a verifier refuses to vote for proofs but still votes for transfers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-verify-'))
    dirs.push(dir)
    const ledger = await Ledger.open({ genesis: chain, path: dir, wallet: validators[0], now: () => NOW })
    try {
      const before = ledger.stateHash()
      await expect(ledger.vote(sign(chain, alice, 0n, proofs().uptime))).rejects.toMatchObject({ name: 'NoVerifierError', kind: 'uptime' })
      expect(ledger.stateHash()).toBe(before)
      // the refused proof did not take the slot: the sender's next message at that sequence is voted for
      const vote = await ledger.vote(sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO }))
      expect(vote.validator).toBe(0)
    } finally {
      await ledger.close()
    }
  })
})
