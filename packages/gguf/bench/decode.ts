/**
 * Decode speed and memory of `bootstrap` (128M parameters): NeuroShard's engines (fp32 / int8 / int4) side by side
 * with node-llama-cpp (prebuilt llama.cpp) on the GGUF files `exportGguf` writes from the same weights (F32, Q4_0).
 *
 * Run: `node_modules/.bin/tsc -b packages/gguf && node_modules/.bin/node packages/gguf/dist/bench/decode.js [rounds] [engine,engine,…]`
 *
 * Each engine runs in its own child process (so its memory is its own): load, prefill 32 tokens, then greedy-decode
 * 64 tokens one at a time; tokens/s over those 64 steps, RSS of the process after decoding (and RSS less the main
 * thread's ArrayBuffers: the float32 weights the benchmark itself read, which V8 did not always release). The rounds interleave
 * the engines so a shared machine's load hits all of them alike; the table gives each engine's best and median, and
 * the CPU time per token of the whole process (all threads: on an oversubscribed machine a thread waits for a core,
 * which tokens/s counts and CPU time does not).
 *
 * `native-llama.cpp-*`: llama.cpp built natively on this machine (`bench/build-llama-cpp.sh`, `-DGGML_NATIVE=ON`, from
 * the source node-llama-cpp ships), its own `llama-bench -p 0 -d 32 -n 64 -r 1` on the same GGUF files: the 64 tokens
 * decoded one at a time after a 32-token context, as ours (llama-bench decodes fixed tokens without sampling, after its
 * default warm-up run). Binary: $LLAMA_BENCH, else /tmp/neuroshard-llama-cpp/build/bin/llama-bench. Its CPU time per
 * token and load time are not measured (the process's CPU time includes the warm-up and the context); its memory is
 * the process's peak RSS (`/usr/bin/time`).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { buildShardGraph, modelParameters, preset, shardParameters } from '@neuroshard/model'
import type { ShardRole } from '@neuroshard/model'
import { createInferenceEngine, createShardExecutor, int64 } from '@neuroshard/runtime'
import type { KvCacheSession } from '@neuroshard/runtime'
import { trainBpe } from '@neuroshard/tokenizer'
import { exportGguf } from '../src/index.js'

const here = dirname(fileURLToPath(import.meta.url))
const config = preset('bootstrap')
const work = join(tmpdir(), 'neuroshard-gguf-bench')
const weightsFile = join(work, 'bootstrap.f32')
const PROMPT = 32
const STEPS = 64
const ENGINES = ['ours-fp32-3-executors', 'ours-fp32-1-session', 'ours-fp32-gqa', 'ours-fp32-baked', 'ours-fp32-in-thread', 'ours-int8', 'ours-int4', 'ours-int4-gqa', 'ours-int4-opset', 'ours-int4-bs128', 'ours-int4-1-thread', 'ours-int4-in-thread-1-thread', 'ours-fp32-2-threads', 'ours-fp32-2-threads-spin', 'ours-fp32-in-thread-2-threads', 'ours-fp32-baked-2-threads', 'ours-fp32-baked-2-threads-spin', 'ours-int4-bs64', 'ours-int4-bs64-1-thread', 'ours-int4-bs128-1-thread', 'ours-int4-in-thread-1-thread-bs64', 'ours-int4-in-thread-1-thread-bs128', 'llama.cpp-F32', 'llama.cpp-Q4_0', 'llama.cpp-F32-1-thread', 'llama.cpp-Q4_0-1-thread', 'native-llama.cpp-F32', 'native-llama.cpp-Q4_0', 'native-llama.cpp-F32-1-thread', 'native-llama.cpp-Q4_0-1-thread'] as const
type Engine = typeof ENGINES[number]

interface Result { engine: Engine, tokensPerS: number, cpuMsPerToken: number, rssMB: number, engineMB: number, loadS: number }

/** Deterministic weights (decode speed does not depend on their values; a trained scale keeps activations sane) */
function makeWeights (): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  let s = 12345
  for (const spec of modelParameters(config)) {
    const n = spec.shape.reduce((a, b) => a * b, 1)
    const a = new Float32Array(n)
    if (spec.shape.length === 1) a.fill(1)
    else {
      const std = 0.02
      for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; a[i] = ((s / 4294967296) - 0.5) * std * 3.46 }
    }
    out.set(spec.name, a)
  }
  return out
}

function loadWeights (): Map<string, Float32Array> {
  const buf = readFileSync(weightsFile)
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4)
  const out = new Map<string, Float32Array>()
  let o = 0
  for (const spec of modelParameters(config)) {
    const n = spec.shape.reduce((a, b) => a * b, 1)
    // copies, not views of the file buffer: posting views of one big buffer to a worker kept that whole buffer
    // alive in this thread (measured), which would count the file twice in the RSS
    out.set(spec.name, all.slice(o, o + n))
    o += n
  }
  return out
}

function argmax (a: Float32Array, from: number, n: number): number {
  let b = 0
  for (let i = 1; i < n; i++) if (a[from + i] > a[from + b]) b = i
  return b
}

const prompt = (): number[] => Array.from({ length: PROMPT }, (_, i) => (i * 7919 + 13) % 400)

/** CPU time of the whole process (every thread) since `from`, in ms */
const cpuMs = (from: NodeJS.CpuUsage): number => { const u = process.cpuUsage(from); return (u.user + u.system) / 1000 }

async function decodeOurs (run: (ids: number[]) => Promise<Float32Array>): Promise<{ tokensPerS: number, cpuMsPerToken: number }> {
  let logits = await run(prompt())
  let next = argmax(logits, (PROMPT - 1) * config.vocabSize, config.vocabSize)
  const t = performance.now()
  const cpu = process.cpuUsage()
  for (let i = 0; i < STEPS; i++) {
    logits = await run([next])
    next = argmax(logits, 0, config.vocabSize)
  }
  return { tokensPerS: STEPS / ((performance.now() - t) / 1000), cpuMsPerToken: cpuMs(cpu) / STEPS }
}

/** The natively built llama-bench (bench/build-llama-cpp.sh) */
const llamaBench = (): string => process.env.LLAMA_BENCH ?? '/tmp/neuroshard-llama-cpp/build/bin/llama-bench'

/** llama.cpp built natively: its own llama-bench, one repetition, the same GGUF, context and tokens as the others */
function nativeLlamaCpp (engine: Engine): Result {
  const bin = llamaBench()
  if (!existsSync(bin)) throw new Error(`no ${bin}: build it with packages/gguf/bench/build-llama-cpp.sh (or set LLAMA_BENCH)`)
  const model = join(work, engine.includes('-F32') ? 'bootstrap-F32.gguf' : 'bootstrap-Q4_0.gguf')
  const threads = engine.endsWith('1-thread') ? 1 : cpus().length
  const args = [bin, '-m', model, '-p', '0', '-d', String(PROMPT), '-n', String(STEPS), '-t', String(threads), '-r', '1', '-o', 'json']
  const timed = existsSync('/usr/bin/time')
  const p = spawnSync(timed ? '/usr/bin/time' : bin, timed ? ['-f', 'peak-rss-kb %M', ...args] : args.slice(1), { encoding: 'utf8', maxBuffer: 1 << 24 })
  if (p.status !== 0) throw new Error(`llama-bench failed (${String(p.status)}):\n${p.stderr}`)
  const out = JSON.parse(p.stdout) as Array<{ n_gen: number, n_depth: number, n_threads: number, avg_ts: number }>
  const r = out[0]
  if (out.length !== 1 || r.n_gen !== STEPS || r.n_depth !== PROMPT || r.n_threads !== threads) throw new Error(`unexpected llama-bench output ${p.stdout}`)
  const kb = /peak-rss-kb (\d+)/.exec(p.stderr)
  const rssMB = kb != null ? Number(kb[1]) * 1024 / 1e6 : NaN
  return { engine, tokensPerS: r.avg_ts, cpuMsPerToken: NaN, rssMB, engineMB: rssMB, loadS: NaN }
}

async function child (engine: Engine): Promise<Result> {
  const t0 = performance.now()
  let loadS = 0
  if (engine.startsWith('native-llama.cpp')) return nativeLlamaCpp(engine)
  if (engine.startsWith('llama.cpp')) {
    const { getLlama } = await import('node-llama-cpp')
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as any })
    const model = await llama.loadModel({ modelPath: join(work, engine.startsWith('llama.cpp-F32') ? 'bootstrap-F32.gguf' : 'bootstrap-Q4_0.gguf') })
    // llama.cpp's worker threads spin at barriers: on an oversubscribed machine its 2-thread runs collapse, so a
    // 1-thread run is measured too
    const context = await model.createContext({ contextSize: 256, batchSize: 64, threads: engine.endsWith('1-thread') ? 1 : cpus().length })
    const seq = context.getSequence()
    loadS = (performance.now() - t0) / 1000
    const tokens = prompt() as any[]
    let n = 0
    let t = 0
    let cpu = process.cpuUsage()
    for await (const _ of seq.evaluate(tokens, { temperature: 0 })) {
      // the first yield comes after the prompt has been evaluated and one token sampled: time from there
      if (n === 0) { t = performance.now(); cpu = process.cpuUsage() }
      if (++n > STEPS) break
    }
    const tokensPerS = STEPS / ((performance.now() - t) / 1000)
    const cpuMsPerToken = cpuMs(cpu) / STEPS
    const mem = process.memoryUsage()
    await context.dispose(); await model.dispose(); await llama.dispose()
    return { engine, tokensPerS, cpuMsPerToken, rssMB: mem.rss / 1e6, engineMB: (mem.rss - mem.arrayBuffers) / 1e6, loadS }
  }
  let weights: Map<string, Float32Array> | undefined = loadWeights()
  let close: () => Promise<void>
  let run: (ids: number[]) => Promise<Float32Array>
  if (engine === 'ours-fp32-3-executors') {
    // today's path for a node that holds the whole model: embed → blocks → head executors (three workers)
    const roles: ShardRole[] = [{ kind: 'embed' }, { kind: 'blocks', start: 0, end: config.nLayers }, { kind: 'head' }]
    const ex = await Promise.all(roles.map(async role => await createShardExecutor({
      config,
      role,
      parameters: new Map(shardParameters(config, role).map(s => [s.name, weights!.get(s.name)!])),
      graphs: role.kind === 'embed' ? { forward: buildShardGraph(config, role, 'forward').bytes } : { inference: buildShardGraph(config, role, 'inference').bytes }
    })))
    const kvB: KvCacheSession = await ex[1].openInference()
    const kvH: KvCacheSession = await ex[2].openInference()
    run = async (ids) => {
      const h = (await ex[0].forward({ input_ids: int64(ids, [1, ids.length]) })).hidden
      const y = (await kvB.run({ hidden_in: h }, { transfer: true })).hidden_out
      return (await kvH.run({ hidden: y }, { transfer: true })).logits.data as Float32Array
    }
    close = async () => { await Promise.all(ex.map(async e => { await e.close() })) }
  } else {
    const quantization = engine === 'ours-int8' ? 'int8' : engine.startsWith('ours-int4') ? 'int4' : 'fp32'
    // the default graph: opset-23 RotaryEmbedding + Attention over token-major caches that grow in place in the
    // worker ('append'); '-gqa': GroupQueryAttention with whole caches in and out ('present', the default until
    // 2026-12-07); '-opset': opset-23 ops with 'present' caches
    const attention = engine.endsWith('-gqa') ? 'gqa' : 'opset'
    // '-in-thread': the session runs on this thread (RuntimeInit.inThread): no worker message each way per token
    const inThread = engine.includes('-in-thread')
    const kvCache = engine.endsWith('-gqa') || engine.endsWith('-opset') ? 'present' : 'append'
    // '-bs64' / '-bs128': 64- / 128-value quantization blocks instead of 32 (layer-pool 1.7.0 quant_block_size)
    const bs = /-bs(\d+)/.exec(engine)
    const blockSize = bs != null ? Number(bs[1]) : undefined
    // '-1-thread': one onnxruntime thread (no pool barriers to wait on when the cores are oversubscribed), as llama.cpp's;
    // '-2-threads': two, stated (the default is onnxruntime's own choice)
    const th = /-(\d+)-threads?/.exec(engine)
    const intraOpNumThreads = th != null ? Number(th[1]) : undefined
    // '-spin': onnxruntime's pool threads spin between ops (allowSpinning), as llama.cpp's do
    const allowSpinning = engine.endsWith('-spin') ? true : undefined
    const e = await createInferenceEngine({ config, parameters: weights, quantization, attention, kvCache, blockSize, intraOpNumThreads, allowSpinning, inThread, bakeWeights: engine.startsWith('ours-fp32-baked') })
    const kv = await e.openInference()
    run = async (ids) => (await kv.run({ input_ids: int64(ids, [1, ids.length]) })).logits.data as Float32Array
    close = async () => { await e.close() }
  }
  // the float32 weights were copied into the worker (or baked into the graph): drop the main thread's copy
  weights = undefined
  // (not --expose-gc on the command line: the runtime's worker threads inherit execArgv and refuse it)
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
  loadS = (performance.now() - t0) / 1000
  const d = await decodeOurs(run)
  const mem = process.memoryUsage()
  await close()
  return { engine, tokensPerS: d.tokensPerS, cpuMsPerToken: d.cpuMsPerToken, rssMB: mem.rss / 1e6, engineMB: (mem.rss - mem.arrayBuffers) / 1e6, loadS }
}

async function prepare (): Promise<void> {
  mkdirSync(work, { recursive: true })
  if (existsSync(join(work, 'bootstrap-Q4_0.gguf')) && existsSync(weightsFile)) return
  const weights = makeWeights()
  const parts = [...weights.values()]
  const all = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0))
  let o = 0
  for (const p of parts) { all.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o); o += p.byteLength }
  writeFileSync(weightsFile, all)
  const tokenizer = trainBpe(['the quick brown fox jumps over the lazy dog '.repeat(50)], { vocabSize: 300 })
  for (const type of ['F32', 'Q4_0'] as const) {
    await exportGguf(join(work, `bootstrap-${type}.gguf`), { config, parameters: weights, tokenizer, type, name: 'NeuroLLM bootstrap (bench weights)' })
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

if (process.argv[2] === '--child') {
  const r = await child(process.argv[3] as Engine)
  process.stdout.write(JSON.stringify(r) + '\n')
} else {
  const rounds = Number(process.argv[2] ?? 2)
  const only = process.argv[3]?.split(',')
  const unknown = only?.filter(e => !(ENGINES as readonly string[]).includes(e)) ?? []
  if (unknown.length > 0) throw new Error(`unknown engines ${unknown.join(', ')}; known: ${ENGINES.join(', ')}`)
  const engines = ENGINES.filter(e => only === undefined || only.includes(e))
  const load = loadavg()
  const started = new Date().toISOString()
  await prepare()
  const node = process.execPath
  const results: Result[] = []
  for (let r = 0; r < rounds; r++) {
    for (const engine of engines) {
      const p = spawnSync(node, [fileURLToPath(import.meta.url), '--child', engine], { encoding: 'utf8', maxBuffer: 1 << 20 })
      const line = p.stdout.trim().split('\n').pop() ?? ''
      if (p.status !== 0 || !line.startsWith('{')) { console.error(`${engine} failed:\n${p.stderr}`); continue }
      // (a value not measured is NaN, which JSON writes as null)
      const res = JSON.parse(line, (_k, v) => v === null ? NaN : v) as Result
      results.push(res)
      console.error(`round ${r + 1} ${engine}: ${res.tokensPerS.toFixed(1)} tok/s, ${Number.isFinite(res.cpuMsPerToken) ? res.cpuMsPerToken.toFixed(2) : 'n/a'} CPU ms/token, ${res.rssMB.toFixed(0)} MB (${res.engineMB.toFixed(0)} MB less main-thread buffers), load ${loadavg()[0].toFixed(1)}`)
    }
  }
  const cpu = cpus()[0]?.model ?? '?'
  const native = engines.some(e => e.startsWith('native-'))
    ? (() => { const v = spawnSync(llamaBench(), ['--version'], { encoding: 'utf8' }); return `${v.stdout ?? ''}${v.stderr ?? ''}${v.error?.message ?? ''}`.trim().split('\n').join('; ') })()
    : undefined
  const of = (e: Engine): Result[] => results.filter(r => r.engine === e)
  const best = (e: Engine): number => Math.max(...of(e).map(r => r.tokensPerS))
  console.log(`bootstrap decode, ${PROMPT}-token prompt then ${STEPS} greedy tokens, batch 1; ${rounds} rounds interleaved`)
  console.log(`${started}, ${cpus().length} × ${cpu}, Node ${process.version}, loadavg at start ${load.map(x => x.toFixed(2)).join(' ')}, at end ${loadavg().map(x => x.toFixed(2)).join(' ')}`)
  if (native != null) console.log(`native llama.cpp: ${llamaBench()} (${native})`)
  console.log('')
  console.log('| engine | tokens/s best | tokens/s median | CPU ms per token, median (all threads) | RSS after decoding (MB) | RSS less the main thread\'s ArrayBuffers (MB) | load + build (s) |')
  console.log('|---|---|---|---|---|---|---|')
  for (const e of engines) {
    const rs = of(e)
    if (rs.length === 0) { console.log(`| ${e} | failed | | | | | |`); continue }
    // n/a: not measured for this engine (native llama.cpp: CPU time and load; its RSS is the process's peak)
    const f = (x: number, d: number): string => Number.isFinite(x) ? x.toFixed(d) : 'n/a'
    console.log(`| ${e} | ${best(e).toFixed(1)} | ${median(rs.map(r => r.tokensPerS)).toFixed(1)} | ${f(median(rs.map(r => r.cpuMsPerToken)), 2)} | ${f(median(rs.map(r => r.rssMB)), 0)} | ${f(median(rs.map(r => r.engineMB)), 0)} | ${f(median(rs.map(r => r.loadS)), 1)} |`)
  }
  console.log('')
  const bestOf = (...es: Engine[]): number => Math.max(...es.filter(e => of(e).length > 0).map(best))
  /** The lowest median CPU time per token among the engines (a measure of work done, less sensitive to load than tokens/s) */
  const cpuOf = (...es: Engine[]): number => Math.min(...es.filter(e => of(e).length > 0).map(e => median(of(e).map(r => r.cpuMsPerToken))))
  const llamaF32 = bestOf('llama.cpp-F32', 'llama.cpp-F32-1-thread')
  const llamaQ4 = bestOf('llama.cpp-Q4_0', 'llama.cpp-Q4_0-1-thread')
  const F32_ENGINES: Engine[] = ['ours-fp32-1-session', 'ours-fp32-gqa', 'ours-fp32-baked', 'ours-fp32-in-thread', 'ours-fp32-2-threads', 'ours-fp32-2-threads-spin', 'ours-fp32-in-thread-2-threads', 'ours-fp32-baked-2-threads', 'ours-fp32-baked-2-threads-spin']
  const oursF32 = bestOf(...F32_ENGINES)
  /** the int4 engines of the given quantization block sizes (32 unless the name says -bs64 / -bs128) */
  const int4 = (...sizes: number[]): Engine[] => ENGINES.filter(e => e.startsWith('ours-int4') && sizes.includes(Number(/-bs(\d+)/.exec(e)?.[1] ?? 32)))
  const oursQ4 = bestOf(...int4(32))
  const verdict = (r: number): string => r >= 1 ? 'met in this run' : 'not met in this run'
  console.log('| goal (issue 16), each side\'s faster setting | ratio of best tokens/s | | llama.cpp CPU ms per token ÷ ours (median) |')
  console.log('|---|---|---|---|')
  // (a goal row only when both sides of it ran)
  if (llamaF32 > 0 && oursF32 > 0) console.log(`| fp32 ≥ 1.0× node-llama-cpp F32 | ${oursF32.toFixed(1)} / ${llamaF32.toFixed(1)} = ${(oursF32 / llamaF32).toFixed(2)} | ${verdict(oursF32 / llamaF32)} | ${(cpuOf('llama.cpp-F32', 'llama.cpp-F32-1-thread') / cpuOf(...F32_ENGINES)).toFixed(2)} |`)
  if (llamaQ4 > 0 && oursQ4 > 0) console.log(`| 4-bit ≥ 1.0× node-llama-cpp Q4_0 (32-value blocks) | ${oursQ4.toFixed(1)} / ${llamaQ4.toFixed(1)} = ${(oursQ4 / llamaQ4).toFixed(2)} | ${verdict(oursQ4 / llamaQ4)} | ${(cpuOf('llama.cpp-Q4_0', 'llama.cpp-Q4_0-1-thread') / cpuOf(...int4(32))).toFixed(2)} |`)
  for (const bs of [64, 128]) {
    const q = bestOf(...int4(bs))
    if (llamaQ4 > 0 && q > 0) console.log(`| 4-bit ≥ 1.0× node-llama-cpp Q4_0 (${bs}-value blocks) | ${q.toFixed(1)} / ${llamaQ4.toFixed(1)} = ${(q / llamaQ4).toFixed(2)} | ${verdict(q / llamaQ4)} | ${(cpuOf('llama.cpp-Q4_0', 'llama.cpp-Q4_0-1-thread') / cpuOf(...int4(bs))).toFixed(2)} |`)
  }
  const nativeF32 = bestOf('native-llama.cpp-F32', 'native-llama.cpp-F32-1-thread')
  const nativeQ4 = bestOf('native-llama.cpp-Q4_0', 'native-llama.cpp-Q4_0-1-thread')
  if (nativeF32 > 0 && oursF32 > 0) console.log(`| fp32 ≥ 0.9× native llama.cpp F32 | ${oursF32.toFixed(1)} / ${nativeF32.toFixed(1)} = ${(oursF32 / nativeF32).toFixed(2)} | ${oursF32 / nativeF32 >= 0.9 ? 'met in this run' : 'not met in this run'} | n/a |`)
  if (nativeQ4 > 0) {
    for (const bs of [32, 128]) {
      const q = bestOf(...int4(bs))
      if (q > 0) console.log(`| (4-bit, ${bs}-value blocks, vs native llama.cpp Q4_0: no goal) | ${q.toFixed(1)} / ${nativeQ4.toFixed(1)} = ${(q / nativeQ4).toFixed(2)} | | n/a |`)
    }
  }
  if (nativeF32 > 0 && llamaF32 > 0) console.log(`| (node-llama-cpp vs native llama.cpp, F32 / Q4_0) | ${(llamaF32 / nativeF32).toFixed(2)} / ${llamaQ4 > 0 && nativeQ4 > 0 ? (llamaQ4 / nativeQ4).toFixed(2) : 'n/a'} | | |`)
  if (of('ours-fp32-3-executors').length > 0) console.log(`| (one session vs three executors, fp32) | ${(best('ours-fp32-1-session') / best('ours-fp32-3-executors')).toFixed(2)} | | |`)
  if (of('ours-int4-gqa').length > 0) console.log(`| (int4: append caches vs GroupQueryAttention with present caches) | ${(best('ours-int4') / best('ours-int4-gqa')).toFixed(2)} | | ${(cpuOf('ours-int4-gqa') / cpuOf('ours-int4')).toFixed(2)} (gqa ÷ append) |`)
  if (of('ours-fp32-gqa').length > 0) console.log(`| (fp32: append caches vs GroupQueryAttention with present caches) | ${(best('ours-fp32-1-session') / best('ours-fp32-gqa')).toFixed(2)} | | ${(cpuOf('ours-fp32-gqa') / cpuOf('ours-fp32-1-session')).toFixed(2)} (gqa ÷ append) |`)
  if (of('ours-int4-in-thread-1-thread').length > 0 && of('ours-int4-1-thread').length > 0) console.log(`| (int4, 1 thread: session on the calling thread vs in the worker) | ${(best('ours-int4-in-thread-1-thread') / best('ours-int4-1-thread')).toFixed(2)} | | ${(cpuOf('ours-int4-1-thread') / cpuOf('ours-int4-in-thread-1-thread')).toFixed(2)} (worker ÷ in-thread) |`)
  if (of('ours-fp32-in-thread').length > 0 && of('ours-fp32-1-session').length > 0) console.log(`| (fp32: session on the calling thread vs in the worker) | ${(best('ours-fp32-in-thread') / best('ours-fp32-1-session')).toFixed(2)} | | ${(cpuOf('ours-fp32-1-session') / cpuOf('ours-fp32-in-thread')).toFixed(2)} (worker ÷ in-thread) |`)
  if (of('ours-int4-bs128').length > 0) console.log(`| (int4: 128-value vs 32-value blocks) | ${(best('ours-int4-bs128') / best('ours-int4')).toFixed(2)} | | ${(cpuOf('ours-int4') / cpuOf('ours-int4-bs128')).toFixed(2)} (bs32 ÷ bs128) |`)
  const dir = join(here, '..', '..', 'bench-results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, `decode-${Date.now()}.json`), JSON.stringify({ started, loadavg: load, cpu, rounds, engines, results }, null, 2))
}
