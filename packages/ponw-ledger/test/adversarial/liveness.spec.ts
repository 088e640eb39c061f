/**
 * Attack class (f): accounts that can be stranded. Before the fix (1) a message that got votes from at least a
 * third of the stake but not a quorum, then expired, stranded its sender's slot forever (validators that voted
 * refuse any other message for it, the others refuse the expired one), and any replacement was slashable
 * "equivocation"; (2) a store holding two certified messages for one slot (possible beyond the trust
 * assumption) could not be reopened; (3) a sender shortened its unbonding period by stamping epochs at the
 * edges of the validators' window; (4) genesis parameters were not validated (NaN times, negative windows,
 * a zero staking unit that crashes every reward).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { NEURO } from '../../src/amount.js'
import { createGenesis, loadChain } from '../../src/genesis.js'
import { toHex } from '../../src/keys.js'
import { Ledger } from '../../src/ledger.js'
import { checkSlashReport } from '../../src/state.js'
import { buildTx } from '../../src/messages.js'
import { alice, bob, carol, certify, dave, sign, testChain, testGenesis, validators } from '../fixtures.js'
import { Net } from './helpers.js'
import { startService } from './service-harness.js'
import { GossipMessage } from '../../src/pb/ledger.js'

const chain = testChain()
const p = chain.genesis.params
const EPOCH = p.epochMs

describe('adversarial (f): no account or store is stranded', () => {
  let net: Net | undefined
  const dirs: string[] = []
  afterEach(async () => {
    await net?.close()
    net = undefined
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
  })

  it('a message with a third of the votes that expired is completed by the other validators (catch-up)', async () => {
    let clock = 0
    net = await Net.open(chain, undefined, () => clock)
    const m = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO }, 0n)
    // two of four validators (half the stake) vote, then the sender goes offline past the epoch window
    const votes = [await net.vals[0].vote(m), await net.vals[1].vote(m)]
    clock = 5 * EPOCH
    // the other two refuse a fresh look at the old message, and the first two refuse anything else for the slot
    await expect(net.vals[2].vote(m)).rejects.toHaveProperty('name', 'ImplausibleProofError')
    const other = sign(chain, alice, 0n, { kind: 'transfer', to: carol.address, amount: NEURO }, 5n)
    await expect(net.vals[0].vote(other)).rejects.toHaveProperty('name', 'EquivocationError')
    // shown the votes of at least a third of the stake, they vote for it: the slot completes
    const late = [await net.vals[2].vote(m, { endorsements: votes }), await net.vals[3].vote(m, { endorsements: votes })]
    let cert
    for (const l of net.vals) for (const v of [...votes, ...late]) cert = (await l.addVote(m, v)) ?? cert
    for (const l of net.vals) expect(l.account(alice.address).nextSeq).toBe(1n)
    net.honest.push(cert!)
    await net.expectRestartMatchesHonest()
  })

  it('a message with less than a third of the votes that expired can be replaced, and the replacement is not slashable', async () => {
    let clock = 0
    net = await Net.open(chain, undefined, () => clock)
    const m = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO }, 0n)
    await net.vals[0].vote(m)
    clock = 5 * EPOCH
    const replacement = sign(chain, alice, 0n, { kind: 'transfer', to: carol.address, amount: NEURO }, 5n)
    // validators 1, 2, 3 never voted for m: they vote for the replacement; it is final
    const votes = []
    for (const i of [1, 2, 3]) votes.push(await net.vals[i].vote(replacement))
    let cert
    for (const l of net.vals) for (const v of votes) cert = (await l.addVote(replacement, v)) ?? cert
    for (const l of net.vals) expect(l.account(alice.address).nextSeq).toBe(1n)
    net.honest.push(cert!)
    await net.expectRestartMatchesHonest()
    // the expired message and its replacement are not evidence of equivocation (they were never concurrent)
    const ev = checkSlashReport(chain, buildTx(chain, dave.publicKey, 0n, 5n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: m.signed, b: replacement.signed } }).slash!)
    expect('key' in ev).toBe(false)
  })

  it('a store holding two certified messages for one slot reopens', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-adv-two-'))
    dirs.push(dir)
    let l = await Ledger.open({ genesis: chain, path: dir, now: () => 0 })
    // (beyond the trust assumption) two messages of dave for slot 0 are certified; both wait for funds
    const a = sign(chain, dave, 0n, { kind: 'transfer', to: bob.address, amount: NEURO })
    const b = sign(chain, dave, 0n, { kind: 'transfer', to: carol.address, amount: NEURO })
    await l.addCertificates([certify(chain, a)])
    await l.addCertificates([certify(chain, b)])
    await l.addCertificates([certify(chain, sign(chain, alice, 0n, { kind: 'transfer', to: dave.address, amount: 5n * NEURO }))])
    const hash = l.stateHash()
    await l.close()
    l = await Ledger.open({ genesis: chain, path: dir, now: () => 0 })
    expect(l.stateHash()).toBe(hash)
    await l.verifyStored()
    await l.close()
  })

  it('the unbonding period cannot be shortened by the epochs a sender stamps', async () => {
    let clock = 10 * EPOCH + 1
    net = await Net.open(chain, undefined, () => clock)
    await net.finalise(sign(chain, bob, 0n, { kind: 'stake', amount: 50n * NEURO }, 10n))
    // unbond stamped one epoch in the past (inside the window), real time: epoch 10
    await net.finalise(sign(chain, bob, 1n, { kind: 'unbond', amount: 50n * NEURO }, 9n))
    // the earliest real epoch at which validators vote for the withdrawal must be >= 10 + unbondingEpochs
    let withdrawnAt: number | undefined
    for (let e = 11; e <= 20 && withdrawnAt == null; e++) {
      clock = e * EPOCH + 1
      const w = sign(chain, bob, 2n, { kind: 'withdraw' }, BigInt(e + p.epochWindow))
      try {
        await net.finalise(w)
        withdrawnAt = e
      } catch {}
    }
    expect(withdrawnAt).toBeGreaterThanOrEqual(10 + Number(p.unbondingEpochs))
  })

  it('genesis parameters are validated', () => {
    const bad: Array<[string, (g: ReturnType<typeof testGenesis>) => void]> = [
      ['NaN genesis time', g => { g.genesisTimeMs = Number.NaN }],
      ['infinite genesis time', g => { g.genesisTimeMs = Number.POSITIVE_INFINITY }],
      ['negative epoch window', g => { g.params.epochWindow = -1 }],
      ['fractional round window', g => { g.params.roundWindow = 0.5 }],
      ['zero staking unit (division by zero in every reward)', g => { g.params.stakingUnit = 0n }],
      ['zero-denominator reward', g => { g.params.computeRewardPerBatch = { num: 1n, den: 0n } }],
      ['negative reward', g => { g.params.dataRewardPerSample = { num: -1n, den: 1n } }],
      ['multiplier cap below 1', g => { g.params.stakingMultiplierCap = { num: 1n, den: 2n } }],
      ['zero unbonding period', g => { g.params.unbondingEpochs = 0n }],
      ['heartbeat longer than an epoch', g => { g.params.heartbeatSeconds = p.epochMs }],
      ['absurd batch cap', g => { g.params.maxBatchesPerProof = 10_000_000 }]
    ]
    for (const [what, mutate] of bad) {
      const g = testGenesis()
      g.params = { ...g.params }
      mutate(g)
      expect(() => loadChain(g), what).toThrow(expect.objectContaining({ name: 'InvalidGenesisError' }))
    }
    expect(() => createGenesis({ validators: [{ publicKey: toHex(validators[0].publicKey), stake: 1n }] })).not.toThrow()
  })

  it('end to end over the gossip handlers: the sender re-gossips its expired message and the slot completes', async () => {
    let clock = 0
    const nodes: Array<Awaited<ReturnType<typeof startService>>> = []
    for (const w of validators) nodes.push(await startService({ genesis: chain, wallet: w, now: () => clock }))
    try {
      // every publish reaches the other nodes' topic handlers (a fully connected gossip mesh)
      for (const [i, n] of nodes.entries()) {
        n.pubsub.publish = async (_t: string, data: Uint8Array) => {
          for (const [j, o] of nodes.entries()) if (j !== i) await o.svc.handleGossip(data).catch(() => {})
        }
      }
      const m = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO }, 0n)
      // at epoch 0 only validators 0 and 1 saw it (their votes were lost with the sender's connection)
      await nodes[0].svc.ledger.vote(m)
      await nodes[1].svc.ledger.vote(m)
      clock = 5 * EPOCH
      // back online much later, the sender gossips it again
      const data = GossipMessage.encode({ signedTx: Uint8Array.from(m.signed) })
      for (const n of nodes) await n.svc.handleGossip(data).catch(() => {})
      for (const n of nodes) expect(n.svc.ledger.account(alice.address).nextSeq).toBe(1n)
    } finally {
      for (const n of nodes) await n.close()
    }
  })
})
