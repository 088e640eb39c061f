/**
 * Writes specs/ponw-ledger/vectors/checkpoints.json (certified checkpoints) from the fixed test keys.
 * Signatures are deterministic (RFC 6979): running it again gives the same bytes.
 * Run: node dist/test/checkpoint-vectors-gen.js
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NEURO } from '../src/amount.js'
import { checkpointDigest, encodeCheckpointCertificate, signCheckpoint, snapshotHash, snapshotOf } from '../src/checkpoint.js'
import { canonicalJSON } from '../src/genesis.js'
import { toHex } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { parseCertificate } from '../src/messages.js'
import { LedgerState } from '../src/state.js'
import { alice, bob, carol, certify, sign, testChain, validators } from './fixtures.js'

// NEUROSHARD_SPECS_DIR: another specs/ tree (specs/regenerate.py writes into a temporary copy and compares)
const out = join(process.env.NEUROSHARD_SPECS_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'specs'), 'ponw-ledger', 'vectors', 'checkpoints.json')
const chain = testChain()
const hex = toHex

// the messages of ledger.json (same keys, same bytes) plus one of bob's that waits: it is NOT behind the checkpoint
const t1 = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 15n * NEURO / 10n, memo: new TextEncoder().encode('hello') })
const t2 = sign(chain, bob, 0n, { kind: 'stake', amount: 50n * NEURO })
const t3 = sign(chain, bob, 1n, { kind: 'uptime', epoch: 0n, heartbeats: 60, stakeClaim: 50n * NEURO })
const t4 = sign(chain, alice, 1n, { kind: 'payment', provider: carol.address, tokens: 1000n, pricePerToken: 10n ** 15n, sessionId: new Uint8Array([1, 2, 3]) })
const t5 = sign(chain, carol, 0n, { kind: 'stake', amount: 5n * NEURO })
const eqA = sign(chain, carol, 1n, { kind: 'transfer', to: alice.address, amount: NEURO })
const eqB = sign(chain, carol, 1n, { kind: 'transfer', to: bob.address, amount: NEURO })
const t6 = sign(chain, validators[0], 0n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: eqA.signed, b: eqB.signed } })
const waiting = sign(chain, bob, 3n, { kind: 'transfer', to: alice.address, amount: NEURO })
const finals = [t1, t2, t3, t4, t5, t6, waiting]
const certs = finals.map(t => certify(chain, t))
const state = new LedgerState(chain)
state.addFinal(certs.map(c => parseCertificate(chain, c).tx))
const snap = snapshotOf(state)
const text = new TextDecoder().decode(snap.bytes)
const sig = (h: bigint, hash: Uint8Array, who = [0, 1, 2], signHeight = h): string => hex(encodeCheckpointCertificate({ height: h, snapshotHash: hash, votes: who.map(i => signCheckpoint(chain, validators[i], i, signHeight, hash)) }))

const parsed = JSON.parse(text)
const richer = structuredClone(parsed)
richer.accounts[alice.address].balance = (BigInt(richer.accounts[alice.address].balance) + NEURO).toString()
const richerText = canonicalJSON(richer)
const extraText = text.replace('{', '{"memo":"x",')

const vectors = {
  description: 'certified checkpoints (specs/ponw-ledger/checkpoints.md): the final messages below, applied in any order, give the snapshot below (bob\'s sequence-3 message waits for sequence 2 and is not behind it); validators 0, 1, 2 sign the checkpoint digest',
  chainId: chain.chainIdHex,
  certificates: certs.map(hex),
  expected: {
    height: snap.height.toString(),
    snapshot: text,
    snapshotHash: hex(snap.hash),
    checkpointDigest: hex(checkpointDigest(chain, snap.height, snap.hash)),
    certificate: sig(snap.height, snap.hash)
  },
  invalid: {
    description: 'each (certificate, snapshot) pair MUST be refused with the named error',
    cases: [
      { description: 'snapshot with one balance raised by 1 NEURO (the certificate is over the real one)', certificate: sig(snap.height, snap.hash), snapshot: richerText, error: 'InvalidCheckpointError' },
      { description: 'that snapshot with votes over its own hash: it does not conserve the supply', certificate: sig(snap.height, snapshotHash(new TextEncoder().encode(richerText))), snapshot: richerText, error: 'InvalidCheckpointError' },
      { description: 'a snapshot with an extra field, votes over its hash: not canonical', certificate: sig(snap.height, snapshotHash(new TextEncoder().encode(extraText))), snapshot: extraText, error: 'InvalidCheckpointError' },
      { description: 'votes of validators 0 and 1 only (2/4 of the stake)', certificate: sig(snap.height, snap.hash, [0, 1]), snapshot: text, error: 'InsufficientQuorumError' },
      { description: 'votes signed over another height', certificate: sig(snap.height, snap.hash, [0, 1, 2], snap.height + 1n), snapshot: text, error: 'InvalidSignatureError' },
      { description: 'certified height differs from the snapshot\'s (votes over that height)', certificate: sig(snap.height + 1n, snap.hash), snapshot: text, error: 'InvalidCheckpointError' },
      { description: 'votes not sorted by validator', certificate: hex(Uint8Array.from(Buffer.from(sig(snap.height, snap.hash, [1, 0, 2]), 'hex'))), snapshot: text, error: 'InvalidCheckpointError' }
    ]
  }
}
// C3: nodes that applied some final messages from genesis install the checkpoint; outcomes written by hand from the
// rule (not higher than the base, or some account's nextSeq above the snapshot's: CheckpointConflictError); each is
// checked against the Ledger's own installCheckpoint before anything is written
const bobAhead = certify(chain, sign(chain, bob, 2n, { kind: 'transfer', to: carol.address, amount: NEURO }))
const cp = { certificate: vectors.expected.certificate, snapshot: text }
const install = [
  { description: 'a node that applied nothing installs it', applied: [], installs: [cp], errors: [null] },
  { description: 'the same checkpoint twice: the second is not higher than the base', applied: [], installs: [cp, cp], errors: [null, 'CheckpointConflictError'] },
  { description: 'a node that applied exactly its messages is not ahead: it installs', applied: certs, installs: [cp], errors: [null] },
  { description: 'a node that applied alice\'s first message only is behind: it installs', applied: [certs[0]], installs: [cp], errors: [null] },
  { description: 'a node that applied bob\'s sequence 2 too (his waiting sequence 3 then applies) is ahead for bob: refused, nothing changes', applied: [...certs, bobAhead], installs: [cp], errors: ['CheckpointConflictError'] },
  // C5 and §4 step 4: after the install, a message behind the floor (alice's sequence 0) is ignored, the ones above it
  // apply; the state is then the one of every message applied from genesis (its snapshot hash)
  { description: 'after installing, alice\'s sequence 0 (behind the floor) is ignored, bob\'s sequences 2 and 3 apply', applied: [], installs: [cp], errors: [null], after: [certs[0], bobAhead, certs[6]] }
]
const full = new LedgerState(chain)
full.addFinal([...certs, bobAhead].map(c => parseCertificate(chain, c).tx))
const afterHash = hex(snapshotOf(full).hash)
for (const c of install) {
  const dir = await mkdtemp(join(tmpdir(), 'ponw-ckpt-gen-'))
  const l = await Ledger.open({ genesis: chain, path: dir, now: () => 0, pruneOnCheckpoint: true })
  try {
    for (const a of c.applied) await l.addCertificates([a])
    for (const [i, x] of c.installs.entries()) {
      const before = l.stateHash()
      const got = await l.installCheckpoint(Buffer.from(x.certificate, 'hex'), new TextEncoder().encode(x.snapshot)).then(() => null, (err: Error) => err.name)
      if (got !== c.errors[i] || (got != null && l.stateHash() !== before)) throw new Error(`the Ledger disagrees on "${c.description}" (install ${i}): ${String(got)}`)
    }
    for (const a of c.after ?? []) await l.addCertificates([a])
    if (c.after != null && hex(snapshotOf(l.state).hash) !== afterHash) throw new Error(`the Ledger disagrees on "${c.description}" (after)`)
  } finally {
    await l.close()
    await rm(dir, { recursive: true, force: true })
  }
}
Object.assign(vectors, {
  install: {
    description: 'checkpoints.md C3: a node applies `applied` (final messages, from genesis, in this order), then installs each of `installs` in turn (`expected`: the certificate and snapshot of `expected` above); `errors` gives each outcome (null: installed). A refused install changes nothing (the node\'s state hash is what it was). `after`: final messages the node then receives (checkpoints.md C5: those behind its floor are ignored), after which its snapshot hash is `afterSnapshotHash`, the one of every message applied from genesis.',
    cases: install.map(c => ({
      description: c.description,
      applied: c.applied.map(hex),
      installs: c.installs.map(() => 'expected'),
      errors: c.errors,
      ...(c.after != null ? { after: c.after.map(hex), afterSnapshotHash: afterHash } : {})
    }))
  }
})
// encodeCheckpointCertificate sorts: build the unsorted case by hand
{
  const { CheckpointCertificate } = await import('../src/pb/ledger.js')
  const votes = [1, 0, 2].map(i => signCheckpoint(chain, validators[i], i, snap.height, snap.hash))
  vectors.invalid.cases[6].certificate = hex(CheckpointCertificate.encode({ height: snap.height, snapshotHash: Uint8Array.from(snap.hash), votes: votes.map(v => ({ validator: v.validator, signature: Uint8Array.from(v.signature) })) }))
}
await writeFile(out, JSON.stringify(vectors, null, 2) + '\n')
process.stdout.write(`wrote ${out}\n`)
