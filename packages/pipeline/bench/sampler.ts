/**
 * The Validator's sampler at temperature 1 with no top-k / top-p (the devnet bench's requests): `sampleToken` (order
 * keys sorted, no per-call arrays) against the candidate-order sampler it replaced (`nucleus`: ids sorted, number
 * arrays of candidates and weights, then the draw loop), on the same logits and positions, blocks alternating; the
 * tokens of both are compared.
 *
 * Run: npx -y pnpm@10 exec tsc -b packages/pipeline && (cd packages/pipeline && ../../node_modules/.bin/node dist/bench/sampler.js)
 * Env: VOCAB (default 4096), CALLS per block (default 2000), BLOCKS (default 10).
 */
import { loadavg } from 'node:os'
import { sampleInCandidateOrder, sampleToken } from '../src/index.js'
import type { SamplingOptions } from '../src/index.js'

const VOCAB = Number(process.env.VOCAB ?? 4096)
const CALLS = Number(process.env.CALLS ?? 2000)
const BLOCKS = Number(process.env.BLOCKS ?? 10)

/** The sampler before: `nucleus` (ids sorted, number arrays) and the draw over them */
const before: (logits: Float32Array, options: SamplingOptions, position: number) => number = sampleInCandidateOrder

let s = 12345
const rnd = (): number => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 }
const rows = Array.from({ length: 64 }, () => Float32Array.from({ length: VOCAB }, () => (rnd() - 0.5) * 8))
const options = { temperature: 1, seed: 7 }
const samplers = { 'candidate order (before)': before, 'order keys (sampleToken)': sampleToken }
type Name = keyof typeof samplers
const us = new Map<Name, number[]>([['candidate order (before)', []], ['order keys (sampleToken)', []]])
const picks = new Map<Name, number[]>([['candidate order (before)', []], ['order keys (sampleToken)', []]])
const load0 = loadavg().map(x => x.toFixed(2)).join(' ')
for (let b = -1; b < BLOCKS; b++) { // block −1: warm-up
  const names = (Object.keys(samplers) as Name[])
  if (b % 2 === 1) names.reverse()
  for (const name of names) {
    const fn = samplers[name]
    const out: number[] = []
    const t0 = performance.now()
    for (let i = 0; i < CALLS; i++) out.push(fn(rows[i % rows.length], options, i))
    if (b >= 0) { us.get(name)!.push((performance.now() - t0) * 1000 / CALLS); picks.get(name)!.push(...out) }
  }
}
const med = (xs: number[]): number => { const t = [...xs].sort((a, b) => a - b); return t[Math.floor((t.length - 1) / 2)] }
const a = picks.get('candidate order (before)')!
const c = picks.get('order keys (sampleToken)')!
console.log(`sampler at temperature 1, vocabulary ${VOCAB}, ${new Date().toISOString()}, node ${process.version}, load ${load0} -> ${loadavg().map(x => x.toFixed(2)).join(' ')}; ${BLOCKS} blocks × ${CALLS} calls per sampler, alternating`)
console.log('\n| sampler | µs per token (median of blocks) | blocks (min–max) |\n|---|---|---|')
for (const [name, xs] of us) console.log(`| ${name} | ${med(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} |`)
console.log(`\nsame token in ${a.filter((x, i) => x === c[i]).length} of ${a.length} draws`)
