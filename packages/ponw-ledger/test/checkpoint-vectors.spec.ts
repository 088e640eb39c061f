import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { checkpointDigest, snapshotOf, verifyCheckpoint } from '../src/checkpoint.js'
import { genesisFromJSON, loadChain } from '../src/genesis.js'
import { fromHex, toHex } from '../src/keys.js'
import { parseCertificate } from '../src/messages.js'
import { LedgerState } from '../src/state.js'
import { prng, shuffle } from './fixtures.js'

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs', 'ponw-ledger', 'vectors')
const chain = loadChain(genesisFromJSON(readFileSync(join(dir, 'genesis.json'), 'utf8')))
const v = JSON.parse(readFileSync(join(dir, 'checkpoints.json'), 'utf8'))

describe('checkpoint vectors (specs/ponw-ledger/vectors/checkpoints.json)', () => {
  it('the final messages give the snapshot, its hash, height and checkpoint digest in every order; the certificate verifies', () => {
    expect(chain.chainIdHex).toBe(v.chainId)
    const txs = v.certificates.map((c: string) => parseCertificate(chain, fromHex(c)).tx)
    for (let seed = 0; seed < 5; seed++) {
      const s = new LedgerState(chain)
      s.addFinal(shuffle(txs, prng(seed)))
      const snap = snapshotOf(s)
      expect(new TextDecoder().decode(snap.bytes)).toBe(v.expected.snapshot)
      expect(toHex(snap.hash)).toBe(v.expected.snapshotHash)
      expect(snap.height.toString()).toBe(v.expected.height)
    }
    expect(toHex(checkpointDigest(chain, BigInt(v.expected.height), fromHex(v.expected.snapshotHash)))).toBe(v.expected.checkpointDigest)
    const { certificate, state } = verifyCheckpoint(chain, fromHex(v.expected.certificate), new TextEncoder().encode(v.expected.snapshot))
    expect(certificate.votes.map(x => x.validator)).toEqual([0, 1, 2])
    expect(state.queued.size).toBe(0)
  })

  it('each invalid checkpoint is refused with its error', () => {
    expect(v.invalid.cases.length).toBeGreaterThanOrEqual(7)
    for (const c of v.invalid.cases) {
      let name = 'accepted'
      try {
        verifyCheckpoint(chain, fromHex(c.certificate), new TextEncoder().encode(c.snapshot))
      } catch (err: any) {
        name = err.name
      }
      expect(`${c.description}: ${name}`).toBe(`${c.description}: ${c.error}`)
    }
  })
})
