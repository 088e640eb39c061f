/**
 * Devnet soak (issue 12, "memory per node after 30 minutes"): runs `neuroshard devnet` as a child process with
 * its defaults (4 nodes in one process, training, serving, running the ledger) and every SAMPLE_S seconds reads
 * its own `/metrics` (resident set, JS heap), `/api/training` (round, newest validation loss) and `/api/ledger`
 * (the first node's balance and the number of its ledger outcomes). Prints one CSV line per sample, then stops
 * the devnet with SIGINT and prints its exit code.
 *
 * Run (after a build): `cd packages/node && ../../node_modules/.bin/node dist/bench/soak.js`
 * Settings (env): SOAK_MIN (30), SAMPLE_S (60), SOAK_DATA_DIR (/tmp/neuroshard-soak), SOAK_API_PORT (18555).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const MINUTES = Number(process.env.SOAK_MIN ?? 30)
const SAMPLE_S = Number(process.env.SAMPLE_S ?? 60)
const DATA_DIR = process.env.SOAK_DATA_DIR ?? '/tmp/neuroshard-soak'
const PORT = Number(process.env.SOAK_API_PORT ?? 18555)
const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'bin.js')
const base = `http://127.0.0.1:${PORT}`

/** A Prometheus sample's value (first series of `name`), NaN when absent */
function metric (text: string, name: string): number {
  const line = text.split('\n').find(l => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  return line == null ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1))
}

async function getJson (path: string): Promise<any> {
  const res = await fetch(base + path, { signal: AbortSignal.timeout(30_000) })
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
  return await res.json()
}

async function main (): Promise<void> {
  const load = (): string => loadavg().map(l => l.toFixed(2)).join(' ')
  process.stdout.write(`devnet soak ${new Date().toISOString()} node ${process.version} ${cpus().length}x ${cpus()[0]?.model ?? '?'} loadavg ${load()} minutes ${MINUTES}\n`)
  const child = spawn(process.execPath, [bin, 'devnet', '--data-dir', DATA_DIR, '--api-port', String(PORT), '--json'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderrTail = ''
  child.stderr.on('data', (b: Buffer) => { stderrTail = (stderrTail + b.toString()).slice(-4000) })
  const exited = once(child, 'exit')
  const t0 = performance.now()
  process.stdout.write('t_s,rss_mib,heap_used_mib,round,validation,balance_neuro,ledger_outcomes\n')
  const end = t0 + MINUTES * 60_000
  while (performance.now() < end) {
    await new Promise(resolve => setTimeout(resolve, SAMPLE_S * 1000))
    if (child.exitCode != null) break
    try {
      const text = await (await fetch(base + '/metrics', { signal: AbortSignal.timeout(30_000) })).text()
      const training = await getJson('/api/training')
      const ledger = await getJson('/api/ledger')
      const rss = metric(text, 'process_resident_memory_bytes') / 2 ** 20
      const heap = metric(text, 'nodejs_heap_size_used_bytes') / 2 ** 20
      const validation = training.validation?.at?.(-1)?.loss ?? ''
      const balance = ledger.enabled === true ? (Number(BigInt(ledger.balance) / 10n ** 15n) / 1000).toFixed(3) : ''
      process.stdout.write(`${Math.round((performance.now() - t0) / 1000)},${Math.round(rss)},${Math.round(heap)},${training.round ?? ''},${validation},${balance},${ledger.history?.length ?? ''}\n`)
    } catch (err: any) {
      // the API not up yet (data build, first spans): a sample is skipped, not the run
      process.stdout.write(`${Math.round((performance.now() - t0) / 1000)},,,,,,  # ${err.message}\n`)
    }
  }
  if (child.exitCode == null) child.kill('SIGINT')
  const [code, signal] = await exited
  process.stdout.write(`exit ${code ?? signal} loadavg after ${load()}\n`)
  if (code !== 0) {
    process.stderr.write(stderrTail)
    process.exitCode = 1
  }
}

main().catch(err => { console.error(err); process.exit(1) })
