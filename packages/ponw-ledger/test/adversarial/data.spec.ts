/**
 * Attack class (a): data proofs minted from nothing. Before the fix a fresh key with no stake and no data
 * claimed its assigned shards every round using only the public manifest (hash and size).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { ponwLedger } from '../../src/service.js'
import { PeerBindings } from '../../src/uptime.js'
import type { PonwLedgerInit } from '../../src/service.js'
import { loadChain } from '../../src/genesis.js'
import { Wallet, createBinding, digest, toHex } from '../../src/keys.js'
import { signTx } from '../../src/messages.js'
import { assignShards } from '../../src/shards.js'
import { ProofVerifier, ShardManifestVerifier, shardManifestHash } from '../../src/verify.js'
import { dataMerkleRoot, dataMerkleProof } from '../../src/data-challenge.js'
import { testGenesis, validators } from '../fixtures.js'
import { Net } from './helpers.js'
import type { DataChallenge, DataShard } from '../../src/verify.js'
import type { TxBody } from '../../src/messages.js'

const TOTAL = 16
const SAMPLES = 40
/** the real shard contents: SAMPLES samples per shard */
const contents = Array.from({ length: TOTAL }, (_, s) => Array.from({ length: SAMPLES }, (_, i) => digest('adv-sample', new Uint8Array([s, i]))))
const roots = (): DataShard[] => contents.map(leaves => ({ hash: dataMerkleRoot(leaves), samples: BigInt(leaves.length) }))
const ROUND = 5n

function chainFor (shards: DataShard[]): ReturnType<typeof loadChain> {
  const g = testGenesis({ dataManifestHash: toHex(shardManifestHash(shards)) })
  g.params = { ...g.params, totalShards: TOTAL }
  return loadChain(g)
}

function claim (chain: ReturnType<typeof loadChain>, w: Wallet, shards: DataShard[]): Extract<TxBody, { kind: 'data' }> {
  const s = assignShards(chain, w.address, ROUND)[0]
  return { kind: 'data', shardId: s, samples: shards[s].samples, dataHash: shards[s].hash, round: ROUND }
}

describe('adversarial (a): no data reward without possession proven by unpredictable challenges', () => {
  let net: Net | undefined
  afterEach(async () => { await net?.close(); net = undefined })

  it('a fresh key holding only the public manifest gets no vote', async () => {
    // the manifest as the attacker sees it: a hash and a size per shard (the contents never leave the provers)
    const shards: DataShard[] = Array.from({ length: TOTAL }, (_, i) => ({ hash: digest('public-manifest', new Uint8Array([i])), samples: 1000n }))
    const chain = chainFor(shards)
    const now = (): number => Number(ROUND) * chain.genesis.params.roundMs + 1000
    // the attacker's node is asked to open leaves it does not have: it can only answer junk
    const challenge = async (c: DataChallenge): Promise<Array<{ sample: Uint8Array, path: Uint8Array[] }>> => c.indexes.map(() => ({ sample: new Uint8Array(8), path: [] }))
    const verifier = new ProofVerifier({ data: new ShardManifestVerifier({ chain, shards, challenge } as any) })
    net = await Net.open(chain, verifier, now)
    const attacker = Wallet.generate()
    for (let i = 0; i < 3; i++) {
      const tx = signTx(chain, attacker, 0n, 0n, claim(chain, attacker, shards))
      await expect(net.vals[i].vote(tx)).rejects.toHaveProperty('name', 'DataChallengeError')
    }
    expect(net.vals[0].state.totals.minted).toBe(0n)
    await net.expectRestartMatchesHonest()
  })

  it('an honest holder answers the challenges in time and is rewarded; a slow, partial or silent one is not', async () => {
    const shards = roots()
    const chain = chainFor(shards)
    const now = (): number => Number(ROUND) * chain.genesis.params.roundMs + 1000
    const asked: number[][] = []
    const provers = new Map<string, (c: DataChallenge, o?: { signal?: AbortSignal }) => Promise<Array<{ sample: Uint8Array, path: Uint8Array[] }>>>()
    const honest = Wallet.generate()
    const half = Wallet.generate()
    const slow = Wallet.generate()
    const silent = Wallet.generate()
    const answer = (c: DataChallenge, have: (i: number) => boolean): Array<{ sample: Uint8Array, path: Uint8Array[] }> => {
      asked.push(c.indexes)
      return c.indexes.map(i => have(i) ? { sample: contents[c.shardId][i], path: dataMerkleProof(contents[c.shardId], i) } : { sample: new Uint8Array(32), path: dataMerkleProof(contents[c.shardId], i) })
    }
    provers.set(honest.address, async c => answer(c, () => true))
    provers.set(half.address, async c => answer(c, i => i % 2 === 0))
    provers.set(slow.address, async (c, o) => await new Promise((resolve, reject) => {
      const t = setTimeout(() => { resolve(answer(c, () => true)) }, 5_000)
      o?.signal?.addEventListener('abort', () => { clearTimeout(t); reject(o.signal!.reason) })
    }))
    provers.set(silent.address, async () => { throw new Error('unreachable') })
    const verifier = new ProofVerifier({
      data: new ShardManifestVerifier({ chain, shards, challenges: 12, timeoutMs: 1_000, challenge: async (c, o) => provers.get(c.sender)!(c, o) })
    })
    net = await Net.open(chain, verifier, now)
    await net.finalise(signTx(chain, honest, 0n, 0n, claim(chain, honest, shards)))
    expect(net.vals[3].balance(honest.address)).toBeGreaterThan(0n)
    // each validator drew its own leaves (a fresh secret per challenge): the prover could not precompute them
    expect(new Set(asked.map(a => a.join(','))).size).toBe(asked.length)
    for (const w of [half, slow, silent]) {
      await expect(net.vals[0].vote(signTx(chain, w, 0n, 0n, claim(chain, w, shards)))).rejects.toHaveProperty('name', 'DataChallengeError')
    }
    await net.expectRestartMatchesHonest()
  })

  it('no challenge transport configured: data proofs are refused (fail closed)', async () => {
    const shards = roots()
    const chain = chainFor(shards)
    const now = (): number => Number(ROUND) * chain.genesis.params.roundMs + 1000
    net = await Net.open(chain, new ProofVerifier({ data: new ShardManifestVerifier({ chain, shards }) }), now, 1)
    const w = Wallet.generate()
    await expect(net.vals[0].vote(signTx(chain, w, 0n, 0n, claim(chain, w, shards)))).rejects.toHaveProperty('name', 'DataChallengeError')
  })

  it('over the network: a validator challenges the prover\'s bound peer on the data-challenge protocol (2 real hosts)', async () => {
    const shards = roots()
    const chain = chainFor(shards)
    const now = (): number => Number(ROUND) * chain.genesis.params.roundMs + 1000
    const prover = Wallet.generate()
    const assigned = assignShards(chain, prover.address, ROUND)
    const bindings = new PeerBindings()
    const vKey = await generateKeyPair('Ed25519')
    const pKey = await generateKeyPair('Ed25519')
    let v: any
    const verifier = new ProofVerifier({ data: new ShardManifestVerifier({ chain, shards, timeoutMs: 5_000, challenge: async (c, o) => v.services.ledger.challengeData(c, o) }) })
    const dirs = [await mkdtemp(join(tmpdir(), 'ponw-adv-dc-')), await mkdtemp(join(tmpdir(), 'ponw-adv-dc-'))]
    const host = async (privateKey: any, init: PonwLedgerInit): Promise<any> => await createLibp2p({
      privateKey,
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }), ledger: ponwLedger(init) }
    })
    // the prover holds only the first of its assigned shards
    const p = await host(pKey, { genesis: chain, path: dirs[0], wallet: prover, syncOnConnect: false, dataProver: (shard, i) => shard === assigned[0] ? { sample: contents[shard][i], path: dataMerkleProof(contents[shard], i) } : undefined })
    v = await host(vKey, { genesis: chain, path: dirs[1], wallet: validators[0], verifier, now, syncOnConnect: false, heartbeat: { bindings } })
    try {
      await bindings.add(await createBinding(prover, pKey, p.peerId.toString()))
      await v.dial(p.getMultiaddrs()[0])
      const claimFor = (shard: number): TxBody => ({ kind: 'data', shardId: shard, samples: shards[shard].samples, dataHash: shards[shard].hash, round: ROUND })
      const ledger = v.services.ledger.ledger
      expect((await ledger.vote(signTx(chain, prover, 0n, 0n, claimFor(assigned[0])))).validator).toBe(0)
      // the same machine re-bound to another wallet: it does not hold that wallet's assigned shards
      const second = Wallet.generate()
      await bindings.add(await createBinding(second, pKey, p.peerId.toString(), Date.now() + 1))
      const s2 = assignShards(chain, second.address, ROUND).find(x => x !== assigned[0])!
      await expect(ledger.vote(signTx(chain, second, 0n, 0n, claimFor(s2)))).rejects.toHaveProperty('name', 'DataChallengeError')
      // a wallet bound to no peer cannot be challenged
      const other = Wallet.generate()
      const s = assignShards(chain, other.address, ROUND)[0]
      await expect(ledger.vote(signTx(chain, other, 0n, 0n, claimFor(s)))).rejects.toHaveProperty('name', 'DataChallengeError')
    } finally {
      await v.stop()
      await p.stop()
      for (const d of dirs) await rm(d, { recursive: true, force: true })
    }
  })
})
