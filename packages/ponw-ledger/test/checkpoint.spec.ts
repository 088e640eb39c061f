import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { encodeCheckpointCertificate, signCheckpoint, snapshotHash, snapshotOf, stateFromSnapshot, verifyCheckpoint } from '../src/checkpoint.js'
import { canonicalJSON } from '../src/genesis.js'
import { Wallet, toHex } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { alice, bob, carol, certify, dave, prng, shuffle, sign, testChain, validators } from './fixtures.js'
import type { CheckpointProposal } from '../src/checkpoint.js'
import type { LedgerTx } from '../src/messages.js'

const chain = testChain()

/** messages of alice, bob and carol (transfers, a stake) and of dave, who spends money he receives later */
function messages (): { a: LedgerTx[], b: LedgerTx[] } {
  const seq = new Map<string, bigint>()
  const next = (w: Wallet): bigint => {
    const s = seq.get(w.address) ?? 0n
    seq.set(w.address, s + 1n)
    return s
  }
  const a: LedgerTx[] = []
  for (let i = 0; i < 20; i++) {
    a.push(sign(chain, alice, next(alice), { kind: 'transfer', to: bob.address, amount: NEURO }))
    a.push(sign(chain, bob, next(bob), { kind: 'transfer', to: carol.address, amount: NEURO / 2n }))
  }
  a.push(sign(chain, alice, next(alice), { kind: 'stake', amount: 10n * NEURO }))
  a.push(sign(chain, carol, next(carol), { kind: 'transfer', to: alice.address, amount: 3n * NEURO }))
  // dave has nothing yet: this waits (queued) behind the checkpoint's frontier until alice pays him in batch b
  a.push(sign(chain, dave, next(dave), { kind: 'transfer', to: carol.address, amount: 2n * NEURO }))
  const b: LedgerTx[] = []
  b.push(sign(chain, alice, next(alice), { kind: 'transfer', to: dave.address, amount: 5n * NEURO }))
  for (let i = 0; i < 10; i++) {
    b.push(sign(chain, bob, next(bob), { kind: 'transfer', to: alice.address, amount: NEURO / 4n }))
  }
  return { a, b }
}

async function count (l: Ledger, prefix: string): Promise<number> {
  let n = 0
  for await (const _ of l.store.range(prefix)) n++
  return n
}

describe('certified checkpoints and pruning (real level DBs)', () => {
  let dirs: string[] = []
  let opened: Ledger[] = []

  async function open (wallet?: Wallet, prune = true, dir?: string): Promise<Ledger> {
    if (dir == null) {
      dir = await mkdtemp(join(tmpdir(), 'ponw-ckpt-'))
      dirs.push(dir)
    }
    const l = await Ledger.open({ genesis: chain, path: dir, wallet, now: () => 0, pruneOnCheckpoint: prune })
    opened.push(l)
    return l
  }

  beforeEach(() => { dirs = []; opened = [] })
  afterEach(async () => {
    await Promise.allSettled(opened.map(async l => l.close()))
    await Promise.allSettled(dirs.map(async d => rm(d, { recursive: true, force: true })))
  })

  /** validators sign `p` and every ledger in `to` gets every vote */
  async function certifyCheckpoint (vals: Ledger[], p: CheckpointProposal, to: Ledger[]): Promise<void> {
    const votes = []
    for (const v of vals) {
      votes.push(await v.signCheckpoint(p))
    }
    for (const l of to) {
      for (const v of votes) {
        await l.addCheckpointVote(p, v)
      }
    }
  }

  it('validators certify a checkpoint they re-derive; pruned nodes forget history and keep the state of a node that never pruned, across restarts', async () => {
    const { a, b } = messages()
    const vals = await Promise.all(validators.slice(0, 3).map(async w => open(w)))
    const full = await open(undefined, false)
    const rnd = prng(7)
    await vals[1].vote(a[0]) // a slot vote record (v!) to be pruned with its message
    expect(await count(vals[1], 'v!')).toBe(1)
    for (const l of [...vals, full]) {
      for (const tx of shuffle(a, rnd)) {
        await l.addCertificates([certify(chain, tx)])
      }
    }
    expect(vals[0].state.queued.size).toBe(1) // dave waits for money
    const p = vals[0].proposeCheckpoint()!
    expect(p.height).toBe(42n) // 21 of alice, 20 of bob, 1 of carol; dave's waits
    const events: any[] = []
    vals[1].addEventListener('ponw-ledger:checkpoint', e => events.push(e.detail))
    await certifyCheckpoint(vals, p, [...vals, full])
    expect(events).toHaveLength(1)
    expect(events[0].pruned).toBe(42)
    for (const l of [...vals, full]) {
      expect(l.checkpoint?.height).toBe(42n)
    }
    // the pruned nodes kept only dave's waiting message; the unpruned one everything
    expect(await count(vals[1], 'c!')).toBe(1)
    expect(await count(vals[1], 'l!')).toBe(1)
    expect(await count(vals[1], 'o!')).toBe(0)
    expect(await count(vals[1], 'v!')).toBe(0)
    expect(vals[1].state.outcomes.size).toBe(0)
    expect(await count(full, 'c!')).toBe(a.length)

    for (const l of [...vals, full]) {
      for (const tx of shuffle(b, rnd)) {
        await l.addCertificates([certify(chain, tx)])
      }
    }
    // 1,000 − 20 · 1 − 10 (stake) − 5 (to dave) + 3 (from carol) + 10 · 0.25 (from bob)
    expect(vals[1].balance(alice.address)).toBe(1000n * NEURO - 20n * NEURO - 10n * NEURO - 5n * NEURO + 3n * NEURO + 10n * NEURO / 4n)
    expect(vals[1].balance(dave.address)).toBe(3n * NEURO) // received 5, sent 2 (applied after the checkpoint)
    for (const l of vals) {
      expect(toHex(snapshotOf(l.state).hash)).toBe(toHex(snapshotOf(full.state).hash))
      expect(l.state.outcomes.size).toBe(b.length + 1)
      await l.verifyStored()
    }
    const hist = await vals[1].history(dave.address)
    expect(hist.map(o => o.kind)).toEqual(['transfer', 'transfer'])
    expect(hist[0].index).toBeGreaterThanOrEqual(42) // local indexes continue after the pruned outcomes

    // an old certificate behind the checkpoint changes nothing on a pruned node
    const before = vals[1].state.canonical()
    const diff = await vals[1].addCertificates([certify(chain, a[0]), certify(chain, a[5])])
    expect(diff.outcomes).toHaveLength(0)
    expect(vals[1].state.canonical()).toBe(before)
    // the sync log has a gap: served from its first kept entry, `next` past the last one
    const page = await vals[1].logRange(0, 100)
    expect(page.certificates).toHaveLength(b.length + 1)
    expect(page.next).toBe(a.length + b.length)

    // restart: same state, same checkpoint, still pruned
    const dir = vals[1].store.db.location
    const hash = vals[1].stateHash()
    await vals[1].close()
    const again = await open(validators[1], true, dir)
    expect(again.stateHash()).toBe(hash)
    expect(again.checkpoint?.height).toBe(42n)
    expect(again.checkpoint?.pruned).toBe(true)
    await again.verifyStored()
    expect((await again.addCertificates([certify(chain, a[3])])).outcomes).toHaveLength(0)
  })

  it('a proposal a validator\'s own messages do not give is refused with a typed error', async () => {
    const { a } = messages()
    const v0 = await open(validators[0])
    const v1 = await open(validators[1])
    for (const tx of a) {
      await v0.addCertificates([certify(chain, tx)])
    }
    for (const tx of a.slice(0, -5)) {
      await v1.addCertificates([certify(chain, tx)])
    }
    const p = v0.proposeCheckpoint()!
    // v1 lacks messages below the frontier: not ready, and it signs once it has them
    await expect(v1.signCheckpoint(p)).rejects.toHaveProperty('name', 'CheckpointNotReadyError')
    for (const tx of a.slice(-5)) {
      await v1.addCertificates([certify(chain, tx)])
    }
    await expect(v1.signCheckpoint(p)).resolves.toHaveProperty('validator', 1)
    // another snapshot hash for the same frontier (a forged state)
    const forged = { ...p, snapshotHash: snapshotHash(new TextEncoder().encode('forged')) }
    await expect(v1.signCheckpoint(forged)).rejects.toHaveProperty('name', 'CheckpointMismatchError')
    // a frontier claiming a message nobody finalised
    const ahead = { ...p, frontier: p.frontier.map(e => e.address === alice.address ? { ...e, nextSeq: e.nextSeq + 1n } : e) }
    await expect(v1.signCheckpoint(ahead)).rejects.toHaveProperty('name', 'CheckpointNotReadyError')
    // a frontier below what was applied (other height) or a base this node does not have
    const behind = { ...p, frontier: p.frontier.map(e => e.address === alice.address ? { ...e, nextSeq: e.nextSeq - 1n } : e) }
    await expect(v1.signCheckpoint(behind)).rejects.toHaveProperty('name', 'CheckpointMismatchError')
    await expect(v1.signCheckpoint({ ...p, baseHeight: 5n, baseHash: p.snapshotHash })).rejects.toHaveProperty('name', 'CheckpointMismatchError')
    // a vote over another checkpoint does not count for this one
    const vote = await v0.signCheckpoint(p)
    await expect(v1.addCheckpointVote(forged, vote)).rejects.toHaveProperty('name', 'InvalidSignatureError')
  })

  it('a joining node installs a certified checkpoint and continues from it; forged checkpoints get typed errors and change nothing', async () => {
    const { a, b } = messages()
    const vals = await Promise.all(validators.slice(0, 3).map(async w => open(w)))
    for (const l of vals) {
      for (const tx of a) {
        await l.addCertificates([certify(chain, tx)])
      }
    }
    const p = vals[0].proposeCheckpoint()!
    await certifyCheckpoint(vals, p, vals)
    const ck = vals[0].checkpoint!
    const v = verifyCheckpoint(chain, ck.certificate, ck.snapshot)
    expect(v.certificate.height).toBe(42n)

    const joiner = await open(undefined, true)
    const genesisHash = joiner.stateHash()
    const votes = await Promise.all(vals.map(async l => l.signCheckpoint(p).catch(() => undefined)))
    expect(votes.every(x => x === undefined)).toBe(true) // the base moved on: the old proposal no longer derives
    const sig = (h: bigint, hash: Uint8Array, n = 3): Uint8Array => encodeCheckpointCertificate({ height: h, snapshotHash: hash, votes: validators.slice(0, n).map((w, i) => signCheckpoint(chain, w, i, h, hash)) })

    const snap = JSON.parse(new TextDecoder().decode(ck.snapshot))
    // 1. snapshot bytes that are not the certified ones (a balance raised): refused before parsing
    const richer = structuredClone(snap)
    richer.accounts[dave.address] = { balance: '1000000000000000000000', bonded: '0', unbonding: [], slashed: '0', nextSeq: '0', bondHistory: [] }
    const richerBytes = new TextEncoder().encode(canonicalJSON(richer))
    await expect(joiner.installCheckpoint(ck.certificate, richerBytes)).rejects.toHaveProperty('name', 'InvalidCheckpointError')
    // 2. validators' votes over such a snapshot: still refused (it does not conserve the supply)
    await expect(joiner.installCheckpoint(sig(42n, snapshotHash(richerBytes)), richerBytes)).rejects.toHaveProperty('name', 'InvalidCheckpointError')
    // 3. two of four validators: no quorum
    await expect(joiner.installCheckpoint(sig(42n, ck.snapshotHash, 2), ck.snapshot)).rejects.toHaveProperty('name', 'InsufficientQuorumError')
    // 4. votes over another height
    const wrongHeight = encodeCheckpointCertificate({ height: 42n, snapshotHash: ck.snapshotHash, votes: validators.slice(0, 3).map((w, i) => signCheckpoint(chain, w, i, 43n, ck.snapshotHash)) })
    await expect(joiner.installCheckpoint(wrongHeight, ck.snapshot)).rejects.toHaveProperty('name', 'InvalidSignatureError')
    // 5. a certified height that is not the snapshot's
    await expect(joiner.installCheckpoint(sig(43n, ck.snapshotHash), ck.snapshot)).rejects.toHaveProperty('name', 'InvalidCheckpointError')
    // 6. votes by keys that are not validators, garbage, a snapshot of another chain
    const outsiders = [0, 1, 2].map(i => Wallet.fromSeed(`outsider-${i}`))
    const bad = encodeCheckpointCertificate({ height: 42n, snapshotHash: ck.snapshotHash, votes: outsiders.map((w, i) => signCheckpoint(chain, w, i, 42n, ck.snapshotHash)) })
    await expect(joiner.installCheckpoint(bad, ck.snapshot)).rejects.toHaveProperty('name', 'InvalidSignatureError')
    await expect(joiner.installCheckpoint(new Uint8Array([1, 2, 3, 4]), ck.snapshot)).rejects.toHaveProperty('name', 'InvalidCheckpointError')
    const other = structuredClone(snap)
    other.chainId = '00'.repeat(32)
    const otherBytes = new TextEncoder().encode(canonicalJSON(other))
    await expect(joiner.installCheckpoint(sig(42n, snapshotHash(otherBytes)), otherBytes)).rejects.toHaveProperty('name', 'InvalidCheckpointError')
    // 7. a snapshot that is not canonical (an extra field) even with votes over its hash
    const extra = new TextEncoder().encode(new TextDecoder().decode(ck.snapshot).replace('{', '{"x":"1",'))
    await expect(joiner.installCheckpoint(sig(42n, snapshotHash(extra)), extra)).rejects.toHaveProperty('name', 'InvalidCheckpointError')
    expect(joiner.stateHash()).toBe(genesisHash)
    expect(joiner.checkpoint).toBeUndefined()

    // the real one
    await joiner.installCheckpoint(ck.certificate, ck.snapshot)
    expect(joiner.checkpoint?.height).toBe(42n)
    expect(toHex(snapshotOf(joiner.state).hash)).toBe(toHex(ck.snapshotHash))
    // installing it (or an older one) again conflicts
    await expect(joiner.installCheckpoint(ck.certificate, ck.snapshot)).rejects.toHaveProperty('name', 'CheckpointConflictError')
    // it continues with the messages above the frontier (dave's waiting one included); old ones are skipped
    for (const tx of [...a, ...b]) {
      await joiner.addCertificates([certify(chain, tx)])
    }
    for (const l of vals) {
      for (const tx of b) {
        await l.addCertificates([certify(chain, tx)])
      }
    }
    expect(toHex(snapshotOf(joiner.state).hash)).toBe(toHex(snapshotOf(vals[0].state).hash))
    expect(joiner.balance(dave.address)).toBe(3n * NEURO)
    await joiner.verifyStored()
    // a snapshot round-trips through its own parser
    expect(toHex(snapshotOf(stateFromSnapshot(chain, ck.snapshot, ck.snapshotHash)).bytes)).toBe(toHex(ck.snapshot))
  })

  it('a node ahead of a checkpoint for some account refuses to install it', async () => {
    const { a, b } = messages()
    const vals = await Promise.all(validators.slice(0, 3).map(async w => open(w)))
    for (const l of vals) {
      for (const tx of a) {
        await l.addCertificates([certify(chain, tx)])
      }
    }
    await certifyCheckpoint(vals, vals[0].proposeCheckpoint()!, vals)
    const ck = vals[0].checkpoint!
    const ahead = await open(undefined, true)
    for (const tx of [...a, ...b]) {
      await ahead.addCertificates([certify(chain, tx)])
    }
    const hash = ahead.stateHash()
    await expect(ahead.installCheckpoint(ck.certificate, ck.snapshot)).rejects.toHaveProperty('name', 'CheckpointConflictError')
    expect(ahead.stateHash()).toBe(hash)
  })
})
