/**
 * Child process of the crash test: applies certificates from a file into a ledger database in a
 * random order and small batches, printing one line per stored batch, until done or killed.
 * Run with the repo's Node on the compiled file: node dist/test/crash-child.js <db> <certs file> <genesis> <seed> [prune]
 * With `prune`, after every few batches validators 0-2 (test keys) certify a checkpoint of the state and the
 * ledger prunes behind it.
 */
import { readFile } from 'node:fs/promises'
import { genesisFromJSON } from '../src/genesis.js'
import { Ledger } from '../src/ledger.js'
import { signCheckpoint } from '../src/checkpoint.js'
import { Wallet } from '../src/keys.js'

const [db, certsFile, genesisFile, seedArg, mode] = process.argv.slice(2)
const prune = mode === 'prune'
let seed = Number(seedArg) >>> 0
const rnd = (): number => {
  seed = (seed + 0x6D2B79F5) >>> 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const genesis = genesisFromJSON(await readFile(genesisFile, 'utf8'))
const certs = (await readFile(certsFile, 'utf8')).trim().split('\n').map(l => Uint8Array.from(Buffer.from(l, 'base64')))
const ledger = await Ledger.open({ genesis, path: db, pruneOnCheckpoint: prune })
const signers = [0, 1, 2].map(i => Wallet.fromSeed(`validator-${i}`))
for (let i = certs.length - 1; i > 0; i--) {
  const j = Math.floor(rnd() * (i + 1))
  ;[certs[i], certs[j]] = [certs[j], certs[i]]
}
process.stdout.write('ready\n')
let i = 0
while (i < certs.length) {
  const n = 1 + Math.floor(rnd() * 5)
  await ledger.addCertificates(certs.slice(i, i + n))
  i += n
  process.stdout.write(`batch ${i}\n`)
  if (prune && rnd() < 0.3) {
    const p = ledger.proposeCheckpoint()
    if (p != null) {
      for (const [k, w] of signers.entries()) {
        await ledger.addCheckpointVote(p, signCheckpoint(ledger.chain, w, k, p.height, p.snapshotHash))
      }
      process.stdout.write(`checkpoint ${p.height}\n`)
    }
  }
}
await ledger.close()
process.stdout.write('done\n')
