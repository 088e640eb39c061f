/**
 * Writes specs/ponw-ledger/vectors/*.json from the fixed test keys. Signatures are deterministic
 * (RFC 6979), so running it again gives the same bytes. Run: node dist/test/vectors-gen.js
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NEURO, encodeAmount } from '../src/amount.js'
import { genesisToJSON } from '../src/genesis.js'
import { addressOf, digest, toHex } from '../src/keys.js'
import type { Wallet } from '../src/keys.js'
import { SignedTx, Tx } from '../src/pb/ledger.js'
import { LedgerState } from '../src/state.js'
import { parseCertificate } from '../src/messages.js'
import { alice, bob, carol, certify, sign, testChain, testGenesis, validators } from './fixtures.js'

// NEUROSHARD_SPECS_DIR: another specs/ tree (specs/regenerate.py writes into a temporary copy and compares)
const out = join(process.env.NEUROSHARD_SPECS_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'specs'), 'ponw-ledger', 'vectors')
const genesis = testGenesis()
const chain = testChain()
const hex = toHex

const keys = {
  note: 'test keys: secret = sha256("neuroshard/ledger/v1/test-key" || 0x00 || utf8(seed)); NEVER use for real funds',
  wallets: Object.fromEntries(([['alice', alice], ['bob', bob], ['carol', carol], ...validators.map((v, i) => [`validator-${i}`, v])] as Array<[string, Wallet]>).map(([n, w]) => [n, {
    seed: n,
    secretKey: hex((w as any).exportSecret()),
    publicKey: hex(w.publicKey),
    address: w.address
  }]))
}

const t1 = sign(chain, alice, 0n, { kind: 'transfer', to: bob.address, amount: 15n * NEURO / 10n, memo: new TextEncoder().encode('hello') })
const t2 = sign(chain, bob, 0n, { kind: 'stake', amount: 50n * NEURO })
const t3 = sign(chain, bob, 1n, { kind: 'uptime', epoch: 0n, heartbeats: 60, stakeClaim: 50n * NEURO })
const t4 = sign(chain, alice, 1n, { kind: 'payment', provider: carol.address, tokens: 1000n, pricePerToken: 10n ** 15n, sessionId: new Uint8Array([1, 2, 3]) })
const t5 = sign(chain, carol, 0n, { kind: 'stake', amount: 5n * NEURO })
const eqA = sign(chain, carol, 1n, { kind: 'transfer', to: alice.address, amount: NEURO })
const eqB = sign(chain, carol, 1n, { kind: 'transfer', to: bob.address, amount: NEURO })
const t6 = sign(chain, validators[0], 0n, { kind: 'slash', evidence: { kind: 'account-equivocation', a: eqA.signed, b: eqB.signed } })
const finals = [t1, t2, t3, t4, t5, t6]
const certs = finals.map(t => certify(chain, t))
const state = new LedgerState(chain)
state.addFinal(certs.map(c => parseCertificate(chain, c).tx))

const names = ['alice→bob transfer 1.5 NEURO', 'bob stakes 50 NEURO', 'bob uptime proof: 60 heartbeats × 60 s, stake claim 50', 'alice pays carol for 1000 tokens at 0.001 NEURO', 'carol stakes 5 NEURO', 'validator-0 reports carol signing two messages for sequence 1']
const ledger = {
  description: 'final messages (certificates signed by validators 0,1,2) and the state they must produce in ANY order',
  chainId: chain.chainIdHex,
  messages: finals.map((t, i) => ({ description: names[i], txId: t.idHex, signedTx: hex(t.signed), certificate: hex(certs[i]) })),
  conflicting: { note: 'carol\'s two messages for sequence 1: neither is final; together they are the evidence', a: hex(eqA.signed), b: hex(eqB.signed) },
  expected: {
    accounts: Object.fromEntries([...state.accounts].filter(([, a]) => a.balance + a.bonded + a.slashed > 0n).map(([addr, a]) => [addr, { balance: a.balance.toString(), bonded: a.bonded.toString(), slashed: a.slashed.toString(), nextSeq: a.nextSeq.toString() }])),
    totals: Object.fromEntries(Object.entries(state.totals).map(([k, v]) => [k, v.toString()])),
    stateHash: state.stateHash()
  }
}

const st = SignedTx.decode(t1.signed)
const preimage = {
  description: 'signing preimage of the first message: digest = sha256(utf8("neuroshard/ledger/v1/tx") || 0x00 || chainId || txBytes); signature = 64-byte compact low-S ECDSA secp256k1 with SHA-256 of the digest (the ECDSA message is the digest, so the integer signed is sha256(digest); RFC 6979 nonce from sha256(digest))',
  domain: 'neuroshard/ledger/v1/tx',
  chainId: chain.chainIdHex,
  txBytes: hex(st.tx),
  decoded: Tx.decode(st.tx),
  digest: hex(digest('neuroshard/ledger/v1/tx', chain.chainId, st.tx)),
  signature: hex(st.signature),
  publicKey: hex(alice.publicKey),
  voteDigest: hex(digest('neuroshard/ledger/v1/vote', chain.chainId, t1.id)),
  address: { publicKey: hex(alice.publicKey), address: addressOf(alice.publicKey), rule: 'first 20 bytes of sha256(utf8("neuroshard/ledger/v1/address") || 0x00 || compressedPublicKey)' },
  amounts: [0n, 1n, 255n, 256n, NEURO, 2n ** 128n - 1n].map(v => ({ value: v.toString(), bytes: hex(encodeAmount(v)) }))
}

// invalid inputs and the error each must give
const unknownField = SignedTx.encode({ tx: Uint8Array.from([...st.tx, 0x98, 0x06, 0x01]), signature: st.signature })
const badSig = Uint8Array.from(st.signature)
badSig[10] ^= 0x01
const invalid = {
  description: 'each input MUST be rejected with the named error and change nothing',
  cases: [
    { description: 'signature with one bit flipped', signedTx: hex(SignedTx.encode({ tx: st.tx, signature: badSig })), error: 'InvalidSignatureError' },
    { description: 'unknown field 99 appended to Tx', signedTx: hex(unknownField), error: 'InvalidMessageError' },
    { description: 'truncated bytes', signedTx: hex(t1.signed.subarray(0, t1.signed.length - 5)), error: 'InvalidMessageError' },
    { description: 'certificate with only 2 of 4 votes', certificate: hex(certify(chain, t1, 2)), error: 'InsufficientQuorumError' }
  ]
}

function json (v: unknown): string {
  return JSON.stringify(v, (_k, x) => typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? toHex(x) : x, 2) + '\n'
}

await mkdir(out, { recursive: true })
await writeFile(join(out, 'genesis.json'), genesisToJSON(genesis) + '\n')
await writeFile(join(out, 'keys.json'), json(keys))
await writeFile(join(out, 'preimage.json'), json(preimage))
await writeFile(join(out, 'ledger.json'), json(ledger))
// invalid.json (40 cases) is written by specs/ponw-ledger/python/vectors.py now; `invalid` above is its first four cases
void invalid
process.stdout.write(`wrote vectors to ${out}\n`)
