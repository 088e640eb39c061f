import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { encodeCertificate, signVote } from '../src/messages.js'
import { ensureBuilt } from './build.js'
import { alice, bob, certify, sign, testGenesis, validators } from './fixtures.js'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')

describe('signature verification in worker threads', () => {
  it('verifies batches in parallel workers; one forged vote rejects the whole page and changes nothing', async () => {
    // worker threads need the compiled worker file
    ensureBuilt()
    const dist = await import(pathToFileURL(join(pkg, 'dist', 'src', 'index.js')).href)
    const genesis = testGenesis()
    const chain = dist.loadChain(genesis)
    const pool = new dist.SignatureVerifierPool({ workers: 2 })
    expect(pool.size).toBe(2)
    const dir = await mkdtemp(join(tmpdir(), 'ponw-pool-'))
    const ledger = await dist.Ledger.open({ genesis: chain, path: dir, verifierPool: pool })
    try {
      const certs = Array.from({ length: 40 }, (_, i) => certify(chain, sign(chain, alice, BigInt(i), { kind: 'transfer', to: bob.address, amount: NEURO })))
      const results = await pool.verify([
        { signature: alice.signDigest(new Uint8Array(32)), digest: new Uint8Array(32), publicKey: alice.publicKey },
        ...Array.from({ length: 20 }, () => ({ signature: bob.signDigest(new Uint8Array(32).fill(1)), digest: new Uint8Array(32).fill(1), publicKey: alice.publicKey }))
      ])
      expect(results[0]).toBe(true)
      expect(results.slice(1).every((r: boolean) => !r)).toBe(true)
      // forge one vote in the middle of the page
      const tx = sign(chain, alice, 20n, { kind: 'transfer', to: bob.address, amount: NEURO })
      const forged = encodeCertificate(tx, [0, 1, 2].map(i => signVote(chain, validators[i === 2 ? 3 : i], i, tx.id)))
      const page = [...certs.slice(0, 20), forged, ...certs.slice(21)]
      const before = ledger.stateHash()
      await expect(ledger.addCertificates(page)).rejects.toHaveProperty('name', 'InvalidSignatureError')
      expect(ledger.stateHash()).toBe(before)
      await ledger.addCertificates(certs)
      expect(ledger.balance(bob.address)).toBe(140n * NEURO)
    } finally {
      await ledger.close()
      await pool.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
