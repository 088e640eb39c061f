import { NEURO } from '../src/amount.js'
import { createGenesis, loadChain } from '../src/genesis.js'
import { Wallet, toHex } from '../src/keys.js'
import { encodeCertificate, signTx, signVote } from '../src/messages.js'
import type { Chain, GenesisConfig } from '../src/genesis.js'
import type { LedgerTx, TxBody } from '../src/messages.js'

/** Fixed test keys (never use seeded keys for real funds) */
export const validators = [0, 1, 2, 3].map(i => Wallet.fromSeed(`validator-${i}`))
export const alice = Wallet.fromSeed('alice')
export const bob = Wallet.fromSeed('bob')
export const carol = Wallet.fromSeed('carol')
export const dave = Wallet.fromSeed('dave')

export function testGenesis (overrides: Partial<GenesisConfig> = {}): GenesisConfig {
  return createGenesis({
    network: 'neuroshard-test',
    genesisTimeMs: 0,
    validators: validators.map(v => ({ publicKey: toHex(v.publicKey), stake: 1000n * NEURO })),
    allocations: [
      { address: alice.address, balance: 1000n * NEURO },
      { address: bob.address, balance: 100n * NEURO },
      { address: carol.address, balance: 10n * NEURO }
    ],
    ...overrides
  })
}

export function testChain (overrides: Partial<GenesisConfig> = {}): Chain {
  return loadChain(testGenesis(overrides))
}

/** Certificate signed by the first `n` validators (default 3 of 4: > 2/3 of equal stakes) */
export function certify (chain: Chain, tx: LedgerTx, n = 3): Uint8Array {
  return encodeCertificate(tx, validators.slice(0, n).map((v, i) => signVote(chain, v, i, tx.id)))
}

export function sign (chain: Chain, w: Wallet, seq: bigint, body: TxBody, epoch = 0n): LedgerTx {
  return signTx(chain, w, seq, epoch, body)
}

/** Deterministic PRNG (mulberry32) for shuffles */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function shuffle<T> (xs: T[], rnd: () => number): T[] {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[a[i], a[j]] = [a[j], a[i]]
  }
  return a
}
