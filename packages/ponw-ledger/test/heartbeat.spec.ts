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
import { createBinding, fromHex, toHex } from '../src/keys.js'
import { GossipMessage } from '../src/pb/ledger.js'
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
    // counts every record() call per peer (the memory tracker counts slots, which would hide a second beat)
    const records = new Map<string, number>()
    const counting = {
      record: (peer: string, at: number, wallet: string) => { records.set(peer, (records.get(peer) ?? 0) + 1); tracker.record(peer, at, wallet) },
      heartbeatsSeen: (peer: string, e: bigint, wallet: string) => tracker.heartbeatsSeen(peer, e, wallet)
    }
    const bindings = new PeerBindings()
    const verifier = new ProofVerifier({ uptime: new HeartbeatUptimeVerifier({ tracker, peerOf: a => bindings.peerOf(a) }) })
    for (let i = 0; i < 2; i++) dirs.push(await mkdtemp(join(tmpdir(), 'ponw-hb-')))
    const vKey = await generateKeyPair('Ed25519')
    const pKey = await generateKeyPair('Ed25519')
    const proverPeer = peerIdFromPrivateKey(pKey).toString()
    const binding = await createBinding(bob, pKey, proverPeer)
    const v = await node(vKey, { genesis: chain, path: dirs[0], wallet: validators[0], verifier, heartbeat: { tracker: counting, bindings } })
    nodes.push(v)
    const p = await node(pKey, { genesis: chain, path: dirs[1], wallet: bob, heartbeat: { binding, intervalMs: 200 } })
    nodes.push(p)
    await p.libp2p.dial(v.libp2p.getMultiaddrs()[0])
    await waitForSubscribers(nodes, LEDGER_TOPIC)
    const epoch = v.ledger.ledger.currentEpoch()
    await waitFor(() => tracker.heartbeatsSeen(proverPeer, epoch, bob.address) >= 2, [v.ledger], ['ponw-ledger:heartbeat'], 20_000, 'two heartbeat slots from the prover')
    expect(bindings.peerOf(bob.address)).toBe(proverPeer)
    const seen = tracker.heartbeatsSeen(proverPeer, epoch, bob.address)
    // more than was seen: refused; a wallet with no bound peer: refused
    await expect(v.ledger.ledger.vote(sign(chain, bob, 0n, { kind: 'uptime', epoch, heartbeats: seen + 5 }, epoch))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    await expect(v.ledger.ledger.vote(sign(chain, carol, 0n, { kind: 'uptime', epoch, heartbeats: 1 }, epoch))).rejects.toHaveProperty('name', 'UptimeNotAttestedError')
    // what was seen: final, on both nodes
    const tx = await p.ledger.send({ kind: 'uptime', epoch, heartbeats: 2 })
    await waitFor(() => nodes.every(n => n.ledger.ledger.state.outcomes.get(tx.idHex)?.status === 'applied'), nodes.map(n => n.ledger), ['ponw-ledger:outcome'], 20_000, 'the uptime proof to be final')
    // 2 heartbeats of 1 s at 0.1 NEURO/min, no stake
    expect(v.ledger.ledger.balance(bob.address)).toBe(NEURO / 300n)

    // a heartbeat relayed (or forged) by a peer other than the one its binding names is not counted
    const xKey = await generateKeyPair('Ed25519')
    const x = peerIdFromPrivateKey(xKey)
    const carolBinding = await createBinding(carol, xKey, x.toString())
    const data = GossipMessage.encode({ heartbeat: { peerId: x.toString(), walletPublicKey: fromHex(carolBinding.walletPublicKey), issuedAtMs: BigInt(carolBinding.issuedAtMs), walletSignature: fromHex(carolBinding.walletSignature), peerSignature: fromHex(carolBinding.peerSignature) } })
    const pubsub = v.libp2p.services.pubsub as EventTarget
    const events: string[] = []
    const twoDone = new Promise<void>(resolve => {
      v.ledger.addEventListener('ponw-ledger:heartbeat', e => { if (e.detail.peer === x.toString()) { events.push(e.detail.peer) } })
      // the control below is recorded after the relayed copy was handled (same handler, dispatched first)
      v.ledger.addEventListener('ponw-ledger:heartbeat', e => { if (e.detail.peer === x.toString()) setImmediate(resolve) })
    })
    pubsub.dispatchEvent(new CustomEvent('message', { detail: { topic: LEDGER_TOPIC, data, type: 'signed', from: p.libp2p.peerId } }))
    // the same heartbeat from its own peer is counted (positive control)
    pubsub.dispatchEvent(new CustomEvent('message', { detail: { topic: LEDGER_TOPIC, data, type: 'signed', from: x } }))
    await twoDone
    expect(records.get(x.toString())).toBe(1)
    expect(events).toHaveLength(1)
    expect(tracker.heartbeatsSeen(x.toString(), epoch, carol.address)).toBe(1)
    expect(bindings.peerOf(carol.address)).toBe(x.toString())
  })
})
