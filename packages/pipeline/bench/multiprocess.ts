/**
 * Pipeline benchmarks with every node in its own OS process (issue 10's yardsticks): the Driver, the Worker
 * and the Validator are separate `node` processes (bench/node.ts, forked), talking libp2p over TCP on
 * 127.0.0.1; the single-process baselines run in a fourth process that holds the whole model.
 *
 * - decode: `small`, greedy decode tokens/s over 3 node processes vs one process, rounds with the paths' order rotating (ROUNDS=n, default 15): per-round medians and paired ratios with a 95 % interval;
 *   the third chain is `directTokens: false`, or with ROUTED=acks `quietInfer: false` (acknowledged direct INFERs).
 *   Every path runs the same kind of executor: weights fed from resident tensors (not baked), or with BAKE=1 baked into
 *   the blocks' and head's inference sessions (`bakeWeights`, what generation defaults to since issue 16) in the one
 *   process and in the stages alike.
 * - failover: `tiny`, the Worker process in use is SIGKILLed after the 5th token, ≥ 50 times per mode (KILLS=n,
 *   MODES=mirror,replay: mirrored standbys and the replay, kill by kill in turn): time from its death (exit observed)
 *   to the next token.
 * - train (both) / train-tied / train-untied (STEPS=n blocks, default 20): `small` tied / untied, batch 2 × 256: pipeline step vs the
 *   monolithic step, one step of each per block on the same batch, the order mirrored each block (ABBA): medians, quartiles, the
 *   paired per-block ratio's median with a distribution-free 95 % interval; the goal (≤ 1.5×) decided by that interval.
 * - compress: `tiny`, 200 steps with float32 and with int8 activations/gradients: bytes per step, val loss.
 *
 * Run: npx -y pnpm@10 exec tsc -b packages/pipeline && (cd packages/pipeline && ../../node_modules/.bin/node dist/bench/multiprocess.js [decode] [failover] [train] [train-untied] [compress])
 * PROFILE=dir writes a V8 CPU profile of every process there (node --cpu-prof).
 */
import { fork } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { Command, NodeInit } from './node.js'
import type { RecoveryTiming, TrainBatch } from '../src/index.js'
import type { ChildProcess } from 'node:child_process'

const results: Record<string, unknown> = { date: new Date().toISOString(), loadavg: loadavg(), node: process.version, processes: true }
const profileDir = process.env.PROFILE

class Node {
  readonly child: ChildProcess
  private next = 1
  private readonly pending = new Map<number, { resolve(v: any): void, reject(e: Error): void }>()
  readonly exited: Promise<void>
  info: { pid: number, peer?: string, addrs?: string[] } = { pid: 0 }
  onAsk?: (msg: any) => Promise<unknown>

  constructor (readonly name: string) {
    const execArgv = profileDir != null ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`] : []
    this.child = fork(fileURLToPath(new URL('./node.js', import.meta.url)), [], { serialization: 'advanced', execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.exited = new Promise(resolve => this.child.once('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error(`${name} exited`))
      resolve()
    }))
    this.child.on('message', (msg: any) => {
      if (msg.ask != null) {
        void this.onAsk?.(msg).then(value => this.child.send({ answer: msg.ask, value }))
        return
      }
      const p = this.pending.get(msg.id)
      this.pending.delete(msg.id)
      if (msg.ok === true) p?.resolve(msg.result)
      else p?.reject(new Error(`${name}: ${String(msg.error)}`))
    })
  }

  async call<T = any> (cmd: Command): Promise<T> {
    const id = this.next++
    return await new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.child.send({ id, cmd })
    })
  }

  async init (init: NodeInit): Promise<this> {
    this.info = await this.call({ op: 'init', init })
    return this
  }

  async stop (): Promise<void> {
    if (this.child.exitCode != null || this.child.signalCode != null) return
    await this.call({ op: 'stop' }).catch(() => {})
    await this.exited
  }

  kill (): void {
    this.child.kill('SIGKILL')
  }
}

function pct (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))]
}
const median = (xs: number[]): number => pct(xs, 50)

/**
 * A distribution-free 95 % confidence interval of the median of `xs`: the order statistics x(j) and x(n+1-j)
 * with the largest j such that P(Binomial(n, 1/2) < j) ≤ 2.5 %. Undefined for fewer than 6 values.
 */
function medianInterval (xs: number[]): [number, number] | undefined {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  let cdf = 0
  let pmf = 2 ** -n
  let j = 0
  for (let i = 1; i <= n; i++) {
    cdf += pmf // P(B < i)
    if (cdf > 0.025) break
    j = i
    pmf = pmf * (n - (i - 1)) / i
  }
  return j >= 1 ? [s[j - 1], s[n - j]] : undefined
}
/** p25–p75 of `xs` (nearest rank) */
const iqr = (xs: number[]): string => `${f(pct(xs, 25))}–${f(pct(xs, 75))}`
const f = (x: number, d = 2): string => x.toFixed(d)
const load = (): string => loadavg().map(x => x.toFixed(2)).join(' ')

function table (title: string, rows: Array<[string, string]>): void {
  console.log(`\n### ${title}\n\n| measurement | result |\n|---|---|`)
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`)
}

/** Driver [0, 1), Worker [1, L + 1), Validator [L + 1, L + 2), each its own process, connected */
async function chain (init: Omit<NodeInit, 'start' | 'end'>, L: number): Promise<{ driver: Node, worker: Node, validator: Node, all: Node[] }> {
  const [driver, worker, validator] = await Promise.all([
    new Node('driver').init({ ...init, start: 0, end: 1 }),
    new Node('worker').init({ ...init, start: 1, end: L + 1 }),
    new Node('validator').init({ ...init, start: L + 1, end: L + 2 })
  ])
  await worker.call({ op: 'connect', hops: [], dial: [validator.info.addrs![0]] })
  await driver.call({
    op: 'connect',
    hops: [{ peer: worker.info.peer!, start: 1, end: L + 1 }, { peer: validator.info.peer!, start: L + 1, end: L + 2 }],
    dial: [worker.info.addrs![0], validator.info.addrs![0]]
  })
  return { driver, worker, validator, all: [driver, worker, validator] }
}

async function benchDecode (): Promise<void> {
  const L = 12
  const bake = process.env.BAKE === '1'
  // the one process and the stages run the same kind of executor (compare like with like)
  const base = { preset: 'small' as const, seed: 1, training: false, threads: 2, ...(bake ? { bakeWeights: true } : {}) }
  const local = await new Node('local').init({ ...base, start: 0, end: L + 2, local: true })
  const { driver, all } = await chain(base, L)
  // the same chain without tokens streams (every answer back through the Worker, as before revision 1.3.0), or with
  // ROUTED=acks with tokens streams but every direct INFER acknowledged (as before revision 1.5.0: 5 messages per token)
  const acks = process.env.ROUTED === 'acks'
  const routed = await chain(acks ? { ...base, quietInfer: false } : { ...base, directTokens: false }, L)
  const prompt = Array.from({ length: 16 }, (_, i) => 100 + i * 7)
  const n = 48
  const rounds = Number(process.env.ROUNDS ?? 15)
  try {
    await local.call({ op: 'localDecode', prompt, n: 4 }) // warm-up
    await driver.call({ op: 'decode', prompt, n: 4 })
    await routed.driver.call({ op: 'decode', prompt, n: 4 })
    const localMs: number[] = []
    const pipeMs: number[] = []
    const routedMs: number[] = []
    // CPU time (all threads, and main threads only) of the processes that serve each path, per generated token
    // (prefill included): the figure the machine's load disturbs least
    const cpu = { local: 0, pipe: 0, routed: 0, tokens: 0, localMain: 0, pipeMain: 0, routedMain: 0 }
    const perNode = new Map<string, number>()
    const timed = async <T>(nodes: Node[], key: 'local' | 'pipe' | 'routed', run: () => Promise<T>): Promise<T> => {
      const each0 = await Promise.all(nodes.map(async x => await x.call<[number, number]>({ op: 'cpu' })))
      const out = await run()
      const each1 = await Promise.all(nodes.map(async x => await x.call<[number, number]>({ op: 'cpu' })))
      nodes.forEach((x, i) => {
        for (const [j, what] of [[0, 'all'], [1, 'main']] as const) perNode.set(`${key}/${x.name}/${what}`, (perNode.get(`${key}/${x.name}/${what}`) ?? 0) + each1[i][j] - each0[i][j])
        cpu[key] += each1[i][0] - each0[i][0]
        cpu[`${key}Main`] += each1[i][1] - each0[i][1]
      })
      return out
    }
    let same = true
    // decode tokens/s of each path in each round (decode steps only), for per-round medians and paired ratios
    const perRound = { local: [] as number[], pipe: [] as number[], routed: [] as number[] }
    const tps = (ms: number[]): number => 1000 * (ms.length - 1) / ms.slice(1).reduce((x, y) => x + y, 0)
    for (let round = 0; round < rounds; round++) {
      type Out = { ids: number[], ms: number[] }
      const runs = {
        a: async () => await timed([local], 'local', async () => await local.call<Out>({ op: 'localDecode', prompt, n })),
        b: async () => await timed(all, 'pipe', async () => await driver.call<Out>({ op: 'decode', prompt, n })),
        c: async () => await timed(routed.all, 'routed', async () => await routed.driver.call<Out>({ op: 'decode', prompt, n }))
      }
      // the paths' order rotates from round to round (abc, bca, cab), so no path always follows the same one
      const order = (['a', 'b', 'c'] as const).map((_, i, xs) => xs[(i + round) % 3])
      const out: Partial<Record<'a' | 'b' | 'c', Out>> = {}
      for (const k of order) out[k] = await runs[k]()
      const { a, b, c } = out as Record<'a' | 'b' | 'c', Out>
      perRound.local.push(tps(a.ms)); perRound.pipe.push(tps(b.ms)); perRound.routed.push(tps(c.ms))
      cpu.tokens += n
      same &&= a.ids.join() === b.ids.join() && a.ids.join() === c.ids.join()
      localMs.push(...a.ms.slice(1)) // decode steps only (the first token includes the prefill)
      pipeMs.push(...b.ms.slice(1))
      routedMs.push(...c.ms.slice(1))
    }
    if (process.env.TRACE != null) {
      const ev: Array<[string, number]> = []
      for (const n of all) ev.push(...await n.call<Array<[string, number]>>({ op: 'trace' }))
      ev.sort((a, b) => a[1] - b[1])
      const gaps = new Map<string, number[]>()
      for (let i = 1; i < ev.length; i++) { const k = `${ev[i - 1][0]} -> ${ev[i][0]}`; if (!gaps.has(k)) gaps.set(k, []); gaps.get(k)!.push(ev[i][1] - ev[i - 1][1]) }
      for (const [k, v] of gaps) if (v.length > 20) console.log(k.padEnd(40), 'n', v.length, 'p50', f(median(v)), 'mean', f(v.reduce((a, b) => a + b, 0) / v.length))
    }
    const tpsLocal = 1000 * localMs.length / localMs.reduce((s, x) => s + x, 0)
    const tpsPipe = 1000 * pipeMs.length / pipeMs.reduce((s, x) => s + x, 0)
    const tpsRouted = 1000 * routedMs.length / routedMs.reduce((s, x) => s + x, 0)
    const med = { local: median(perRound.local), pipe: median(perRound.pipe), routed: median(perRound.routed) }
    const ratios = perRound.pipe.map((x, i) => x / perRound.local[i])
    const routedRatios = perRound.routed.map((x, i) => x / perRound.local[i])
    const ci = medianInterval(ratios)
    const routedCi = medianInterval(routedRatios)
    const r = {
      bakeWeights: bake,
      perRoundTokensPerSecond: perRound,
      medianTokensPerSecond: med,
      pairedRatio: { median: median(ratios), interval95: ci },
      routedPairedRatio: { median: median(routedRatios), interval95: routedCi },
      decodeSteps: localMs.length,
      sameTokens: same,
      localTokensPerSecond: tpsLocal,
      pipelineTokensPerSecond: tpsPipe,
      slowdown: 1 - med.pipe / med.local,
      pooledSlowdown: 1 - tpsPipe / tpsLocal,
      localMs: { p50: median(localMs), p99: pct(localMs, 99) },
      pipelineMs: { p50: median(pipeMs), p99: pct(pipeMs, 99) },
      routedTokensPerSecond: tpsRouted,
      routedMs: { p50: median(routedMs), p99: pct(routedMs, 99) },
      cpuMsPerTokenByProcess: Object.fromEntries([...perNode].map(([k, v]) => [k, v / 1000 / cpu.tokens])),
      cpuMsPerToken: { local: cpu.local / 1000 / cpu.tokens, pipeline: cpu.pipe / 1000 / cpu.tokens, routed: cpu.routed / 1000 / cpu.tokens },
      mainThreadCpuMsPerToken: { local: cpu.localMain / 1000 / cpu.tokens, pipeline: cpu.pipeMain / 1000 / cpu.tokens, routed: cpu.routedMain / 1000 / cpu.tokens },
      networkHops: 2,
      addedPerHopMs: { p50: (median(pipeMs) - median(localMs)) / 2, p99: (pct(pipeMs, 99) - pct(localMs, 99)) / 2 },
      loadAfter: loadavg()
    }
    results.decode = r
    const ciText = (x: [number, number] | undefined): string => x == null ? 'n/a' : `${f(x[0], 3)}–${f(x[1], 3)}`
    table(`decode \`small\` (greedy, 16-token prompt, ${rounds} rounds × ${n - 1} decode steps, the paths' order rotating each round, separate processes; weights ${bake ? 'baked into the sessions (bakeWeights)' : 'not baked (fed from resident tensors)'} in every path), load after: ${load()}`, [
      ['one process (embed → 12 blocks with KV cache → head)', `median ${f(med.local)} tokens/s over the rounds (p25–p75 ${iqr(perRound.local)}); all steps pooled ${f(tpsLocal)} tokens/s (p50 ${f(r.localMs.p50)} ms, p99 ${f(r.localMs.p99)} ms per token)`],
      ['3 processes on loopback (Driver → Worker → Validator → Driver: tokens stream)', `median ${f(med.pipe)} tokens/s over the rounds (p25–p75 ${iqr(perRound.pipe)}); all steps pooled ${f(tpsPipe)} tokens/s (p50 ${f(r.pipelineMs.p50)} ms, p99 ${f(r.pipelineMs.p99)} ms per token)`],
      [acks ? '3 processes, `quietInfer: false` (tokens stream, every direct INFER acknowledged: 5 messages per token)' : '3 processes, `directTokens: false` (answers back through the Worker)', `median ${f(med.routed)} tokens/s over the rounds (p25–p75 ${iqr(perRound.routed)}); all steps pooled ${f(tpsRouted)} tokens/s (p50 ${f(r.routedMs.p50)} ms, p99 ${f(r.routedMs.p99)} ms per token)`],
      ['tokens/s ratio to the one process in the same round (3 processes / third chain)', `median ${f(r.pairedRatio.median, 3)} (95 % interval of the median ${ciText(ci)}) / ${f(r.routedPairedRatio.median, 3)} (${ciText(routedCi)}), ${rounds} rounds`],
      ['CPU ms per token, all threads of the processes serving it (one process / 3 processes / routed)', `${f(r.cpuMsPerToken.local)} / ${f(r.cpuMsPerToken.pipeline)} / ${f(r.cpuMsPerToken.routed)} (${f(r.cpuMsPerToken.pipeline / r.cpuMsPerToken.local)}× / ${f(r.cpuMsPerToken.routed / r.cpuMsPerToken.local)}×); of it on the main threads ${f(r.mainThreadCpuMsPerToken.local)} / ${f(r.mainThreadCpuMsPerToken.pipeline)} / ${f(r.mainThreadCpuMsPerToken.routed)}`],
      ['pipeline vs one process (ratio of the median tokens/s above)', `${f(100 * r.slowdown, 1)} % slower (goal ≤ 10 %: ${r.slowdown <= 0.1 ? 'met' : 'NOT met'}); same tokens: ${same}`],
      ['added latency per hop (2 network hops)', `p50 ${f(r.addedPerHopMs.p50)} ms, p99 ${f(r.addedPerHopMs.p99)} ms`]
    ])
  } finally {
    await Promise.all([local, ...all, ...routed.all].map(async n => { await n.stop() }))
  }
}

async function benchFailover (kills: number): Promise<void> {
  const L = 2
  const base = { preset: 'tiny' as const, seed: 1, training: false, threads: 1 }
  const [driver, validator] = await Promise.all([new Node('driver').init({ ...base, start: 0, end: 1 }), new Node('validator').init({ ...base, start: L + 1, end: L + 2 })])
  const workers: Node[] = []
  const connect = async (): Promise<void> => {
    const live = workers.filter(w => w.child.exitCode == null && w.child.signalCode == null)
    await driver.call({
      op: 'connect',
      hops: [...live.map(w => ({ peer: w.info.peer!, start: 1, end: L + 1 })), { peer: validator.info.peer!, start: L + 1, end: L + 2 }],
      dial: [validator.info.addrs![0], ...live.map(w => w.info.addrs![0])]
    })
  }
  const addWorker = async (): Promise<void> => {
    const w = await new Node(`worker${workers.length}`).init({ ...base, start: 1, end: L + 1 })
    await w.call({ op: 'connect', hops: [], dial: [validator.info.addrs![0]] })
    workers.push(w)
  }
  await Promise.all([addWorker(), addWorker()])
  await connect()
  const prompt = [...new TextEncoder().encode('failover bench ')]
  const want = (await driver.call<{ ids: number[] }>({ op: 'decode', prompt, n: 12 })).ids
  // mirrored standbys (spec 1.4.0) and the replay they replace, kill by kill in turn, in the same run
  const modes = (process.env.MODES ?? 'mirror,replay').split(',') as Array<'mirror' | 'replay'>
  const phases = ['detect', 'reroute', 'embed', 'link', 'chain', 'total'] as const
  const per = new Map(modes.map(m => [m, { failoverMs: [] as number[], detectedMs: [] as number[], afterMs: [] as number[], tokenMs: [] as number[], identical: 0, observed: 0, switched: 0, direct: 0, recoveries: [] as RecoveryTiming[], outside: [] as number[] }]))
  try {
    for (let k = 0; k < kills * modes.length; k++) {
      const mode = modes[k % modes.length]
      const m = per.get(mode)!
      // the first live Worker in the candidate list is the one in use, the second its standby
      const victim = workers.find(w => w.child.exitCode == null && w.child.signalCode == null)!
      driver.onAsk = async () => {
        victim.kill()
        await victim.exited
        return null
      }
      const got = await driver.call<{ ids: number[], ms: number[], failovers: number, switches: number, detectedMs?: number, recoveries: RecoveryTiming[] }>({ op: 'generate', prompt, n: 12, killAfter: 5, mirror: mode === 'mirror' })
      if (got.recoveries.length === 1) {
        m.recoveries.push(got.recoveries[0])
        // the rest of the death-to-token time: the generator resuming before it writes the failed request, and the token's way to the caller
        m.outside.push(got.ms[5] - got.recoveries[0].ms.total)
      }
      if (got.detectedMs != null) {
        m.detectedMs.push(got.detectedMs)
        // after detection (issue 15's measure, the node's `failover` line): the failover event to the next token
        m.afterMs.push(got.ms[5] - got.detectedMs)
      }
      if (got.recoveries.length === 1 && got.recoveries[0].direct === true) m.direct++
      if (got.ids.join() === want.join()) m.identical++
      m.observed += got.failovers > 0 ? 1 : 0
      m.switched += got.switches > 0 ? 1 : 0
      m.failoverMs.push(got.ms[5])
      m.tokenMs.push(...got.ms.slice(1, 5), ...got.ms.slice(6))
      await addWorker() // the next standby (not timed)
      await connect()
    }
    const r: Record<string, unknown> = { kills, modes, loadAfter: loadavg() }
    const rows: Array<[string, string]> = []
    for (const [mode, m] of per) {
      const x = {
        identicalOutputs: m.identical,
        failoversObserved: m.observed,
        standbySwitches: m.switched,
        failoverMs: { p50: median(m.failoverMs), p99: pct(m.failoverMs, 99), max: Math.max(...m.failoverMs) },
        // when the Driver's failover event fired (the dead Worker's stream/connection closing seen), ms after the death
        detectedMs: { p50: median(m.detectedMs), p99: pct(m.detectedMs, 99), max: Math.max(...m.detectedMs) },
        everyFailoverMs: m.failoverMs,
        everyDetectedMs: m.detectedMs,
        everyAfterDetectionMs: m.afterMs,
        // the Driver's phase times of each recovery (pipeline:recovered), in kill order
        recoveries: m.recoveries,
        normalTokenMs: { p50: median(m.tokenMs), p99: pct(m.tokenMs, 99) }
      }
      r[mode] = x
      const label = mode === 'mirror' ? 'mirrored standby (switch, no replay)' : 'replay on the standby (`mirror: false`)'
      rows.push(
        [`${label}: time from the Worker's death to the next token`, `p50 ${f(x.failoverMs.p50)} ms, p99 ${f(x.failoverMs.p99)} ms, max ${f(x.failoverMs.max)} ms (goal p99 ≤ 200 ms)`],
        [`${label}: death to the Driver's failover event`, `p50 ${f(x.detectedMs.p50)} ms, p99 ${f(x.detectedMs.p99)} ms, max ${f(x.detectedMs.max)} ms (${m.detectedMs.length} kills)`],
        [`${label}: after detection (the Driver's failover event to the next token)`, `p50 ${f(median(m.afterMs))} ms, p99 ${f(pct(m.afterMs, 99))} ms, max ${f(Math.max(...m.afterMs))} ms (${m.afterMs.length} kills; goal p99 ≤ 200 ms)`],
        [`${label}: recoveries whose token came on the tokens stream (\`direct\`)`, `${m.direct} / ${m.recoveries.length}`],
        [`${label}: the five slowest failovers`, [...m.failoverMs].sort((a, b) => b - a).slice(0, 5).map(v => `${f(v, 1)} ms`).join(', ')],
        [`${label}: phases on the Driver, p50 / p99 ms (${m.recoveries.length} recoveries): detect (failed request written → failure seen), reroute (ban, route, standbys), embed, chain (INFER on the new chain → answer; of it link: stream opening), total; outside (resume before the write, token to the caller)`,
          [...phases.map(k => `${k} ${f(median(m.recoveries.map(r => r.ms[k])), 1)} / ${f(pct(m.recoveries.map(r => r.ms[k]), 99), 1)}`), `outside ${f(median(m.outside), 1)} / ${f(pct(m.outside, 99), 1)}`].join(', ')],
        [`${label}: phases of the five slowest recoveries (total: detect + reroute + embed + chain [link], ms)`,
          [...m.recoveries].sort((a, b) => b.ms.total - a.ms.total).slice(0, 5).map(r => `${f(r.ms.total, 0)}: ${f(r.ms.detect, 0)} + ${f(r.ms.reroute, 0)} + ${f(r.ms.embed, 0)} + ${f(r.ms.chain, 0)} [${f(r.ms.link, 0)}]${r.attempts > 1 ? ` (${r.attempts} attempts)` : ''}`).join('; ')],
        [`${label}: normal token latency, same runs`, `p50 ${f(x.normalTokenMs.p50)} ms, p99 ${f(x.normalTokenMs.p99)} ms`],
        [`${label}: identical generations / failovers seen / standby switches`, `${m.identical} / ${kills}, ${m.observed} / ${kills}, ${m.switched} / ${kills}`]
      )
    }
    results.failover = r
    table(`failover \`tiny\` (${kills} SIGKILLs of the Worker process in use after the 5th token per mode, modes in turn: ${modes.join(', ')}; separate processes), load after: ${load()}`, rows)
  } finally {
    await Promise.all([driver, validator, ...workers].map(async n => { await n.stop() }))
  }
}

function randomBatches (vocab: number, n: number, rows: number, seq: number, seed: number): TrainBatch[] {
  let s = seed
  const next = (): bigint => { s = (s * 1103515245 + 12345) % 2147483648; return BigInt(s % vocab) }
  return Array.from({ length: n }, () => ({ inputIds: BigInt64Array.from({ length: rows * seq }, next), targets: BigInt64Array.from({ length: rows * seq }, next), batch: rows, seq }))
}

/**
 * Training step, pipeline vs monolithic: `steps` blocks, each one step of every path on the same batch, the paths'
 * order mirrored from block to block (ABBA: mono, pipe[, control] then [control, ]pipe, mono), so that neither path
 * always runs first or in the same load. Each block gives a paired ratio pipe / mono; the goal (≤ 1.5×) is decided
 * by the rule fixed before the numbers: met if the upper end of the distribution-free 95 % interval of the median
 * paired ratio is ≤ 1.5, NOT met if its lower end is > 1.5, undecided otherwise.
 */
async function benchTrain (tied: boolean, steps = 20): Promise<void> {
  const L = 12
  const goal = 1.5
  const base = { preset: 'small' as const, tied, seed: 1, training: true, lr: [3e-4, 10, 1000] as [number, number, number] }
  const data = randomBatches(32000, steps + 1, 2, 256, 5)
  const local = await new Node('mono').init({ ...base, start: 0, end: L + 2, local: true, monolithic: true, training: false })
  // tied: the Validator owns the tied matrix (spec 1.8.0, `tiedOwner`); the control, a third path in each block, is the
  // same chain the 1.7.0 way (the Driver recomputes the head's tied gradient and steps its own copy, `tiedOwner: false`)
  const { driver, all } = await chain(tied ? { ...base, tiedOwner: true } : base, L)
  const control = tied ? await chain({ ...base, tiedOwner: false }, L) : undefined
  // CPU time of every process (all threads) over the measured steps, ms
  const cpuEach = async (nodes: Node[]): Promise<number[]> => await Promise.all(nodes.map(async n => (await n.call<number[]>({ op: 'cpu' }))[0] / 1000))
  // per process of the chain (Driver, Worker, Validator), ms over the measured steps
  const each = [0, 0, 0]
  const eachControl = [0, 0, 0]
  type Phases = { microBatches: number, tied: number, norm: number, step: number, sync: number }
  try {
    await local.call({ op: 'monoTrain', batches: [data[0]] }) // warm-up
    // warm-up; tied: step 0 seeds the replica, step 1 hands the matrix to its owner (both chains take both steps)
    for (let k = 0; k < (tied ? 2 : 1); k++) {
      await driver.call({ op: 'train', batches: [data[0]] })
      await control?.driver.call({ op: 'train', batches: [data[0]] })
    }
    const m: number[] = []
    const p: number[] = []
    const c: number[] = []
    const phases: Phases[] = []
    const cphases: Phases[] = []
    let owned = 0
    let mCpu = 0
    let pCpu = 0
    let cCpu = 0
    const runs = {
      mono: async (i: number) => {
        const [before] = await cpuEach([local])
        m.push(...(await local.call<{ ms: number[] }>({ op: 'monoTrain', batches: [data[i]] })).ms)
        mCpu += (await cpuEach([local]))[0] - before
      },
      pipe: async (i: number) => {
        const b3 = await cpuEach(all)
        const r = await driver.call<{ ms: number[], phases: Phases[], owned: number }>({ op: 'train', batches: [data[i]] })
        owned += r.owned
        const a3 = await cpuEach(all)
        for (let k = 0; k < 3; k++) { each[k] += a3[k] - b3[k]; pCpu += a3[k] - b3[k] }
        p.push(...r.ms)
        phases.push(...r.phases)
      },
      control: async (i: number) => {
        if (control == null) return
        const b3 = await cpuEach(control.all)
        const rc = await control.driver.call<{ ms: number[], phases: Phases[] }>({ op: 'train', batches: [data[i]] })
        const a3 = await cpuEach(control.all)
        for (let k = 0; k < 3; k++) { eachControl[k] += a3[k] - b3[k]; cCpu += a3[k] - b3[k] }
        c.push(...rc.ms)
        cphases.push(...rc.phases)
      }
    }
    const forward: Array<keyof typeof runs> = control != null ? ['mono', 'pipe', 'control'] : ['mono', 'pipe']
    // BUDGET_S: no block starts once that many seconds have passed since the process started (the table then says how
    // many blocks ran), so a run under a time limit still prints
    const budget = Number(process.env.BUDGET_S ?? Infinity) * 1000 - performance.now()
    const until = performance.now() + budget
    const planned = steps
    for (let i = 1; i <= planned; i++) {
      if (i > 2 && performance.now() > until) {
        console.error(`BUDGET_S reached: ${i - 1} of ${planned} blocks ran`)
        steps = i - 1
        break
      }
      const order = i % 2 === 1 ? forward : [...forward].reverse()
      for (const k of order) await runs[k](i)
    }
    // one ms per step and path (one micro-batch per step): block i's paired ratios
    const ratios = p.map((x, i) => x / m[i])
    const controlRatios = c.map((x, i) => x / m[i])
    const ci = medianInterval(ratios)
    const controlCi = medianInterval(controlRatios)
    const verdict = ci == null ? 'undecided (too few blocks for an interval)' : ci[1] <= goal ? 'met' : ci[0] > goal ? 'NOT met' : 'undecided (the interval contains 1.5)'
    const r = {
      blocks: steps,
      order: 'ABBA (mirrored each block)',
      monolithicMs: m,
      pipelineMs: p,
      ratioOfMedians: median(p) / median(m),
      pairedRatio: { values: ratios, median: median(ratios), interval95: ci },
      goal: { max: goal, rule: 'met if the paired ratio interval\'s upper end <= 1.5, NOT met if its lower end > 1.5', verdict },
      phases,
      owned,
      cpuMs: { monolithic: mCpu / steps, pipeline: pCpu / steps, control: cCpu / steps, pipelineEach: each.map(x => x / steps), controlEach: eachControl.map(x => x / steps) },
      controlMs: c,
      controlPairedRatio: control != null ? { values: controlRatios, median: median(controlRatios), interval95: controlCi } : undefined,
      controlPhases: cphases,
      loadAfter: loadavg()
    }
    results[tied ? 'trainTied' : 'trainUntied'] = r
    const ciText = (x: [number, number] | undefined): string => x == null ? 'n/a' : `${f(x[0], 3)}–${f(x[1], 3)}`
    const dist = (xs: number[]): string => `median ${f(median(xs), 0)} ms (p25–p75 ${f(pct(xs, 25), 0)}–${f(pct(xs, 75), 0)}, min–max ${f(Math.min(...xs), 0)}–${f(Math.max(...xs), 0)})`
    const show = (ph: Phases[]): string => (['microBatches', 'tied', 'norm', 'step', 'sync'] as const).map(k => `${k} ${f(median(ph.map(x => x[k])), 0)}`).join(', ')
    const rows: Array<[string, string]> = [
      ['monolithic step (one executor, model backward graph)', `${dist(m)}; CPU ${f(mCpu / steps, 0)} ms per step`],
      [`pipeline step, 3 processes${tied ? ' (tied: the Validator owns the tied matrix, `tiedOwner`, spec 1.8.0)' : ''}`, `${dist(p)}; CPU ${f(pCpu / steps, 0)} ms per step (Driver ${f(each[0] / steps, 0)}, Worker ${f(each[1] / steps, 0)}, Validator ${f(each[2] / steps, 0)})`],
      ['of it on the Driver, ms (median per phase)', show(phases)]
    ]
    if (tied) rows.push(['of its steps, begun with the tied matrix owned by the Validator', `${owned} of ${steps}`])
    if (control != null) {
      rows.push(
        ['pipeline step, 3 processes, the 1.7.0 way (`tiedOwner: false`: the Driver recomputes the head\'s tied gradient)', `${dist(c)}; CPU ${f(cCpu / steps, 0)} ms per step (Driver ${f(eachControl[0] / steps, 0)}, Worker ${f(eachControl[1] / steps, 0)}, Validator ${f(eachControl[2] / steps, 0)})`],
        ['of it on the Driver, ms (median per phase)', show(cphases)],
        ['`tiedOwner: false` / monolithic, paired per block', `median ${f(median(controlRatios), 3)}× (95 % interval of the median ${ciText(controlCi)}); ratio of the medians ${f(median(c) / median(m))}×`]
      )
    }
    rows.push(
      ['pipeline / monolithic, paired per block', `median ${f(median(ratios), 3)}× (95 % interval of the median ${ciText(ci)}, p25–p75 ${f(pct(ratios, 25), 3)}–${f(pct(ratios, 75), 3)}), ${steps} blocks`],
      ['pipeline / monolithic, ratio of the medians', `${f(r.ratioOfMedians)}×`],
      [`goal ≤ ${goal}× (met if the interval's upper end ≤ ${goal}, NOT met if its lower end > ${goal})`, verdict]
    )
    table(`training step \`small\` (${tied ? 'tied' : 'untied'}), batch 2 × 256, ${steps} blocks${steps < planned ? ` (of ${planned} planned: BUDGET_S reached)` : ''} of one step per path on the same batch, order mirrored each block (ABBA), separate processes, load after: ${load()}`, rows)
  } finally {
    await Promise.all([local, ...all, ...(control?.all ?? [])].map(async n => { await n.stop() }))
  }
}

/** Byte-level windows of the repository's own documentation, a deterministic English-ish corpus */
function corpus (): Uint8Array {
  const files = ['../../specs/pipeline/README.md', '../../specs/layer-pool/README.md', '../runtime/README.md', '../../specs/model/README.md']
  return new Uint8Array(Buffer.concat(files.map(p => readFileSync(new URL(p, new URL('../../', import.meta.url))))))
}

function windows (text: Uint8Array, n: number, rows: number, seq: number, seed: number, lo: number, hi: number): TrainBatch[] {
  let s = seed
  const next = (): number => { s = (s * 1103515245 + 12345) % 2147483648; return lo + (s % (hi - lo - seq - 1)) }
  return Array.from({ length: n }, () => {
    const ids = new BigInt64Array(rows * seq)
    const targets = new BigInt64Array(rows * seq)
    for (let r = 0; r < rows; r++) {
      const at = next()
      for (let t = 0; t < seq; t++) { ids[r * seq + t] = BigInt(text[at + t]); targets[r * seq + t] = BigInt(text[at + t + 1]) }
    }
    return { inputIds: ids, targets, batch: rows, seq }
  })
}

async function benchCompress (): Promise<void> {
  const L = 2
  const steps = 200
  const text = corpus()
  const split = Math.floor(text.length * 0.9)
  const train = windows(text, steps, 8, 64, 3, 0, split)
  const val = windows(text, 16, 8, 64, 4, split, text.length)
  const out: Record<string, { bytesPerStep: number, valLoss: number, trainLoss: number }> = {}
  const modes = { float32: { compress: false, deflate: false }, int8: { compress: true, deflate: false }, 'int8+deflate': { compress: true, deflate: true } }
  for (const [mode, { compress, deflate }] of Object.entries(modes)) {
    const { driver, all } = await chain({ preset: 'tiny', seed: 9, training: true, threads: 1, lr: [3e-3, 20, steps] }, L)
    const losses = (await driver.call<{ losses: number[] }>({ op: 'train', batches: train, compress, deflate })).losses
    let bytes = 0
    for (const n of all) { const t = await n.call<{ sent: number, received: number }>({ op: 'traffic' }); bytes += t.sent + t.received }
    const trained = new Map<string, Float32Array>()
    for (const n of all) for (const [k, v] of await n.call<Map<string, Float32Array>>({ op: 'parameters' })) trained.set(k, v)
    const valLoss = await driver.call<number>({ op: 'evaluate', parameters: trained, batches: val })
    out[mode] = { bytesPerStep: bytes / steps, valLoss, trainLoss: losses[losses.length - 1] }
    await Promise.all(all.map(async n => { await n.stop() }))
  }
  const base = out.float32
  const gap = (m: string): number => (out[m].valLoss - base.valLoss) / base.valLoss
  results.compress = { steps, batch: '8 × 64', ...out, reduction: base.bytesPerStep / out['int8+deflate'].bytesPerStep, valLossGap: gap('int8+deflate'), loadAfter: loadavg() }
  table(`activation compression, \`tiny\`, ${steps} steps of 8 × 64 bytes of this repo's docs, 3 processes (tensor payload bytes: activations, gradients, targets), load after: ${load()}`, [
    ['float32 activations/gradients', `${f(base.bytesPerStep / 1024, 1)} KiB per step; val loss ${f(base.valLoss, 4)}`],
    ['blockwise int8 (block 64), `deflate: false`', `${f(out.int8.bytesPerStep / 1024, 1)} KiB per step (${f(base.bytesPerStep / out.int8.bytesPerStep)}× fewer); val loss ${f(out.int8.valLoss, 4)} (gap ${f(100 * gap('int8'), 2)} %)`],
    ['blockwise int8 + zlib (`compress: true`, default `deflate`)', `${f(out['int8+deflate'].bytesPerStep / 1024, 1)} KiB per step (${f(base.bytesPerStep / out['int8+deflate'].bytesPerStep)}× fewer); val loss ${f(out['int8+deflate'].valLoss, 4)} (gap ${f(100 * gap('int8+deflate'), 2)} %)`],
    ['goal', '≥ 4× fewer bytes at ≤ 1 % val-loss gap']
  ])
}

const which = process.argv.slice(2)
const all = which.length === 0
if (profileDir != null) mkdirSync(profileDir, { recursive: true })
console.log(`pipeline bench (separate processes) ${results.date as string}, node ${process.version}, load average ${load()}`)
if (all || which.includes('decode')) await benchDecode()
if (all || which.includes('failover')) await benchFailover(Number(process.env.KILLS ?? 60))
if (all || which.includes('train') || which.includes('train-tied')) await benchTrain(true, Number(process.env.STEPS ?? 20))
if (all || which.includes('train') || which.includes('train-untied')) await benchTrain(false, Number(process.env.STEPS ?? 20))
if (all || which.includes('compress')) await benchCompress()
mkdirSync(new URL('../../bench-results/', import.meta.url), { recursive: true })
const file = new URL(`../../bench-results/pipeline-processes-${(results.date as string).replace(/[:.]/g, '-')}.json`, import.meta.url)
writeFileSync(file, JSON.stringify(results, null, 2))
console.log(`\nresults: ${file.pathname}`)
