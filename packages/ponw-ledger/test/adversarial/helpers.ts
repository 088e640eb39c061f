import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'vitest'
import { Ledger } from '../../src/ledger.js'
import { validators } from '../fixtures.js'
import type { Chain } from '../../src/genesis.js'
import type { LedgerCertificate, LedgerTx } from '../../src/messages.js'
import type { ProofVerifier } from '../../src/verify.js'

/** Four validator ledgers on real level stores, and what is needed to restart them */
export class Net {
  readonly vals: Ledger[] = []
  readonly dirs: string[] = []
  /** certificates of the honest messages (what a node that never saw the attack receives) */
  readonly honest: LedgerCertificate[] = []

  constructor (readonly chain: Chain, readonly verifier: ProofVerifier | undefined, readonly now: () => number) {}

  static async open (chain: Chain, verifier?: ProofVerifier, now: () => number = () => 1000, n = 4): Promise<Net> {
    const net = new Net(chain, verifier, now)
    for (const w of validators.slice(0, n)) {
      const dir = await mkdtemp(join(tmpdir(), 'ponw-adv-'))
      net.dirs.push(dir)
      net.vals.push(await Ledger.open({ genesis: chain, path: dir, wallet: w, verifier, now }))
    }
    return net
  }

  /** Votes with the first three validators and hands the votes to all four; returns the certificate */
  async finalise (tx: LedgerTx, honest = true): Promise<LedgerCertificate> {
    const votes = []
    for (const l of this.vals.slice(0, 3)) votes.push(await l.vote(tx))
    let cert: LedgerCertificate | undefined
    for (const l of this.vals) {
      for (const v of votes) {
        cert = (await l.addVote(tx, v)) ?? cert
      }
    }
    if (cert == null) throw new Error('no certificate')
    if (honest) this.honest.push(cert)
    return cert
  }

  /**
   * Every validator restarts from its store into the state it had, and that state equals the state of a
   * fresh node that only ever received the honest certificates.
   */
  async expectRestartMatchesHonest (): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-adv-fresh-'))
    const fresh = await Ledger.open({ genesis: this.chain, path: dir, now: this.now })
    try {
      await fresh.addCertificates(this.honest)
      for (let i = 0; i < this.vals.length; i++) {
        const before = this.vals[i].stateHash()
        await this.vals[i].close()
        this.vals[i] = await Ledger.open({ genesis: this.chain, path: this.dirs[i], wallet: validators[i], verifier: this.verifier, now: this.now })
        expect(this.vals[i].stateHash()).toBe(before)
        await this.vals[i].verifyStored()
        expect(this.vals[i].stateHash()).toBe(fresh.stateHash())
      }
    } finally {
      await fresh.close()
      await rm(dir, { recursive: true, force: true })
    }
  }

  async close (): Promise<void> {
    await Promise.allSettled(this.vals.map(async l => l.close()))
    await Promise.allSettled(this.dirs.map(async d => rm(d, { recursive: true, force: true })))
  }
}
