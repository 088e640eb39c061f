#!/usr/bin/env node
// Issue 15: each Driver `failover` line of a node-failover run, placed against every node's `stall`, `gc`, `serving`,
// `slow-hop` and `link-opened` lines (neuroshard start --json, node b894ca9 and later: `at` = wall ms, one clock for all the testbed's nodes)
// in the window from the failure's detection to the recovery's token. Prints one block per failover, slowest first.
// usage: node scripts/failover-context.mjs <logs dir of a run> [slack ms, default 50]
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.argv[2]
const slack = Number(process.argv[3] ?? 50)
if (dir == null) { console.error('usage: failover-context.mjs <logs dir> [slack ms]'); process.exit(2) }
const lines = []
for (const f of readdirSync(dir).filter(f => f.endsWith('.log')).sort()) {
  const name = f.replace(/\.log$/, '')
  let life = 0
  for (const l of readFileSync(join(dir, f), 'utf8').split('\n')) {
    if (l.startsWith('# start')) life++
    if (!l.startsWith('{')) continue
    try {
      const e = JSON.parse(l)
      if (typeof e.at === 'number') lines.push({ name, life, e })
    } catch {}
  }
}
const failovers = lines.filter(x => x.e.event === 'failover').sort((a, b) => b.e.ms - a.e.ms)
const fmt = x => { const { event, at, node, ...rest } = x.e; return `${x.name}#${x.life} ${event} ${JSON.stringify(rest)}` }
for (const f of failovers) {
  const p = f.e.phases ?? {}
  // the token came at `at`; the recovery's detection was total - detect earlier than the first failure was written… the window: from the failure seen (at - ms) to the token
  const from = f.e.at - f.e.ms - slack
  const to = f.e.at + slack
  console.log(`${new Date(f.e.at).toISOString()} ${f.name} failover ${f.e.ms} ms (embed ${p.embed}, link ${p.link}, chain ${p.chain}; tokens ${f.e.tokens}, hop ${f.e.hop}, direct ${f.e.direct})`)
  // a stall / gc line's `at` is when it ended: one that ended in the window, or one running into it (at - ms < to)
  const near = lines.filter(x => x !== f && x.e.event !== 'failover' && x.e.event !== 'memory' && (x.e.at >= from && (x.e.at - (x.e.ms ?? x.e.buildMs ?? 0)) <= to))
  for (const x of near.sort((a, b) => a.e.at - b.e.at)) console.log(`  ${x.e.at - f.e.at} ms: ${fmt(x)}`)
  if (near.length === 0) console.log('  (no stall, gc, serving or slow-hop line of any node in the window)')
}
