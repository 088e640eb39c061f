#!/usr/bin/env node
// Issue 15: failover after detection over several runs - the runner's percentiles (n, p50, p99 nearest rank, max) over
// every `{"event":"failover"}` line in the logs dirs given, and the ones over 200 ms. Needs the testbed built (dist).
// usage: node scripts/failovers-over-runs.mjs <logs dir> [<logs dir> …]
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { percentiles } from '../dist/src/netns/runner.js'

const dirs = process.argv.slice(2)
if (dirs.length === 0) { console.error('usage: failovers-over-runs.mjs <logs dir> [<logs dir> …]'); process.exit(2) }
const ms = []
for (const dir of dirs) {
  for (const f of readdirSync(dir).filter(f => f.endsWith('.log'))) {
    for (const l of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!l.startsWith('{"event":"failover"')) continue
      try { ms.push(JSON.parse(l).ms) } catch {}
    }
  }
}
const p = percentiles(ms)
const over = ms.filter(x => x > 200).sort((a, b) => a - b)
console.log(`runs: ${dirs.length}, failovers n = ${p.n}, p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms, max ${p.maxMs} ms, over 200 ms: ${over.length} (${over.join(', ')})`)
