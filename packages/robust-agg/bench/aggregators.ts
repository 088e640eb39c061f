/**
 * Time per aggregator for n ∈ {8, 16, 32} and d ∈ {10⁶} (quick, default) or {10⁶, 10⁷} (`--full`), with each
 * one's ratio to the plain mean measured in the same run (CPU time of this single-threaded process). Prints a table and writes JSON to bench-results/.
 *
 *   node_modules/.bin/tsc -b packages/robust-agg && node_modules/.bin/node packages/robust-agg/dist/bench/aggregators.js [--full]
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bucketing, centeredClip, compose, coordinateMedian, geometricMedian, krum, mean, multiKrum, nnm, trimmedMean } from '../src/index.js'
import type { Aggregator } from '../src/index.js'

const full = process.argv.includes('--full')
const only = process.argv.find(a => a.startsWith('--n='))
const ns = only != null ? [Number(only.slice(4))] : [8, 16, 32]
const ds = full ? [1_000_000, 10_000_000] : [1_000_000]
const GM_ITERATIONS = 3
const CC_ITERATIONS = 3

function randomInputs (n: number, d: number, seed: number): Float32Array[] {
  let s = seed >>> 0 || 1
  return Array.from({ length: n }, () => {
    const x = new Float32Array(d)
    for (let j = 0; j < d; j++) {
      s ^= s << 13; s >>>= 0
      s ^= s >>> 17
      s ^= s << 5; s >>>= 0
      x[j] = s / 4294967296 - 0.5
    }
    return x
  })
}

interface Row { n: number, d: number, f: number, aggregator: string, ms: number, meanMs: number, ratio: number, goal: string, goalRatio: number, iterations?: number }

/**
 * The machine may be shared: times are this process's CPU time (user + system, from process.cpuUsage; the code
 * is single-threaded), each aggregator's runs alternate with runs of the mean, and the ratio is
 * min(aggregator) / min(mean over the same window), so a burst of load elsewhere hits both sides.
 */
function cpuMs (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

function timePair (agg: Aggregator, base: Aggregator, inputs: Float32Array[], reps: number): { ms: number, baseMs: number, iterations?: number } {
  let best = Infinity
  let bestBase = Infinity
  let iterations: number | undefined
  for (let r = 0; r < reps; r++) {
    let t0 = cpuMs()
    base.aggregate(inputs)
    bestBase = Math.min(bestBase, cpuMs() - t0)
    t0 = cpuMs()
    const res = agg.aggregate(inputs)
    best = Math.min(best, cpuMs() - t0)
    iterations = res.iterations
  }
  return { ms: best, baseMs: bestBase, iterations }
}

const rows: Row[] = []
for (const d of ds) {
  for (const n of ns) {
    const f = Math.floor(n / 4)
    const inputs = randomInputs(n, d, 12345 + n)
    const reps = d >= 10_000_000 ? 2 : 4
    const cc = centeredClip({ tau: 1, start: 'previous', maxIterations: 1 })
    const cases: Array<{ agg: Aggregator, goal: string, goalRatio: (it?: number) => number }> = [
      { agg: mean(), goal: '1', goalRatio: () => 1 },
      { agg: coordinateMedian(), goal: '≤ 4', goalRatio: () => 4 },
      { agg: trimmedMean({ f }), goal: '≤ 4', goalRatio: () => 4 },
      { agg: krum({ f }), goal: '≤ n/2', goalRatio: () => n / 2 },
      { agg: multiKrum({ f }), goal: '≤ n/2', goalRatio: () => n / 2 },
      { agg: compose(nnm({ f }), mean()), goal: '≤ n/2', goalRatio: () => n / 2 },
      { agg: compose(nnm({ f }), trimmedMean({ f })), goal: '—', goalRatio: () => NaN },
      { agg: compose(bucketing({ s: 2 }), coordinateMedian()), goal: '—', goalRatio: () => NaN },
      { agg: geometricMedian({ maxIterations: GM_ITERATIONS, tolerance: 0 }), goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1 },
      { agg: cc, goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1 },
      { agg: centeredClip({ tau: 1, start: 'median', maxIterations: CC_ITERATIONS, tolerance: 0 }), goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1 }
    ]
    // warm up the JIT on a small problem
    const small = randomInputs(n, 5000, 1)
    for (const c of cases) c.agg.aggregate(small)
    cc.setCentre(new Float32Array(d))
    const base = mean()
    for (const c of cases) {
      const { ms, baseMs: meanMs, iterations } = timePair(c.agg, base, inputs, reps)
      let name = c.agg.name
      if (c.agg === cc) name += ' (previous, L=1)'
      else if (name === 'centered-clip') name += ` (median, L=${CC_ITERATIONS})`
      else if (name === 'geometric-median') name += ` (${GM_ITERATIONS} it)`
      const row: Row = { n, d, f, aggregator: name, ms, meanMs, ratio: ms / meanMs, goal: c.goal, goalRatio: c.goalRatio(iterations), iterations }
      rows.push(row)
      process.stdout.write(`n=${String(n).padEnd(3)} d=${d.toExponential(0).padEnd(6)} f=${String(f).padEnd(2)} ${name.padEnd(40)} ${ms.toFixed(1).padStart(9)} ms (mean ${meanMs.toFixed(1).padStart(7)} ms)  ×${row.ratio.toFixed(2).padStart(6)}  goal ${c.goal}${Number.isFinite(row.goalRatio) ? ` (${row.goalRatio})` : ''}${Number.isFinite(row.goalRatio) && row.ratio > row.goalRatio ? '  MISSED' : ''}\n`)
    }
  }
}

const here = dirname(fileURLToPath(import.meta.url))
const outDir = join(here, '..', '..', 'bench-results')
mkdirSync(outDir, { recursive: true })
const file = join(outDir, `aggregators${full ? '-full' : ''}.json`)
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, full, rows }, null, 2))
process.stdout.write(`wrote ${file}\n`)
