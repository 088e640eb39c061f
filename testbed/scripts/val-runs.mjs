#!/usr/bin/env node
// Issue 15: several runs of a scenario against several loopback runs at equal tokens (compareRunSets): every run's
// validation loss averaged over one common window of tokens (default: the second half of the shortest run's), the
// gap of the two sets' means, its 95 % interval from the run-to-run spread, and the verdict against ±3 %.
//   node scripts/val-runs.mjs results/<run>.json ... -- results/<loopback>.json ... [--batches k] [--from t] [--to t]
// --batches k: the same runs on the first k batches of their validation (the per-batch losses of node 5db8a0f).
// Tokens: distinct tokens (node ca0a356: replicas' shared batches once) when every run has them, else as counted;
// --counted: as counted (every replica's steps) even then.
import { readFileSync } from 'node:fs'
import { compareRunSets } from '../dist/src/netns/runner.js'

const args = process.argv.slice(2)
const opt = (name) => { const i = args.indexOf(name); if (i < 0) return undefined; const v = Number(args[i + 1]); args.splice(i, 2); return v }
const counted = args.includes('--counted'); if (counted) args.splice(args.indexOf('--counted'), 1)
const batches = opt('--batches')
const fromTokens = opt('--from')
const toTokens = opt('--to')
const sep = args.indexOf('--')
if (sep < 1 || sep === args.length - 1) { console.error('usage: val-runs.mjs <run.json>... -- <loopback.json>... [--batches k] [--from t] [--to t]'); process.exit(2) }
const load = (f) => { const r = JSON.parse(readFileSync(f, 'utf8')); const x = (Array.isArray(r) ? r : [r]).find(y => y?.valLossByRound != null && y?.tokensByRound != null); if (x == null) throw new Error(`${f}: no valLossByRound / tokensByRound`); return { ...x, name: f.replace(/^.*\//, '').replace(/\.json$/, '') } }
let runs = args.slice(0, sep).map(load)
let loops = args.slice(sep + 1).map(load)
const distinct = !counted && [...runs, ...loops].every(r => r.distinctTokensByRound != null)
if (distinct) { runs = runs.map(r => ({ ...r, tokensByRound: r.distinctTokensByRound })); loops = loops.map(r => ({ ...r, tokensByRound: r.distinctTokensByRound })) }
const sets = new Set([...runs, ...loops].map(r => r.valTokens ?? 'unknown'))
if (sets.size > 1) { console.error(`runs measured on different validation sets (tokens: ${[...sets].join(', ')})`); process.exit(2) }
const c = compareRunSets(runs, loops, { ...(batches != null ? { batches } : {}), ...(fromTokens != null ? { fromTokens } : {}), ...(toTokens != null ? { toTokens } : {}) })
const pct = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(1)} %`
const list = (xs) => xs.map(x => `${x.name} ${x.mean.toFixed(3)}`).join(', ')
console.log(`validation: ${batches != null ? `first ${batches} batches of ` : ''}${[...sets][0]} tokens; window ${c.fromTokens}-${c.toTokens} ${distinct ? 'distinct' : 'counted'} tokens (${c.points} points, every 640)`)
if (c.short.length > 0) console.log(`left out (under half the median run's tokens): ${c.short.map(s => `${s.name} (${s.tokens} tokens)`).join(', ')}`)
console.log(`runs (${c.runs.length}): ${list(c.runs)}; mean ${c.mean.toFixed(3)}, sd ${c.sd.toFixed(3)} (${(100 * c.sd / c.mean).toFixed(1)} %)`)
console.log(`loopback runs (${c.loopbacks.length}): ${list(c.loopbacks)}; mean ${c.loopbackMean.toFixed(3)}, sd ${c.loopbackSd.toFixed(3)} (${(100 * c.loopbackSd / c.loopbackMean).toFixed(1)} %)`)
console.log(`gap ${pct(c.gapPct)}, 95 % interval ${pct(c.ciPct[0])} to ${pct(c.ciPct[1])}: ${c.verdict === 'met' ? 'within ±3 %: met' : c.verdict === 'not met' ? 'outside ±3 %: NOT met' : 'not decided at ±3 % (the interval crosses ±3 %)'}`)
