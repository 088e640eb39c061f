/**
 * Benchmarks of @neuroshard/ponw-ledger. Build, then run with the repo's Node:
 *   cd /work/main && node_modules/.bin/tsc -b packages/ponw-ledger && (cd packages/ponw-ledger && ../../node_modules/.bin/node dist/bench/bench.js)
 * Env: SYNC_N (default 100000) messages for the sync benchmark, SYNC_VALIDATORS (default 1; votes per
 * certificate = floor(2v/3)+1), N (default 3000) for the others, ONLY_SYNC=1 to run only the sync part.
 * Prints a table and writes bench-results/bench.json.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { NEURO } from '../src/amount.js'
import { createGenesis, loadChain } from '../src/genesis.js'
import { Wallet, digest, toHex, verifyBackend, verifyDigest } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { encodeCertificate, parseSignedTx, signTx, signVote } from '../src/messages.js'
import { SignatureVerifierPool } from '../src/verify-pool.js'
import { createTestNode, waitFor } from '../test/net-helpers.js'
import type { GenesisConfig } from '../src/genesis.js'

const here = dirname(fileURLToPath(import.meta.url))
const resultsDir = join(here, '..', '..', 'bench-results')
const N = Number(process.env.N ?? 3000)
const SYNC_N = Number(process.env.SYNC_N ?? 100_000)
const SENDERS = 100

function genesisFor (validators: Wallet[], senders: Wallet[]): GenesisConfig {
  return createGenesis({
    network: 'neuroshard-bench',
    validators: validators.map(v => ({ publicKey: toHex(v.publicKey), stake: 1000n * NEURO })),
    allocations: senders.map(s => ({ address: s.address, balance: 1_000_000n * NEURO }))
  })
}

const senders = Array.from({ length: SENDERS }, (_, i) => Wallet.fromSeed(`bench-sender-${i}`))
const recipient = Wallet.fromSeed('bench-recipient')

/** certificates for messages [from, to): sender i%SENDERS, sequence floor(i/SENDERS) */
function makeCerts (validatorCount: number, votes: number, from: number, to: number): Uint8Array[] {
  const vals = Array.from({ length: validatorCount }, (_, i) => Wallet.fromSeed(`bench-validator-${i}`))
  const chain = loadChain(genesisFor(vals, senders))
  const out: Uint8Array[] = []
  for (let i = from; i < to; i++) {
    const tx = signTx(chain, senders[i % SENDERS], BigInt(Math.floor(i / SENDERS)), 0n, { kind: 'transfer', to: recipient.address, amount: 1000n })
    out.push(encodeCertificate(tx, vals.slice(0, votes).map((v, k) => signVote(chain, v, k, tx.id))))
  }
  return out
}

if (!isMainThread) {
  const { validatorCount, votes, from, to } = workerData
  const certs = makeCerts(validatorCount, votes, from, to)
  parentPort!.postMessage(certs)
} else {
  await main()
}

/** generation in parallel worker threads (this same file) */
async function makeCertsParallel (validatorCount: number, votes: number, n: number): Promise<Uint8Array[]> {
  const threads = availableParallelism()
  const per = Math.ceil(n / threads)
  const parts = await Promise.all(Array.from({ length: threads }, async (_, k) => new Promise<Uint8Array[]>((resolve, reject) => {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { validatorCount, votes, from: k * per, to: Math.min(n, (k + 1) * per) } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  return parts.flat()
}

async function cachedCerts (validatorCount: number, votes: number, n: number): Promise<Uint8Array[]> {
  const file = join(resultsDir, `certs-${validatorCount}v-${votes}q-${n}.bin`)
  if (existsSync(file)) {
    const buf = await readFile(file)
    const out: Uint8Array[] = []
    for (let o = 0; o < buf.length;) {
      const len = buf.readUInt32BE(o)
      out.push(Uint8Array.from(buf.subarray(o + 4, o + 4 + len)))
      o += 4 + len
    }
    return out
  }
  const certs = await makeCertsParallel(validatorCount, votes, n)
  const parts: Buffer[] = []
  for (const c of certs) {
    const h = Buffer.alloc(4)
    h.writeUInt32BE(c.length)
    parts.push(h, Buffer.from(c))
  }
  await writeFile(file, Buffer.concat(parts))
  return certs
}

function rate (n: number, ms: number): number {
  return Math.round(n / (ms / 1000))
}

async function main (): Promise<void> {
  await mkdir(resultsDir, { recursive: true })
  const rows: Array<{ benchmark: string, n: number, seconds: number, perSecond: number }> = []
  const record = (benchmark: string, n: number, ms: number): void => {
    rows.push({ benchmark, n, seconds: +(ms / 1000).toFixed(2), perSecond: rate(n, ms) })
    process.stdout.write(`${benchmark.padEnd(64)} ${String(n).padStart(7)} ${(ms / 1000).toFixed(2).padStart(8)} s ${String(rate(n, ms)).padStart(8)} /s\n`)
  }
  process.stdout.write(`ledger bench ${new Date().toISOString()} node ${process.version} ${cpus().length}x ${cpus()[0]?.model ?? '?'} loadavg ${loadavg().map(l => l.toFixed(2)).join(' ')} signature checks: ${verifyBackend}\n`)
  const pool = new SignatureVerifierPool({ workers: 2 })

  const onlySync = process.env.ONLY_SYNC === '1'
  if (!onlySync) {
  // 1. raw signatures
  let t: number
  const w = Wallet.fromSeed('bench')
  const digests = Array.from({ length: N }, (_, i) => digest('bench', new Uint8Array([i & 255, i >> 8])))
  t = performance.now()
  const sigs = digests.map(d => w.signDigest(d))
  record('sign (1 thread)', N, performance.now() - t)
  t = performance.now()
  for (let i = 0; i < N; i++) {
    if (!verifyDigest(sigs[i], digests[i], w.publicKey)) throw new Error('bad')
  }
  record('verify (1 thread)', N, performance.now() - t)
  const checks = digests.map((d, i) => ({ signature: sigs[i], digest: d, publicKey: w.publicKey }))
  t = performance.now()
  const ok = await pool.verify(checks)
  if (!ok.every(Boolean)) throw new Error('bad')
  record('verify (2 worker threads)', N, performance.now() - t)

  // 2. verified messages: full decode + canonical checks + signature
  const vals4 = Array.from({ length: 4 }, (_, i) => Wallet.fromSeed(`bench-validator-${i}`))
  const chain4 = loadChain(genesisFor(vals4, senders))
  const certs4 = await cachedCerts(4, 3, N)
  const { parseCertificate } = await import('../src/messages.js')
  const signed = certs4.map(c => parseCertificate(chain4, c, { verifySignature: false, verifyVotes: false }).tx.signed)
  t = performance.now()
  for (const s of signed) parseSignedTx(chain4, s)
  record('verified messages: decode + sender signature (1 thread)', N, performance.now() - t)
  t = performance.now()
  const parsed = signed.map(s => parseSignedTx(chain4, s, { verifySignature: false }))
  const res = await pool.verify(parsed.map(p => ({ signature: p.signature, digest: p.id, publicKey: p.senderKey })))
  if (!res.every(Boolean)) throw new Error('bad')
  record('verified messages: decode + sender signature (2 workers)', N, performance.now() - t)

  // 3. finalised messages: certificate (sender + 3 of 4 validator signatures) verified, applied, stored
  for (const [label, usePool] of [['1 thread', false], ['2 workers', true]] as const) {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-bench-'))
    const ledger = await Ledger.open({ genesis: chain4, path: dir, verifierPool: usePool ? pool : undefined })
    t = performance.now()
    for (let i = 0; i < certs4.length; i += 500) {
      await ledger.addCertificates(certs4.slice(i, i + 500))
    }
    record(`finalised messages, 4 validators, 3 votes each (${label})`, N, performance.now() - t)
    if (ledger.state.known.size !== N || ledger.state.queued.size !== 0) throw new Error('not all applied')
    await ledger.close()
    await rm(dir, { recursive: true, force: true })
  }

  }

  // 4. sync of SYNC_N messages from a peer over a real libp2p connection (loopback TCP)
  const syncValidators = Number(process.env.SYNC_VALIDATORS ?? 1)
  for (const [validators, votes] of [[syncValidators, Math.floor(2 * syncValidators / 3) + 1]]) {
    const vals = Array.from({ length: validators }, (_, i) => Wallet.fromSeed(`bench-validator-${i}`))
    const chain = loadChain(genesisFor(vals, senders))
    let t = performance.now()
    const certs = await cachedCerts(validators, votes, SYNC_N)
    process.stdout.write(`(generated/loaded ${SYNC_N} certificates in ${((performance.now() - t) / 1000).toFixed(1)} s)\n`)
    const dirA = await mkdtemp(join(tmpdir(), 'ponw-bench-a-'))
    const dirB = await mkdtemp(join(tmpdir(), 'ponw-bench-b-'))
    const a = await createTestNode({ genesis: chain, path: dirA, syncOnConnect: false })
    const b = await createTestNode({ genesis: chain, path: dirB, syncOnConnect: false, verifierPool: pool })
    try {
      t = performance.now()
      for (let i = 0; i < certs.length; i += 5000) {
        await a.ledger.ledger.addCertificates(certs.slice(i, i + 5000), { verified: true })
      }
      process.stdout.write(`(peer prefilled in ${((performance.now() - t) / 1000).toFixed(1)} s, trusted)\n`)
      await b.libp2p.dial(a.libp2p.getMultiaddrs()[0])
      t = performance.now()
      const added = await b.ledger.syncWith(a.libp2p.peerId)
      const ms = performance.now() - t
      if (added !== SYNC_N || b.ledger.ledger.stateHash() !== a.ledger.ledger.stateHash()) throw new Error(`sync incomplete: ${added}`)
      record(`sync from a peer, ${validators} validator(s), ${votes} vote(s) per cert, fully verified (2 workers)`, SYNC_N, ms)
      void waitFor
    } finally {
      await a.libp2p.stop()
      await b.libp2p.stop()
      await rm(dirA, { recursive: true, force: true })
      await rm(dirB, { recursive: true, force: true })
    }
  }
  await pool.close()
  const result = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, rows }
  await writeFile(join(resultsDir, onlySync ? 'bench-sync.json' : 'bench.json'), JSON.stringify(result, null, 2) + '\n')
  process.stdout.write(`loadavg after ${loadavg().map(l => l.toFixed(2)).join(' ')}\n`)
  process.stdout.write(`wrote ${join(resultsDir, onlySync ? 'bench-sync.json' : 'bench.json')}\n`)
}
