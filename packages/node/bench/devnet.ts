/**
 * Devnet benchmark (issue 12):
 *  1. time to first token and tokens/s of `/v1/chat/completions` (SSE) on a 4-node devnet, answered through
 *     the pipeline, against the same API over `neuroshard generate`'s engine (the whole model in this process,
 *     `LocalGenerator`) with the same weights — same prompts, greedy, same token budget;
 *  2. devnet start to the first finished DiLoCo round, and the process memory as rounds go by (all nodes
 *     run in this process: the per-node figure is the total / nodes).
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/node bench` (after a build). Writes bench/results/devnet.json.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { loadavg, cpus } from 'node:os'
import { join } from 'node:path'
import { genesisSlotParameters, slotCount } from '@neuroshard/layer-pool'
import { constantLr } from '@neuroshard/runtime'
import { LocalGenerator } from '../src/api/local-generator.js'
import { createLocalBackend } from '../src/api/local-backend.js'
import { startApiServer } from '../src/api/server.js'
import { startNetworkDevnet } from '../src/network/devnet.js'
import { prepareData } from '../src/workspace.js'

const DATA_DIR = process.env.BENCH_DATA_DIR ?? '/tmp/neuroshard-bench-data'
const REQUESTS = Number(process.env.REQUESTS ?? 6)
const MAX_TOKENS = Number(process.env.MAX_TOKENS ?? 48)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const PROMPTS = ['The history of', 'In the morning the', 'Scientists have found', 'A small town', 'The river', 'When the war']

interface Sample { ttftMs: number, tokens: number, tokPerS: number }

async function measure (url: string, prompt: string): Promise<Sample> {
  const t0 = performance.now()
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: process.env.MODEL ?? 'x', messages: [{ role: 'user', content: prompt }], max_tokens: MAX_TOKENS, temperature: 1, seed: 7, stream: true, stream_options: { include_usage: true } })
  })
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`)
  const reader = res.body!.getReader()
  const dec = new TextDecoder()
  let buf = ''
  let first = 0
  let last = 0
  let tokens = 0
  let pieces = 0
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buf += dec.decode(value, { stream: true })
    let nl
    while ((nl = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, nl)
      buf = buf.slice(nl + 2)
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue
      const chunk = JSON.parse(ev.slice(6))
      if (chunk.choices?.[0]?.delta?.content != null && chunk.choices[0].delta.role == null) {
        const now = performance.now()
        if (first === 0) first = now
        last = now
        tokens = Math.max(tokens, ++pieces)
      }
    }
  }
  const ttftMs = first - t0
  return { ttftMs, tokens, tokPerS: tokens > 1 ? (tokens - 1) / ((last - first) / 1000) : 0 }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function run (): Promise<void> {
  const started = new Date().toISOString()
  const load0 = loadavg()[0]
  const data = await prepareData({ dataDir: DATA_DIR, source: 'nlp-corpus', vocabSize: 4096 })
  const nodeData = { manifest: data.manifest, train: data.train, validation: data.validation }

  // ---- 1. inference: devnet (pipeline) vs one process, same genesis weights -------------------------------
  const devnet = await startNetworkDevnet({ nodes: 4, tokenizer: data.tokenizer, data: nodeData, node: { training: false } })

  const config = devnet.config
  const weights = new Map<string, Float32Array>()
  for (let slot = 0; slot < slotCount(config); slot++) for (const [k, v] of genesisSlotParameters(config, slot, 0)) weights.set(k, v)
  const local = await LocalGenerator.create({ tokenizer: data.tokenizer, config, parameters: weights, threads: 1 })
  while (!devnet.nodes.every(n => n.heldStages().length > 0)) await new Promise(resolve => setTimeout(resolve, 200))
  const driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
  const net = await startApiServer({ backend: driver.backend(), port: 0, defaultMetrics: false })
  const one = await startApiServer({ backend: createLocalBackend({ generator: local }), port: 0, defaultMetrics: false })
  const rows: Record<string, Sample[]> = { devnet: [], local: [] }
  // warm-up: sessions, thread pools, connections
  process.env.MODEL = 'devnet'; await measure(net.url, 'Hello')
  process.env.MODEL = local.modelId; await measure(one.url, 'Hello')
  for (let i = 0; i < REQUESTS; i++) {
    const prompt = PROMPTS[i % PROMPTS.length]
    // alternate, so load drifts hit both alike
    process.env.MODEL = 'devnet'; rows.devnet.push(await measure(net.url, prompt))
    process.env.MODEL = local.modelId; rows.local.push(await measure(one.url, prompt))
  }
  await net.close(); await one.close(); await devnet.stop(); await local.close?.()

  // ---- 2. training: start → first round, memory over rounds -----------------------------------------------
  const t0 = performance.now()
  const rounds: Array<{ round: number, s: number, rssMiB: number, heapMiB: number, validation?: number }> = []
  let firstRoundS = 0
  const trainNet = await startNetworkDevnet({ nodes: 4, tokenizer: data.tokenizer, data: nodeData, node: { optimizer: { schedule: constantLr(3e-3) } } })
  const trainDriver = await new Promise<typeof trainNet.nodes[number]>((resolve) => {
    const check = setInterval(() => {
      const d = trainNet.nodes.find(n => n.heldStages().some(h => h.start === 0))
      if (d != null) { clearInterval(check); resolve(d) }
    }, 100)
  })
  await new Promise<void>((resolve) => {
    trainDriver.addEventListener('node:validation', (e) => {
      const m = process.memoryUsage()
      rounds.push({ round: e.detail.round, s: (performance.now() - t0) / 1000, rssMiB: m.rss / 2 ** 20, heapMiB: m.heapUsed / 2 ** 20, validation: e.detail.loss })
      if (e.detail.round === 1) firstRoundS = (performance.now() - t0) / 1000
      if (e.detail.round >= ROUNDS) resolve()
    })
  })
  await trainNet.stop()

  const f = (x: number, d = 1): string => x.toFixed(d)
  const dn = { ttft: median(rows.devnet.map(r => r.ttftMs)), tps: median(rows.devnet.map(r => r.tokPerS)) }
  const lo = { ttft: median(rows.local.map(r => r.ttftMs)), tps: median(rows.local.map(r => r.tokPerS)) }
  const lines = [
    `devnet benchmark — ${started}, ${cpus().length} cores, load ${f(load0, 2)} → ${f(loadavg()[0], 2)}; tiny, vocabulary ${data.tokenizer.vocabSize}, ${REQUESTS} requests (temperature 1, seed 7: an untrained model's greedy choice is often <|eos|>) of ${MAX_TOKENS} tokens (medians)`,
    '',
    '| path | time to first token (ms) | tokens/s | vs one process |',
    '|---|---|---|---|',
    `| /v1/chat/completions, devnet (4 nodes, through the pipeline) | ${f(dn.ttft)} | ${f(dn.tps)} | TTFT ${f(dn.ttft / lo.ttft, 2)}×, tokens/s ${f(dn.tps / lo.tps, 2)}× |`,
    `| /v1/chat/completions, one process (neuroshard generate's engine) | ${f(lo.ttft)} | ${f(lo.tps)} | 1× |`,
    '',
    `goal: TTFT ≤ 1.2× → ${dn.ttft / lo.ttft <= 1.2 ? 'met' : 'NOT met'}; tokens/s ≥ 0.9× → ${dn.tps / lo.tps >= 0.9 ? 'met' : 'NOT met'}`,
    '',
    `training devnet (4 nodes, H = 20, batch 8 × 64): start → first finished DiLoCo round ${f(firstRoundS)} s`,
    '',
    '| round | s since start | validation loss | process RSS (MiB, 4 nodes) | heap (MiB) |',
    '|---|---|---|---|---|',
    ...rounds.map(r => `| ${r.round} | ${f(r.s)} | ${f(r.validation ?? NaN, 4)} | ${f(r.rssMiB, 0)} | ${f(r.heapMiB, 0)} |`)
  ]
  console.log(lines.join('\n'))
  await mkdir(join('bench', 'results'), { recursive: true })
  await writeFile(join('bench', 'results', 'devnet.json'), JSON.stringify({ started, rows, firstRoundS, rounds, load: [load0, loadavg()[0]] }, null, 2))
  process.exit(0)
}

run().catch((err) => { console.error(err); process.exit(1) })
