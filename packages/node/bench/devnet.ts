/**
 * Devnet benchmark (issue 12):
 *  1. time to first token and tokens/s of `/v1/chat/completions` (SSE) on a 4-node devnet, answered through
 *     the pipeline, against the same API over `neuroshard generate`'s engine (the whole model in this process,
 *     `LocalGenerator`) with the same weights — same prompts, same sampling settings, same token budget, the
 *     two alternating request by request (so that load changes hit both alike); with the CPU time the process
 *     spent per generated token (all threads: a figure the machine's load disturbs less than wall time);
 *  2. devnet start to the first finished DiLoCo round, and the process memory as rounds go by (all nodes
 *     run in this process: the per-node figure is the total / nodes).
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/node bench` (after a build). Writes bench/results/devnet.json.
 * Settings (env): REQUESTS, MAX_TOKENS, TEMPERATURE (default 1), ROUNDS, BENCH_PART=inference|training|timeline, BENCH_DATA_DIR,
 * FUSE=0 (serving stages not fused: two onnxruntime runs per token and node, as before pipeline's fuseInference),
 * REQUEST_TIMEOUT_MS, TRAIN_TIMEOUT_S, PRESET=tiny|small (inference part's model), IN_THREAD=1 (serving stages in-thread and fused at any width),
 * TRAINING=1 [SERVE_ROUND=0] [YIELD=1] [TRAINING_NICE=n] (the inference part's devnet trains while it serves, see below), PROFILE=<file> (CPU profile of the measured
 * requests, in the devnet's process), STOP_DEVNET=0 (the one-process yardstick measured with the devnet running beside it), IDLE_S (seconds of no request over which a
 * training devnet's steps per second are counted), BAKE=1 (serving-only devnet with baked stages), FULL=1 (nodes with memory for the whole model). Progress (and every 30 s what each node holds and trains) goes to stderr.
 */
import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import inspector from 'node:inspector/promises'
import { loadavg, cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { genesisSlotParameters, slotCount } from '@neuroshard/layer-pool'
import { preset } from '@neuroshard/model'
import { constantLr } from '@neuroshard/runtime'
import type { ModelConfig, PresetName } from '@neuroshard/model'
import { LocalGenerator } from '../src/api/local-generator.js'
import { createLocalBackend } from '../src/api/local-backend.js'
import { startApiServer } from '../src/api/server.js'
import { halfModelMemory, startNetworkDevnet } from '../src/network/devnet.js'
import { DEFAULT_INNER_STEPS, DEFAULT_NODE_BATCH_SIZE, DEFAULT_NODE_SEQ_LEN, DEFAULT_TRAINING_NICENESS } from '../src/network/node.js'
import { prepareData } from '../src/workspace.js'
import type { NetworkNode } from '../src/network/node.js'

const DATA_DIR = process.env.BENCH_DATA_DIR ?? '/tmp/neuroshard-bench-data'
/** Requests per path (devnet and one process, interleaved): enough that the medians' 95 % intervals resolve ~10 % */
const REQUESTS = Number(process.env.REQUESTS ?? 40)
const MAX_TOKENS = Number(process.env.MAX_TOKENS ?? 48)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
/** Sampling temperature of the requests (0: greedy; an untrained model's greedy choice is often <|eos|>) */
const TEMPERATURE = Number(process.env.TEMPERATURE ?? 1)
/** A request that takes longer is a failure (the run stops and says where), not a silent hang */
const REQUEST_TIMEOUT_MS = Number(process.env.REQUEST_TIMEOUT_MS ?? 120_000)
/** Longest wait for the training devnet's rounds */
const TRAIN_TIMEOUT_S = Number(process.env.TRAIN_TIMEOUT_S ?? 1200)
/** Seconds the inference devnet's layout must stay unchanged before measuring */
const STABLE_S = Number(process.env.STABLE_S ?? 15)
/** `inference`, `training` or both (default) */
const PART = process.env.BENCH_PART ?? 'all'
/** Model of the inference part (PRESET=small: a larger per-token compute beside tiny's; vocabulary from the tokenizer) */
const PRESET = (process.env.PRESET ?? 'tiny') as PresetName
/** IN_THREAD=1: every serving node runs its stages in-thread and fused, whatever the model's width (default: the node's rule, dModel ≤ 256) */
const IN_THREAD = process.env.IN_THREAD === '1'
/**
 * TRAINING=1: the inference part's devnet trains while it serves (as `neuroshard devnet` does; its nodes' defaults, H = 20),
 * its completions served from the last finished round's snapshot (NetworkNode `serveRoundWeights`; SERVE_ROUND=0: from
 * the training executors, as before)
 */
const TRAINING = process.env.TRAINING === '1'
const SERVE_ROUND = process.env.SERVE_ROUND !== '0'
/** YIELD=1 (with TRAINING=1): NetworkNode `yieldTraining`, a Driver holds its training while its node serves inference */
const YIELD = process.env.YIELD === '1'
const PROMPTS = ['The history of', 'In the morning the', 'Scientists have found', 'A small town', 'The river', 'When the war']

const T0 = performance.now()
/** Progress on stderr (the table goes to stdout): which phase a slow or stuck run is in */
function note (msg: string): void { process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1)} s, load ${loadavg()[0].toFixed(1)}] ${msg}\n`) }

/** Every 30 s, what each node holds and where its training is (to tell a stuck run from a slow one) */
function watch (what: string, nodes: () => NetworkNode[]): () => void {
  const timer = setInterval(() => {
    const parts = nodes().map((n, i) => {
      const spans = n.heldStages().map(h => `[${h.start},${h.end})`).join('')
      const rounds = n.heldStages().map(h => n.group(h.start)?.round ?? '-').join('/')
      const t = n.recorder.progress()
      return `n${i} ${spans || 'none'} round ${rounds} step ${t.totalSteps}`
    })
    note(`${what}: ${parts.join(' | ')}`)
  }, 30_000)
  timer.unref()
  return () => { clearInterval(timer) }
}

interface Sample { ttftMs: number, tokens: number, tokPerS: number, cpuMsPerToken: number }

async function measure (url: string, prompt: string): Promise<Sample> {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const res = await fetch(`${url}/v1/chat/completions`, {
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: process.env.MODEL ?? 'x', messages: [{ role: 'user', content: prompt }], max_tokens: MAX_TOKENS, temperature: TEMPERATURE, seed: 7, stream: true, stream_options: { include_usage: true } })
  })
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`)
  const reader = res.body!.getReader()
  const dec = new TextDecoder()
  let buf = ''
  let first = 0
  let last = 0
  let tokens = 0
  let pieces = 0
  let finish: string | null = null
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
      if (chunk.error != null) throw new Error(`${url}: error in the stream: ${JSON.stringify(chunk.error)}`)
      finish = chunk.choices?.[0]?.finish_reason ?? finish
      if (chunk.choices?.[0]?.delta?.content != null && chunk.choices[0].delta.role == null) {
        const now = performance.now()
        if (first === 0) first = now
        last = now
        tokens = Math.max(tokens, ++pieces)
      }
    }
  }
  const cpu = process.cpuUsage(cpu0)
  if (tokens === 0) throw new Error(`no token for ${JSON.stringify(prompt)} from ${url} (finish_reason ${finish})`)
  const ttftMs = first - t0
  return { ttftMs, tokens, tokPerS: tokens > 1 ? (tokens - 1) / ((last - first) / 1000) : 0, cpuMsPerToken: (cpu.user + cpu.system) / 1000 / tokens }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** The q-quantile (0..1) by linear interpolation between order statistics */
function quantile (xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  const at = q * (s.length - 1)
  const lo = Math.floor(at)
  return lo + 1 < s.length ? s[lo] + (at - lo) * (s[lo + 1] - s[lo]) : s[lo]
}

/**
 * A distribution-free 95 % confidence interval of the median of `xs`: the order statistics x(j) and x(n+1-j)
 * with the largest j such that P(Binomial(n, 1/2) < j) ≤ 2.5 % (so the interval covers the median with ≥ 95 %).
 * Undefined for fewer than 6 values (no such j).
 */
function medianInterval (xs: number[]): [number, number] | undefined {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  let cdf = 0 // P(B ≤ i - 1)
  let pmf = 2 ** -n // P(B = 0)
  let j = 0
  for (let i = 1; i <= n; i++) {
    cdf += pmf // now P(B ≤ i - 1) = P(B < i)
    if (cdf > 0.025) break
    j = i
    pmf = pmf * (n - (i - 1)) / i
  }
  return j >= 1 ? [s[j - 1], s[n - j]] : undefined
}

type Data = Awaited<ReturnType<typeof prepareData>>

function layoutOf (devnet: { nodes: NetworkNode[] }): string {
  return devnet.nodes.map(n => n.heldStages().map(h => `[${h.start},${h.end})`).join('') || 'none').join(' ')
}

/**
 * Wait for a settled network: every node holds a span, every slot has a holder, and the layout has not changed
 * for STABLE_S seconds (the layer pool may still move spans in the first seconds). Returns the layout.
 */
async function settled (devnet: { nodes: NetworkNode[], config: Parameters<typeof slotCount>[0] }): Promise<string> {
  const covered = (): boolean => Array.from({ length: slotCount(devnet.config) }, (_, s) => s).every(s => devnet.nodes.some(n => n.heldStages().some(h => h.start <= s && s < h.end)))
  let last = ''
  let since = performance.now()
  for (;;) {
    const now = layoutOf(devnet)
    if (now !== last) { note(`layout: ${now}`); last = now; since = performance.now() }
    if (devnet.nodes.every(n => n.heldStages().length > 0) && covered() && performance.now() - since > STABLE_S * 1000) break
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  note(`settled: ${last}`)
  return last
}

/**
 * The Driver whose span from slot 0 reaches farthest: a serving-only devnet may leave one node with [0,1) beside
 * another span, and its routes then take one more hop than a Driver of [0,2) (BENCH_DRIVER=first: the first
 * Driver, as before)
 */
function bestDriver (nodes: NetworkNode[]): NetworkNode {
  const drivers = nodes.filter(n => n.heldStages().some(h => h.start === 0))
  if (process.env.BENCH_DRIVER === 'first') return drivers[0]
  const reach = (n: NetworkNode): number => n.heldStages().find(h => h.start === 0)!.end
  return drivers.reduce((a, b) => reach(b) > reach(a) ? b : a)
}

/**
 * 1. inference: devnet (pipeline) vs one process, same genesis weights.
 *
 * The devnet runs in a child process of its own (its own process group and session), the one-process yardstick
 * (`neuroshard generate`'s engine behind the same API) in this one. The yardstick is the engine alone on the machine:
 * around each of its requests the devnet's process group is stopped (SIGSTOP, SIGCONT after; STOP_DEVNET=0: left
 * running, as before), so a training devnet does not slow it; during a devnet request this process only waits on the
 * socket. CPU per token: this process's CPU plus the devnet process's (from /proc), per generated token.
 */
interface InferenceResult {
  rows: Record<'devnet' | 'local', Sample[]>
  pairs: Array<{ devnet: Sample, local: Sample }>
  failures: Record<'devnet' | 'local', string[]>
  layout: string
  idleCpuMsPerS: number
  /** of which the devnet process's main thread (its nodes' event loop) */
  idleMainCpuMsPerS: number
  builds: number[]
  /** (TRAINING=1) the devnet's inner steps (all nodes) per second: with no request running, and during its own requests */
  trainSteps?: { idle: number, idleS: number, serving: number, servingS: number }
  /** what the yardstick's requests ran beside: the devnet stopped or running */
  stopped: boolean
  niceness?: number
}

/** Messages between the bench and its devnet child */
type ChildRequest = { type: 'steps', id: number } | { type: 'profile', id: number } | { type: 'stop', id: number }
type ChildReply = { type: 'ready', url: string, layout: string, config: ModelConfig } | { type: 'steps', id: number, steps: number } | { type: 'profile', id: number } | { type: 'stop', id: number, builds: number[] }

/** The training niceness the devnet's nodes get (TRAINING_NICE; default the node's) */
const NICENESS = TRAINING ? Number(process.env.TRAINING_NICE ?? DEFAULT_TRAINING_NICENESS) : undefined
const STOP_DEVNET = process.env.STOP_DEVNET !== '0'
/** FULL=1: every node is given the memory of the whole model (a one-stage chain where the API node holds every slot) */
const FULL = process.env.FULL === '1'
/** BAKE=1 (serving-only devnet): the nodes' stages baked (NetworkNode `bakeWeights`, as the one-process engine), not fused */
const BAKE = !TRAINING && process.env.BAKE === '1'
/** Seconds of no request over which the training devnet's steps per second are counted */
const IDLE_S = Number(process.env.IDLE_S ?? 10)

/** (in the child, BENCH_DEVNET_CHILD=1) the inference devnet and its API server, driven by the bench over IPC */
async function devnetChild (data: Data): Promise<void> {
  const send = (m: ChildReply): void => { process.send!(m) }
  const nodeData = { manifest: data.manifest, train: data.train, validation: data.validation }
  const devnet = await startNetworkDevnet({
    nodes: 4,
    tokenizer: data.tokenizer,
    data: nodeData,
    config: preset(PRESET),
    // FULL=1: memory for the whole model (the larger half's × 2.2), so each node may hold every slot
    ...(FULL ? { memoryBytes: Math.ceil(halfModelMemory({ ...preset(PRESET), vocabSize: data.tokenizer.vocabSize }, TRAINING) * 2.2) } : {}),
    node: TRAINING
      ? { training: true, serveRoundWeights: SERVE_ROUND, ...(YIELD ? { yieldTraining: true } : {}), trainingNiceness: NICENESS }
      : { training: false, ...(IN_THREAD ? { inThread: true, fuseInference: true } : {}), ...(process.env.FUSE === '0' ? { fuseInference: false } : {}), ...(BAKE ? { bakeWeights: true } : {}) }
  })
  note('inference devnet started (child process)')
  // (TRAINING=1) how long the nodes' round snapshots took to build (wall ms, from the round's parameters to the swap)
  const builds: number[] = []
  for (const n of devnet.nodes) n.addEventListener('node:serving', (e) => { builds.push(e.detail.buildMs) })
  const unwatch = watch('inference devnet', () => devnet.nodes)
  const last = await settled(devnet)
  // a training devnet: measured once its first round is served (every training stage at round ≥ 1), or once it trained a round
  if (TRAINING) {
    const deadline = Date.now() + TRAIN_TIMEOUT_S * 1000
    const ready = (): boolean => devnet.nodes.every(n => n.heldStages().length > 0 && (SERVE_ROUND ? n.servingRounds().every(s => (s.round ?? 0) >= 1) : (n.group(n.heldStages()[0].start)?.round ?? 0) >= 1))
    while (!ready()) {
      if (Date.now() > deadline) throw new Error('the training devnet did not finish a round')
      await new Promise(resolve => setTimeout(resolve, 500))
    }
    note(`first round served: ${devnet.nodes.map(n => JSON.stringify(n.servingRounds())).join(' ')}`)
  }
  const driver = bestDriver(devnet.nodes)
  const net = await startApiServer({ backend: driver.backend(), port: 0, defaultMetrics: false })
  const recorders = [...new Set(devnet.nodes.map(n => n.recorder))]
  const steps = (): number => recorders.reduce((a, r) => a + r.progress().totalSteps, 0)
  let profiler: inspector.Session | undefined
  process.on('message', (m: ChildRequest) => {
    void (async () => {
      if (m.type === 'steps') send({ type: 'steps', id: m.id, steps: steps() })
      else if (m.type === 'profile') {
        profiler = new inspector.Session()
        profiler.connect(); await profiler.post('Profiler.enable'); await profiler.post('Profiler.start')
        send({ type: 'profile', id: m.id })
      } else if (m.type === 'stop') {
        if (profiler != null) {
          const { profile } = await profiler.post('Profiler.stop')
          await writeFile(process.env.PROFILE!, JSON.stringify(profile))
          profiler.disconnect()
        }
        unwatch()
        await net.close(); await devnet.stop()
        note('inference devnet stopped')
        send({ type: 'stop', id: m.id, builds })
        process.disconnect()
        process.exit(0)
      }
    })()
  })
  send({ type: 'ready', url: net.url, layout: last, config: devnet.config })
}

/** A process's state letter (/proc/<pid>/stat field 3: R, S, T stopped, …) */
function procState (pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
}

/** user + system CPU ms of a process so far, all its threads (/proc/<pid>/stat fields 14 + 15, in 1/100 s) */
function procCpuMs (pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) * 10
}

async function inference (data: Data): Promise<InferenceResult> {
  const child = fork(fileURLToPath(import.meta.url), [], { detached: true, env: { ...process.env, BENCH_DEVNET_CHILD: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const pid = child.pid!
  // the child leads its own process group: stop, resume and (at exit) kill the whole group
  const group = (signal: NodeJS.Signals): void => { try { process.kill(-pid, signal) } catch {} }
  process.on('exit', () => { group('SIGCONT'); group('SIGKILL') })
  let nextId = 1
  const waiting = new Map<number, (m: ChildReply) => void>()
  let onReady!: (m: ChildReply & { type: 'ready' }) => void
  let onExit!: (err: Error) => void
  const ready = new Promise<ChildReply & { type: 'ready' }>((resolve, reject) => { onReady = resolve; onExit = reject })
  child.on('message', (m: ChildReply) => {
    if (m.type === 'ready') onReady(m)
    else waiting.get(m.id)?.(m)
  })
  child.on('exit', (code, signal) => { const err = new Error(`the devnet process exited (code ${code}, signal ${signal})`); onExit(err); for (const w of waiting.values()) w({ type: 'stop', id: -1, builds: [] }) })
  const ask = async <T extends ChildReply>(type: ChildRequest['type']): Promise<T> => {
    const id = nextId++
    return await new Promise<T>(resolve => { waiting.set(id, m => { waiting.delete(id); resolve(m as T) }); child.send({ type, id }) })
  }
  const stepsNow = async (): Promise<number> => (await ask<ChildReply & { type: 'steps' }>('steps')).steps
  // the devnet's model (its vocabulary is the tokenizer's), for the same genesis weights here
  const { url, layout, config } = await ready
  note(`devnet ready in process ${pid}: ${url}`)
  const weights = new Map<string, Float32Array>()
  for (let slot = 0; slot < slotCount(config); slot++) for (const [k, v] of genesisSlotParameters(config, slot, 0)) weights.set(k, v)
  const local = await LocalGenerator.create({ tokenizer: data.tokenizer, config, parameters: weights, threads: 1 })
  const one = await startApiServer({ backend: createLocalBackend({ generator: local }), port: 0, defaultMetrics: false })
  const rows: Record<'devnet' | 'local', Sample[]> = { devnet: [], local: [] }
  const pairs: Array<{ devnet: Sample, local: Sample }> = []
  const failures: Record<'devnet' | 'local', string[]> = { devnet: [], local: [] }
  let idleCpuMsPerS = 0
  let idleMainCpuMsPerS = 0
  let trainSteps: InferenceResult['trainSteps']
  let builds: number[] = []
  /** the yardstick alone: the devnet's process group stopped (every thread of it in state T) around `fn` */
  const alone = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (!STOP_DEVNET) return await fn()
    group('SIGSTOP')
    // SIGSTOP is delivered asynchronously: wait until the process shows as stopped (state T)
    for (let i = 0; i < 200 && procState(pid) !== 'T'; i++) await new Promise(resolve => setTimeout(resolve, 1))
    try { return await fn() } finally { group('SIGCONT') }
  }
  try {
    // warm-up: sessions, thread pools, connections
    process.env.MODEL = 'devnet'; await measure(url, 'Hello')
    process.env.MODEL = local.modelId; await alone(async () => await measure(one.url, 'Hello'))
    note('warmed up')
    // the devnet's own background work (training, ledger, gossip, DHT, heartbeats) while no request runs: it counts in
    // both CPU columns, per second of a request, so a slower path is charged more of it
    const idle0 = procCpuMs(pid)
    const main0 = procCpuMs(pid, pid)
    const steps0 = TRAINING ? await stepsNow() : 0
    const t0 = performance.now()
    await new Promise(resolve => setTimeout(resolve, (TRAINING ? IDLE_S : 3) * 1000))
    const idleS = (performance.now() - t0) / 1000
    idleCpuMsPerS = (procCpuMs(pid) - idle0) / idleS
    idleMainCpuMsPerS = (procCpuMs(pid, pid) - main0) / idleS
    const idleSteps = TRAINING ? (await stepsNow()) - steps0 : 0
    let servingSteps = 0
    let servingS = 0
    if (process.env.PROFILE != null) await ask('profile')
    for (let i = 0; i < REQUESTS; i++) {
      const prompt = PROMPTS[i % PROMPTS.length]
      // alternate, so load drifts hit both alike, and in ABBA order (devnet first in even pairs, the one process
      // first in odd ones), so that neither path always runs right after the other
      // a failed request is counted and reported (not measured), and the run goes on
      const got: { devnet?: Sample, local?: Sample } = {}
      const one1 = async (path: 'devnet' | 'local', at: string): Promise<string> => {
        try {
          const c0 = procCpuMs(pid)
          const x = await measure(at, prompt)
          // the devnet process's CPU over the request too (the one process's path: ≈ 0, the devnet stopped)
          x.cpuMsPerToken += (procCpuMs(pid) - c0) / x.tokens
          rows[path].push(x)
          got[path] = x
          return `TTFT ${x.ttftMs.toFixed(0)} ms, ${x.tokens} pieces, ${x.tokPerS.toFixed(1)} tok/s, ${x.cpuMsPerToken.toFixed(1)} CPU ms/token`
        } catch (err: any) {
          failures[path].push(String(err.message))
          return `FAILED: ${String(err.message)}`
        }
      }
      const runDevnet = async (): Promise<string> => {
        process.env.MODEL = 'devnet'
        const s0 = TRAINING ? await stepsNow() : 0
        const r0 = performance.now()
        const out = await one1('devnet', url)
        servingS += (performance.now() - r0) / 1000
        if (TRAINING) servingSteps += (await stepsNow()) - s0
        return out
      }
      const runLocal = async (): Promise<string> => { process.env.MODEL = local.modelId; return await alone(async () => await one1('local', one.url)) }
      let d: string, l: string
      if (i % 2 === 0) { d = await runDevnet(); l = await runLocal() } else { l = await runLocal(); d = await runDevnet() }
      if (got.devnet != null && got.local != null) pairs.push({ devnet: got.devnet, local: got.local })
      note(`request ${i + 1}/${REQUESTS}: devnet ${d}; one process ${l}`)
    }
    if (TRAINING) trainSteps = { idle: idleSteps / idleS, idleS, serving: servingSteps / servingS, servingS }
  } finally {
    group('SIGCONT')
    await one.close(); await local.close?.()
    builds = (await ask<ChildReply & { type: 'stop' }>('stop')).builds
  }
  return { rows, pairs, failures, layout, idleCpuMsPerS, idleMainCpuMsPerS, builds, ...(trainSteps !== undefined ? { trainSteps } : {}), stopped: STOP_DEVNET, ...(NICENESS !== undefined ? { niceness: NICENESS } : {}) }
}

interface RoundRow { round: number, s: number, rssMiB: number, heapMiB: number, validation?: number }

/**
 * Per-token timeline of the devnet path (BENCH_PART=timeline): the pipeline's per-hop methods are timed on every
 * node (all in this process), so the table says which step of a token costs what. Wall times, inclusive (a
 * Validator's INFER includes its blocks, its head and the sampling).
 */
async function timeline (data: Data): Promise<string[]> {
  const nodeData = { manifest: data.manifest, train: data.train, validation: data.validation }
  const devnet = await startNetworkDevnet({ nodes: 4, tokenizer: data.tokenizer, data: nodeData, node: { training: false }, ledger: false })
  const unwatch = watch('timeline devnet', () => devnet.nodes)
  try {
    await settled(devnet)
    const driver = bestDriver(devnet.nodes)
    const role = (self: any): string => {
      const node = devnet.nodes.find(n => n.host.services.pipeline === self)
      return node === driver ? 'Driver' : 'server'
    }
    const spent = new Map<string, { n: number, ms: number }>()
    const add = (name: string, ms: number): void => {
      const e = spent.get(name) ?? { n: 0, ms: 0 }
      e.n++
      e.ms += ms
      spent.set(name, e)
    }
    const proto = Object.getPrototypeOf(driver.host.services.pipeline)
    const originals = new Map<string, any>()
    for (const name of ['runStageInference', 'sample', 'serveInfer', 'sendInfer', 'forwardHop', 'serve']) {
      const fn = proto[name]
      originals.set(name, fn)
      proto[name] = async function (this: any, ...args: any[]) {
        const t0 = performance.now()
        try { return await fn.apply(this, args) } finally { add(`${role(this)} ${name}`, performance.now() - t0) }
      }
    }
    const embed = driver.heldStages().find(h => h.start === 0)!.stage.embed!
    const forward = embed.forward.bind(embed)
    embed.forward = async (...args: Parameters<typeof forward>) => {
      const t0 = performance.now()
      try { return await forward(...args) } finally { add('Driver embed.forward', performance.now() - t0) }
    }
    const net = await startApiServer({ backend: driver.backend(), port: 0, defaultMetrics: false })
    process.env.MODEL = 'devnet'
    try {
      await measure(net.url, 'Hello')
      spent.clear()
      // PROFILE=<file>: a CPU profile of the measured requests only (open it in Chrome DevTools)
      const profiler = process.env.PROFILE != null ? new inspector.Session() : undefined
      if (profiler != null) { profiler.connect(); await profiler.post('Profiler.enable'); await profiler.post('Profiler.start') }
      let tokens = 0
      const samples: Sample[] = []
      for (let i = 0; i < REQUESTS; i++) {
        const x = await measure(net.url, PROMPTS[i % PROMPTS.length])
        samples.push(x)
        tokens += x.tokens
      }
      if (profiler != null) {
        const { profile } = await profiler.post('Profiler.stop')
        await writeFile(process.env.PROFILE!, JSON.stringify(profile))
        profiler.disconnect()
      }
      const perToken = (x: number): string => (x / tokens).toFixed(3)
      return [
        `per-token timeline of /v1/chat/completions through the devnet (${REQUESTS} requests, ${tokens} tokens, temperature ${TEMPERATURE}; spans: ${layoutOf(devnet)}); median TTFT ${median(samples.map(s => s.ttftMs)).toFixed(1)} ms, tokens/s ${median(samples.map(s => s.tokPerS)).toFixed(1)}, CPU ms/token ${median(samples.map(s => s.cpuMsPerToken)).toFixed(2)}; speculative rounds ${driver.speculation.rounds}, draft tokens proposed ${driver.speculation.proposed}, accepted ${driver.speculation.accepted}`,
        '',
        '| step (node: method, inclusive) | calls | ms per token |',
        '|---|---|---|',
        ...[...spent].sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => `| ${k} | ${v.n} | ${perToken(v.ms)} |`)
      ]
    } finally {
      for (const [name, fn] of originals) proto[name] = fn
      await net.close()
    }
  } finally {
    unwatch()
    await devnet.stop()
  }
}

/** 2. training: start → first finished round, memory and validation over rounds */
async function training (data: Data): Promise<{ firstRoundS: number, spans: string, rounds: RoundRow[] }> {
  const nodeData = { manifest: data.manifest, train: data.train, validation: data.validation }
  const t0 = performance.now()
  const rounds: RoundRow[] = []
  let firstRoundS = 0
  let spans = ''
  // a round is finished when a slot group applies its outer step (node:round); the first one on any node
  const onNode = (node: NetworkNode): void => {
    node.addEventListener('node:round', (e) => {
      if (e.detail.round < 1 || firstRoundS > 0) return
      firstRoundS = (performance.now() - t0) / 1000
      spans = trainNet.nodes.map(n => n.heldStages().map(h => `[${h.start},${h.end})`).join('') || 'none').join(' ')
      note(`first finished round (slot ${e.detail.slot})`)
    })
  }
  const trainNet = await startNetworkDevnet({ nodes: 4, tokenizer: data.tokenizer, data: nodeData, node: { optimizer: { schedule: constantLr(3e-3) } }, onNode })
  note('training devnet started')
  const unwatch = watch('training devnet', () => trainNet.nodes)
  try {
    const trainDriver = await new Promise<NetworkNode>((resolve) => {
      const check = setInterval(() => {
        const d = trainNet.nodes.find(n => n.heldStages().some(h => h.start === 0))
        if (d != null) { clearInterval(check); resolve(d) }
      }, 100)
    })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no validation of round ${ROUNDS} after ${TRAIN_TIMEOUT_S} s (rounds seen: ${rounds.map(r => r.round).join(', ') || 'none'})`)) }, TRAIN_TIMEOUT_S * 1000)
      trainDriver.addEventListener('node:validation', (e) => {
        const m = process.memoryUsage()
        rounds.push({ round: e.detail.round, s: (performance.now() - t0) / 1000, rssMiB: m.rss / 2 ** 20, heapMiB: m.heapUsed / 2 ** 20, validation: e.detail.loss })
        note(`validation after round ${e.detail.round}: ${e.detail.loss}`)
        if (e.detail.round >= ROUNDS) { clearTimeout(timer); resolve() }
      })
    })
  } finally {
    unwatch()
    await trainNet.stop()
    note('training devnet stopped')
  }
  return { firstRoundS, spans, rounds }
}

async function run (): Promise<void> {
  const started = new Date().toISOString()
  const load0 = loadavg()[0]
  const data = await prepareData({ dataDir: DATA_DIR, source: 'nlp-corpus', vocabSize: 4096 })
  note('data ready')
  if (process.env.BENCH_DEVNET_CHILD === '1') { await devnetChild(data); return }
  if (PART === 'timeline') {
    console.log((await timeline(data)).join('\n'))
    process.exit(0)
  }
  const inf = PART === 'training' ? undefined : await inference(data)
  const train = PART === 'inference' ? undefined : await training(data)

  const f = (x: number, d = 1): string => x.toFixed(d)
  const range = (xs: number[], d = 1): string => `${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)}`
  const lines = [`devnet benchmark — ${started}, ${cpus().length} cores, load ${f(load0, 2)} → ${f(loadavg()[0], 2)}; ${PART === 'training' ? 'tiny' : `${PRESET}${IN_THREAD ? ' (serving stages in-thread and fused: IN_THREAD=1)' : ''}${BAKE ? ' (serving stages baked: BAKE=1)' : ''}${FULL ? ' (every node given memory for the whole model: FULL=1)' : ''}${TRAINING ? `, the devnet training while it serves (TRAINING=1), ${SERVE_ROUND ? 'completions from the last round\'s baked snapshot (serveRoundWeights)' : 'completions from the training executors (SERVE_ROUND=0)'}${YIELD ? ', Drivers yield training to inference (YIELD=1)' : ''}, training workers at nice ${NICENESS ?? 0} (TRAINING_NICE)` : ''}`}, vocabulary ${data.tokenizer.vocabSize}${inf !== undefined ? `; the devnet in its own process, the one-process yardstick in the bench's, ${inf.stopped ? 'with the devnet process stopped (SIGSTOP) during each of its requests' : 'with the devnet running beside it (STOP_DEVNET=0)'}` : ''}`]
  if (inf !== undefined) {
    const rows = inf.rows
    const stat = (xs: Sample[]): { ttft: number, tps: number, cpu: number } => ({ ttft: median(xs.map(r => r.ttftMs)), tps: median(xs.map(r => r.tokPerS)), cpu: median(xs.map(r => r.cpuMsPerToken)) })
    const dn = stat(rows.devnet)
    const lo = stat(rows.local)
    const q = (xs: number[], d = 1): string => `${f(quantile(xs, 0.25), d)}–${f(quantile(xs, 0.75), d)}`
    // paired ratios: each devnet request against the one-process request of the same prompt next to it
    const ratio = (pick: (x: Sample) => number): { med: number, ci: string } => {
      const rs = inf.pairs.map(p => pick(p.devnet) / pick(p.local))
      const ci = medianInterval(rs)
      return { med: median(rs), ci: ci == null ? 'n/a' : `${f(ci[0], 2)}–${f(ci[1], 2)}` }
    }
    const rTtft = ratio(x => x.ttftMs)
    const rTps = ratio(x => x.tokPerS)
    const rCpu = ratio(x => x.cpuMsPerToken)
    lines.push(
      '',
      `${REQUESTS} requests per path (${TEMPERATURE === 0 ? 'greedy: the devnet Driver drafts with n-grams (speculative decoding), the one process does not' : `temperature ${TEMPERATURE}, seed 7`}) of ${MAX_TOKENS} tokens at most, the paths interleaved (ABBA); medians, (p25–p75), [min–max]; devnet spans, node by node: ${inf.layout}`,
      `devnet process CPU with no request running (its background work): ${f(inf.idleCpuMsPerS)} ms per second, of which its main thread (the nodes' event loop) ${f(inf.idleMainCpuMsPerS)}`,
      ...(inf.trainSteps !== undefined ? [`training steps per second (inner steps, all nodes): no request running ${f(inf.trainSteps.idle, 2)} (over ${f(inf.trainSteps.idleS)} s), during the devnet's requests ${f(inf.trainSteps.serving, 2)} (over ${f(inf.trainSteps.servingS)} s)`] : []),
      ...(inf.builds.length > 0 ? [`round snapshots built during the run (every node, every stage): ${inf.builds.length}, median ${f(median(inf.builds))} ms, max ${f(Math.max(...inf.builds))} ms (wall, round's weights to swap)`] : []),
      `failed requests: devnet ${inf.failures.devnet.length}, one process ${inf.failures.local.length}${[...new Set([...inf.failures.devnet, ...inf.failures.local])].map(m => `; ${m}`).join('')}`,
      '',
      '| path | time to first token (ms) | (p25–p75) [min–max] | tokens/s | (p25–p75) [min–max] | CPU ms per token (both processes) | vs one process (ratio of the medians) |',
      '|---|---|---|---|---|---|---|',
      `| /v1/chat/completions, devnet (4 nodes, through the pipeline) | ${f(dn.ttft)} | (${q(rows.devnet.map(r => r.ttftMs))}) [${range(rows.devnet.map(r => r.ttftMs))}] | ${f(dn.tps)} | (${q(rows.devnet.map(r => r.tokPerS))}) [${range(rows.devnet.map(r => r.tokPerS))}] | ${f(dn.cpu, 2)} | TTFT ${f(dn.ttft / lo.ttft, 2)}×, tokens/s ${f(dn.tps / lo.tps, 2)}×, CPU/token ${f(dn.cpu / lo.cpu, 2)}× |`,
      `| /v1/chat/completions, one process (neuroshard generate's engine) | ${f(lo.ttft)} | (${q(rows.local.map(r => r.ttftMs))}) [${range(rows.local.map(r => r.ttftMs))}] | ${f(lo.tps)} | (${q(rows.local.map(r => r.tokPerS))}) [${range(rows.local.map(r => r.tokPerS))}] | ${f(lo.cpu, 2)} | 1× |`,
      '',
      `paired ratios devnet / one process (${inf.pairs.length} adjacent pairs, same prompt): median, (95 % interval of the median): TTFT ${f(rTtft.med, 2)}× (${rTtft.ci}), tokens/s ${f(rTps.med, 2)}× (${rTps.ci}), CPU/token ${f(rCpu.med, 2)}× (${rCpu.ci})`,
      `goal (ratio of the medians above): TTFT ≤ 1.2× → ${dn.ttft / lo.ttft <= 1.2 ? 'met' : 'NOT met'}; tokens/s ≥ 0.9× → ${dn.tps / lo.tps >= 0.9 ? 'met' : 'NOT met'}`
    )
  }
  if (train !== undefined) {
    lines.push(
      '',
      `training devnet (4 nodes, H = ${DEFAULT_INNER_STEPS}, batch ${DEFAULT_NODE_BATCH_SIZE} × ${DEFAULT_NODE_SEQ_LEN}): start → first finished DiLoCo round ${f(train.firstRoundS)} s (spans then, node by node: ${train.spans})`,
      '',
      '| validation after round | s since start | validation loss | process RSS (MiB, 4 nodes) | heap (MiB) |',
      '|---|---|---|---|---|',
      ...train.rounds.map(r => `| ${r.round} | ${f(r.s)} | ${f(r.validation ?? NaN, 4)} | ${f(r.rssMiB, 0)} | ${f(r.heapMiB, 0)} |`)
    )
  }
  console.log(lines.join('\n'))
  await mkdir(join('bench', 'results'), { recursive: true })
  await writeFile(join('bench', 'results', 'devnet.json'), JSON.stringify({ started, part: PART, inference: inf, training: train, load: [load0, loadavg()[0]] }, null, 2))
  process.exit(0)
}

run().catch((err) => { console.error(err); process.exit(1) })
