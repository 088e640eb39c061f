// The README example, run as a test so it keeps compiling and working.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
// --- README example start
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { NEURO, Wallet, createGenesis, formatNeuro, ponwLedger, saveKeystore, loadKeystore, toHex } from '../src/index.js'

async function example (dir: string): Promise<string> {
  // 1. a wallet, kept in an encrypted keystore (scrypt + XChaCha20-Poly1305, mode 0600)
  await saveKeystore(join(dir, 'wallet.json'), Wallet.generate(), 'a long passphrase', { scryptN: 2 ** 14 })
  const wallet = await loadKeystore(join(dir, 'wallet.json'), 'a long passphrase')
  const bob = Wallet.generate()

  // 2. a genesis: this node is the only validator and starts with 100 NEURO
  const genesis = createGenesis({
    network: 'readme-devnet',
    validators: [{ publicKey: toHex(wallet.publicKey), stake: 1000n * NEURO }],
    allocations: [{ address: wallet.address, balance: 100n * NEURO }]
  })

  // 3. the ledger as a libp2p service, next to gossipsub
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }),
      ledger: ponwLedger({ genesis, path: join(dir, 'ledger-db'), wallet })
    }
  })
  const ledger = node.services.ledger

  // 4. a transfer and a stake; they are final once > 2/3 of the validator stake signed them
  //    (proofs of work need a `verifier` with a check for their kind: validators refuse unchecked kinds)
  const final = new Promise<void>(resolve => {
    let n = 0
    ledger.addEventListener('ponw-ledger:outcome', () => { if (++n === 2) resolve() })
  })
  await ledger.send({ kind: 'transfer', to: bob.address, amount: 15n * NEURO / 10n })
  await ledger.send({ kind: 'stake', amount: 10n * NEURO }) // bonded: raises the reward multiplier
  await final

  const summary = `alice ${formatNeuro(ledger.ledger.balance(wallet.address))} NEURO, bob ${formatNeuro(ledger.ledger.balance(bob.address))} NEURO`
  const history = await ledger.ledger.history(wallet.address)
  await node.stop()
  return `${summary}; ${history.length} entries in alice's history`
}
// --- README example end

describe('README example', () => {
  it('runs', { timeout: 30_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-example-'))
    try {
      expect(await example(dir)).toBe('alice 88.5 NEURO, bob 1.5 NEURO; 2 entries in alice\'s history')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
