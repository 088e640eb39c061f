/**
 * Fuzz at the gossip handler: random and mutated ledger-topic messages (bit flips, truncations, extensions,
 * splices of valid messages, votes, certificates and heartbeats) must never be accepted — no state change, no
 * vote or certificate published by the validator, no vote memory, no heartbeat recorded. A valid message is
 * accepted (positive control), so the checks can tell.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NEURO } from '../../src/amount.js'
import { createGenesis, loadChain } from '../../src/genesis.js'
import { createBinding, fromHex, toHex } from '../../src/keys.js'
import { encodeCertificate, signVote } from '../../src/messages.js'
import { GossipMessage } from '../../src/pb/ledger.js'
import { MemoryHeartbeatTracker, PeerBindings } from '../../src/uptime.js'
import { alice, bob, sign, validators } from '../fixtures.js'
import { startService } from './service-harness.js'
import type { FakePubsub } from './service-harness.js'
import type { PonwLedger } from '../../src/service.js'

const chain = loadChain(createGenesis({
  network: 'adv-fuzz',
  genesisTimeMs: 0,
  validators: [{ publicKey: toHex(validators[0].publicKey), stake: 1000n * NEURO }],
  allocations: [{ address: alice.address, balance: 100n * NEURO }]
}))

describe('gossip handler fuzz: junk is never accepted', () => {
  let svc: PonwLedger
  let pubsub: FakePubsub
  let close: () => Promise<void>
  const tracker = new MemoryHeartbeatTracker({ chain })
  const bindings = new PeerBindings()
  const seeds: Uint8Array[] = []
  let peer = ''
  let beats = 0

  beforeAll(async () => {
    ({ svc, pubsub, close } = await startService({ genesis: chain, wallet: validators[0], now: () => 1000, heartbeat: { tracker: { record: (p, t, w) => { beats++; tracker.record(p, t, w) }, heartbeatsSeen: (p, e, w) => tracker.heartbeatsSeen(p, e, w) }, bindings } }))
    const t = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO })
    const other = sign(chain, alice, 0n, { kind: 'stake', amount: NEURO })
    const vote = signVote(chain, validators[0], 0, other.id)
    const key = await generateKeyPair('Ed25519')
    peer = peerIdFromPrivateKey(key).toString()
    const b = await createBinding(alice, key, peer, 1000)
    seeds.push(
      GossipMessage.encode({ signedTx: Uint8Array.from(t.signed) }),
      GossipMessage.encode({ vote: { signedTx: Uint8Array.from(other.signed), vote: { validator: 0, signature: Uint8Array.from(vote.signature) } } }),
      GossipMessage.encode({ certificate: { signedTx: Uint8Array.from(other.signed), votes: [{ validator: 0, signature: Uint8Array.from(vote.signature) }] } }),
      GossipMessage.encode({ heartbeat: { peerId: peer, walletPublicKey: fromHex(b.walletPublicKey), issuedAtMs: BigInt(b.issuedAtMs), walletSignature: fromHex(b.walletSignature), peerSignature: fromHex(b.peerSignature) } })
    )
    expect(encodeCertificate).toBeDefined()
  })

  afterAll(async () => { await close() })

  it('random and mutated messages change nothing and make the validator publish nothing', async () => {
    const hash = svc.ledger.stateHash()
    const published = pubsub.published.length
    const mutated = fc.tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat({ max: 3 }), fc.uint8Array({ maxLength: 16 }))
      .map(([i, flips, mode, extra]) => {
        const b = Uint8Array.from(seeds[i])
        for (const [pos, x] of flips) b[pos % b.length] ^= x
        if (mode === 1) return b.subarray(0, flips[0][0] % b.length)
        if (mode === 2) return Uint8Array.from([...b, ...extra])
        if (mode === 3) return Uint8Array.from([...seeds[(i + 1) % seeds.length].subarray(0, 8), ...b.subarray(8)])
        return b
      })
      // flips that cancel out give back a valid message: that is not junk
      .filter(b => !seeds.some(x => Buffer.from(x).equals(Buffer.from(b.subarray(0, x.length)))))
    await fc.assert(fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated), async data => {
      // heartbeats are only counted from the peer they name: deliver junk as if that peer sent it
      await svc.handleGossip(data, peer).catch(() => {})
      expect(svc.ledger.stateHash()).toBe(hash)
      expect(svc.ledger.state.known.size).toBe(0)
      expect(pubsub.published.length).toBe(published)
      expect(svc.ledger.voteMemoryBytes).toBe(0)
      expect(beats).toBe(0)
    }), { numRuns: 400, seed: 13 })
    // positive control: the unmutated messages are accepted (a vote is published, the transfer becomes final,
    // the heartbeat is counted)
    await svc.handleGossip(seeds[3], peer)
    expect(beats).toBe(1)
    await svc.handleGossip(seeds[0], peer)
    expect(pubsub.published.length).toBeGreaterThan(published)
    expect(svc.ledger.account(alice.address).nextSeq).toBe(1n)
  })
})
