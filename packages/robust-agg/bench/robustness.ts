/**
 * Robustness table: for each aggregator × attack at f/n ∈ {0.1, 0.25, 0.4}, the error ‖F(honest ∪ byzantine) −
 * mean(honest)‖ divided by the honest spread √(mean ‖xᵢ − mean(honest)‖²), averaged over seeds. Prints Markdown
 * tables and writes JSON to bench-results/.
 *
 *   node_modules/.bin/tsc -b packages/robust-agg && node_modules/.bin/node packages/robust-agg/dist/bench/robustness.js
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  aLittleIsEnough, bucketing, byzantineRound, centeredClip, compose, coordinateMedian, createNormalRng, createRng,
  gaussianNoise, geometricMedian, innerProductManipulation, krum, mean, mimic, multiKrum, nnm, nonFiniteValues,
  signFlipping, trimmedMean
} from '../src/index.js'
import type { Aggregator, Attack } from '../src/index.js'

const N = 20
const D = 10_000
const SEEDS = [1, 2, 3]
const FRACTIONS = [0.1, 0.25, 0.4]
/** honest vectors: μ + ξ with μⱼ = MU and ξ ~ N(0, I), so ‖μ‖ = MU·√d and the honest spread is ≈ √d */
const MU = 3

function honestVectors (h: number, seed: number): Float32Array[] {
  const normal = createNormalRng(createRng(seed))
  return Array.from({ length: h }, () => Float32Array.from({ length: D }, () => MU + normal()))
}

function norm (a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0
  for (let j = 0; j < a.length; j++) s += (a[j] - b[j]) ** 2
  return Math.sqrt(s)
}

const attacks: Array<[string, () => Attack]> = [
  ['none', () => ({ name: 'none', craft: () => [] })],
  ['sign flip', () => signFlipping()],
  ['IPM ε=0.1', () => innerProductManipulation({ epsilon: 0.1 })],
  ['IPM ε=100', () => innerProductManipulation({ epsilon: 100 })],
  ['ALIE', () => aLittleIsEnough()],
  ['gauss σ=100', () => gaussianNoise({ sigma: 100, seed: 9 })],
  ['mimic', () => mimic()],
  ['NaN/Inf', () => nonFiniteValues({ value: 'mixed', count: 10 })]
]

const spreadTau = Math.sqrt(D) // τ for CenteredClip: the honest spread
const aggregators: Array<[string, (f: number) => Aggregator]> = [
  ['mean', () => mean({ nonFinite: 'drop' })],
  ['coordinate median', f => coordinateMedian({ f, nonFinite: 'drop' })],
  ['trimmed mean (f)', f => trimmedMean({ f, nonFinite: 'drop' })],
  ['Krum (n−f−2)', f => krum({ f, nonFinite: 'drop' })],
  ['Multi-Krum (m = n−f)', f => multiKrum({ f, nonFinite: 'drop' })],
  ['geometric median', f => geometricMedian({ f, nonFinite: 'drop' })],
  ['CenteredClip (τ = spread, median start)', f => centeredClip({ tau: spreadTau, start: 'median', f, nonFinite: 'drop' })],
  ['NNM → trimmed mean', f => compose({ nonFinite: 'drop' }, nnm({ f }), trimmedMean({ f }))],
  // no f passed to bucketing: its condition f < ⌈n/s⌉/2 fails at f/n ≥ 0.25, and the table shows what then happens
  ['bucketing s=2 → median', () => compose({ nonFinite: 'drop' }, bucketing({ s: 2, seed: 4 }), coordinateMedian())]
]

interface Cell { fraction: number, f: number, aggregator: string, attack: string, error: number | null, note?: string }
const cells: Cell[] = []
for (const fraction of FRACTIONS) {
  const f = Math.round(fraction * N)
  for (const [aggName, makeAgg] of aggregators) {
    for (const [attackName, makeAttack] of attacks) {
      let total = 0
      let note: string | undefined
      for (const seed of SEEDS) {
        // 'none': all n inputs honest (the no-attack baseline of the same n)
        const honest = honestVectors(attackName === 'none' ? N : N - f, seed)
        const mu = mean().aggregate(honest).value
        let spread = 0
        for (const x of honest) spread += norm(x, mu) ** 2
        spread = Math.sqrt(spread / honest.length)
        const { inputs } = byzantineRound(honest, makeAttack(), attackName === 'none' ? 0 : f, { placement: 'shuffle', seed })
        try {
          const out = makeAgg(f).aggregate(inputs).value
          total += norm(out, mu) / spread
        } catch (err) {
          note = (err as Error).name
          break
        }
      }
      cells.push({ fraction, f, aggregator: aggName, attack: attackName, error: note == null ? total / SEEDS.length : null, note })
    }
  }
}

const lines: string[] = []
for (const fraction of FRACTIONS) {
  const f = Math.round(fraction * N)
  lines.push(`\nf/n = ${fraction} (n = ${N}, f = ${f}, d = ${D}); error / honest spread, mean of ${SEEDS.length} seeds\n`)
  lines.push(`| aggregator | ${attacks.map(a => a[0]).join(' | ')} |`)
  lines.push(`|---|${attacks.map(() => '---:').join('|')}|`)
  for (const [aggName] of aggregators) {
    const row = attacks.map(([attackName]) => {
      const c = cells.find(x => x.fraction === fraction && x.aggregator === aggName && x.attack === attackName) as Cell
      return c.error == null ? `n/a (${c.note ?? ''})` : c.error >= 10 ? c.error.toFixed(0) : c.error.toFixed(2)
    })
    lines.push(`| ${aggName} | ${row.join(' | ')} |`)
  }
}
process.stdout.write(lines.join('\n') + '\n')

const here = dirname(fileURLToPath(import.meta.url))
const outDir = join(here, '..', '..', 'bench-results')
mkdirSync(outDir, { recursive: true })
const file = join(outDir, 'robustness.json')
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), n: N, d: D, mu: MU, seeds: SEEDS, cells }, null, 2))
process.stdout.write(`wrote ${file}\n`)
