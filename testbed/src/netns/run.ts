/**
 * Runs scenarios and writes the results table:
 *
 *   cd testbed && npx -y pnpm@10 run scenario -- scenarios/home-links.json [more.json ...]
 *   cd testbed && npx -y pnpm@10 run scenario -- --all          (every scenarios/*.json)
 *   cd testbed && npx -y pnpm@10 run scenario -- --cleanup      (remove what an interrupted run left)
 *
 * Results: testbed/results/scenarios.md (table as printed) and scenarios.json, or <scenario>.md/.json for a single
 * scenario file; `--out <name>` for another name
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { basename, join } from 'node:path'
import { cleanupStale, probeEnvironment, testbedDir } from './env.js'
import { memoryTable, runScenario } from './runner.js'
import type { ScenarioResult } from './runner.js'
import { loadScenario } from './scenario.js'

const TESTBED = testbedDir()

export function scenarioTable (results: ScenarioResult[]): string {
  const head = '| scenario | links | nodes | converged after start (s) | events: reconverged after (s) | killed/cut-off nodes forgotten after (s) | inference ok / sent, p50 / p99 (s), tokens/s | failover, detected → next token: n, p50 / p99 (ms) | DiLoCo rounds, last val loss | val loss vs loopback run at equal tokens (last point: round, tokens: this / loopback, Δ; mean over the second half of the tokens) | bytes sent, eth0 tx all nodes / max node (MB) | max RSS per node (MB) | RSS slope after warm-up, median / max (MB/min) | frames in / lost / cut, late > 100 ms (emulator) | verdict |'
  const sep = '|' + head.split('|').slice(1, -1).map(() => '---').join('|') + '|'
  const f = (x: number | undefined): string => x == null ? 'no' : x.toFixed(1)
  const inf = (r: ScenarioResult): string => r.inference == null ? '–' : `${r.inference.ok} / ${r.inference.requests}, ${r.inference.p50S?.toFixed(2) ?? '–'} / ${r.inference.p99S?.toFixed(2) ?? '–'}, ${r.inference.tokensPerS?.toFixed(1) ?? '–'}`
  const forgotten = (r: ScenarioResult): string => r.events.filter(e => e.forgottenS != null || ((e.action === 'kill' || e.action === 'partition') && r.measuredForgetting !== false)).map(e => `${e.action}@${e.atS}s ${f(e.forgottenS)}`).join('; ') || '–'
  const fo = (r: ScenarioResult): string => r.failover == null ? '–' : `${r.failover.n}, ${r.failover.p50Ms.toFixed(0)} / ${r.failover.p99Ms.toFixed(0)}`
  const pct = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)} %`
  const w = (x: NonNullable<ScenarioResult['loopback']>['window']): string => x == null ? '' : `; mean of ${x.points} points at ${x.fromTokens}–${x.toTokens} tokens: ${x.loss.toFixed(3)} / ${x.loopbackLoss.toFixed(3)}, ${pct(x.diffPct)}`
  const lb = (r: ScenarioResult): string => r.loopback == null ? '–' : r.loopback.missing != null ? `no (${r.loopback.missing})` : `round ${r.loopback.round}, ${r.loopback.tokens} tokens: ${r.loopback.loss?.toFixed(3)} / ${r.loopback.loopbackLoss?.toFixed(3)} (${r.loopback.how === 'equal' ? `its round ${r.loopback.loopbackRounds?.[0]}` : `between its rounds ${r.loopback.loopbackRounds?.join(' and ')}`}), ${(r.loopback.diffPct ?? 0) >= 0 ? '+' : ''}${r.loopback.diffPct?.toFixed(1)} %${w(r.loopback.window)}${r.loopback.runs != null ? `; against ${r.loopback.runs.diffPct.length} loopback runs: ${r.loopback.runs.diffPct.map(pct).join(', ')}, mean ${pct(r.loopback.runs.meanPct)}${r.loopback.runs.loopbackSpreadPct != null ? ` (loopback runs against each other: ${pct(r.loopback.runs.loopbackSpreadPct[0])} to ${pct(r.loopback.runs.loopbackSpreadPct[1])})` : ''}` : ''}`
  const rows = results.map(r => `| ${r.scenario} | ${r.backend} | ${r.nodes} | ${f(r.startConvergeS)} | ${r.events.map(e => `${e.action}@${e.atS}s ${e.action === 'partition' ? '(cut)' : f(e.reconvergeS)}`).join('; ') || '–'} | ${forgotten(r)} | ${inf(r)} | ${fo(r)} | ${r.rounds ?? '–'}${r.valLoss != null ? `, ${r.valLoss.toFixed(3)}` : ''}${r.valLossServed != null ? ` (${r.valLossServed.length} measured as served)` : ''} | ${lb(r)} | ${r.bytesSent != null ? `${r.bytesSent.totalMB.toFixed(1)} / ${r.bytesSent.maxNodeMB.toFixed(1)}` : '–'} | ${r.maxRssMB.toFixed(0)} | ${r.rssSlopeMedian.toFixed(2)} / ${r.rssSlopeMax.toFixed(2)} | ${r.link.framesIn ?? '–'} / ${r.link.lost ?? '–'} / ${r.link.cut ?? '–'}, ${r.link.late100ms ?? '–'} | ${r.passed ? 'pass' : `FAIL: ${r.failures.join('; ')}`} |`)
  return [head, sep, ...rows].join('\n')
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  if (args.includes('--cleanup')) { console.log(`removed: ${cleanupStale().join(' ') || 'nothing'}`); return }
  const env = probeEnvironment()
  process.stderr.write(`environment: ${JSON.stringify(env)}\n`)
  if (env.missing != null) { console.error(`the testbed cannot run here: ${env.missing}`); process.exitCode = 2; return }
  const outIdx = args.indexOf('--out')
  const files = args.includes('--all')
    ? readdirSync(join(TESTBED, 'scenarios')).filter(f => f.endsWith('.json')).sort().map(f => join(TESTBED, 'scenarios', f))
    : args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--out')
  // one scenario file writes results/<its name>.md, so a single run does not replace the --all table
  const outName = outIdx >= 0 ? args[outIdx + 1] : files.length === 1 && !args.includes('--all') ? basename(files[0], '.json') : 'scenarios'
  const load0 = readFileSync('/proc/loadavg', 'utf8').trim()
  const date = new Date().toISOString()
  const results: ScenarioResult[] = []
  for (const file of files) results.push(await runScenario(loadScenario(file)))
  const out = [
    `Command: \`cd testbed && npx -y pnpm@10 run scenario -- ${args.join(' ')}\``,
    `Date: ${date}; machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; load before: ${load0}; load after: ${readFileSync('/proc/loadavg', 'utf8').trim()}; links: ${env.netem ? 'kernel netem' : 'user-space emulator (linkem.py: delay, jitter, loss, partitions) + kernel tbf (rate); this kernel has no sch_netem'}`,
    '',
    scenarioTable(results),
    ...(memoryTable(results) !== '' ? ['', memoryTable(results)] : []),
    ...results.flatMap(r => (r.notConverged ?? []).map(x => `\n${r.scenario}, ${x.phase}: not converged; the views agreed with stats lines up to 30 s old ${x.agreedWithStaleLinesS != null ? `after ${x.agreedWithStaleLinesS.toFixed(1)} s` : 'at no point'}; lacking at the deadline: ${Object.entries(x.lacking).map(([k, v]) => `${k}: ${v}`).join(' | ') || 'nothing (converged just after)'}`))
  ].join('\n')
  console.log(out)
  mkdirSync(join(TESTBED, 'results'), { recursive: true })
  writeFileSync(join(TESTBED, 'results', `${outName}.md`), out + '\n')
  writeFileSync(join(TESTBED, 'results', `${outName}.json`), JSON.stringify(results, null, 2) + '\n')
  if (results.some(r => !r.passed)) process.exitCode = 1
}

await main()
