/**
 * Attack class (d), checkpoints: deriving a proposed checkpoint replays the messages since the base, so a
 * faulty validator gossiping validly signed votes for bogus proposals could make every validator replay at
 * will. A validator derives only proposals its designated proposer (this epoch or the last) voted for, at
 * most 4 per proposer and epoch.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { NEURO } from '../../src/amount.js'
import { signCheckpoint, snapshotHash } from '../../src/checkpoint.js'
import { fromHex } from '../../src/keys.js'
import { Ledger } from '../../src/ledger.js'
import { GossipMessage } from '../../src/pb/ledger.js'
import { designatedReporter } from '../../src/state.js'
import { alice, bob, certify, sign, testChain, validators } from '../fixtures.js'
import { startService } from './service-harness.js'
import type { CheckpointProposal } from '../../src/checkpoint.js'
import type { VoteSigData } from '../../src/messages.js'

const chain = testChain()
const designated = designatedReporter(chain, 'checkpoint/0', 0n)
const certs = Array.from({ length: 12 }, (_, i) => certify(chain, sign(chain, i % 2 === 0 ? alice : bob, BigInt(i >> 1), { kind: 'transfer', to: (i % 2 === 0 ? bob : alice).address, amount: NEURO })))

function gossip (p: CheckpointProposal, v: VoteSigData): Uint8Array {
  return GossipMessage.encode({ checkpointVote: { height: p.height, snapshotHash: Uint8Array.from(p.snapshotHash), baseHeight: p.baseHeight, baseHash: Uint8Array.from(p.baseHash), frontier: p.frontier.map(e => ({ address: fromHex(e.address), nextSequence: e.nextSeq })), vote: { validator: v.validator, signature: Uint8Array.from(v.signature) } } })
}

describe('adversarial (d): checkpoint proposals cannot make validators replay at will', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => { for (const c of cleanup.splice(0)) await c() })

  async function honest (index: number): Promise<{ handle: (d: Uint8Array) => Promise<void>, derivations: () => number, published: () => number, restartHash: () => Promise<string> }> {
    const { svc, pubsub, close } = await startService({ genesis: chain, wallet: validators[index], now: () => 0, checkpoint: { interval: 0 } })
    cleanup.push(close)
    await svc.ledger.addCertificates(certs)
    let n = 0
    const orig = svc.ledger.signCheckpoint.bind(svc.ledger)
    svc.ledger.signCheckpoint = async (p: CheckpointProposal) => { n++; return orig(p) }
    const restartHash = async (): Promise<string> => {
      const location = svc.ledger.store.db.location
      await svc.stop()
      const l = await Ledger.open({ genesis: chain, path: location, now: () => 0 })
      const h = l.stateHash()
      await l.close()
      await svc.start()
      return h
    }
    return { handle: async d => svc.handleGossip(d).catch(() => {}), derivations: () => n, published: () => pubsub.published.length, restartHash }
  }

  let neverAttacked = ''
  async function realProposal (): Promise<CheckpointProposal> {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-adv-ck-'))
    const l = await Ledger.open({ genesis: chain, path: dir, now: () => 0 })
    cleanup.push(async () => { await l.close(); await rm(dir, { recursive: true, force: true }) })
    await l.addCertificates(certs)
    neverAttacked = l.stateHash()
    return l.proposeCheckpoint()!
  }

  it('votes of a validator that is not the designated proposer for bogus proposals cost no derivation; the designated one gets at most 4 per epoch; an honest proposal is derived and signed', async () => {
    const real = await realProposal()
    const bogus = (k: number): CheckpointProposal => ({ ...real, snapshotHash: snapshotHash(new TextEncoder().encode(`bogus-${k}`)) })
    const faulty = (designated + 1) % 4
    const h = await honest((designated + 2) % 4)
    for (let k = 0; k < 20; k++) {
      const p = bogus(k)
      await h.handle(gossip(p, signCheckpoint(chain, validators[faulty], faulty, p.height, p.snapshotHash)))
    }
    expect(h.derivations()).toBe(0)
    // the designated proposer itself, faulty: bounded
    for (let k = 20; k < 40; k++) {
      const p = bogus(k)
      await h.handle(gossip(p, signCheckpoint(chain, validators[designated], designated, p.height, p.snapshotHash)))
    }
    expect(h.derivations()).toBeLessThanOrEqual(4)
    expect(h.published()).toBe(0) // it signed none of them
    // restarted, it holds the state of a node that never saw the attack
    expect(await h.restartHash()).toBe(neverAttacked)
    // positive control: the designated proposer's real proposal is derived and signed (the budget is per
    // proposer and epoch, so a fresh validator node shows it)
    const h2 = await honest((designated + 3) % 4)
    await h2.handle(gossip(real, signCheckpoint(chain, validators[designated], designated, real.height, real.snapshotHash)))
    expect(h2.derivations()).toBe(1)
    expect(h2.published()).toBe(1)
  })

  it('a validator voting for many bogus checkpoints cannot evict the honest votes of a real one (vote storage partitioned per validator)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-adv-ck-'))
    const l = await Ledger.open({ genesis: chain, path: dir, now: () => 0 })
    cleanup.push(async () => { await l.close(); await rm(dir, { recursive: true, force: true }) })
    await l.addCertificates(certs)
    const real = l.proposeCheckpoint()!
    const [a, b, faulty, d] = [0, 1, 2, 3]
    for (const i of [a, b]) {
      await l.addCheckpointVote(real, signCheckpoint(chain, validators[i], i, real.height, real.snapshotHash))
    }
    for (let k = 0; k < 20; k++) {
      const p = { ...real, snapshotHash: snapshotHash(new TextEncoder().encode(`junk-${k}`)) }
      await l.addCheckpointVote(p, signCheckpoint(chain, validators[faulty], faulty, p.height, p.snapshotHash))
    }
    expect(l.checkpointVoters(real.height, real.snapshotHash).sort()).toEqual([a, b])
    const cert = await l.addCheckpointVote(real, signCheckpoint(chain, validators[d], d, real.height, real.snapshotHash))
    expect(cert?.votes.map(v => v.validator)).toEqual([a, b, d])
    expect(l.checkpoint?.height).toBe(real.height)
  })
})
