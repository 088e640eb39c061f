import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { decodeAmount, encodeAmount } from '../src/amount.js'
import { genesisFromJSON, loadChain } from '../src/genesis.js'
import { Wallet, addressOf, digest, fromHex, toHex, verifyDigest } from '../src/keys.js'
import { parseCertificate, parseSignedTx } from '../src/messages.js'
import { LedgerState } from '../src/state.js'
import { prng, shuffle } from './fixtures.js'

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs', 'ponw-ledger', 'vectors')
const read = (f: string): any => JSON.parse(readFileSync(join(dir, f), 'utf8'))
const chain = loadChain(genesisFromJSON(readFileSync(join(dir, 'genesis.json'), 'utf8')))

describe('spec vectors (specs/ponw-ledger/vectors)', () => {
  it('keys: secret → public key → address', () => {
    for (const k of Object.values<any>(read('keys.json').wallets)) {
      const w = new Wallet(fromHex(k.secretKey))
      expect(toHex(w.publicKey)).toBe(k.publicKey)
      expect(w.address).toBe(k.address)
      expect(Wallet.fromSeed(k.seed).address).toBe(k.address)
    }
  })

  it('signing preimage, vote digest and amount encoding', () => {
    const v = read('preimage.json')
    expect(chain.chainIdHex).toBe(v.chainId)
    const d = digest(v.domain, fromHex(v.chainId), fromHex(v.txBytes))
    expect(toHex(d)).toBe(v.digest)
    expect(verifyDigest(fromHex(v.signature), d, fromHex(v.publicKey))).toBe(true)
    expect(toHex(digest('neuroshard/ledger/v1/vote', fromHex(v.chainId), d))).toBe(v.voteDigest)
    expect(addressOf(fromHex(v.address.publicKey))).toBe(v.address.address)
    for (const a of v.amounts) {
      expect(toHex(encodeAmount(BigInt(a.value)))).toBe(a.bytes)
      expect(decodeAmount(fromHex(a.bytes))).toBe(BigInt(a.value))
    }
  })

  it('final messages produce the expected balances in every order', () => {
    const v = read('ledger.json')
    expect(chain.chainIdHex).toBe(v.chainId)
    const txs = v.messages.map((m: any) => {
      const c = parseCertificate(chain, fromHex(m.certificate))
      expect(c.tx.idHex).toBe(m.txId)
      expect(toHex(c.tx.signed)).toBe(m.signedTx)
      return c.tx
    })
    const orders = [txs, [...txs].reverse(), ...[1, 2, 3, 4, 5].map(s => shuffle(txs, prng(s)))]
    for (const order of orders) {
      const s = new LedgerState(chain)
      for (const t of order) {
        s.addFinal([t])
      }
      for (const [addr, a] of Object.entries<any>(v.expected.accounts)) {
        const got = s.get(addr)
        expect({ balance: got.balance.toString(), bonded: got.bonded.toString(), slashed: got.slashed.toString(), nextSeq: got.nextSeq.toString() }).toEqual(a)
      }
      expect(Object.fromEntries(Object.entries(s.totals).map(([k, x]) => [k, x.toString()]))).toEqual(v.expected.totals)
      expect(s.stateHash()).toBe(v.expected.stateHash)
    }
  })

  it('invalid inputs give the named errors', () => {
    for (const c of read('invalid.json').cases) {
      const fn = c.signedTx != null ? () => parseSignedTx(chain, fromHex(c.signedTx)) : () => parseCertificate(chain, fromHex(c.certificate))
      expect(fn, c.description).toThrow(expect.objectContaining({ name: c.error }))
    }
  })
})
