import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { genesisFromJSON, genesisToJSON, loadChain } from '../src/genesis.js'
import { digest, toHex } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { assignShards } from '../src/shards.js'
import { LedgerState } from '../src/state.js'
import { ProofVerifier, ShardManifestVerifier, shardManifestHash } from '../src/verify.js'
import { dataMerkleProof, dataMerkleRoot } from '../src/data-challenge.js'
import { alice, bob, certify, sign, testGenesis, validators } from './fixtures.js'
import type { DataChallenger, DataShard } from '../src/verify.js'
import type { TxBody } from '../src/messages.js'

const TOTAL = 64
const contents = Array.from({ length: TOTAL }, (_, s) => Array.from({ length: 100 + s }, (_, i) => digest('test-sample', new Uint8Array([s, i]))))
const shards: DataShard[] = contents.map(leaves => ({ hash: dataMerkleRoot(leaves), samples: BigInt(leaves.length) }))
/** an honest prover: opens every leaf it is asked for */
const challenge: DataChallenger = async c => c.indexes.map(i => ({ sample: contents[c.shardId][i], path: dataMerkleProof(contents[c.shardId], i) }))
const genesis = testGenesis({ dataManifestHash: toHex(shardManifestHash(shards)) })
genesis.params = { ...genesis.params, totalShards: TOTAL }
const chain = loadChain(genesis)
const p = chain.genesis.params
const ROUND = 5n
const NOW = Number(ROUND) * p.roundMs + 1000

function data (shardId: number, samples = 100n, hash = shards[shardId].hash): Extract<TxBody, { kind: 'data' }> {
  return { kind: 'data', shardId, samples, dataHash: hash, round: ROUND }
}

describe('data proofs: assigned shards of the manifest the chain names', () => {
  let dirs: string[] = []
  let vals: Ledger[] = []

  beforeEach(async () => {
    const verifier = new ProofVerifier({ data: new ShardManifestVerifier({ chain, shards, challenge }) })
    for (const w of validators) {
      const dir = await mkdtemp(join(tmpdir(), 'ponw-data-'))
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

  async function finalise (body: TxBody, seq: bigint): Promise<void> {
    const tx = sign(chain, alice, seq, body)
    const votes = []
    for (const l of vals.slice(0, 3)) votes.push(await l.vote(tx))
    for (const l of vals) for (const v of votes) await l.addVote(tx, v)
  }

  it('one address cannot claim every shard: only its assigned shards, once each per round', async () => {
    const assigned = assignShards(chain, alice.address, ROUND)
    let seq = 0n
    for (let s = 0; s < TOTAL; s++) {
      const tx = sign(chain, alice, seq, data(s))
      if (assigned.includes(s)) {
        await finalise(data(s), seq++)
      } else {
        await expect(vals[0].vote(tx)).rejects.toHaveProperty('name', 'ShardAssignmentError')
      }
    }
    expect(seq).toBe(BigInt(p.shardsPerAssignment))
    const minted = vals[3].state.totals.minted
    expect(minted).toBeGreaterThan(0n)
    // a second claim for (alice, round, shard) is refused
    await expect(vals[0].vote(sign(chain, alice, seq, data(assigned[0])))).rejects.toHaveProperty('name', 'ReplayError')
    expect(vals[3].state.totals.minted).toBe(minted)
  })

  it('the data hash must be the manifest\'s hash of that shard and samples are bounded by its size', async () => {
    const s = assignShards(chain, alice.address, ROUND)[0]
    await expect(vals[0].vote(sign(chain, alice, 0n, data(s, 100n, new Uint8Array(32).fill(1))))).rejects.toHaveProperty('name', 'DataShardMismatchError')
    // the hash of another shard of the manifest is not this shard's
    await expect(vals[0].vote(sign(chain, alice, 0n, data(s, 100n, shards[(s + 1) % TOTAL].hash)))).rejects.toHaveProperty('name', 'DataShardMismatchError')
    await expect(vals[0].vote(sign(chain, alice, 0n, data(s, shards[s].samples + 1n)))).rejects.toHaveProperty('name', 'ImplausibleProofError')
    await finalise(data(s, shards[s].samples), 0n)
    expect(vals[0].state.outcomes.size).toBe(1)
  })

  it('a manifest that is not the one the genesis names is refused at construction', () => {
    const other = shards.map((x, i) => i === 3 ? { ...x, samples: x.samples + 1n } : x)
    expect(() => new ShardManifestVerifier({ chain, shards: other })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => new ShardManifestVerifier({ chain, shards: shards.slice(1) })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => new ShardManifestVerifier({ chain: loadChain(testGenesis()), shards })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    // the manifest hash survives the genesis JSON round trip (and is part of the chain id)
    expect(loadChain(genesisFromJSON(genesisToJSON(genesis))).chainIdHex).toBe(chain.chainIdHex)
    expect(loadChain({ ...genesis, dataManifestHash: undefined }).chainIdHex).not.toBe(chain.chainIdHex)
  })

  it('the state machine itself refuses to mint for a shard outside the assignment (even if certified)', () => {
    const assigned = assignShards(chain, bob.address, ROUND)
    const wrong = Array.from({ length: TOTAL }, (_, i) => i).find(i => !assigned.includes(i))!
    const state = new LedgerState(chain)
    const tx = sign(chain, bob, 0n, data(wrong))
    certify(chain, tx)
    const diff = state.addFinal([tx])
    expect(diff.outcomes[0].status).toBe('failed')
    expect(diff.outcomes[0].reason).toContain('assign')
    expect(state.totals.minted).toBe(0n)
  })
})
