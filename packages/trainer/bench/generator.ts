/**
 * Benchmark: decode speed of `TextGenerator` (what `neuroshard generate`, `chat` and `serve` run) with the model as
 * three shard executors (weights fed as graph inputs) and as one session with the weights baked in
 * (`bakeWeights`), on 1 and 2 intra-op threads, for the presets given (default tiny, small, bootstrap).
 *
 *   node_modules/.bin/tsc -b packages/trainer && node_modules/.bin/node packages/trainer/dist/bench/generator.js [rounds] [preset,…]
 *
 * Per preset all four generators are built once (random init; speed does not depend on the values), then each round
 * runs every generator in a rotated order (so a shared machine's load hits them alike): a new session, a 32-token
 * prompt, 64 greedy tokens decoded one at a time; tokens/s over those 64. The table gives each generator's best and
 * median and the median of its per-round ratio to `shards, 1 thread` of the same round (the CLI's old default for
 * small models), so the defaults of the CLI rest on a measurement.
 */
import { loadavg } from 'node:os'
import { initParameter, modelParameters, preset } from '@neuroshard/model'
import type { ModelConfig } from '@neuroshard/model'
import { TextGenerator } from '../src/index.js'

const rounds = Number(process.argv[2] ?? 5)
const presets = (process.argv[3] ?? 'tiny,small,bootstrap').split(',') as Array<'tiny' | 'small' | 'bootstrap'>
const PROMPT = 32
const STEPS = 64
const MODES = [
  { name: 'shards, 1 thread', bakeWeights: false, threads: 1 },
  { name: 'baked, 1 thread', bakeWeights: true, threads: 1 },
  { name: 'shards, 2 threads', bakeWeights: false, threads: 2 },
  { name: 'baked, 2 threads', bakeWeights: true, threads: 2 }
] as const

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2 }

async function decode (gen: TextGenerator, config: ModelConfig): Promise<number> {
  const s = await gen.session()
  const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 37 + 11) % config.vocabSize)
  let n = 0
  let t0 = 0
  for await (const _ of s.generate(prompt, { temperature: 0, maxTokens: STEPS + 1 })) {
    // the first token comes from the prompt's prefill: time the 64 after it
    if (n++ === 0) t0 = performance.now()
  }
  const seconds = (performance.now() - t0) / 1000
  await s.close()
  return STEPS / seconds
}

const started = new Date().toISOString()
const load0 = loadavg()
const rows: string[] = []
for (const name of presets) {
  const config = preset(name)
  const parameters = new Map(modelParameters(config).map(s => [s.name, initParameter(config, s, 1)]))
  const gens: TextGenerator[] = []
  for (const m of MODES) gens.push(await TextGenerator.create({ config, parameters, threads: m.threads, bakeWeights: m.bakeWeights }))
  // one warm-up decode each (first-run allocations)
  for (const g of gens) await decode(g, config)
  const speeds: number[][] = MODES.map(() => [])
  const ratios: number[][] = MODES.map(() => [])
  for (let r = 0; r < rounds; r++) {
    const got: number[] = []
    for (let k = 0; k < MODES.length; k++) {
      const i = (k + r) % MODES.length
      got[i] = await decode(gens[i], config)
    }
    got.forEach((v, i) => { speeds[i].push(v); ratios[i].push(v / got[0]) })
  }
  await Promise.all(gens.map(async g => { await g.close() }))
  MODES.forEach((m, i) => {
    rows.push(`| ${name} | ${m.name} | ${Math.max(...speeds[i]).toFixed(1)} | ${median(speeds[i]).toFixed(1)} | ${median(ratios[i]).toFixed(2)}x |`)
  })
}
console.log(`TextGenerator decode, ${PROMPT}-token prompt then ${STEPS} greedy tokens, ${rounds} rounds (${started}, load before ${load0.map(l => l.toFixed(2)).join(' ')}, after ${loadavg().map(l => l.toFixed(2)).join(' ')})`)
console.log('')
console.log('| preset | generator | best tok/s | median tok/s | median ratio to shards, 1 thread |')
console.log('|---|---|---|---|---|')
for (const r of rows) console.log(r)
