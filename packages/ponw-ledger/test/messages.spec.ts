import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MAX_AMOUNT, NEURO, decodeAmount, encodeAmount, formatNeuro, parseNeuro } from '../src/amount.js'
import { encodeCertificate, parseCertificate, parseSignedTx, signTx, signVote } from '../src/messages.js'
import { SignedTx, Tx } from '../src/pb/ledger.js'
import { alice, bob, certify, testChain, validators } from './fixtures.js'

const chain = testChain()
const transfer = { kind: 'transfer' as const, to: bob.address, amount: NEURO }

describe('messages', () => {
  it('round-trips a signed message and a certificate', () => {
    const tx = signTx(chain, alice, 0n, 0n, transfer)
    expect(parseSignedTx(chain, tx.signed).idHex).toBe(tx.idHex)
    expect(parseCertificate(chain, certify(chain, tx)).tx.sender).toBe(alice.address)
  })

  it('amounts: exact encoding, negative/overflowing/non-canonical rejected', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: MAX_AMOUNT }), v => decodeAmount(encodeAmount(v)) === v))
    expect(() => encodeAmount(-1n)).toThrow(expect.objectContaining({ name: 'InvalidAmountError' }))
    expect(() => encodeAmount(MAX_AMOUNT + 1n)).toThrow(expect.objectContaining({ name: 'InvalidAmountError' }))
    expect(() => decodeAmount(new Uint8Array(17).fill(1))).toThrow(expect.objectContaining({ name: 'InvalidAmountError' }))
    expect(() => decodeAmount(new Uint8Array([0, 1]))).toThrow(expect.objectContaining({ name: 'InvalidAmountError' }))
    expect(() => signTx(chain, alice, 0n, 0n, { ...transfer, amount: -5n })).toThrow(expect.objectContaining({ name: 'InvalidAmountError' }))
    expect(() => signTx(chain, alice, 0n, 0n, { ...transfer, amount: 0n })).toThrow(expect.objectContaining({ name: 'InvalidAmountError' }))
    expect(() => signTx(chain, alice, 0n, 0n, { ...transfer, amount: 2n ** 128n })).toThrow(expect.objectContaining({ name: 'InvalidAmountError' }))
    expect(parseNeuro('1.5')).toBe(15n * NEURO / 10n)
    expect(formatNeuro(parseNeuro('0.000000000000000001'))).toBe('0.000000000000000001')
  })

  it('rejects forged signatures with a typed error', () => {
    const tx = signTx(chain, alice, 0n, 0n, transfer)
    const st = SignedTx.decode(tx.signed)
    // signature of another message
    const other = signTx(chain, alice, 1n, 0n, transfer)
    expect(() => parseSignedTx(chain, SignedTx.encode({ tx: st.tx, signature: SignedTx.decode(other.signed).signature }))).toThrow(expect.objectContaining({ name: 'InvalidSignatureError' }))
    // bob signs a message claiming to be alice's
    const forgedTx = Tx.decode(st.tx)
    const bobSig = bob.signDigest(tx.id)
    expect(() => parseSignedTx(chain, SignedTx.encode({ tx: Tx.encode(forgedTx), signature: Uint8Array.from(bobSig) }))).toThrow(expect.objectContaining({ name: 'InvalidSignatureError' }))
    // an altered amount under the original signature
    forgedTx.transfer!.amount = Uint8Array.from(encodeAmount(1000n * NEURO))
    expect(() => parseSignedTx(chain, SignedTx.encode({ tx: Tx.encode(forgedTx), signature: st.signature }))).toThrow(expect.objectContaining({ name: 'InvalidSignatureError' }))
  })

  it('rejects unknown fields, non-canonical bytes, other chains and bad shapes', () => {
    const tx = signTx(chain, alice, 0n, 0n, transfer)
    const st = SignedTx.decode(tx.signed)
    // unknown field 99 (varint) appended to the Tx
    const withUnknown = new Uint8Array([...st.tx, 0x98, 0x06, 0x01])
    expect(() => parseSignedTx(chain, SignedTx.encode({ tx: withUnknown, signature: st.signature }))).toThrow(expect.objectContaining({ name: 'InvalidMessageError' }))
    // unknown field in the SignedTx envelope
    expect(() => parseSignedTx(chain, new Uint8Array([...tx.signed, 0x18, 0x01]))).toThrow(expect.objectContaining({ name: 'InvalidMessageError' }))
    // signed for another chain
    const other = testChain({ network: 'other' })
    expect(() => parseSignedTx(other, tx.signed)).toThrow(expect.objectContaining({ name: 'WrongChainError' }))
    // two bodies
    const two = Tx.decode(st.tx)
    two.stake = { amount: Uint8Array.from(encodeAmount(1n)) }
    const twoBytes = Tx.encode(two)
    expect(() => parseSignedTx(chain, SignedTx.encode({ tx: twoBytes, signature: Uint8Array.from(alice.signDigest(tx.id)) }))).toThrow(expect.objectContaining({ name: 'InvalidMessageError' }))
    // oversize
    expect(() => parseSignedTx(chain, new Uint8Array(20_000))).toThrow(expect.objectContaining({ name: 'InvalidMessageError' }))
  })

  it('malformed bytes (fuzzed) only ever give typed errors', () => {
    const named = new Set(['InvalidMessageError', 'InvalidSignatureError', 'InvalidAmountError', 'WrongChainError', 'InsufficientQuorumError'])
    const tx = signTx(chain, alice, 0n, 0n, transfer)
    const cert = certify(chain, tx)
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 255 }), (junk, pos, byte) => {
      for (const input of [junk, mutate(tx.signed, pos, byte), mutate(cert, pos, byte)]) {
        for (const fn of [() => parseSignedTx(chain, input), () => parseCertificate(chain, input)]) {
          try {
            fn()
          } catch (err: any) {
            if (!named.has(err.name)) {
              throw new Error(`untyped error ${err.name}: ${err.message}`)
            }
          }
        }
      }
    }), { numRuns: 150 })
  })

  it('certificates: quorum > 2/3 of stake, forged and duplicate votes rejected', () => {
    const tx = signTx(chain, alice, 0n, 0n, transfer)
    expect(() => parseCertificate(chain, certify(chain, tx, 2))).toThrow(expect.objectContaining({ name: 'InsufficientQuorumError' }))
    const votes = validators.slice(0, 3).map((v, i) => signVote(chain, v, i, tx.id))
    votes[2] = { validator: 2, signature: signVote(chain, validators[3], 3, tx.id).signature }
    expect(() => parseCertificate(chain, encodeCertificate(tx, votes))).toThrow(expect.objectContaining({ name: 'InvalidSignatureError' }))
    const dup = [0, 1, 1].map(i => signVote(chain, validators[i], i, tx.id))
    expect(() => parseCertificate(chain, encodeCertificate(tx, dup))).toThrow(expect.objectContaining({ name: 'InvalidMessageError' }))
  })
})

function mutate (b: Uint8Array, pos: number, byte: number): Uint8Array {
  const c = Uint8Array.from(b)
  if (c.length > 0) {
    c[pos % c.length] = byte
  }
  return c
}
