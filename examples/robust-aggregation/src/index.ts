/**
 * Example: Byzantine-robust aggregation with `@neuroshard/robust-agg`.
 *
 * In DiLoCo every replica publishes a pseudo-gradient Δ = θ_start − θ_now and everyone averages them.
 * A few malicious (or broken) peers can send anything. This program:
 *
 * 1. makes 12 honest pseudo-gradients of dimension 1,000 (a shared "true" direction plus per-peer noise),
 * 2. adds 3 Byzantine ones crafted by two published attacks:
 *    - sign flipping (send −10 × the honest mean),
 *    - "a little is enough" (ALIE, Baruch et al. 2019: μ − zσ per coordinate, inside the honest spread),
 * 3. aggregates the 15 inputs with the plain mean and with robust rules, and prints each result's
 *    distance to the honest mean (what we would get with no attacker), relative to its norm.
 *
 * The plain mean is dragged far away by sign flipping; the robust rules stay close. ALIE is subtler: it
 * is built to slip past per-coordinate filters, so every rule moves a little (compare with the no-attack
 * row to see the price each rule pays even when nobody attacks).
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-robust-aggregation start`
 */
import { pathToFileURL } from 'node:url'
import {
  aLittleIsEnough, byzantineRound, compose, coordinateMedian, createNormalRng, createRng, krum, mean, nnm, signFlipping,
  trimmedMean
} from '@neuroshard/robust-agg'
import type { Aggregator, Attack } from '@neuroshard/robust-agg'

const D = 1000 // pseudo-gradient length
const HONEST = 12 // honest peers
const F = 3 // Byzantine peers (the aggregators are told to tolerate F)
const NOISE = 0.5 // per-coordinate std of each peer's deviation from the true direction

/** relative error of each aggregator (rows) under each scenario (columns) */
export type ErrorTable = Record<string, Record<string, number>>

export interface RobustAggregationResult {
  /** ‖aggregate − honest mean‖ / ‖honest mean‖ by aggregator and scenario */
  errors: ErrorTable
  /** the same measure for one typical honest input: the noise level a peer sees anyway */
  honestSpread: number
  scenarios: string[]
  aggregators: string[]
}

function norm (v: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < v.length; i++) s += v[i] * v[i]
  return Math.sqrt(s)
}

function distance (a: Float32Array, b: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2
  return Math.sqrt(s)
}

export async function main (log: (line: string) => void = console.log): Promise<RobustAggregationResult> {
  // --- 1. honest pseudo-gradients: true direction + independent Gaussian noise, seeded --------------
  const gauss = createNormalRng(createRng(42))
  const truth = Float32Array.from({ length: D }, () => gauss())
  const honest = Array.from({ length: HONEST }, () => truth.map(t => t + NOISE * gauss()))
  const honestMean = mean().aggregate(honest).value
  const ref = norm(honestMean)
  const honestSpread = distance(honest[0], honestMean) / ref
  log(`${HONEST} honest pseudo-gradients of length ${D}, ${F} Byzantine; one honest input is ${honestSpread.toFixed(3)} (relative) from the honest mean`)

  // --- 2. the aggregators: each told it must tolerate F Byzantine inputs ---------------------------
  const aggregators: Array<[string, Aggregator]> = [
    ['mean', mean()],
    ['coordinate median', coordinateMedian()],
    [`trimmed mean (f=${F})`, trimmedMean({ f: F })],
    [`krum (f=${F})`, krum({ f: F })],
    [`nnm → trimmed mean (f=${F})`, compose(nnm({ f: F }), trimmedMean({ f: F }))]
  ]

  // --- 3. scenarios: nobody attacks, then each attack with F Byzantine peers -------------------------
  const attacks: Array<[string, Attack | undefined]> = [
    ['no attack', undefined],
    ['sign flip ×10', signFlipping({ scale: 10 })],
    ['ALIE', aLittleIsEnough()]
  ]

  const errors: ErrorTable = {}
  for (const [scenario, attack] of attacks) {
    // byzantineRound crafts F vectors from the honest ones and mixes them into the input list
    // (shuffled, so no rule can rely on where the attackers sit)
    const inputs = attack === undefined ? honest : byzantineRound(honest, attack, F, { placement: 'shuffle', seed: 7 }).inputs
    for (const [name, agg] of aggregators) {
      const { value } = agg.aggregate(inputs)
      errors[name] ??= {}
      errors[name][scenario] = distance(value, honestMean) / ref
    }
  }

  // --- 4. the table ----------------------------------------------------------------------------------
  const scenarios = attacks.map(([s]) => s)
  const width = 30
  log('')
  log('relative error ‖aggregate − honest mean‖ / ‖honest mean‖ (0 = as if nobody attacked)')
  log('aggregator'.padEnd(width) + scenarios.map(s => s.padStart(15)).join(''))
  for (const [name] of aggregators) {
    log(name.padEnd(width) + scenarios.map(s => errors[name][s].toFixed(4).padStart(15)).join(''))
  }
  log('')
  log(`the mean under sign flipping is off by ${errors.mean['sign flip ×10'].toFixed(2)}× the gradient's own size; ` +
    `nnm → trimmed mean by ${errors[`nnm → trimmed mean (f=${F})`]['sign flip ×10'].toFixed(4)}`)

  return { errors, honestSpread, scenarios, aggregators: aggregators.map(([n]) => n) }
}

// run only when executed directly (`node dist/src/index.js`), not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
