import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Wallet, createBinding } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { HeartbeatUptimeVerifier, MemoryHeartbeatTracker, PeerBindings } from '../src/uptime.js'
import { ProofVerifier } from '../src/verify.js'
import { alice, bob, sign, testChain, validators } from './fixtures.js'
import type { UptimeClaim } from '../src/verify.js'

const chain = testChain()
const p = chain.genesis.params
const HB = p.heartbeatSeconds * 1000
const EPOCH = 2n
const NOW = Number(EPOCH) * p.epochMs + 30 * HB

function claim (sender: string, heartbeats: number, epoch = EPOCH): UptimeClaim {
  return { proofId: '00', sender, epoch, heartbeats }
}

describe('uptime attestation by heartbeats', () => {
  it('the tracker counts distinct heartbeat slots per peer and epoch, within a memory bound', () => {
    const t = new MemoryHeartbeatTracker({ chain, maxPeers: 2 })
    const start = Number(EPOCH) * p.epochMs
    for (let i = 0; i < 10; i++) {
      t.record('peer-a', start + i * HB, 'w')
      t.record('peer-a', start + i * HB + 1, 'w') // a second beat in the same slot counts once
    }
    t.record('peer-a', start - 1, 'w') // previous epoch
    expect(t.heartbeatsSeen('peer-a', EPOCH, 'w')).toBe(10)
    expect(t.heartbeatsSeen('peer-a', EPOCH - 1n, 'w')).toBe(1)
    expect(t.heartbeatsSeen('peer-b', EPOCH, 'w')).toBe(0)
    t.record('peer-b', start, 'w')
    t.record('peer-c', start, 'w') // over the cap: the least recently seen peer is forgotten
    expect(t.heartbeatsSeen('peer-a', EPOCH, 'w')).toBe(0)
    expect(t.heartbeatsSeen('peer-c', EPOCH, 'w')).toBe(1)
  })

  it('a claim counts only up to the heartbeats seen from the wallet\'s bound peer; unbound or silent wallets are refused', async () => {
    const tracker = new MemoryHeartbeatTracker({ chain })
    const bindings = new PeerBindings()
    const v = new HeartbeatUptimeVerifier({ tracker, peerOf: a => bindings.peerOf(a) })
    const key = await generateKeyPair('Ed25519')
    const peer = peerIdFromPrivateKey(key).toString()
    expect(await bindings.add(await createBinding(alice, key, peer))).toBe(alice.address)
    // bound, but no heartbeat seen
    await expect(v.verifyUptime(claim(alice.address, 1))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    for (let i = 0; i < 12; i++) tracker.record(peer, Number(EPOCH) * p.epochMs + i * HB, alice.address)
    await v.verifyUptime(claim(alice.address, 12))
    await expect(v.verifyUptime(claim(alice.address, 13))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    // the heartbeats were in this epoch, not the one before
    await expect(v.verifyUptime(claim(alice.address, 1, EPOCH - 1n))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    // Sybil: fresh wallets with no bound peer (or bound to a silent one) get nothing
    for (let i = 0; i < 5; i++) {
      await expect(v.verifyUptime(claim(Wallet.generate().address, 1))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    }
    // a binding whose signatures do not verify is not accepted
    const forged = { ...(await createBinding(bob, key, peer)), walletPublicKey: Buffer.from(alice.publicKey).toString('hex') }
    await expect(bindings.add(forged)).rejects.toHaveProperty('name', 'InvalidSignatureError')
    expect(bindings.peerOf(bob.address)).toBeUndefined()
  })

  describe('validators', () => {
    let dirs: string[] = []
    let vals: Ledger[] = []
    const tracker = new MemoryHeartbeatTracker({ chain })
    const bindings = new PeerBindings()
    let peer = ''

    beforeEach(async () => {
      const key = await generateKeyPair('Ed25519')
      peer = peerIdFromPrivateKey(key).toString()
      await bindings.add(await createBinding(bob, key, peer))
      for (let i = 0; i < 20; i++) tracker.record(peer, Number(EPOCH) * p.epochMs + i * HB, bob.address)
      const verifier = new ProofVerifier({ uptime: new HeartbeatUptimeVerifier({ tracker, peerOf: a => bindings.peerOf(a) }) })
      for (const w of validators) {
        const dir = await mkdtemp(join(tmpdir(), 'ponw-uptime-'))
        dirs.push(dir)
        vals.push(await Ledger.open({ genesis: chain, path: dir, wallet: w, verifier, now: () => NOW }))
      }
    })

    afterEach(async () => {
      await Promise.allSettled(vals.map(async l => l.close()))
      await Promise.allSettled(dirs.map(async d => rm(d, { recursive: true, force: true })))
      dirs = []
      vals = []
    })

    it('vote for an attested uptime claim once per (address, epoch) and refuse unattested ones', async () => {
      await expect(vals[0].vote(sign(chain, alice, 0n, { kind: 'uptime', epoch: EPOCH, heartbeats: 1 }, EPOCH))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
      await expect(vals[0].vote(sign(chain, bob, 0n, { kind: 'uptime', epoch: EPOCH, heartbeats: 21 }, EPOCH))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
      const tx = sign(chain, bob, 0n, { kind: 'uptime', epoch: EPOCH, heartbeats: 20 }, EPOCH)
      const votes = []
      for (const l of vals.slice(0, 3)) votes.push(await l.vote(tx))
      for (const l of vals) for (const v of votes) await l.addVote(tx, v)
      // 20 min → 2 NEURO
      expect(vals[3].state.totals.minted).toBe(2n * 10n ** 18n)
      await expect(vals[0].vote(sign(chain, bob, 1n, { kind: 'uptime', epoch: EPOCH, heartbeats: 1 }, EPOCH))).rejects.toHaveProperty('name', 'ReplayError')
    })
  })
})
