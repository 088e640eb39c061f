/**
 * Per-token cost of a float32 stage's KV cache: the same blocks stage built with `kvCache: 'append'` (the default:
 * token-major caches written in place in the executor's worker, only the new token's keys and values leave the
 * graph) and with `kvCache: 'present'` (the previous path: the whole grown cache copied out of onnxruntime every
 * token). A session is prefilled to a context length, then decodes single tokens; the two paths alternate,
 * repetition by repetition, in one process. Wall ms per token and the process's CPU ms per token (all threads).
 *
 * - `tiny`, blocks [1, 3), in-thread (as the devnet's serving stages run)
 * - `small`, all 12 blocks, in a worker thread, one onnxruntime thread
 *
 * Run: node_modules/.bin/tsc -b packages/pipeline && (cd packages/pipeline && ../../node_modules/.bin/node dist/bench/kv-append.js)
 * Env: REPS (default 5), TOKENS decoded per repetition (default 32)
 */
import { loadavg } from 'node:os'
import { initParameter, modelParameters, preset } from '@neuroshard/model'
import { float32 } from '@neuroshard/runtime'
import { createPipelineStage } from '../src/index.js'
import type { PipelineStage } from '../src/index.js'
import type { ModelConfig } from '@neuroshard/model'

const REPS = Number(process.env.REPS ?? 5)
const TOKENS = Number(process.env.TOKENS ?? 32)

interface Case { name: string, config: ModelConfig, start: number, end: number, inThread: boolean, contexts: number[] }

const tiny = preset('tiny')
const small = preset('small')
const cases: Case[] = [
  { name: 'tiny, blocks [1, 3), in-thread', config: tiny, start: 1, end: tiny.nLayers + 1, inThread: true, contexts: [16, 64, 96] },
  { name: 'small, blocks [1, 13), worker', config: small, start: 1, end: small.nLayers + 1, inThread: false, contexts: [32, 256, 768] }
]

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** ms wall and ms CPU per decoded token after a prefill of `context` tokens */
async function measure (stage: PipelineStage, context: number): Promise<{ wall: number, cpu: number }> {
  const d = stage.config.dModel
  const kv = await stage.blocks!.openInference()
  const x = (n: number, salt: number): ReturnType<typeof float32> => float32(Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 0.13 + salt) * 0.5), [1, n, d])
  await kv.run({ hidden_in: x(context, 0) })
  const tokens = Array.from({ length: TOKENS }, (_, i) => x(1, i + 1))
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (const t of tokens) await kv.run({ hidden_in: t })
  const wall = performance.now() - t0
  const c = process.cpuUsage(c0)
  await kv.close()
  return { wall: wall / TOKENS, cpu: (c.user + c.system) / 1000 / TOKENS }
}

async function main (): Promise<void> {
  const l0 = loadavg().map(v => v.toFixed(2)).join(' ')
  console.log(`fp32 stage KV cache, append vs present — ${new Date().toISOString()}, node ${process.version}, load ${l0}; ${REPS} repetitions of ${TOKENS} decoded tokens per context, the paths alternating; medians`)
  console.log('')
  console.log('| stage | context (tokens) | present: ms/token | append: ms/token | present: CPU ms/token | append: CPU ms/token | append / present (wall) |')
  console.log('|---|---|---|---|---|---|---|')
  for (const c of cases) {
    const parameters = new Map(modelParameters(c.config).map(p => [p.name, initParameter(c.config, p, 1)]))
    const stages = {
      present: await createPipelineStage({ config: c.config, start: c.start, end: c.end, parameters, training: false, intraOpNumThreads: 1, inThread: c.inThread, kvCache: 'present' }),
      append: await createPipelineStage({ config: c.config, start: c.start, end: c.end, parameters, training: false, intraOpNumThreads: 1, inThread: c.inThread, kvCache: 'append' })
    }
    for (const context of c.contexts) {
      const r = { present: { wall: [] as number[], cpu: [] as number[] }, append: { wall: [] as number[], cpu: [] as number[] } }
      // one warm-up each
      for (const k of ['present', 'append'] as const) await measure(stages[k], context)
      for (let i = 0; i < REPS; i++) {
        for (const k of (i % 2 === 0 ? ['present', 'append'] : ['append', 'present']) as Array<'present' | 'append'>) {
          const m = await measure(stages[k], context)
          r[k].wall.push(m.wall)
          r[k].cpu.push(m.cpu)
        }
      }
      const [pw, aw, pc, ac] = [median(r.present.wall), median(r.append.wall), median(r.present.cpu), median(r.append.cpu)]
      console.log(`| ${c.name} | ${context} | ${pw.toFixed(3)} | ${aw.toFixed(3)} | ${pc.toFixed(3)} | ${ac.toFixed(3)} | ${(aw / pw).toFixed(2)}× |`)
    }
    await stages.present.close()
    await stages.append.close()
  }
  console.log('')
  console.log(`load after ${loadavg().map(v => v.toFixed(2)).join(' ')}`)
}

await main()
