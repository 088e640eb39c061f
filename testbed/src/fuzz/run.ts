/**
 * The long fuzz run: every target gets N inputs (default 10^5), then its accept-all variant gets a short
 * run that must be caught. Prints a results table and writes it (and JSON) to testbed/results/.
 *
 *   cd testbed && npx -y pnpm@10 run fuzz -- [--inputs 100000] [--only name,name] [--seed 1]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { failures, fuzz } from './engine.js'
import type { FuzzResult } from './engine.js'
import { TARGETS } from './targets/index.js'

const args = process.argv.slice(2)
const arg = (name: string): string | undefined => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined }
const inputs = Number(arg('inputs') ?? 100_000)
const seed = Number(arg('seed') ?? 1)
const only = arg('only')?.split(',')
const vulnerableInputs = Number(arg('vulnerable-inputs') ?? 2000)
/** results file name under testbed/results (several runs can go in parallel) */
const outName = arg('out') ?? 'fuzz'
// dist/src/fuzz/run.js → the testbed package directory
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

export function table (rows: Array<{ r: FuzzResult, caught: string, verdict: string }>): string {
  const head = '| target | mode | inputs | accepted | rejected (typed) | untyped errors | must-reject | junk accepted | crashes | hangs | p50 ms | p99 ms | max ms | heap after warm-up → end (MB) | RSS Δ (MB) | accept-all variant caught | seconds | verdict |'
  const sep = '|' + head.split('|').slice(1, -1).map(() => '---').join('|') + '|'
  const lines = rows.map(({ r, caught, verdict }) => `| ${r.target} | ${r.mode} | ${r.inputs} | ${r.accepted} | ${r.rejected - r.untyped} | ${r.untyped} | ${r.mustReject} | ${r.junkAccepted} | ${r.crashes} | ${r.hangs} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.maxMs.toFixed(1)} | ${r.heapStartMB.toFixed(1)} → ${r.heapEndMB.toFixed(1)} | ${r.rssGrowthMB.toFixed(1)} | ${caught} | ${r.seconds.toFixed(0)} | ${verdict} |`)
  return [head, sep, ...lines].join('\n')
}

async function main (): Promise<void> {
  const rows: Array<{ r: FuzzResult, caught: string, verdict: string }> = []
  const started = new Date()
  const load0 = readFileSync('/proc/loadavg', 'utf8').trim()
  for (const t of TARGETS) {
    if (only != null && !only.includes(t.name)) continue
    process.stderr.write(`${t.name}: ${inputs} inputs\n`)
    const r = await fuzz(t.make(), { inputs, seed, onProgress: (d) => { if (d % 10_000 === 0) process.stderr.write(`  ${d}\n`) } })
    const v = await fuzz(t.vulnerable(), { inputs: vulnerableInputs, seed })
    const caught = v.junkAccepted > 0 ? `yes (${v.junkAccepted}/${v.inputs} junk accepted)` : 'NO'
    const f = failures(r)
    if (v.junkAccepted === 0) f.push('accept-all variant not caught')
    rows.push({ r, caught, verdict: f.length === 0 ? 'pass' : `FAIL: ${f.join('; ')}` })
    process.stderr.write(`  ${rows[rows.length - 1].verdict}\n`)
    for (const s of r.crashSamples) process.stderr.write(`  crash [${s.kind}] ${s.error}\n${s.stack}\n  input ${s.input}\n`)
    for (const s of r.hangSamples) process.stderr.write(`  hang [${s.kind}] input ${s.input}\n`)
    for (const s of r.junkSamples) process.stderr.write(`  junk accepted [${s.kind}] input ${s.input}\n`)
    for (const s of r.untypedSamples) process.stderr.write(`  untyped [${s.kind}] ${s.error} input ${s.input}\n`)
    write(rows, started, load0)
  }
  write(rows, started, load0)
  if (rows.some(x => x.verdict !== 'pass')) process.exitCode = 1
}

function write (rows: Array<{ r: FuzzResult, caught: string, verdict: string }>, started: Date, load0: string): void {
  const out = [
    `Command: \`cd testbed && npx -y pnpm@10 run fuzz -- ${args.join(' ')}\` (seed ${seed})`,
    `Date: ${started.toISOString()}; machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; load before: ${load0}; load after: ${readFileSync('/proc/loadavg', 'utf8').trim()}`,
    '',
    table(rows)
  ].join('\n')
  process.stdout.write(out + '\n\n')
  const dir = join(root, 'results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, `${outName}.md`), out + '\n')
  writeFileSync(join(dir, `${outName}.json`), JSON.stringify(rows.map(x => ({ ...x.r, caught: x.caught, verdict: x.verdict })), null, 2) + '\n')
}

await main()
