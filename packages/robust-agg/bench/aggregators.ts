/**
 * Time per aggregator for n ∈ {8, 16, 32} and d ∈ {10⁶} (quick, default) or {10⁶, 10⁷} (`--full`), with each
 * one's ratio to the plain (single-threaded) mean measured in the same run (wall-clock time on a quiet machine;
 * median of interleaved rounds after a warm-up). The coordinate median, trimmed mean, geometric median and
 * CenteredClip run twice: on the calling thread, and with a 2-thread `AggregationPool` (inputs in shared
 * memory). Prints a table and writes JSON to bench-results/.
 *
 *   node_modules/.bin/tsc -b packages/robust-agg && node_modules/.bin/node packages/robust-agg/dist/bench/aggregators.js [--full]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bucketing, centeredClip, compose, coordinateMedian, createAggregationPool, geometricMedian, krum, mean, multiKrum, nnm, sharedFloat32Array, trimmedMean } from '../src/index.js'
import type { Aggregator } from '../src/index.js'

const full = process.argv.includes('--full')
const only = process.argv.find(a => a.startsWith('--n='))
const ns = only != null ? [Number(only.slice(4))] : [8, 16, 32]
const ds = full ? [1_000_000, 10_000_000] : [1_000_000]
const GM_ITERATIONS = 3
const CC_ITERATIONS = 3
const THREADS = 2
const pool = await createAggregationPool({ threads: THREADS })

function randomInputs (n: number, d: number, seed: number): Float32Array[] {
  let s = seed >>> 0 || 1
  return Array.from({ length: n }, () => {
    // shared memory, so the pooled rows can use worker threads (the single-threaded rows read it the same way)
    const x = sharedFloat32Array(d)
    for (let j = 0; j < d; j++) {
      s ^= s << 13; s >>>= 0
      s ^= s >>> 17
      s ^= s << 5; s >>>= 0
      x[j] = s / 4294967296 - 0.5
    }
    return x
  })
}

interface Row { n: number, d: number, f: number, aggregator: string, threads: number, ms: number, meanMs: number, ratio: number, minRatio: number, goal: string, goalRatio: number, met?: boolean, samples: number[], iterations?: number }

/**
 * Times are wall-clock (performance.now): the pooled rows use two threads, so this process's CPU time would
 * count their work twice. Run it on a quiet machine. For every (n, d) all aggregators are warmed up (a small
 * problem, then one full-size call each), then timed in `rounds` interleaved rounds: each round runs the mean,
 * then every aggregator, each followed by another run of the mean. A row's time is the median of its rounds
 * and its ratio is that median over the median of every mean run of the same (n, d) (the ratio of the fastest
 * runs, min/min, is printed and stored too; the goal is judged on the median ratio). The mean row is the
 * baseline (ratio 1 by definition), not a goal; it always runs on one thread.
 */
function nowMs (): number {
  return performance.now()
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const k = s.length >> 1
  return (s.length & 1) === 1 ? s[k] : (s[k - 1] + s[k]) / 2
}

function time (agg: Aggregator, inputs: Float32Array[]): { ms: number, iterations?: number } {
  const t0 = nowMs()
  const res = agg.aggregate(inputs)
  return { ms: nowMs() - t0, iterations: res.iterations }
}

const rows: Row[] = []
for (const d of ds) {
  for (const n of ns) {
    const f = Math.floor(n / 4)
    const inputs = randomInputs(n, d, 12345 + n)
    const rounds = d >= 10_000_000 ? 3 : 5
    const cc = centeredClip({ tau: 1, start: 'previous', maxIterations: 1 })
    const ccPooled = centeredClip({ tau: 1, start: 'previous', maxIterations: 1, pool })
    const base = mean()
    const cases: Array<{ agg: Aggregator, goal: string, goalRatio: (it?: number) => number, threads?: number }> = [
      { agg: coordinateMedian(), goal: '≤ 4', goalRatio: () => 4 },
      { agg: coordinateMedian({ pool }), goal: '≤ 4', goalRatio: () => 4, threads: THREADS },
      { agg: trimmedMean({ f }), goal: '≤ 4', goalRatio: () => 4 },
      { agg: trimmedMean({ f, pool }), goal: '≤ 4', goalRatio: () => 4, threads: THREADS },
      { agg: krum({ f }), goal: '≤ n/2', goalRatio: () => n / 2 },
      { agg: multiKrum({ f }), goal: '≤ n/2', goalRatio: () => n / 2 },
      { agg: compose(nnm({ f }), mean()), goal: '≤ n/2', goalRatio: () => n / 2 },
      { agg: compose(nnm({ f }), trimmedMean({ f })), goal: '—', goalRatio: () => NaN },
      { agg: compose(bucketing({ s: 2 }), coordinateMedian()), goal: '—', goalRatio: () => NaN },
      { agg: geometricMedian({ maxIterations: GM_ITERATIONS, tolerance: 0 }), goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1 },
      { agg: geometricMedian({ maxIterations: GM_ITERATIONS, tolerance: 0, pool }), goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1, threads: THREADS },
      { agg: cc, goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1 },
      { agg: ccPooled, goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1, threads: THREADS },
      { agg: centeredClip({ tau: 1, start: 'median', maxIterations: CC_ITERATIONS, tolerance: 0 }), goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1 },
      { agg: centeredClip({ tau: 1, start: 'median', maxIterations: CC_ITERATIONS, tolerance: 0, pool }), goal: '≤ it+1', goalRatio: it => (it ?? 0) + 1, threads: THREADS }
    ]
    const isPrevious = (a: Aggregator): a is typeof cc => a === cc || a === ccPooled
    // warm up the JIT on a small problem, then once at full size
    const small = randomInputs(n, 5000, 1)
    base.aggregate(small)
    for (const c of cases) c.agg.aggregate(small)
    cc.setCentre(new Float32Array(d))
    ccPooled.setCentre(new Float32Array(d))
    base.aggregate(inputs)
    for (const c of cases) {
      c.agg.aggregate(inputs)
      if (isPrevious(c.agg)) c.agg.setCentre(new Float32Array(d))
    }
    const meanSamples: number[] = []
    const samples = cases.map(() => [] as number[])
    const its: Array<number | undefined> = cases.map(() => undefined)
    for (let r = 0; r < rounds; r++) {
      meanSamples.push(time(base, inputs).ms)
      cases.forEach((c, k) => {
        // the L = 1 CenteredClip row always starts from the same stored centre
        if (isPrevious(c.agg)) c.agg.setCentre(new Float32Array(d))
        const { ms, iterations } = time(c.agg, inputs)
        samples[k].push(ms)
        its[k] = iterations
        meanSamples.push(time(base, inputs).ms)
      })
    }
    const meanMs = median(meanSamples)
    const meanMin = Math.min(...meanSamples)
    const emit = (row: Row): void => {
      rows.push(row)
      const verdict = row.met == null ? '' : row.met ? '  met' : '  MISSED'
      process.stdout.write(`n=${String(n).padEnd(3)} d=${d.toExponential(0).padEnd(6)} f=${String(f).padEnd(2)} ${row.aggregator.padEnd(52)} ${row.ms.toFixed(1).padStart(9)} ms (mean ${meanMs.toFixed(1).padStart(7)} ms)  ×${row.ratio.toFixed(2).padStart(6)} (min/min ×${row.minRatio.toFixed(2).padStart(5)})  goal ${row.goal}${Number.isFinite(row.goalRatio) ? ` (${row.goalRatio})` : ''}${verdict}\n`)
    }
    emit({ n, d, f, aggregator: 'mean (baseline)', threads: 1, ms: meanMs, meanMs, ratio: 1, minRatio: 1, goal: 'baseline', goalRatio: NaN, samples: meanSamples })
    cases.forEach((c, k) => {
      let name = c.agg.name
      if (isPrevious(c.agg)) name += ' (previous, L=1)'
      else if (name === 'centered-clip') name += ` (median, L=${CC_ITERATIONS})`
      else if (name === 'geometric-median') name += ` (${GM_ITERATIONS} it)`
      const threads = c.threads ?? 1
      if (threads > 1) name += ` [${threads} threads]`
      const ms = median(samples[k])
      const goalRatio = c.goalRatio(its[k])
      const ratio = ms / meanMs
      emit({ n, d, f, aggregator: name, threads, ms, meanMs, ratio, minRatio: Math.min(...samples[k]) / meanMin, goal: c.goal, goalRatio, met: Number.isFinite(goalRatio) ? ratio <= goalRatio : undefined, samples: samples[k], iterations: its[k] })
    })
  }
}

const here = dirname(fileURLToPath(import.meta.url))
const outDir = join(here, '..', '..', 'bench-results')
mkdirSync(outDir, { recursive: true })
const file = join(outDir, `aggregators${full ? '-full' : ''}.json`)
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, full, loadavg: readFileSync('/proc/loadavg', 'utf8').trim(), rows }, null, 2))
process.stdout.write(`wrote ${file}\n`)
await pool.close()
