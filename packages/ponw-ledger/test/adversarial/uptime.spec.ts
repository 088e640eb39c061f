/**
 * Attack class (b): uptime per wallet instead of per machine. Before the fix one libp2p peer bound several
 * wallets (each binding signed by the same peer key) and its single heartbeat stream attested all of them.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { Wallet, createBinding } from '../../src/keys.js'
import { HeartbeatUptimeVerifier, MemoryHeartbeatTracker, PeerBindings } from '../../src/uptime.js'
import { ProofVerifier } from '../../src/verify.js'
import { sign, testChain } from '../fixtures.js'
import { Net } from './helpers.js'

const chain = testChain()
const p = chain.genesis.params
const HB = p.heartbeatSeconds * 1000
const EPOCH = 2n
const start = Number(EPOCH) * p.epochMs
const now = (): number => start + 30 * HB

describe('adversarial (b): one machine earns uptime for one wallet', () => {
  let net: Net | undefined
  afterEach(async () => { await net?.close(); net = undefined })

  it('one peer\'s heartbeat stream binding several wallets attests at most its heartbeats once', async () => {
    const tracker = new MemoryHeartbeatTracker({ chain })
    const bindings = new PeerBindings()
    const verifier = new ProofVerifier({ uptime: new HeartbeatUptimeVerifier({ tracker, peerOf: a => bindings.peerOf(a) }) })
    net = await Net.open(chain, verifier, now)
    const key = await generateKeyPair('Ed25519')
    const peer = peerIdFromPrivateKey(key).toString()
    const wallets = [Wallet.generate(), Wallet.generate(), Wallet.generate()]
    const slots = 20
    // every slot the peer gossips one heartbeat per wallet (what the service's heartbeat handler records)
    for (let i = 0; i < slots; i++) {
      for (const [j, w] of wallets.entries()) {
        const b = await createBinding(w, key, peer, 1000 + j)
        const addr = await bindings.add(b)
        tracker.record(peer, start + i * HB, bindings.walletOf(peer) ?? addr)
      }
    }
    let attested = 0
    for (const w of wallets) {
      try {
        await net.vals[0].vote(sign(chain, w, 0n, { kind: 'uptime', epoch: EPOCH, heartbeats: slots }, EPOCH))
        attested += slots
      } catch (err: any) {
        expect(err.name).toBe('UptimeNotAttestedError')
      }
    }
    // one machine's 20 heartbeat slots are worth at most 20 heartbeats of uptime in total, not 60
    expect(attested).toBeLessThanOrEqual(slots)
    // the peer is bound to its newest wallet; the older ones are unbound and attest nothing
    expect(bindings.peerOf(wallets[2].address)).toBe(peer)
    expect(bindings.peerOf(wallets[0].address)).toBeUndefined()
    expect(bindings.peerOf(wallets[1].address)).toBeUndefined()
    // slot 0 was counted for the first wallet (bound when it was seen); the other 19 for the newest one
    await net.finalise(sign(chain, wallets[2], 0n, { kind: 'uptime', epoch: EPOCH, heartbeats: slots - 1 }, EPOCH))
    await expect(net.vals[0].vote(sign(chain, wallets[0], 0n, { kind: 'uptime', epoch: EPOCH, heartbeats: 1 }, EPOCH))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    await net.expectRestartMatchesHonest()
  })

  it('rebinding a peer to another wallet mid-epoch does not count a slot twice', async () => {
    const tracker = new MemoryHeartbeatTracker({ chain })
    const bindings = new PeerBindings()
    const v = new HeartbeatUptimeVerifier({ tracker, peerOf: a => bindings.peerOf(a) })
    const key = await generateKeyPair('Ed25519')
    const peer = peerIdFromPrivateKey(key).toString()
    const [a, b] = [Wallet.generate(), Wallet.generate()]
    await bindings.add(await createBinding(a, key, peer, 1))
    for (let i = 0; i < 10; i++) tracker.record(peer, start + i * HB, bindings.walletOf(peer)!)
    await v.verifyUptime({ proofId: '00', sender: a.address, epoch: EPOCH, heartbeats: 10 })
    await bindings.add(await createBinding(b, key, peer, 2))
    // the same slots again under the new binding: already attributed to a
    for (let i = 0; i < 10; i++) tracker.record(peer, start + i * HB, bindings.walletOf(peer)!)
    await expect(v.verifyUptime({ proofId: '01', sender: b.address, epoch: EPOCH, heartbeats: 1 })).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    for (let i = 10; i < 15; i++) tracker.record(peer, start + i * HB, bindings.walletOf(peer)!)
    await v.verifyUptime({ proofId: '02', sender: b.address, epoch: EPOCH, heartbeats: 5 })
    await expect(v.verifyUptime({ proofId: '03', sender: b.address, epoch: EPOCH, heartbeats: 6 })).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
  })
})
