/**
 * Checkpoint benchmarks of @neuroshard/ponw-ledger (issue 13): memory and disk per N final messages with and
 * without pruning behind certified checkpoints, and the sync time of a new node from a certified checkpoint
 * vs from genesis. Build, then run with the repo's Node:
 *   cd /work/main && node_modules/.bin/tsc -b packages/ponw-ledger && (cd packages/ponw-ledger && \
 *     ../../node_modules/.bin/node --expose-gc dist/bench/checkpoint.js)
 * Env: N (default 100000) final messages, TAIL (default 1000) messages after the last checkpoint,
 * INTERVAL (default 10000) messages between checkpoints. Messages: transfers of 100 senders to one
 * recipient (101 accounts, no proof keys), one validator (1 vote per certificate). Prints a table and
 * writes bench-results/checkpoint.json.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { NEURO } from '../src/amount.js'
import { createGenesis, loadChain } from '../src/genesis.js'
import { Wallet, toHex } from '../src/keys.js'
import { Ledger } from '../src/ledger.js'
import { encodeCertificate, signTx, signVote } from '../src/messages.js'
import { snapshotOf } from '../src/checkpoint.js'
import { SignatureVerifierPool } from '../src/verify-pool.js'
import { createTestNode } from '../test/net-helpers.js'
import type { Chain } from '../src/genesis.js'

const here = dirname(fileURLToPath(import.meta.url))
const resultsDir = join(here, '..', '..', 'bench-results')
const N = Number(process.env.N ?? 100_000)
const TAIL = Number(process.env.TAIL ?? 1000)
const INTERVAL = Number(process.env.INTERVAL ?? 10_000)
const SENDERS = 100
const validator = Wallet.fromSeed('bench-validator-0')
const senders = Array.from({ length: SENDERS }, (_, i) => Wallet.fromSeed(`bench-sender-${i}`))
const recipient = Wallet.fromSeed('bench-recipient')

function chainOf (): Chain {
  return loadChain(createGenesis({
    network: 'neuroshard-bench',
    validators: [{ publicKey: toHex(validator.publicKey), stake: 1000n * NEURO }],
    allocations: senders.map(s => ({ address: s.address, balance: 1_000_000n * NEURO }))
  }))
}

function makeCerts (from: number, to: number): Uint8Array[] {
  const chain = chainOf()
  const out: Uint8Array[] = []
  for (let i = from; i < to; i++) {
    const tx = signTx(chain, senders[i % SENDERS], BigInt(Math.floor(i / SENDERS)), 0n, { kind: 'transfer', to: recipient.address, amount: 1000n })
    out.push(encodeCertificate(tx, [signVote(chain, validator, 0, tx.id)]))
  }
  return out
}

if (!isMainThread) {
  parentPort!.postMessage(makeCerts(workerData.from, workerData.to))
} else if (process.env.CKB_MEMORY != null) {
  await memoryRun(process.env.CKB_MEMORY === 'prune')
} else {
  await main()
}

/** the same certificates bench.ts caches (`certs-1v-1q-<n>.bin`), generated in worker threads if absent */
async function cachedCerts (n: number): Promise<Uint8Array[]> {
  const file = join(resultsDir, `certs-1v-1q-${n}.bin`)
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
  const threads = availableParallelism()
  const per = Math.ceil(n / threads)
  const parts = await Promise.all(Array.from({ length: threads }, async (_, k) => new Promise<Uint8Array[]>((resolve, reject) => {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { from: k * per, to: Math.min(n, (k + 1) * per) } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  const certs = parts.flat()
  const bufs: Buffer[] = []
  for (const c of certs) {
    const h = Buffer.alloc(4)
    h.writeUInt32BE(c.length)
    bufs.push(h, Buffer.from(c))
  }
  await writeFile(file, Buffer.concat(bufs))
  return certs
}

async function dirBytes (dir: string): Promise<number> {
  let total = 0
  for (const f of await readdir(dir)) {
    total += (await stat(join(dir, f))).size
  }
  return total
}

function heap (): number {
  for (let i = 0; i < 3; i++) (globalThis as any).gc?.()
  return process.memoryUsage().heapUsed
}

/** certifies the ledger's own proposal with its (only) validator's vote: adopted (and pruned) at once */
async function checkpoint (l: Ledger): Promise<void> {
  const p = l.proposeCheckpoint()
  if (p == null) throw new Error('nothing to checkpoint')
  const vote = await l.signCheckpoint(p)
  await l.addCheckpointVote(p, vote)
  if (l.checkpoint?.height !== p.height) throw new Error('checkpoint not adopted')
}

/** one memory/disk measurement (in its own process): prints one JSON line */
async function memoryRun (prune: boolean): Promise<void> {
  const chain = chainOf()
  const certs = (await cachedCerts(N + TAIL)).slice(0, N)
  const dir = await mkdtemp(join(tmpdir(), 'ponw-ckb-'))
  const h0 = heap()
  const l = await Ledger.open({ genesis: chain, path: dir, wallet: validator, pruneOnCheckpoint: prune })
  const t = performance.now()
  for (let i = 0; i < N; i += 5000) {
    await l.addCertificates(certs.slice(i, Math.min(N, i + 5000)), { verified: true })
    if (prune && (i + 5000) % INTERVAL === 0) await checkpoint(l)
  }
  const ms = performance.now() - t
  if (l.finalCount !== N) throw new Error(`not all final: ${l.finalCount}`)
  const mem = heap() - h0
  const kept = l.state.known.size
  const snapshot = snapshotOf(l.state).bytes.byteLength
  // LevelDB drops deleted entries only as it compacts, so files lag behind what is stored: count the live
  // keys and values too
  let live = 0
  for await (const [k, v] of l.store.db.iterator()) {
    live += Buffer.byteLength(k) + Buffer.byteLength(v)
  }
  await l.close()
  const files = await dirBytes(dir)
  await rm(dir, { recursive: true, force: true })
  process.stdout.write(JSON.stringify({ label: prune ? `pruned every ${INTERVAL}` : 'no pruning', n: N, seconds: +(ms / 1000).toFixed(2), heapBytes: mem, levelFilesBytes: files, liveKeyValueBytes: live, certificatesKept: kept, snapshotBytes: snapshot }) + '\n')
}

async function main (): Promise<void> {
  if ((globalThis as any).gc == null) throw new Error('run with node --expose-gc')
  await mkdir(resultsDir, { recursive: true })
  const chain = chainOf()
  const lines: string[] = []
  const out = (s: string): void => { lines.push(s); process.stdout.write(s + '\n') }
  out(`checkpoint bench ${new Date().toISOString()} node ${process.version} ${cpus().length}x ${cpus()[0]?.model} loadavg ${loadavg().map(x => x.toFixed(2)).join(' ')}`)
  let t = performance.now()
  const certs = await cachedCerts(N + TAIL)
  out(`(generated/loaded ${N + TAIL} certificates in ${((performance.now() - t) / 1000).toFixed(1)} s)`)
  const rows: Array<Record<string, unknown>> = []

  // 1. memory and disk per N final messages (applied + stored, signatures trusted), without and with pruning,
  //    each in a fresh process (so one run's garbage is not in the other's heap)
  for (const prune of [false, true]) {
    const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url)], { env: { ...process.env, CKB_MEMORY: prune ? 'prune' : 'none' }, encoding: 'utf8', maxBuffer: 1 << 24 })
    const line = child.stdout.trim().split('\n').pop() ?? ''
    if (child.status !== 0 || !line.startsWith('{')) throw new Error(`memory run failed: ${child.stderr}`)
    const r = JSON.parse(line)
    rows.push({ what: 'memory/disk', ...r })
    out(`${String(r.label).padEnd(20)} ${N} msgs in ${r.seconds.toFixed(2).padStart(6)} s  heap +${(r.heapBytes / 2 ** 20).toFixed(1).padStart(6)} MiB (${Math.round(r.heapBytes / N)} B/msg)  level files ${(r.levelFilesBytes / 2 ** 20).toFixed(1).padStart(6)} MiB, live keys+values ${(r.liveKeyValueBytes / 2 ** 20).toFixed(2).padStart(6)} MiB (${Math.round(r.liveKeyValueBytes / N)} B/msg)  certificates kept ${r.certificatesKept}  snapshot ${r.snapshotBytes} B`)
  }

  // 2. a new node syncs N + TAIL messages from a peer over loopback TCP (all signatures verified in 2 workers):
  //    from genesis (peer never pruned) vs from the peer's certified checkpoint at N plus the TAIL after it
  const pool = new SignatureVerifierPool({ workers: 2 })
  for (const fromCheckpoint of [false, true]) {
    const dirA = await mkdtemp(join(tmpdir(), 'ponw-ckb-a-'))
    const dirB = await mkdtemp(join(tmpdir(), 'ponw-ckb-b-'))
    const a = await createTestNode({ genesis: chain, path: dirA, wallet: validator, syncOnConnect: false, checkpoint: { prune: fromCheckpoint, interval: 0 } })
    const b = await createTestNode({ genesis: chain, path: dirB, syncOnConnect: false, verifierPool: pool, checkpoint: { sync: fromCheckpoint } })
    try {
      for (let i = 0; i < N; i += 5000) {
        await a.ledger.ledger.addCertificates(certs.slice(i, Math.min(N, i + 5000)), { verified: true })
        if (fromCheckpoint && (i + 5000) % INTERVAL === 0) await checkpoint(a.ledger.ledger)
      }
      await a.ledger.ledger.addCertificates(certs.slice(N, N + TAIL), { verified: true })
      await b.libp2p.dial(a.libp2p.getMultiaddrs()[0])
      t = performance.now()
      const added = await b.ledger.syncWith(a.libp2p.peerId)
      const ms = performance.now() - t
      const same = toHex(snapshotOf(b.ledger.ledger.state).hash) === toHex(snapshotOf(a.ledger.ledger.state).hash)
      if (!same || b.ledger.ledger.finalCount !== N + TAIL) throw new Error(`sync incomplete: ${added} added, ${b.ledger.ledger.finalCount} final`)
      const label = fromCheckpoint ? `from checkpoint at ${N} + ${TAIL}` : `from genesis, ${N + TAIL} msgs`
      const ck = b.ledger.ledger.checkpoint
      rows.push({ what: 'sync', label, n: N + TAIL, seconds: +(ms / 1000).toFixed(2), certificatesDownloaded: added, snapshotBytes: ck?.snapshot.byteLength ?? 0 })
      out(`sync ${label.padEnd(32)} ${(ms / 1000).toFixed(2).padStart(7)} s  certificates verified+applied ${String(added).padStart(6)}  snapshot ${ck?.snapshot.byteLength ?? 0} B`)
    } finally {
      await a.libp2p.stop()
      await b.libp2p.stop()
      await rm(dirA, { recursive: true, force: true })
      await rm(dirB, { recursive: true, force: true })
    }
  }
  await pool.close()
  out(`loadavg after ${loadavg().map(x => x.toFixed(2)).join(' ')}`)
  await writeFile(join(resultsDir, 'checkpoint.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, rows, printed: lines }, null, 2) + '\n')
  process.stdout.write(`wrote ${join(resultsDir, 'checkpoint.json')}\n`)
}
