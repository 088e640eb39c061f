/**
 * Child process of the crash test: applies certificates from a file into a ledger database in a
 * random order and small batches, printing one line per stored batch, until done or killed.
 * Run with the repo's Node on the compiled file: node dist/test/crash-child.js <db> <certs file> <seed>
 */
import { readFile } from 'node:fs/promises'
import { genesisFromJSON } from '../src/genesis.js'
import { Ledger } from '../src/ledger.js'

const [db, certsFile, genesisFile, seedArg] = process.argv.slice(2)
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
const ledger = await Ledger.open({ genesis, path: db })
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
}
await ledger.close()
process.stdout.write('done\n')
