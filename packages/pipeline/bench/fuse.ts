/**
 * Fused vs unfused serving stages (`fuseInference`) on the devnet's route shape without the rest of a devnet: `tiny`,
 * a Driver holding [0, 2) (embed + block 0) and a Validator holding [2, 4) (block 1 + head), in-thread stages, two
 * libp2p hosts in this process. Generations of 48 tokens at temperature 1 (no top-k: the whole vocabulary is
 * ordered, as the devnet benchmark asks), the two chains alternating; medians of wall ms and process CPU ms per token.
 *
 * Run: node_modules/.bin/tsc -b packages/pipeline && (cd packages/pipeline && ../../node_modules/.bin/node dist/bench/fuse.js)
 * Env: REPS (default 15)
 */
import { loadavg } from 'node:os'
import { createNeuroShardHost } from '@neuroshard/host'
import { initParameter, modelParameters, preset } from '@neuroshard/model'
import { createPipelineStage, pipeline, staticRouter } from '../src/index.js'
import type { Pipeline, PipelineStage } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'

type Host = NeuroShardHost & { services: { pipeline: Pipeline } }
const REPS = Number(process.env.REPS ?? 15)
const config = preset('tiny')
const L = config.nLayers
const parameters = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 1)]))

async function host (stages: PipelineStage[], router?: ReturnType<typeof staticRouter>): Promise<Host> {
  return await createNeuroShardHost<any>({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    services: { pipeline: pipeline({ stages, router }) }
  }) as Host
}

async function chain (fuse: boolean): Promise<{ driver: Host, hosts: Host[], stages: PipelineStage[] }> {
  const stages = await Promise.all([[0, 2], [2, L + 2]].map(async ([start, end]) =>
    await createPipelineStage({ config, start, end, parameters, training: false, intraOpNumThreads: 1, inThread: true, fuseInference: fuse })))
  const validator = await host([stages[1]])
  const driver = await host([stages[0]], staticRouter([{ peer: validator.peerId, start: 2, end: L + 2 }]))
  await driver.dial(validator.getMultiaddrs()[0])
  return { driver, hosts: [driver, validator], stages }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function generation (driver: Host, seed: number): Promise<{ wall: number, cpu: number, ids: number[] }> {
  const prompt = [3, 17, 200, 45, 9, 100, 77]
  const ids: number[] = []
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 48, temperature: 1, seed })) ids.push(t.id)
  const wall = performance.now() - t0
  const c = process.cpuUsage(c0)
  return { wall: wall / ids.length, cpu: (c.user + c.system) / 1000 / ids.length, ids }
}

async function main (): Promise<void> {
  console.log(`fused vs unfused serving stages — ${new Date().toISOString()}, node ${process.version}, load ${loadavg().map(v => v.toFixed(2)).join(' ')}; tiny, Driver [0, 2) + Validator [2, 4) in-thread, 2 hosts in one process; ${REPS} generations of 48 tokens per chain (temperature 1), alternating; medians`)
  const chains = { unfused: await chain(false), fused: await chain(true) }
  const r = { unfused: { wall: [] as number[], cpu: [] as number[] }, fused: { wall: [] as number[], cpu: [] as number[] } }
  let same = true
  for (const k of ['unfused', 'fused'] as const) await generation(chains[k].driver, 0) // warm-up
  for (let i = 0; i < REPS; i++) {
    const order = (i % 2 === 0 ? ['unfused', 'fused'] : ['fused', 'unfused']) as Array<'unfused' | 'fused'>
    const got: Record<string, number[]> = {}
    for (const k of order) {
      const g = await generation(chains[k].driver, i + 1)
      r[k].wall.push(g.wall)
      r[k].cpu.push(g.cpu)
      got[k] = g.ids
    }
    if (got.unfused.join() !== got.fused.join()) same = false
  }
  console.log('')
  console.log('| chain | ms per token | CPU ms per token (process) |')
  console.log('|---|---|---|')
  for (const k of ['unfused', 'fused'] as const) console.log(`| ${k} | ${median(r[k].wall).toFixed(3)} | ${median(r[k].cpu).toFixed(3)} |`)
  console.log('')
  console.log(`fused / unfused: wall ${(median(r.fused.wall) / median(r.unfused.wall)).toFixed(2)}×, CPU ${(median(r.fused.cpu) / median(r.unfused.cpu)).toFixed(2)}×; same tokens in every pair: ${same}; load after ${loadavg().map(v => v.toFixed(2)).join(' ')}`)
  for (const c of Object.values(chains)) {
    await Promise.all(c.hosts.map(async h => { await h.stop() }))
    await Promise.all(c.stages.map(async s => { await s.close() }))
  }
}

await main()
