#!/usr/bin/env node
// Every exact validation point of a run against a loopback run at equal tokens (the runner's compareLoopback prints
// the last one and the means over the second half):
//   node scripts/val-vs-loopback.mjs results/<run>.json results/<loopback>.json [from-tokens [to-tokens]]
// Prints per point the round, cumulative tokens, both losses (the loopback's at those tokens: its round with exactly
// those tokens, or linear in tokens between its rounds around them) and the difference; then n, median, min / max, how
// many points are within ±3 %, and the means of both over the second half of the points' tokens. Points from
// `from-tokens` (default 1: every point after training) to `to-tokens` (default: all).
import { readFileSync } from 'node:fs'
import { lossAtTokens, lossByTokens } from '../dist/src/netns/runner.js'

const [runFile, loopFile, fromArg, toArg] = process.argv.slice(2)
if (runFile == null || loopFile == null) { console.error('usage: val-vs-loopback.mjs <run.json> <loopback.json> [from-tokens [to-tokens]]'); process.exit(2) }
const pick = (f) => { const r = JSON.parse(readFileSync(f, 'utf8')); return (Array.isArray(r) ? r : [r]).find(x => x?.valLossByRound != null && x?.tokensByRound != null) }
const run = pick(runFile)
const loop = pick(loopFile)
if (run == null || loop == null) { console.error('both results need valLossByRound and tokensByRound'); process.exit(2) }
const ours = lossByTokens(run.valLossByRound, run.tokensByRound)
const theirs = lossByTokens(loop.valLossByRound, loop.tokensByRound)
const from = Number(fromArg ?? 1)
const to = Number(toArg ?? Infinity)
const rows = []
for (const p of ours) {
  if (p.tokens < from || p.tokens > to) continue
  const at = lossAtTokens(theirs, p.tokens)
  if (at == null) continue
  rows.push({ round: p.round, tokens: p.tokens, loss: p.loss, loop: at.loss, at: at.how === 'equal' ? `round ${at.rounds[0]}` : `rounds ${at.rounds.join('-')}`, diff: 100 * (p.loss - at.loss) / at.loss })
}
const pct = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(1)} %`
console.log(`${runFile} vs ${loopFile}: exact points at equal tokens (${ours.length} in the run, ${theirs.length} in the loopback run)`)
console.log('| round | tokens | val loss | loopback val loss (at) | Δ |')
console.log('|---|---|---|---|---|')
for (const r of rows) console.log(`| ${r.round} | ${r.tokens} | ${r.loss.toFixed(3)} | ${r.loop.toFixed(3)} (${r.at}) | ${pct(r.diff)} |`)
const d = rows.map(r => r.diff).sort((a, b) => a - b)
if (d.length > 0) {
  const med = d.length % 2 === 1 ? d[(d.length - 1) / 2] : (d[d.length / 2 - 1] + d[d.length / 2]) / 2
  console.log(`\nn ${d.length}; Δ median ${pct(med)}, min ${pct(d[0])}, max ${pct(d.at(-1))}; within ±3 %: ${d.filter(x => Math.abs(x) <= 3).length} of ${d.length}`)
  const half = rows.filter(r => r.tokens >= rows.at(-1).tokens / 2)
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length
  const a = mean(half.map(r => r.loss)); const b = mean(half.map(r => r.loop))
  console.log(`second half (${half[0].tokens}-${half.at(-1).tokens} tokens, ${half.length} points): mean val loss ${a.toFixed(3)} / loopback ${b.toFixed(3)}, Δ ${pct(100 * (a - b) / b)}`)
}
