import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { LEDGER_TOPIC } from '../src/constants.js'
import { createGenesis, loadChain } from '../src/genesis.js'
import { createBinding, toHex } from '../src/keys.js'
import { ponwLedger } from '../src/service.js'
import { HeartbeatUptimeVerifier, MemoryHeartbeatTracker, PeerBindings } from '../src/uptime.js'
import { ProofVerifier } from '../src/verify.js'
import { bob, carol, sign, validators } from './fixtures.js'
import { waitFor, waitForSubscribers } from './net-helpers.js'
import type { TestNode } from './net-helpers.js'
import type { PonwLedgerInit } from '../src/service.js'
import type { PrivateKey } from '@libp2p/interface'

async function node (privateKey: PrivateKey, init: PonwLedgerInit): Promise<TestNode> {
  const libp2p = await createLibp2p({
    privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false }), ledger: ponwLedger(init) }
  })
  return { libp2p: libp2p as any, ledger: (libp2p.services as any).ledger, partition: { on: false } }
}

describe('heartbeats on the ledger topic attest uptime (2 real libp2p hosts)', () => {
  const nodes: TestNode[] = []
  const dirs: string[] = []

  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map(async n => n.libp2p.stop()))
    await Promise.allSettled(dirs.splice(0).map(async d => rm(d, { recursive: true, force: true })))
  })

  it('a validator votes for uptime up to the heartbeats it received from the wallet\'s bound peer', { timeout: 30_000 }, async () => {
    const chain = loadChain(createGenesis({
      network: 'heartbeat-test',
      genesisTimeMs: Date.now() - 1000,
      validators: [{ publicKey: toHex(validators[0].publicKey), stake: 1000n * NEURO }],
      params: { ...createGenesis({ validators: [{ publicKey: toHex(validators[0].publicKey), stake: 1n }] }).params, heartbeatSeconds: 1 }
    }))
    const tracker = new MemoryHeartbeatTracker({ chain })
    const bindings = new PeerBindings()
    const verifier = new ProofVerifier({ uptime: new HeartbeatUptimeVerifier({ tracker, peerOf: a => bindings.peerOf(a) }) })
    for (let i = 0; i < 2; i++) dirs.push(await mkdtemp(join(tmpdir(), 'ponw-hb-')))
    const vKey = await generateKeyPair('Ed25519')
    const pKey = await generateKeyPair('Ed25519')
    const proverPeer = peerIdFromPrivateKey(pKey).toString()
    const binding = await createBinding(bob, pKey, proverPeer)
    const v = await node(vKey, { genesis: chain, path: dirs[0], wallet: validators[0], verifier, heartbeat: { tracker, bindings } })
    nodes.push(v)
    const p = await node(pKey, { genesis: chain, path: dirs[1], wallet: bob, heartbeat: { binding, intervalMs: 200 } })
    nodes.push(p)
    await p.libp2p.dial(v.libp2p.getMultiaddrs()[0])
    await waitForSubscribers(nodes, LEDGER_TOPIC)
    const epoch = v.ledger.ledger.currentEpoch()
    await waitFor(() => tracker.heartbeatsSeen(proverPeer, epoch) >= 2, [v.ledger], ['ponw-ledger:heartbeat'], 20_000, 'two heartbeat slots from the prover')
    expect(bindings.peerOf(bob.address)).toBe(proverPeer)
    const seen = tracker.heartbeatsSeen(proverPeer, epoch)
    // more than was seen: refused; a wallet with no bound peer: refused
    await expect(v.ledger.ledger.vote(sign(chain, bob, 0n, { kind: 'uptime', epoch, heartbeats: seen + 5 }, epoch))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    await expect(v.ledger.ledger.vote(sign(chain, carol, 0n, { kind: 'uptime', epoch, heartbeats: 1 }, epoch))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    // what was seen: final, on both nodes
    const tx = await p.ledger.send({ kind: 'uptime', epoch, heartbeats: 2 })
    await waitFor(() => nodes.every(n => n.ledger.ledger.state.outcomes.get(tx.idHex)?.status === 'applied'), nodes.map(n => n.ledger), ['ponw-ledger:outcome'], 20_000, 'the uptime proof to be final')
    // 2 heartbeats of 1 s at 0.1 NEURO/min, no stake
    expect(v.ledger.ledger.balance(bob.address)).toBe(NEURO / 300n)
  })
})
