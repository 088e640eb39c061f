/**
 * Attack class (d): free denial of service. Before the fix messages from unfunded keys filled the pending
 * queue for good, proof re-execution ran under the ledger's single lock (junk proofs delayed every
 * certificate), and one faulty validator voting for junk evicted honest votes from the vote maps.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { NEURO } from '../../src/amount.js'
import { createGenesis, loadChain } from '../../src/genesis.js'
import { Wallet, toHex } from '../../src/keys.js'
import { Ledger } from '../../src/ledger.js'
import { parseCertificate, signVote } from '../../src/messages.js'
import { ProofVerifier } from '../../src/verify.js'
import { assignShards } from '../../src/shards.js'
import { alice, bob, certify, sign, testChain, validators } from '../fixtures.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { pbStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { SYNC_PROTOCOL } from '../../src/constants.js'
import { SyncRequest, SyncResponse } from '../../src/pb/ledger.js'
import { createTestNode, waitFor } from '../net-helpers.js'
import { Net } from './helpers.js'
import { startService } from './service-harness.js'
import type { TxBody } from '../../src/messages.js'

describe('adversarial (d): every identity that costs validators pays or is rate-limited', () => {
  let net: Net | undefined
  let closers: Array<() => Promise<void>> = []
  afterEach(async () => {
    await net?.close()
    net = undefined
    for (const c of closers.reverse()) await c().catch(() => {})
    closers = []
  })

  it('unfunded keys cannot fill the pending queue: a funded sender\'s waiting message still gets its vote', async () => {
    const chain = loadChain(createGenesis({
      network: 'adv-pending',
      genesisTimeMs: 0,
      validators: [{ publicKey: toHex(validators[0].publicKey), stake: 1000n * NEURO }],
      allocations: [{ address: alice.address, balance: 100n * NEURO }]
    }))
    const { svc, close } = await startService({ genesis: chain, wallet: validators[0], now: () => 1000, maxPending: 50 })
    closers.push(close)
    // 200 fresh unfunded keys send their "second" message: it waits for a first one that never comes
    for (let i = 0; i < 200; i++) {
      await svc.submit(sign(chain, Wallet.generate(), 1n, { kind: 'transfer', to: bob.address, amount: 1n }))
    }
    // alice's sequence 1 arrives before her sequence 0
    const second = sign(chain, alice, 1n, { kind: 'transfer', to: bob.address, amount: NEURO })
    await svc.submit(second)
    await svc.submit(sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: NEURO }))
    await waitFor(() => svc.ledger.account(alice.address).nextSeq === 2n, [svc], ['ponw-ledger:outcome'], 30_000, 'alice\'s waiting message to be voted and final')
  })

  it('proof re-execution runs outside the ledger lock: a slow junk proof does not delay certificates', async () => {
    const chain = testChain()
    const ROUND = 3n
    const now = (): number => Number(ROUND) * chain.genesis.params.roundMs + 1000
    let release!: () => void
    const slow = new Promise<void>(resolve => { release = resolve })
    const verifier = new ProofVerifier({
      training: { verifyTraining: async () => { await slow; throw new Error('junk') } },
      aggregation: { acceptedPseudoGradient: async () => true }
    } as any)
    net = await Net.open(chain, verifier, now, 1)
    const junk = Wallet.generate()
    const body: TxBody = { kind: 'training', round: ROUND, modelHash: new Uint8Array(32).fill(1), shardIds: assignShards(chain, junk.address, ROUND), tokens: 1n, batches: 1n, lossBeforeMicro: 5n, lossAfterMicro: 5n, pseudoGradientHash: new Uint8Array(32).fill(2), batchLossMicro: [5n] }
    const voting = net.vals[0].vote(sign(chain, junk, 0n, body)).catch(err => err)
    const t = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 1n })
    const started = Date.now()
    const applied = net.vals[0].addCertificates([certify(chain, t)])
    // a certificate blocked behind the vote would wait for release() below: any bound tells the two apart
    const first = await Promise.race([applied.then(() => 'certificate'), new Promise(resolve => setTimeout(() => resolve('timeout'), 20_000))])
    release()
    await applied
    await voting
    expect(first).toBe('certificate')
    expect(Date.now() - started).toBeLessThan(20_000)
    net.honest.push(parseCertificate(chain, certify(chain, t)))
    await net.expectRestartMatchesHonest()
  })

  it('a faulty validator voting for junk cannot evict honest votes', async () => {
    const chain = testChain()
    const dir = await mkdtemp(join(tmpdir(), 'ponw-adv-votes-'))
    const l = await Ledger.open({ genesis: chain, path: dir, now: () => 1000, maxVoteMemoryBytes: 64 * 1024 })
    closers.push(async () => { await l.close(); await rm(dir, { recursive: true, force: true }) })
    const honest = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 1n })
    expect(await l.addVote(honest, signVote(chain, validators[0], 0, honest.id))).toBeUndefined()
    // validator 3 votes for 800 junk messages (~160 KB: more than the vote maps hold)
    const junkKey = Wallet.generate()
    for (let i = 0; i < 800; i++) {
      const t = sign(chain, junkKey, BigInt(i), { kind: 'stake', amount: 1n })
      await l.addVote(t, signVote(chain, validators[3], 3, t.id))
    }
    expect(l.voteMemoryBytes).toBeLessThanOrEqual(2 * 64 * 1024)
    await l.addVote(honest, signVote(chain, validators[1], 1, honest.id))
    const cert = await l.addVote(honest, signVote(chain, validators[2], 2, honest.id))
    expect(cert).toBeDefined()
    expect(l.account(alice.address).nextSeq).toBe(1n)
    // restart: the same state as a node that only got the honest certificate
    const hash = l.stateHash()
    await l.close()
    const again = await Ledger.open({ genesis: chain, path: dir, now: () => 1000 })
    expect(again.stateHash()).toBe(hash)
    await again.close()
    const fdir = await mkdtemp(join(tmpdir(), 'ponw-adv-fresh-'))
    const fresh = await Ledger.open({ genesis: chain, path: fdir, now: () => 1000 })
    await fresh.addCertificates([cert!.bytes])
    expect(fresh.stateHash()).toBe(hash)
    await fresh.close()
    await rm(fdir, { recursive: true, force: true })
  })

  it('a sync peer that stops adding anything cannot keep a node paging', async () => {
    const chain = testChain()
    const t = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 1n })
    const cert = certify(chain, t)
    const dir = await mkdtemp(join(tmpdir(), 'ponw-adv-sync-'))
    const node = await createTestNode({ genesis: chain, path: dir, syncOnConnect: false })
    closers.push(async () => { await node.libp2p.stop(); await rm(dir, { recursive: true, force: true }) })
    await node.libp2p.start()
    await node.ledger.ledger.addCertificates([cert])
    // a peer that answers every request with the same (known) certificate and "not done", forever
    const evil = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    closers.push(async () => { await evil.stop() })
    let pages = 0
    await evil.handle(SYNC_PROTOCOL, async (stream: any) => {
      const pb = pbStream(stream)
      try {
        while (true) {
          const req = await pb.read(SyncRequest)
          pages++
          await pb.write({ certificates: [Uint8Array.from(cert)], next: req.from + 1n, done: false }, SyncResponse)
        }
      } catch {}
    })
    await node.libp2p.dial(evil.getMultiaddrs()[0])
    const result = await Promise.race([
      node.ledger.syncWith(evil.peerId).then(n => `ended:${n}`, (err: Error) => `ended:${err.name}`),
      new Promise(resolve => setTimeout(() => resolve('still paging'), 5_000))
    ])
    expect(result).toMatch(/^ended/)
    expect(pages).toBeLessThan(10)
  })

  it('proof checks from keys with no stake are rate-limited; staked provers are not', async () => {
    const chain = testChain()
    const ROUND = 3n
    const now = (): number => Number(ROUND) * chain.genesis.params.roundMs + 1000
    let checks = 0
    const verifier = new ProofVerifier({
      // an expensive attestation that refuses everything (junk)
      uptime: { verifyUptime: async () => { checks++; throw Object.assign(new Error('junk'), { name: 'UptimeNotAttestedError' }) } }
    })
    net = await Net.open(chain, verifier, now)
    const refusals = new Map<string, number>()
    for (let i = 0; i < 200; i++) {
      const err = await net.vals[0].vote(sign(chain, Wallet.generate(), 0n, { kind: 'uptime', epoch: 0n, heartbeats: 1 })).catch((e: Error) => e)
      refusals.set((err as Error).name, (refusals.get((err as Error).name) ?? 0) + 1)
    }
    // 200 fresh keys cost at most the unstaked budget of attestation work
    expect(checks).toBeLessThanOrEqual(50)
    expect(refusals.get('RateLimitedError')).toBeGreaterThanOrEqual(150)
    // a staked prover still gets its proof checked
    await net.finalise(sign(chain, alice, 0n, { kind: 'stake', amount: 10n * NEURO }))
    const before = checks
    await expect(net.vals[0].vote(sign(chain, alice, 1n, { kind: 'uptime', epoch: 0n, heartbeats: 1 }))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    expect(checks).toBe(before + 1)
    await net.expectRestartMatchesHonest()
  })
})
