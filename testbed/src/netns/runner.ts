/**
 * Runs a scenario: one network namespace per node, links emulated (kernel netem when the kernel has it,
 * else the user-space emulator linkem.py; bandwidth caps with kernel tbf), node processes started with
 * `ip netns exec`, a timeline of chaos events, per-node metrics from the nodes' JSON lines, and a
 * teardown that also runs on Ctrl-C, SIGTERM and failure.
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { WriteStream } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { nodeNames, DEFAULT_COMMAND } from './scenario.js'
import type { Check, LinkProfile, Scenario, ScenarioEvent } from './scenario.js'
import { probeEnvironment, sh, testbedDir } from './env.js'

const TESTBED = testbedDir()

export interface NodeState {
  name: string
  group: string
  ip: string
  ns: string
  dataDir: string
  proc?: ChildProcess
  alive: boolean
  peerId?: string
  last?: { t: number, connections: number, recordPeers: string[], covered: boolean, rss: number, heapUsed: number }
  /** RSS samples of the current process (a restart starts a new series) */
  rss: Array<[number, number]>
  /** V8 heap used of the current process's main thread, bytes (`neuroshard start --json` memory lines every 10 s) */
  heap: Array<[number, number]>
  /** V8 heap total (committed, new space included) of the same lines, bytes */
  heapTotal: Array<[number, number]>
  maxRss: number
  starts: number
  /** JSON lines of the current process other than stats (ready, started, api, stage, round, validation, …) */
  events: Array<{ t: number, e: any }>
  /** ends of its processes: `killed` when the runner killed it */
  exits: Array<{ t: number, code: number | null, signal: string | null, killed: boolean }>
  /** the last 4 KB of its stderr (current process) */
  stderr: string
  /** its data directory is a tmpfs (group diskMB) */
  tmpfs: boolean
}

export interface InferenceStats {
  requests: number
  ok: number
  /** latency of successful requests, s */
  p50S?: number
  p99S?: number
  /** completion tokens per second of wall time over the successful requests */
  tokensPerS?: number
  errors: string[]
}

export interface EventResult {
  atS: number
  action: string
  detail: string
  /** s from the event until the network converged again (undefined: it did not within the timeout) */
  reconvergeS?: number
  /** kill: s until no live node counted the killed nodes any more */
  forgottenS?: number
}

export interface ScenarioResult {
  scenario: string
  backend: 'netem' | 'userspace'
  nodes: number
  startConvergeS?: number
  /**
   * Layer-pool convergence that did not come within the timeout (start or an event): when the nodes' views first
   * agreed if stats lines up to 30 s old count (undefined: never), and what each live node lacked at the deadline
   */
  notConverged?: Array<{ phase: string, agreedWithStaleLinesS?: number, lacking: Record<string, string> }>
  events: EventResult[]
  maxRssMB: number
  /** per node, least-squares RSS slope after the first 30 s, MB/min */
  rssSlopeMedian: number
  rssSlopeMax: number
  inference?: InferenceStats
  /** false when the node command prints no layer-pool stats (kills and cuts are not followed) */
  measuredForgetting?: boolean
  /** per node, RSS samples of its last process: [s since the run started, MB] (stats lines or /proc every 10 s) */
  rssSeries?: Record<string, Array<[number, number]>>
  /** per node (its last process), RSS and V8 heap used (main thread) after the warm-up: slopes and the means of the first and last minute */
  memory?: Array<{ node: string, rssSlope?: number, rssWarmMB?: number, rssEndMB?: number, heapSlope?: number, heapWarmMB?: number, heapEndMB?: number }>
  /** per node, heap used samples of its last process (memory lines): [s since the run started, MB] */
  heapSeries?: Record<string, Array<[number, number]>>
  /** per node, V8 heap total (committed by the main thread, its new space included) of the same lines: [s, MB] */
  heapTotalSeries?: Record<string, Array<[number, number]>>
  /** DiLoCo rounds: the most any node reported, and the last validation loss reported */
  rounds?: number
  valLoss?: number
  /** the first validation loss any node printed for each round (Drivers print the network model's), every slot at that round */
  valLossByRound?: Record<string, number>
  /** the same points' per-batch losses (node `batchLosses`, since node 5db8a0f), by round */
  valBatchLossesByRound?: Record<string, number[]>
  /** tokens each validation measured (node `tokens`): runs on different validation sets are not compared */
  valTokens?: number
  /** validation losses of the model as served (the round's weights of some slot were gone): each slot's round */
  valLossServed?: Array<{ round: number, loss: number, slotRounds: number[] }>
  /**
   * the tokens each round trained into slot 0's group (the Drivers' `round` lines: the round's record, accepted
   * contributions × their inner steps × batch × sequence length, summed over the replicas), by round
   */
  tokensByRound?: Record<string, number>
  /**
   * the same with the replicas' shared batches counted once (node ca0a356 `distinctTokens`: Drivers naming the same
   * data shards trained the same batches); `loopbackRuns` compares at these tokens when every run has them
   */
  distinctTokensByRound?: Record<string, number>
  /**
   * with `loopback`: this run's and the loopback run's validation loss at equal tokens (`compareLoopback`): this
   * run's last exact point (`round`, `tokens` trained up to it) whose tokens the loopback run's curve covers, and the
   * loopback run's loss at those tokens (`how`: a loopback round with exactly those tokens, or linear in tokens
   * between its rounds `loopbackRounds`); `window`: the same over the second half of the compared tokens, averaged
   */
  loopback?: {
    scenario: string
    round?: number
    tokens?: number
    loss?: number
    loopbackLoss?: number
    loopbackRounds?: [number, number]
    how?: 'equal' | 'interpolated'
    diffPct?: number
    /** the means over this run's points in the second half of the compared tokens (`val-loss-vs-loopback` checks this) */
    window?: { fromTokens: number, toTokens: number, points: number, loss: number, loopbackLoss: number, diffPct: number }
    missing?: string
    /**
     * with `loopbackRuns`: `window`'s Δ against each of those runs (the one above is the first), their mean and range,
     * and the spread of the loopback runs themselves (each one's Δ against the others' over the same tokens)
     */
    runs?: { scenarios: string[], diffPct: number[], meanPct: number, minPct: number, maxPct: number, loopbackSpreadPct?: [number, number] }
  }
  /** `{"event":"failover","ms":…}` lines of every node: a generation's failure detected to its next token */
  failover?: { n: number, p50Ms: number, p99Ms: number, maxMs: number }
  /** bytes each node's interface sent over the whole run (eth0 tx: every protocol, with TCP/IP headers) */
  bytesSent?: { totalMB: number, maxNodeMB: number, perNodeMB: Record<string, number> }
  link: { framesIn?: number, lost?: number, cut?: number, bytesDelivered?: number, overflow?: number, lateMaxMs?: number, late100ms?: number, late1s?: number }
  passed: boolean
  failures: string[]
  logDir: string
  seconds: number
}

export interface RunOptions {
  log?(line: string): void
  /** force a backend (default: netem when the kernel has it, else userspace) */
  backend?: 'netem' | 'userspace'
}

function profileFor (links: Record<string, LinkProfile>, a: string, b: string): LinkProfile {
  return links[`${a}>${b}`] ?? links[`${a}>*`] ?? links[`*>${b}`] ?? links['*'] ?? {}
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export async function runScenario (s: Scenario, options: RunOptions = {}): Promise<ScenarioResult> {
  const log = options.log ?? ((l: string) => { process.stderr.write(l + '\n') })
  const env = probeEnvironment()
  if (env.missing != null) throw new Error(`the testbed cannot run here: ${env.missing}`)
  if (s.node?.command == null && !existsSync(join(TESTBED, 'dist', 'src', 'netns', 'node.js'))) throw new Error('build the testbed first (tsc -b): the default node command runs dist/src/netns/node.js')
  const backend = options.backend ?? (env.netem ? 'netem' : 'userspace')
  if (backend === 'netem' && !env.netem) throw new Error('the netem backend needs sch_netem, which this kernel lacks')
  const run = Math.random().toString(36).slice(2, 6).padEnd(4, '0')
  const base = join('/tmp', 'neuroshard-testbed', `${s.name}-${run}`)
  const logDir = join(base, 'logs')
  mkdirSync(logDir, { recursive: true })
  const shared = join(base, 'shared')
  mkdirSync(shared, { recursive: true })
  // --cleanup leaves the namespaces of runs whose runner is still alive
  writeFileSync(join(base, 'runner.pid'), String(process.pid))
  const groups = Object.keys(s.groups)
  const names = nodeNames(s)
  const nodes: NodeState[] = names.map((name, i) => {
    const group = name.slice(0, name.lastIndexOf('-'))
    const gi = groups.indexOf(group)
    const idx = Number(name.slice(name.lastIndexOf('-') + 1))
    return { name, group, ip: s.groups[group].nat === true ? `172.16.${gi}.${idx + 1}` : `10.77.${gi}.${idx + 1}`, ns: `nstb-${run}-${i}`, dataDir: join(base, 'data', name), alive: false, rss: [], heap: [], heapTotal: [], maxRss: 0, starts: 0, events: [], exits: [], stderr: '', tmpfs: false }
  })
  const port = s.node?.port ?? 4001
  const logs = new Map<string, WriteStream>()
  let linkem: ChildProcess | undefined
  let linkemOut: ReturnType<typeof createInterface> | undefined
  const statsFile = join(base, 'link-stats.json')
  const started = Date.now()
  const failoverMs: number[] = []
  const training = newTraining()
  const { valByRound, valServed, tokensByRound, valBatches } = training
  let bytesSent: ScenarioResult['bytesSent']
  let tornDown = false

  const teardown = async (): Promise<void> => {
    if (tornDown) return
    tornDown = true
    for (const n of nodes) { if (n.proc?.pid != null && n.alive) { killedProcs.add(n.proc); try { process.kill(n.proc.pid, 'SIGKILL') } catch {} } }
    await sleep(300)
    if (linkem != null) { linkem.stdin?.end('quit\n'); await new Promise(resolve => { linkem?.once('exit', resolve); setTimeout(resolve, 3000) }); try { linkem.kill('SIGKILL') } catch {} }
    for (const n of nodes) { try { sh(['ip', 'netns', 'del', n.ns]) } catch {} }
    for (const g of natGroups) { try { sh(['ip', 'netns', 'del', routerNs(g)]) } catch {} }
    for (const n of nodes) { if (n.tmpfs) { try { sh(['umount', '-l', n.dataDir]) } catch {} } }
    if (backend === 'netem') { try { sh(['ip', 'link', 'del', `tb${run}b`]) } catch {} }
    for (const l of logs.values()) l.end()
    rmSync(join(base, 'data'), { recursive: true, force: true })
  }
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: tearing the testbed down`)
    void teardown().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const linkCmd = async (cmd: string): Promise<void> => {
    if (linkem == null || linkemOut == null) return
    const reply = new Promise<void>(resolve => { linkemOut?.once('line', () => { resolve() }) })
    linkem.stdin?.write(cmd + '\n')
    await Promise.race([reply, sleep(5000)])
  }

  const partitionNetem = (a: string, b: string, on: boolean): void => {
    for (const n of nodes) {
      const other = n.group === a ? b : n.group === b ? a : undefined
      if (other == null) continue
      const k = groups.indexOf(other)
      const p = profileFor(s.links, n.group, other)
      sh(['ip', 'netns', 'exec', n.ns, 'tc', 'qdisc', 'change', 'dev', 'eth0', 'parent', `1:${10 + k}`, 'handle', `${10 + k}:`, 'netem', ...netemArgs(on ? { ...p, lossPct: 100 } : p)])
    }
  }

  const startNode = (n: NodeState): void => {
    const bootstrap = s.bootstrap.map(b => nodes.find(x => x.name === b)).filter((b): b is NodeState => b != null && b !== n && b.peerId != null).map(b => `/ip4/${b.ip}/tcp/${port}/p2p/${b.peerId}`).join(',')
    const vars: Record<string, string> = { node: process.execPath, testbed: TESTBED, name: n.name, port: String(port), dataDir: n.dataDir, bootstrap, ip: n.ip, shared }
    const cmd = [...(s.node?.command ?? DEFAULT_COMMAND), ...(s.nodes?.[n.name]?.args ?? [])].map(a => a.replace(/\{(\w+)\}/g, (_, k: string) => vars[k] ?? ''))
    mkdirSync(n.dataDir, { recursive: true })
    let out = logs.get(n.name)
    if (out == null) { out = createWriteStream(join(logDir, `${n.name}.log`), { flags: 'a' }); logs.set(n.name, out) }
    out.write(`# start ${new Date().toISOString()}: ${cmd.join(' ')}\n`)
    const spec = s.nodes?.[n.name]
    const env: Record<string, string | undefined> = { ...process.env, ...s.node?.env, ...spec?.env }
    if (spec?.clockSkewMs != null) {
      env.TESTBED_CLOCK_SKEW_MS = String(spec.clockSkewMs)
      env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${join(TESTBED, 'dist', 'src', 'netns', 'clock-skew.js')}`.trim()
    }
    const proc = spawn('ip', ['netns', 'exec', n.ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], env })
    n.proc = proc
    n.alive = true
    n.starts++
    n.last = undefined
    n.rss = []
    n.heap = []
    n.heapTotal = []
    n.events = []
    n.stderr = ''
    n.peerId = undefined
    const rl = createInterface({ input: proc.stdout })
    rl.on('line', (line) => {
      out?.write(line + '\n')
      if (!line.startsWith('{')) return
      try {
        const m = JSON.parse(line)
        if (m.event === 'ready') n.peerId = m.peerId
        // `neuroshard start` says {"event":"started","peer":…}
        if (m.event === 'started' && typeof m.peer === 'string') n.peerId = m.peer
        if (m.event !== 'stats' && m.event !== 'memory' && n.events.length < 10_000) n.events.push({ t: Date.now(), e: m })
        if (m.event === 'memory' && typeof m.heapUsed === 'number') n.heap.push([Date.now(), m.heapUsed])
        if (m.event === 'memory' && typeof m.heapTotal === 'number') n.heapTotal.push([Date.now(), m.heapTotal])
        // kept across restarts (events are the current process's)
        if (m.event === 'failover' && typeof m.ms === 'number' && failoverMs.length < 100_000) failoverMs.push(m.ms)
        trainingLine(m, training)
        if (m.event === 'stats') {
          n.peerId = m.peerId
          n.last = { t: Date.now(), connections: m.connections, recordPeers: m.recordPeers, covered: m.covered, rss: m.rss, heapUsed: m.heapUsed }
          n.rss.push([Date.now(), m.rss])
          n.maxRss = Math.max(n.maxRss, m.rss)
        }
      } catch {}
    })
    proc.stderr?.on('data', (d: Buffer) => { out?.write(d); if (n.proc === proc) n.stderr = (n.stderr + d.toString()).slice(-4096) })
    proc.on('exit', (code, signal) => {
      out?.write(`# exit code ${code} signal ${signal}\n`)
      n.exits.push({ t: Date.now(), code, signal, killed: killedProcs.has(proc) })
      if (n.proc === proc) n.alive = false
    })
  }

  const killedProcs = new WeakSet<ChildProcess>()
  const kill = (n: NodeState): void => {
    if (n.proc != null) killedProcs.add(n.proc)
    if (n.proc?.pid != null && n.alive) { try { process.kill(n.proc.pid, 'SIGKILL') } catch {} }
    n.alive = false
    n.last = undefined
  }

  /** every live node reports, counts every other live node's record and sees every slot served */
  const converged = (): boolean => {
    const live = nodes.filter(n => n.alive)
    if (live.length === 0) return false
    const now = Date.now()
    const ids = live.map(n => n.peerId)
    if (s.converge === 'ready') return live.every(n => n.peerId != null)
    if (s.converge === 'stage') return live.every(n => n.events.some(x => x.e.event === 'stage'))
    return live.every(n => n.last != null && now - n.last.t < 5000 && n.last.covered && ids.every(id => id != null && n.last?.recordPeers.includes(id)))
  }
  /**
   * What each live node lacks for layer-pool convergence (diagnostics of a run that did not converge): no stats line
   * within `maxAgeMs`, a slot nobody serves in its view, the other nodes whose records it does not count
   */
  const lacking = (maxAgeMs: number): Record<string, string> => {
    const live = nodes.filter(n => n.alive)
    const now = Date.now()
    const out: Record<string, string> = {}
    for (const n of live) {
      if (n.last == null) { out[n.name] = 'no stats line yet'; continue }
      const why: string[] = []
      if (now - n.last.t >= maxAgeMs) why.push(`last stats line ${((now - n.last.t) / 1000).toFixed(1)} s ago`)
      if (!n.last.covered) why.push('a slot unserved')
      const missing = live.filter(m => m.peerId == null || !n.last!.recordPeers.includes(m.peerId)).map(m => m.name)
      if (missing.length > 0) why.push(`no record of ${missing.length === live.length - 1 && live.length > 2 ? 'any other node' : missing.join(' ')}`)
      if (why.length > 0) out[n.name] = why.join('; ')
    }
    return out
  }
  const layerPoolConverge = (s.converge ?? 'layer-pool') === 'layer-pool'
  const notConverged: NonNullable<ScenarioResult['notConverged']> = []
  const waitConverged = async (timeoutS: number, since: number, phase: string): Promise<number | undefined> => {
    const deadline = since + timeoutS * 1000
    // diagnostics: when the nodes' views first agreed with stats lines up to 30 s old (a starved process prints its
    // once-a-second line late; the records' TTL is 20 s, so an older view says nothing), and what was lacking at the end
    let agreedStaleS: number | undefined
    while (Date.now() < deadline) {
      if (converged()) return (Date.now() - since) / 1000
      if (layerPoolConverge && agreedStaleS == null && Object.keys(lacking(30_000)).length === 0) agreedStaleS = (Date.now() - since) / 1000
      await sleep(250)
    }
    if (layerPoolConverge) {
      const at = lacking(5000)
      notConverged.push({ phase, agreedWithStaleLinesS: agreedStaleS, lacking: at })
      log(`${s.name}: ${phase}: not converged; views agreed with stats lines up to 30 s old ${agreedStaleS != null ? `after ${agreedStaleS.toFixed(1)} s` : 'never'}; lacking at the deadline: ${Object.entries(at).map(([k, v]) => `${k}: ${v}`).join(' | ')}`)
    }
    return undefined
  }

  const failures: string[] = []
  const events: EventResult[] = []
  const natGroups = groups.filter(g => s.groups[g].nat === true)
  const isNat = (n: NodeState): boolean => s.groups[n.group].nat === true
  const routerNs = (g: string): string => `nstb-${run}-r${groups.indexOf(g)}`
  if (natGroups.length > 0 && backend !== 'userspace') throw new Error('NAT groups need the user-space link backend')
  if (natGroups.length > 0 && spawnSync('nft', ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error('NAT groups need the nft binary (Debian: apt-get install nftables)')
  const inference: InferenceStats = { requests: 0, ok: 0, errors: [] }
  const latencies: number[] = []
  let completionTokens = 0
  let probing = true
  let rssTimer: ReturnType<typeof setInterval> | undefined
  let probeLoop: Promise<void> = Promise.resolve()
  const runInferenceProbes = async (spec: NonNullable<NonNullable<Scenario['probes']>['inference']>): Promise<void> => {
    while (probing) {
      const next = Date.now() + spec.everyS * 1000
      for (const name of spec.nodes) {
        const n = nodes.find(x => x.name === name)
        if (n == null) throw new Error(`probe: unknown node ${name}`)
        inference.requests++
        const r = await chatCompletion(n, spec)
        if (r.ok) {
          inference.ok++
          latencies.push(r.seconds)
          completionTokens += r.tokens
        } else if (inference.errors.length < 20) {
          inference.errors.push(`${new Date().toISOString()} ${name}: ${r.error}`)
        }
      }
      while (probing && Date.now() < next) await sleep(200)
    }
  }
  const chatCompletion = async (n: NodeState, spec: NonNullable<NonNullable<Scenario['probes']>['inference']>): Promise<{ ok: boolean, seconds: number, tokens: number, error?: string }> => {
    const api = [...n.events].reverse().find(x => x.e.event === 'api')?.e.url
    if (!n.alive || typeof api !== 'string') return { ok: false, seconds: 0, tokens: 0, error: n.alive ? 'no API yet' : 'node not running' }
    const body = JSON.stringify({ model: 'devnet', messages: [{ role: 'user', content: spec.prompt ?? 'The driver' }], max_tokens: spec.maxTokens ?? 8 })
    const timeoutS = spec.timeoutS ?? 60
    const t0 = performance.now()
    // from inside the node's namespace (its API listens on its loopback)
    const child = spawn('ip', ['netns', 'exec', n.ns, 'curl', '-s', '-m', String(timeoutS), '-H', 'content-type: application/json', '-d', body, '-w', '\n%{http_code}', `${api}/v1/chat/completions`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
    const seconds = (performance.now() - t0) / 1000
    const lines = out.trimEnd().split('\n')
    const status = lines.pop()
    if (code !== 0 || status !== '200') return { ok: false, seconds, tokens: 0, error: `curl exit ${code}, HTTP ${status ?? '-'}: ${lines.join(' ').slice(0, 200)}` }
    try {
      const j = JSON.parse(lines.join('\n'))
      if (j.object !== 'chat.completion' || typeof j.choices?.[0]?.message?.content !== 'string') return { ok: false, seconds, tokens: 0, error: `not a chat.completion: ${lines.join(' ').slice(0, 200)}` }
      return { ok: true, seconds, tokens: Number(j.usage?.completion_tokens ?? 0) }
    } catch (err: any) {
      return { ok: false, seconds, tokens: 0, error: `bad JSON: ${String(err.message)}` }
    }
  }
  let startConvergeS: number | undefined
  const timeoutS = s.convergeTimeoutS ?? 60
  try {
    // ---- network -------------------------------------------------------------------------------------
    if (backend === 'userspace') {
      const cfg = {
        // one port per node on the emulated network, and one per NAT router (its group's nodes sit behind it)
        ports: [...nodes.flatMap((n, i) => isNat(n) ? [] : [{ tap: `tb${run}t${i}`, group: n.group }]), ...natGroups.map(g => ({ tap: `tb${run}r${groups.indexOf(g)}`, group: g }))],
        pairs: Object.fromEntries(Object.entries(s.links).map(([k, v]) => [k, v])),
        seed: 1,
        stats: statsFile
      }
      const cfgFile = join(base, 'linkem.json')
      writeFileSync(cfgFile, JSON.stringify(cfg))
      // the emulator is the network: one process carries every frame, so on a loaded machine it must not
      // wait for CPU behind the nodes (at load 30-45 it got ~5 % of a core, delivered frames seconds late
      // and every connection stalled; see the README's join-storm diagnosis). TESTBED_LINKEM_NICE=0 turns
      // the priority off to reproduce that.
      const nice = String(Number(process.env.TESTBED_LINKEM_NICE ?? -15))
      linkem = spawn('nice', ['-n', nice, 'python3', join(TESTBED, 'linkem.py'), cfgFile], { stdio: ['pipe', 'pipe', 'inherit'] })
      linkemOut = createInterface({ input: linkem.stdout as NodeJS.ReadableStream })
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => { reject(new Error('linkem did not start')) }, 30_000)
        linkemOut?.once('line', (l) => { clearTimeout(t); l.trim() === 'ready' ? resolve() : reject(new Error(`linkem: ${l}`)) })
        linkem?.once('exit', (code) => { clearTimeout(t); reject(new Error(`linkem exited with ${code}`)) })
      })
    } else {
      sh(['ip', 'link', 'add', `tb${run}b`, 'type', 'bridge'])
      sh(['ip', 'link', 'set', `tb${run}b`, 'up'])
    }
    for (const g of natGroups) {
      // the home router: public side on the emulated link, a bridge for the LAN, masquerade, and a forward
      // policy that lets only replies in (what a consumer NAT does without port forwarding)
      const gi = groups.indexOf(g)
      const r = routerNs(g)
      sh(['ip', 'netns', 'add', r])
      sh(['ip', '-n', r, 'link', 'set', 'lo', 'up'])
      sh(['ip', 'link', 'set', `tb${run}r${gi}`, 'netns', r])
      sh(['ip', '-n', r, 'link', 'set', `tb${run}r${gi}`, 'name', 'eth0'])
      sh(['ip', '-n', r, 'addr', 'add', `10.77.${gi}.254/16`, 'dev', 'eth0'])
      sh(['ip', '-n', r, 'link', 'set', 'eth0', 'up'])
      sh(['ip', '-n', r, 'link', 'add', 'lan', 'type', 'bridge'])
      sh(['ip', '-n', r, 'addr', 'add', `172.16.${gi}.254/24`, 'dev', 'lan'])
      sh(['ip', '-n', r, 'link', 'set', 'lan', 'up'])
      sh(['ip', 'netns', 'exec', r, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
      const rules = [
        'table ip nat {', '  chain post {', '    type nat hook postrouting priority srcnat;', '    oifname "eth0" masquerade', '  }', '}',
        'table ip filter {', '  chain lanonly {', `    type filter hook forward priority filter; policy ${s.groups[g].natOpen === true ? 'accept' : 'drop'};`, '    ct state established,related accept', '    iifname "lan" accept', '  }', '}', ''
      ].join('\n')
      const nft = spawnSync('ip', ['netns', 'exec', r, 'nft', '-f', '-'], { input: rules, encoding: 'utf8' })
      if (nft.status !== 0) throw new Error(`nft in ${r}: ${nft.stderr}`)
    }
    for (const [i, n] of nodes.entries()) {
      sh(['ip', 'netns', 'add', n.ns])
      sh(['ip', '-n', n.ns, 'link', 'set', 'lo', 'up'])
      if (isNat(n)) {
        const r = routerNs(n.group)
        sh(['ip', 'link', 'add', `tb${run}v${i}`, 'type', 'veth', 'peer', 'name', `tb${run}p${i}`])
        sh(['ip', 'link', 'set', `tb${run}v${i}`, 'netns', r])
        sh(['ip', '-n', r, 'link', 'set', `tb${run}v${i}`, 'master', 'lan'])
        sh(['ip', '-n', r, 'link', 'set', `tb${run}v${i}`, 'up'])
        sh(['ip', 'link', 'set', `tb${run}p${i}`, 'netns', n.ns])
        sh(['ip', '-n', n.ns, 'link', 'set', `tb${run}p${i}`, 'name', 'eth0'])
      } else if (backend === 'userspace') {
        sh(['ip', 'link', 'set', `tb${run}t${i}`, 'netns', n.ns])
        sh(['ip', '-n', n.ns, 'link', 'set', `tb${run}t${i}`, 'name', 'eth0'])
      } else {
        sh(['ip', 'link', 'add', `tb${run}v${i}`, 'type', 'veth', 'peer', 'name', `tb${run}p${i}`])
        sh(['ip', 'link', 'set', `tb${run}v${i}`, 'master', `tb${run}b`])
        sh(['ip', 'link', 'set', `tb${run}v${i}`, 'up'])
        sh(['ip', 'link', 'set', `tb${run}p${i}`, 'netns', n.ns])
        sh(['ip', '-n', n.ns, 'link', 'set', `tb${run}p${i}`, 'name', 'eth0'])
      }
      sh(['ip', '-n', n.ns, 'addr', 'add', `${n.ip}/${isNat(n) ? 24 : 16}`, 'dev', 'eth0'])
      sh(['ip', '-n', n.ns, 'link', 'set', 'eth0', 'up'])
      if (isNat(n)) sh(['ip', '-n', n.ns, 'route', 'add', 'default', 'via', `172.16.${groups.indexOf(n.group)}.254`])
      const diskMB = s.groups[n.group].diskMB
      if (diskMB != null) {
        mkdirSync(n.dataDir, { recursive: true })
        sh(['mount', '-t', 'tmpfs', '-o', `size=${Math.max(4, Math.round(diskMB * 1024))}k`, 'tmpfs', n.dataDir])
        n.tmpfs = true
      }
      const rate = s.groups[n.group].rateMbit
      if (backend === 'userspace') {
        if (rate != null) sh(['ip', 'netns', 'exec', n.ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', `${rate}mbit`, 'burst', '64kbit', 'latency', '400ms'])
      } else {
        // htb: one class per destination group (its netem child: delay, jitter, loss), all under the node's cap
        const cap = `${rate ?? 10_000}mbit`
        sh(['ip', 'netns', 'exec', n.ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '99'])
        sh(['ip', 'netns', 'exec', n.ns, 'tc', 'class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', cap])
        sh(['ip', 'netns', 'exec', n.ns, 'tc', 'class', 'add', 'dev', 'eth0', 'parent', '1:1', 'classid', '1:99', 'htb', 'rate', cap])
        for (const [k, g] of groups.entries()) {
          sh(['ip', 'netns', 'exec', n.ns, 'tc', 'class', 'add', 'dev', 'eth0', 'parent', '1:1', 'classid', `1:${10 + k}`, 'htb', 'rate', cap])
          sh(['ip', 'netns', 'exec', n.ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'parent', `1:${10 + k}`, 'handle', `${10 + k}:`, 'netem', ...netemArgs(profileFor(s.links, n.group, g))])
          sh(['ip', 'netns', 'exec', n.ns, 'tc', 'filter', 'add', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', `10.77.${k}.0/24`, 'flowid', `1:${10 + k}`])
        }
      }
    }
    log(`${s.name}: ${nodes.length} namespaces up (${backend} links), logs in ${logDir}`)
    for (const argv of s.setup ?? []) {
      const vars: Record<string, string> = { node: process.execPath, testbed: TESTBED, shared }
      const cmd = argv.map(x => x.replace(/\{(\w+)\}/g, (_, k: string) => vars[k] ?? ''))
      const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 600_000 })
      if (r.status !== 0) throw new Error(`setup command failed (${r.status}): ${cmd.join(' ')}: ${String(r.stderr).slice(-500)}`)
    }

    // ---- nodes ---------------------------------------------------------------------------------------
    const boot = nodes.filter(n => s.bootstrap.includes(n.name))
    for (const b of boot) startNode(b)
    const bootDeadline = Date.now() + 60_000
    while (boot.some(b => b.peerId == null)) {
      if (Date.now() > bootDeadline) throw new Error(`bootstrap nodes did not start: ${boot.filter(b => b.peerId == null).map(b => b.name).join(', ')}`)
      if (boot.some(b => !b.alive)) throw new Error(`a bootstrap node exited; see ${logDir}`)
      await sleep(100)
    }
    for (const n of nodes) if (!s.bootstrap.includes(n.name)) startNode(n)
    const t0 = Date.now()
    startConvergeS = await waitConverged(timeoutS, t0, 'start')
    log(`${s.name}: converged ${startConvergeS != null ? `after ${startConvergeS.toFixed(1)} s` : `NOT within ${timeoutS} s`}`)
    if (startConvergeS == null) failures.push(`no convergence within ${timeoutS} s of the start`)
    // the NAT is real: a public node cannot open a TCP connection to a NATed node (neither at its private
    // address nor at its router's), while the NATed node reaches the public node
    const pub = nodes.find(n => !isNat(n) && n.alive)
    for (const n of nodes.filter(isNat)) {
      if (pub == null) break
      const tcp = (from: NodeState, ip: string): boolean => spawnSync('ip', ['netns', 'exec', from.ns, 'timeout', '5', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/${port}`], { stdio: 'ignore' }).status === 0
      const router = `10.77.${groups.indexOf(n.group)}.254`
      // route the home's private range through its router, so only the router's forward policy can stop it
      const lan = `172.16.${groups.indexOf(n.group)}.0/24`
      sh(['ip', '-n', pub.ns, 'route', 'add', lan, 'via', router])
      const inbound = tcp(pub, n.ip)
      sh(['ip', '-n', pub.ns, 'route', 'del', lan, 'via', router])
      if (inbound) failures.push(`NAT: ${pub.name} opened a TCP connection to ${n.name} at ${n.ip} (routed via its router)`)
      if (tcp(pub, router)) failures.push(`NAT: ${pub.name} opened a TCP connection to ${n.name}'s router ${router}:${port}`)
      if (!tcp(n, pub.ip)) failures.push(`NAT: ${n.name} could not open a TCP connection to ${pub.name} at ${pub.ip}`)
    }

    // ---- events --------------------------------------------------------------------------------------
    if (s.probes?.inference != null) probeLoop = runInferenceProbes(s.probes.inference)
    // node commands without stats lines: the runner samples each process's RSS itself every 10 s
    if ((s.converge ?? 'layer-pool') !== 'layer-pool') {
      rssTimer = setInterval(() => {
        for (const n of nodes) {
          if (!n.alive || n.proc?.pid == null) continue
          try {
            const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${n.proc.pid}/status`, 'utf8'))?.[1])
            if (Number.isFinite(kb)) { n.rss.push([Date.now(), kb * 1024]); n.maxRss = Math.max(n.maxRss, kb * 1024) }
          } catch {}
        }
      }, 10_000)
    }
    const timeline = [...(s.events ?? [])].sort((a, b) => a.atS - b.atS)
    const tEvents = Date.now()
    for (const e of timeline) {
      const at = tEvents + e.atS * 1000
      if (Date.now() < at) await sleep(at - Date.now())
      const r = await applyEvent(e)
      events.push(r)
      log(`${s.name}: t+${e.atS}s ${r.action} ${r.detail}: reconverged ${r.reconvergeS != null ? `after ${r.reconvergeS.toFixed(1)} s` : 'NOT'}${r.forgottenS != null ? `, killed nodes forgotten after ${r.forgottenS.toFixed(1)} s` : ''}`)
    }
    const end = tEvents + s.durationS * 1000
    if (Date.now() < end) await sleep(end - Date.now())
    if (s.until != null) {
      const untilDeadline = Date.now() + s.until.timeoutS * 1000
      const done = (): boolean => nodes.filter(n => n.alive).every(n => n.events.some(x => x.e.event === s.until?.event))
      while (!done() && Date.now() < untilDeadline) await sleep(250)
      if (!done()) failures.push(`not every node printed "${s.until.event}" within ${s.until.timeoutS} s`)
    }
    if ((s.converge ?? 'layer-pool') === 'layer-pool') for (const n of nodes) if (n.alive && n.last == null) failures.push(`${n.name} stopped reporting`)
    probing = false
    await probeLoop
    clearInterval(rssTimer)

    async function applyEvent (e: ScenarioEvent): Promise<EventResult> {
      const t = Date.now()
      const res: EventResult = { atS: e.atS, action: e.action, detail: '' }
      if (e.action === 'kill' || e.action === 'restart') {
        const list = e.nodes.map(name => { const n = nodes.find(x => x.name === name); if (n == null) throw new Error(`unknown node ${name}`); return n })
        res.detail = e.nodes.join(',')
        if (e.action === 'kill') {
          const killedIds = list.map(n => n.peerId)
          list.forEach(kill)
          // forgotten: no live node counts the killed ones any more (record expiry or liveness probe)
          // (measured from the layer-pool stats lines; other node commands print none)
          const deadline = (s.converge ?? 'layer-pool') === 'layer-pool' ? t + timeoutS * 1000 : 0
          while (Date.now() < deadline) {
            const live = nodes.filter(n => n.alive)
            if (live.every(n => n.last != null && n.last.t > t && !killedIds.some(id => id != null && n.last?.recordPeers.includes(id)))) { res.forgottenS = (Date.now() - t) / 1000; break }
            await sleep(250)
          }
        } else {
          list.forEach(startNode)
        }
      } else if (e.action === 'join-storm') {
        const list = nodes.filter(n => !s.bootstrap.includes(n.name))
        res.detail = `${list.length} nodes killed and restarted at once`
        list.forEach(kill)
        await sleep(200)
        list.forEach(startNode)
      } else if (e.action === 'partition') {
        res.detail = e.groups.join(' | ')
        if (backend === 'userspace') await linkCmd(`partition ${e.groups[0]} ${e.groups[1]}`)
        else partitionNetem(e.groups[0], e.groups[1], true)
        // while cut: each side forgets the other (their records stop arriving and expire)
        const [a, b] = e.groups
        const deadline = t + timeoutS * 1000
        while (Date.now() < deadline) {
          const side = (g: string): NodeState[] => nodes.filter(n => n.alive && n.group === g)
          const forgot = (x: NodeState[], y: NodeState[]): boolean => x.every(n => n.last != null && n.last.t > t && !y.some(o => o.peerId != null && n.last?.recordPeers.includes(o.peerId)))
          if (forgot(side(a), side(b)) && forgot(side(b), side(a))) { res.forgottenS = (Date.now() - t) / 1000; break }
          await sleep(250)
        }
        return res
      } else if (e.action === 'fill-disk' || e.action === 'free-disk') {
        res.detail = e.nodes.join(',')
        for (const name of e.nodes) {
          const n = nodes.find(x => x.name === name)
          if (n == null) throw new Error(`unknown node ${name}`)
          const filler = join(n.dataDir, '.testbed-filler')
          if (e.action === 'fill-disk') {
            // dd until ENOSPC: every block of the tmpfs is used (dd exits non-zero then, which is the point)
            spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore', timeout: 60_000 })
            const df = spawnSync('df', ['--output=avail', '-k', n.dataDir], { encoding: 'utf8' }).stdout.trim().split('\n').pop()
            res.detail += ` (${df ?? '?'} KB left)`
          } else {
            rmSync(filler, { force: true })
          }
        }
      } else if (e.action === 'heal') {
        res.detail = 'all links restored'
        if (backend === 'userspace') await linkCmd('heal')
        else for (const a of groups) for (const b of groups) if (a < b) partitionNetem(a, b, false)
      }
      res.reconvergeS = await waitConverged(timeoutS, t, `${e.action} at t+${e.atS}s`)
      if (res.reconvergeS == null) failures.push(`no convergence within ${timeoutS} s of ${e.action} at t+${e.atS}s`)
      return res
    }
  } catch (err: any) {
    failures.push(`error: ${String(err?.message ?? err)}`)
  } finally {
    if (backend === 'userspace') await linkCmd('stats')
    bytesSent = interfaceTxBytes(nodes)
    await teardown()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }

  // ---- metrics -------------------------------------------------------------------------------------
  if (inference.requests > 0) {
    const sorted = [...latencies].sort((a, b) => a - b)
    const q = (p: number): number | undefined => sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
    const total = latencies.reduce((a, b) => a + b, 0)
    Object.assign(inference, { p50S: q(0.5), p99S: q(0.99), tokensPerS: total > 0 ? completionTokens / total : undefined })
  }
  const roundsOf = (n: NodeState): number => new Set(n.events.filter(x => x.e.event === 'round').map(x => x.e.round)).size
  const allRounds = nodes.map(roundsOf)
  const lastVal = nodes.flatMap(n => n.events.filter(x => x.e.event === 'validation')).sort((a, b) => a.t - b.t).at(-1)?.e.loss
  for (const c of s.checks ?? []) failures.push(...evaluateCheck(c, nodes, inference))
  const loopback = s.loopbackRuns != null && s.loopbackRuns.length > 0
    ? compareLoopbackRuns(s.loopbackRuns, valByRound, training.distinctTokensByRound.size > 0 ? training.distinctTokensByRound : tokensByRound, training.valTokens, undefined, training.distinctTokensByRound.size > 0)
    : s.loopback != null ? compareLoopback(s.loopback, valByRound, tokensByRound) : undefined
  for (const c of s.checks ?? []) if (c.check === 'val-loss-vs-loopback') failures.push(...loopbackCheck(c, loopback))
  const slopes = nodes.map(n => rssSlope(n.rss, (s.rssWarmupS ?? 30) * 1000)).filter((x): x is number => x != null).sort((a, b) => a - b)
  for (const c of s.checks ?? []) {
    if (c.check !== 'rss-slope') continue
    for (const n of nodes) {
      const slope = rssSlope(n.rss, (s.rssWarmupS ?? 30) * 1000)
      if (slope == null) failures.push(`${n.name}: too few RSS samples after the warm-up for a slope`)
      else if (slope >= c.maxMBPerMin) failures.push(`${n.name}: RSS grows ${slope.toFixed(2)} MB/min after the warm-up (limit ${c.maxMBPerMin})`)
    }
  }
  let link: ScenarioResult['link'] = {}
  try { const st = JSON.parse(readFileSync(statsFile, 'utf8')); link = { framesIn: st.frames_in, lost: st.lost, cut: st.cut, bytesDelivered: st.bytes_delivered, overflow: st.overflow, lateMaxMs: st.late_max_ms, late100ms: st.late_100ms, late1s: st.late_1s } } catch {}
  return {
    scenario: s.name,
    backend,
    nodes: nodes.length,
    startConvergeS,
    ...(notConverged.length > 0 ? { notConverged } : {}),
    events,
    maxRssMB: Math.max(0, ...nodes.map(n => n.maxRss)) / 2 ** 20,
    rssSlopeMedian: slopes[Math.floor(slopes.length / 2)] ?? Number.NaN,
    rssSlopeMax: slopes[slopes.length - 1] ?? Number.NaN,
    link,
    ...(inference.requests > 0 ? { inference } : {}),
    measuredForgetting: (s.converge ?? 'layer-pool') === 'layer-pool',
    rssSeries: Object.fromEntries(nodes.map(n => [n.name, n.rss.filter((_, i) => i % 10 === 0 || (s.converge ?? 'layer-pool') !== 'layer-pool').map(([t, r]) => [Math.round((t - started) / 1000), Math.round(r / 2 ** 20)] as [number, number])])),
    ...(nodes.some(n => n.heap.length > 0)
      ? {
          memory: nodes.map(n => memoryAfterWarmup(n.name, n.rss, n.heap, (s.rssWarmupS ?? 30) * 1000)),
          heapSeries: Object.fromEntries(nodes.map(n => [n.name, n.heap.map(([t, h]) => [Math.round((t - started) / 1000), Math.round(h / 2 ** 20 * 10) / 10] as [number, number])])),
          heapTotalSeries: Object.fromEntries(nodes.map(n => [n.name, n.heapTotal.map(([t, h]) => [Math.round((t - started) / 1000), Math.round(h / 2 ** 20 * 10) / 10] as [number, number])]))
        }
      : {}),
    ...(allRounds.some(r => r > 0) ? { rounds: Math.max(...allRounds) } : {}),
    ...(typeof lastVal === 'number' ? { valLoss: lastVal } : {}),
    ...(valByRound.size > 0 ? { valLossByRound: Object.fromEntries(valByRound) } : {}),
    ...(valBatches.size > 0 ? { valBatchLossesByRound: Object.fromEntries(valBatches) } : {}),
    ...(training.valTokens != null ? { valTokens: training.valTokens } : {}),
    ...(valServed.length > 0 ? { valLossServed: valServed } : {}),
    ...(tokensByRound.size > 0 ? { tokensByRound: Object.fromEntries(tokensByRound) } : {}),
    ...(training.distinctTokensByRound.size > 0 ? { distinctTokensByRound: Object.fromEntries(training.distinctTokensByRound) } : {}),
    ...(loopback != null ? { loopback } : {}),
    ...(failoverMs.length > 0 ? { failover: percentiles(failoverMs) } : {}),
    ...(bytesSent != null ? { bytesSent } : {}),
    passed: failures.length === 0,
    failures,
    logDir,
    seconds: (Date.now() - started) / 1000
  }
}

/** n, p50, p99 (nearest rank) and max of durations in ms */
export function percentiles (ms: readonly number[]): { n: number, p50Ms: number, p99Ms: number, maxMs: number } {
  const sorted = [...ms].sort((a, b) => a - b)
  const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
  return { n: sorted.length, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: sorted[sorted.length - 1] }
}

/** Each node's eth0 tx byte counter (its namespace outlives restarts, so the whole run), read before teardown */
function interfaceTxBytes (nodes: readonly NodeState[]): ScenarioResult['bytesSent'] {
  const perNodeMB: Record<string, number> = {}
  for (const n of nodes) {
    try {
      const r = spawnSync('ip', ['netns', 'exec', n.ns, 'cat', '/sys/class/net/eth0/statistics/tx_bytes'], { encoding: 'utf8', timeout: 5000 })
      const bytes = r.status === 0 ? Number(r.stdout.trim()) : Number.NaN
      if (Number.isFinite(bytes)) perNodeMB[n.name] = bytes / 2 ** 20
    } catch {}
  }
  const v = Object.values(perNodeMB)
  if (v.length === 0) return undefined
  return { totalMB: v.reduce((a, b) => a + b, 0), maxNodeMB: Math.max(...v), perNodeMB }
}

/** What the nodes' `validation` and `round` lines say about training, over the whole run (restarts included) */
export interface TrainingLines {
  /** round → the first exact validation loss any node printed (every slot at the round) */
  valByRound: Map<string, number>
  /** validation losses of the model as served (slots at different rounds): never compared with the loopback run's */
  valServed: Array<{ round: number, loss: number, slotRounds: number[] }>
  /** round → tokens trained into it (slot 0's group: every replica's Driver prints the same record; the first counts) */
  tokensByRound: Map<string, number>
  /** round → distinct tokens trained into it (the same slot-0 line's `distinctTokens`, when it has them) */
  distinctTokensByRound: Map<string, number>
  /** round → the per-batch losses of that same first exact line (when it had them) */
  valBatches: Map<string, number[]>
  /** the tokens of the first validation line that said so */
  valTokens?: number
}

export function newTraining (): TrainingLines {
  return { valByRound: new Map(), valServed: [], tokensByRound: new Map(), distinctTokensByRound: new Map(), valBatches: new Map() }
}

/** Takes one JSON line of a node into `t` (bounded) */
export function trainingLine (m: any, t: TrainingLines): void {
  // a point measured on the model as served (slots at different rounds, `exact: false`) is not the round's model:
  // kept apart, never compared with the loopback run's
  if (m?.event === 'validation' && typeof m.loss === 'number' && m.exact !== false && !t.valByRound.has(String(m.round)) && t.valByRound.size < 100_000) {
    t.valByRound.set(String(m.round), m.loss)
    if (Array.isArray(m.batchLosses) && m.batchLosses.length <= 4096 && m.batchLosses.every((x: unknown) => typeof x === 'number')) t.valBatches.set(String(m.round), m.batchLosses)
  }
  if (m?.event === 'validation' && typeof m.tokens === 'number' && t.valTokens == null) t.valTokens = m.tokens
  if (m?.event === 'validation' && typeof m.loss === 'number' && m.exact === false && Array.isArray(m.slotRounds) && t.valServed.length < 10_000) t.valServed.push({ round: m.round, loss: m.loss, slotRounds: m.slotRounds })
  if (m?.event === 'round' && m.slot === 0 && typeof m.tokens === 'number' && !t.tokensByRound.has(String(m.round)) && t.tokensByRound.size < 100_000) {
    t.tokensByRound.set(String(m.round), m.tokens)
    if (typeof m.distinctTokens === 'number') t.distinctTokensByRound.set(String(m.round), m.distinctTokens)
  }
}

/**
 * Cumulative tokens at each round with an exact validation loss: round r's model was trained on the tokens of rounds
 * 1..r (`tokensByRound[k]`: the update that made round k); points after a round with no tokens line are left out
 */
export function lossByTokens (valByRound: ReadonlyMap<string, number> | Record<string, number>, tokensByRound: ReadonlyMap<string, number> | Record<string, number>): Array<{ round: number, tokens: number, loss: number }> {
  const val = valByRound instanceof Map ? valByRound : new Map(Object.entries(valByRound))
  const tok = tokensByRound instanceof Map ? tokensByRound : new Map(Object.entries(tokensByRound))
  const out: Array<{ round: number, tokens: number, loss: number }> = []
  const rounds = [...val.keys()].map(Number).filter(r => Number.isSafeInteger(r) && r >= 0).sort((a, b) => a - b)
  let cum = 0
  let upTo = 0
  for (const r of rounds) {
    for (; upTo < r; upTo++) {
      const t = tok.get(String(upTo + 1))
      if (typeof t !== 'number') return out
      cum += t
    }
    out.push({ round: r, tokens: cum, loss: val.get(String(r)) as number })
  }
  return out
}

/**
 * This run's validation loss against the loopback run's (`results/<loopback>.json`, the same devnet on links without
 * delay, loss or rate cap) at equal tokens: both runs' exact points (every slot at the round) with the tokens trained
 * up to them (`lossByTokens`); this run's last point after training (tokens > 0) within the loopback run's tokens, and
 * the loopback run's loss there (`lossAtTokens`: its round with exactly those tokens, else linear in tokens between the
 * two rounds around them); and the means of both over this run's points in the second half of those tokens (`window`).
 * Equal rounds are not equal tokens: a round a replica missed (a kill) trains fewer.
 */
export function compareLoopback (loopback: string, valByRound: ReadonlyMap<string, number>, tokensByRound: ReadonlyMap<string, number>, resultsDir = join(TESTBED, 'results')): NonNullable<ScenarioResult['loopback']> {
  let ref: { valLossByRound: Record<string, number>, tokensByRound?: Record<string, number> } | undefined
  try {
    const r = JSON.parse(readFileSync(join(resultsDir, `${loopback}.json`), 'utf8'))
    ref = (Array.isArray(r) ? r : [r]).find((x: any) => x?.valLossByRound != null)
  } catch {}
  if (ref == null) return { scenario: loopback, missing: `results/${loopback}.json with validation losses per round` }
  if (ref.tokensByRound == null) return { scenario: loopback, missing: `results/${loopback}.json with tokens per round` }
  return compareCurves(loopback, ref as { valLossByRound: Record<string, number>, tokensByRound: Record<string, number> }, valByRound, tokensByRound)
}

/** `compareLoopback` on a loopback run's curve already read */
export function compareCurves (loopback: string, ref: { valLossByRound: Record<string, number>, tokensByRound: Record<string, number> }, valByRound: ReadonlyMap<string, number>, tokensByRound: ReadonlyMap<string, number>): NonNullable<ScenarioResult['loopback']> {
  const theirs = lossByTokens(ref.valLossByRound, ref.tokensByRound)
  const ours = lossByTokens(valByRound, tokensByRound)
  if (ours.length === 0) return { scenario: loopback, missing: 'no validation loss with the tokens trained up to it in this run' }
  // (a point at 0 tokens is the genesis model, the same in both runs: no comparison)
  const rows = ours.flatMap(p => {
    if (p.tokens <= 0) return []
    const at = lossAtTokens(theirs, p.tokens)
    return at == null ? [] : [{ p, at }]
  })
  const last = rows.at(-1)
  if (last == null) return { scenario: loopback, missing: 'no point of this run after training within the loopback run\'s tokens' }
  // a single point is as noisy as the curve (two loopback runs differ by up to ±20 % at one point): also the means over
  // this run's points in the second half of the compared tokens, each loopback loss taken at that point's tokens
  const half = rows.filter(r => r.p.tokens >= last.p.tokens / 2)
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
  const wLoss = mean(half.map(r => r.p.loss))
  const wLoop = mean(half.map(r => r.at.loss))
  return {
    scenario: loopback,
    round: last.p.round,
    tokens: last.p.tokens,
    loss: last.p.loss,
    loopbackLoss: last.at.loss,
    loopbackRounds: last.at.rounds,
    how: last.at.how,
    diffPct: 100 * (last.p.loss - last.at.loss) / last.at.loss,
    window: { fromTokens: half[0].p.tokens, toTokens: last.p.tokens, points: half.length, loss: wLoss, loopbackLoss: wLoop, diffPct: 100 * (wLoss - wLoop) / wLoop }
  }
}

/**
 * `compareLoopback` against several loopback runs (`results/<name>.json` each, the scenario's `loopbackRuns`) measured
 * on the same validation set as this run (`valTokens`; a run on another set, or one that does not say, is missing):
 * the first run's comparison, with `runs`: the second-half Δ against each, their mean, min and max, and the range of
 * the loopback runs' own Δ against each other over this run's window (how far apart identical runs land)
 */
export function compareLoopbackRuns (names: readonly string[], valByRound: ReadonlyMap<string, number>, tokensByRound: ReadonlyMap<string, number>, valTokens: number | undefined, resultsDir = join(TESTBED, 'results'), distinct = false): NonNullable<ScenarioResult['loopback']> {
  const scenario = names.join(', ')
  if (valTokens == null) return { scenario, missing: 'this run\'s validation lines say no tokens (a node before 5db8a0f)' }
  const refs: Array<{ name: string, r: any }> = []
  for (const name of names) {
    let r: any
    try { r = JSON.parse(readFileSync(join(resultsDir, `${name}.json`), 'utf8')); r = (Array.isArray(r) ? r : [r]).find((x: any) => x?.valLossByRound != null) } catch {}
    if (r == null) return { scenario, missing: `results/${name}.json with validation losses per round` }
    if (r.valTokens !== valTokens) return { scenario, missing: `results/${name}.json measured on ${String(r.valTokens ?? 'unknown')} validation tokens, this run on ${valTokens}` }
    // distinct tokens against distinct tokens only (a run without them is compared at counted tokens with every one)
    if (distinct) {
      if (r.distinctTokensByRound == null) return { scenario, missing: `results/${name}.json without distinct tokens per round` }
      r = { ...r, tokensByRound: r.distinctTokensByRound }
    }
    refs.push({ name, r })
  }
  const each = refs.map(({ name, r }) => compareCurves(name, r, valByRound, tokensByRound))
  const bad = each.find(c => c.missing != null || c.window == null)
  if (bad != null) return { ...bad, scenario }
  const d = each.map(c => c.window!.diffPct)
  // the loopback runs against each other over this run's window, as this run is compared with them
  const w = each[0].window!
  const spread: number[] = []
  for (const a of refs) {
    for (const b of refs) {
      if (a === b) continue
      const ca = lossByTokens(a.r.valLossByRound, a.r.tokensByRound ?? {})
      const cb = lossByTokens(b.r.valLossByRound, b.r.tokensByRound ?? {})
      const pts = ca.filter(p => p.tokens >= w.fromTokens && p.tokens <= w.toTokens).flatMap(p => { const at = lossAtTokens(cb, p.tokens); return at == null ? [] : [[p.loss, at.loss]] })
      if (pts.length === 0) continue
      const la = pts.reduce((s, p) => s + p[0], 0) / pts.length
      const lb = pts.reduce((s, p) => s + p[1], 0) / pts.length
      spread.push(100 * (la - lb) / lb)
    }
  }
  const mean = d.reduce((a, b) => a + b, 0) / d.length
  return {
    ...each[0],
    scenario,
    runs: { scenarios: [...names], diffPct: d, meanPct: mean, minPct: Math.min(...d), maxPct: Math.max(...d), ...(spread.length > 0 ? { loopbackSpreadPct: [Math.min(...spread), Math.max(...spread)] as [number, number] } : {}) }
  }
}

/**
 * A curve's loss at `tokens` (`lossByTokens` points): its point with exactly those tokens, else linear in tokens
 * between its two points around them; undefined outside the curve
 */
export function lossAtTokens (curve: ReadonlyArray<{ round: number, tokens: number, loss: number }>, tokens: number): { loss: number, rounds: [number, number], how: 'equal' | 'interpolated' } | undefined {
  if (curve.length === 0 || tokens < curve[0].tokens || tokens > curve[curve.length - 1].tokens) return undefined
  const same = curve.find(p => p.tokens === tokens)
  if (same != null) return { loss: same.loss, rounds: [same.round, same.round], how: 'equal' }
  const hi = curve.findIndex(p => p.tokens > tokens)
  const a = curve[hi - 1]
  const b = curve[hi]
  return { loss: a.loss + (b.loss - a.loss) * (tokens - a.tokens) / (b.tokens - a.tokens), rounds: [a.round, b.round], how: 'interpolated' }
}

/**
 * The `val-loss-vs-loopback` check on `compareLoopback`'s answer: the mean over the second half of the compared tokens
 * (not the last point alone: as noisy as the curve); fails with no comparison or |Δ| over `maxPct`
 */
export function loopbackCheck (c: { maxPct: number }, cmp: ScenarioResult['loopback']): string[] {
  if (cmp == null) return ['val-loss-vs-loopback: the scenario names no loopback run']
  const w = cmp.window
  if (cmp.missing != null || w == null) return [`val-loss-vs-loopback: no comparison (${cmp.missing ?? 'no points'})`]
  // several loopback runs: their mean Δ (one loopback run alone moves by more than the limit from run to run)
  const r = cmp.runs
  if (r != null) {
    if (Math.abs(r.meanPct) > c.maxPct) return [`val-loss-vs-loopback: mean over ${w.points} points at ${w.fromTokens}-${w.toTokens} tokens, Δ against ${r.diffPct.length} loopback runs mean ${r.meanPct.toFixed(1)} % (${r.minPct.toFixed(1)} to ${r.maxPct.toFixed(1)} %; limit ±${c.maxPct} %)`]
    return []
  }
  if (Math.abs(w.diffPct) > c.maxPct) return [`val-loss-vs-loopback: mean over ${w.points} points at ${w.fromTokens}-${w.toTokens} tokens ${w.loss.toFixed(3)} vs ${w.loopbackLoss.toFixed(3)}, ${w.diffPct.toFixed(1)} % (limit ±${c.maxPct} %)`]
  return []
}

/** A scenario's check against what the nodes printed; returns the failures (empty: it holds) */
export function evaluateCheck (c: Check, nodes: NodeState[], inference: InferenceStats): string[] {
  const byName = (name: string): NodeState => { const n = nodes.find(x => x.name === name); if (n == null) throw new Error(`check: unknown node ${name}`); return n }
  if (c.check === 'inference') {
    const rate = inference.requests === 0 ? 0 : inference.ok / inference.requests
    const out: string[] = []
    if (inference.requests < c.minRequests) out.push(`inference: ${inference.requests} requests sent, expected at least ${c.minRequests}`)
    if (rate < c.minSuccessRate) out.push(`inference: ${inference.ok}/${inference.requests} succeeded (< ${c.minSuccessRate}); ${inference.errors.slice(0, 3).join(' | ')}`)
    return out
  }
  if (c.check === 'rounds') {
    const list = c.nodes?.map(byName) ?? nodes
    return list.flatMap(n => {
      const r = new Set(n.events.filter(x => x.e.event === 'round').map(x => x.e.round)).size
      return r >= c.min ? [] : [`${n.name}: ${r} DiLoCo rounds, expected at least ${c.min}`]
    })
  }
  if (c.check === 'rss-slope') return [] // evaluated with the RSS series in runScenario
  if (c.check === 'val-loss-vs-loopback') return [] // evaluated with the loopback comparison in runScenario (loopbackCheck)
  if (c.check === 'exited') {
    const n = byName(c.node)
    const own = n.exits.filter(x => !x.killed)
    if (own.length === 0) return [`${n.name} did not exit on its own`]
    const bad = own.find(x => x.code !== 0)
    if (bad == null) return [`${n.name} exited with code 0, expected a failure`]
    return new RegExp(c.stderr, 'i').test(n.stderr) ? [] : [`${n.name} exited with ${bad.code} but its stderr does not match /${c.stderr}/: ${n.stderr.slice(-300)}`]
  }
  if (c.check === 'diloco-byzantine') {
    const out: string[] = []
    const byz = new Set(c.byzantine)
    const honest = nodes.filter(n => !byz.has(n.name))
    const byzIds = new Set(c.byzantine.map(name => byName(name).peerId))
    for (const n of honest) {
      const rounds = n.events.filter(x => x.e.event === 'diloco-round').map(x => x.e)
      if (rounds.length < c.minRounds) { out.push(`${n.name}: ${rounds.length} DiLoCo rounds, expected at least ${c.minRounds}`); continue }
      for (const r of rounds) {
        const contributions: Array<{ peer: string, accepted: boolean }> = r.contributions ?? []
        const sawByzantine = contributions.some(x => byzIds.has(x.peer))
        const wrong = contributions.filter(x => byzIds.has(x.peer) ? x.accepted : !x.accepted)
        if (r.round > 0 && !sawByzantine) out.push(`${n.name} round ${r.round}: no Byzantine contribution in the round (the attack did not take part)`)
        if (wrong.length > 0) out.push(`${n.name} round ${r.round}: ${wrong.map(x => `${x.peer.slice(-6)} ${x.accepted ? 'accepted' : 'rejected'}`).join(', ')}`)
      }
      const last = rounds.at(-1)
      if (last != null && !(last.distance <= c.maxDistance)) out.push(`${n.name}: base ends ${String(last.distance)} (relative) from the target, expected ≤ ${c.maxDistance}`)
    }
    return out
  }
  if (c.check === 'relayed') {
    const out: string[] = []
    for (const from of c.from.map(byName)) {
      for (const to of c.to.map(byName)) {
        const pings = from.events.filter(x => x.e.event === 'relayed-ping' && x.e.peer === to.peerId).map(x => x.e)
        if (pings.some(p => p.ok === true)) continue
        const last = pings.at(-1)
        out.push(`relay: ${from.name} never reached ${to.name} through a relay (${pings.length} tries${last != null ? `, last: ${String(last.error)}` : ', no relayed address in its record'})`)
      }
    }
    return out
  }
  return [`unknown check ${JSON.stringify(c)}`]
}

function netemArgs (p: LinkProfile): string[] {
  const args = ['delay', `${p.delayMs ?? 0}ms`]
  if ((p.jitterMs ?? 0) > 0) args.push(`${p.jitterMs}ms`)
  if ((p.lossPct ?? 0) > 0) args.push('loss', `${p.lossPct}%`)
  return args
}

/**
 * One node's memory after the warm-up: least-squares slopes (MB/min) of RSS and of the V8 heap used, and the means of
 * each over the first and the last minute after the warm-up (MB). Both warm-ups count from the RSS series' first
 * sample, as the rss-slope check does (the memory lines may start earlier or later).
 */
export function memoryAfterWarmup (node: string, rss: Array<[number, number]>, heap: Array<[number, number]>, warmupMs: number): NonNullable<ScenarioResult['memory']>[number] {
  // the warm-up counts from the first RSS sample, as the rss-slope check counts it
  const t0 = rss[0]?.[0] ?? heap[0]?.[0] ?? 0
  const after = (xs: Array<[number, number]>): Array<[number, number]> => xs.filter(([t]) => t - t0 >= warmupMs)
  const mean = (xs: Array<[number, number]>): number | undefined => xs.length === 0 ? undefined : xs.reduce((a, [, v]) => a + v, 0) / xs.length / 2 ** 20
  const ends = (xs: Array<[number, number]>): { warm?: number, end?: number } => {
    const a = after(xs)
    if (a.length < 10) return {}
    return { warm: mean(a.filter(([t]) => t - a[0][0] < 60_000)), end: mean(a.filter(([t]) => a[a.length - 1][0] - t < 60_000)) }
  }
  const r = ends(rss)
  const h = ends(heap)
  const rs = rssSlope(rss, warmupMs)
  const hs = heap.length > 0 ? rssSlope(heap, warmupMs - (heap[0][0] - t0)) : undefined
  return { node, rssSlope: rs, rssWarmMB: r.warm, rssEndMB: r.end, heapSlope: hs, heapWarmMB: h.warm, heapEndMB: h.end }
}

/** Per node, memory after the warm-up (scenarios whose nodes print memory lines; empty otherwise) */
export function memoryTable (results: ScenarioResult[]): string {
  const rows = results.flatMap(r => (r.memory ?? []).map(m => {
    const mb = (x: number | undefined): string => x == null ? '–' : x.toFixed(1)
    const slope = (x: number | undefined): string => x == null ? '–' : x.toFixed(2)
    return `| ${r.scenario} | ${m.node} | ${mb(m.rssWarmMB)} → ${mb(m.rssEndMB)} | ${slope(m.rssSlope)} | ${mb(m.heapWarmMB)} → ${mb(m.heapEndMB)} | ${slope(m.heapSlope)} |`
  }))
  if (rows.length === 0) return ''
  return ['| scenario | node | RSS, first → last minute after warm-up (MB) | RSS slope after warm-up (MB/min) | V8 heap used (main thread), first → last minute (MB) | heap slope after warm-up (MB/min) |',
    '|---|---|---|---|---|---|', ...rows].join('\n')
}

/** least-squares slope of RSS over time after `warmupMs`, MB/min (undefined with fewer than 10 samples) */
export function rssSlope (samples: Array<[number, number]>, warmupMs: number): number | undefined {
  if (samples.length === 0) return undefined
  const s = samples.filter(([t]) => t - samples[0][0] >= warmupMs)
  if (s.length < 10) return undefined
  const n = s.length
  const mx = s.reduce((a, [t]) => a + t, 0) / n
  const my = s.reduce((a, [, r]) => a + r, 0) / n
  let num = 0; let den = 0
  for (const [t, r] of s) { num += (t - mx) * (r - my); den += (t - mx) ** 2 }
  return den === 0 ? 0 : (num / den) * 60_000 / 2 ** 20
}

/** A run's validation curve as its results file holds it (`valLossByRound`, `tokensByRound`, per-batch losses) */
export interface RunCurve {
  name: string
  valLossByRound: Record<string, number>
  tokensByRound: Record<string, number>
  valBatchLossesByRound?: Record<string, number[]>
  valTokens?: number
}

/** Two-sided 95 % quantile of Student's t with `df` degrees of freedom (df rounded down; ≥ 30: 2.042 up to 1.96) */
export function t975 (df: number): number {
  const T = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
  const k = Math.floor(df)
  if (!(k >= 1)) return Number.POSITIVE_INFINITY
  return k <= 30 ? T[k - 1] : k <= 60 ? 2.000 : 1.96
}

/**
 * Several runs of a scenario against several loopback runs at equal tokens (issue 15: one run a side cannot settle
 * 3 % when identical loopback runs land up to 13 % apart). Every run's curve (`lossByTokens`; with `batches`, the
 * mean of its first `batches` per-batch losses instead of the whole validation) is averaged over one common window
 * of tokens for all runs: [`fromTokens`, `toTokens`], by default the second half of the shortest run's tokens (of
 * `runs`: loopback runs train faster and go further), on a grid of `stepTokens` (each run's loss there linear in tokens
 * between its points). A run that reached under half the median run's tokens (a stalled run) would shrink the window
 * for all: it is left out and listed (`short`), as is a loopback run that does not reach the window's end.
 * Then the gap of the two sets' means (% of the loopback mean), its 95 % interval (Welch: each set's run-to-run
 * standard deviation), and the verdict against ±`maxPct`: 'met' when the whole interval is inside, 'not met' when
 * it is wholly outside, else 'undecided' (more runs, or less spread, needed).
 */
export function compareRunSets (runs: readonly RunCurve[], loopbacks: readonly RunCurve[], options: { maxPct?: number, fromTokens?: number, toTokens?: number, stepTokens?: number, batches?: number } = {}): {
  fromTokens: number
  toTokens: number
  points: number
  runs: Array<{ name: string, mean: number }>
  loopbacks: Array<{ name: string, mean: number }>
  short: Array<{ name: string, tokens: number }>
  mean: number
  sd: number
  loopbackMean: number
  loopbackSd: number
  gapPct: number
  ciPct: [number, number]
  verdict: 'met' | 'not met' | 'undecided'
} {
  const maxPct = options.maxPct ?? 3
  const step = options.stepTokens ?? 640
  const curveOf = (r: RunCurve): Array<{ round: number, tokens: number, loss: number }> => {
    let val: Record<string, number> = r.valLossByRound
    if (options.batches != null) {
      const k = options.batches
      val = {}
      for (const [round, b] of Object.entries(r.valBatchLossesByRound ?? {})) if (b.length >= k) val[round] = b.slice(0, k).reduce((a, x) => a + x, 0) / k
    }
    return lossByTokens(val, r.tokensByRound)
  }
  const all = [...runs.map(r => ({ r, home: true })), ...loopbacks.map(r => ({ r, home: false }))].map(x => ({ ...x, c: curveOf(x.r) }))
  const endOf = (x: typeof all[number]): number => x.c.at(-1)?.tokens ?? 0
  // the runs decide the window (loopback runs train faster and run further): a run under half its set's median is
  // left out, the window ends at the shortest run kept, and a loopback run that does not reach that is left out too
  const ends = all.filter(x => x.home).map(endOf).sort((a, b) => a - b)
  const median = ends[Math.floor(ends.length / 2)] ?? 0
  const stalled = all.filter(x => x.home && endOf(x) < median / 2)
  const end = options.toTokens ?? Math.min(...all.filter(x => x.home && !stalled.includes(x)).map(endOf))
  const short = [...stalled, ...all.filter(x => !x.home && endOf(x) < end)]
  const kept = all.filter(x => !short.includes(x))
  const from = options.fromTokens ?? Math.ceil(end / 2 / step) * step
  const grid: number[] = []
  for (let t = from; t <= end; t += step) grid.push(t)
  if (grid.length === 0) throw new RangeError(`no tokens to compare (${from}-${end})`)
  const meanAt = (c: ReturnType<typeof curveOf>): number => {
    const ls = grid.map(t => lossAtTokens(c, t)?.loss)
    if (ls.some(l => l == null)) return Number.NaN
    return (ls as number[]).reduce((a, b) => a + b, 0) / ls.length
  }
  const h = kept.filter(x => x.home).map(x => ({ name: x.r.name, mean: meanAt(x.c) })).filter(x => Number.isFinite(x.mean))
  const l = kept.filter(x => !x.home).map(x => ({ name: x.r.name, mean: meanAt(x.c) })).filter(x => Number.isFinite(x.mean))
  const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
  const sdOf = (xs: number[]): number => xs.length < 2 ? Number.NaN : Math.sqrt(xs.reduce((a, x) => a + (x - avg(xs)) ** 2, 0) / (xs.length - 1))
  const m = avg(h.map(x => x.mean))
  const s = sdOf(h.map(x => x.mean))
  const ml = avg(l.map(x => x.mean))
  const sl = sdOf(l.map(x => x.mean))
  const vh = s ** 2 / h.length
  const vl = sl ** 2 / l.length
  const se = Math.sqrt(vh + vl)
  const df = (vh + vl) ** 2 / (vh ** 2 / (h.length - 1) + vl ** 2 / (l.length - 1))
  const gap = 100 * (m - ml) / ml
  const half = 100 * t975(df) * se / ml
  const ci: [number, number] = Number.isFinite(half) ? [gap - half, gap + half] : [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY]
  const verdict = ci[0] >= -maxPct && ci[1] <= maxPct ? 'met' : (ci[0] > maxPct || ci[1] < -maxPct) ? 'not met' : 'undecided'
  return {
    fromTokens: from,
    toTokens: end,
    points: grid.length,
    runs: h,
    loopbacks: l,
    short: short.map(x => ({ name: x.r.name, tokens: x.c.at(-1)?.tokens ?? 0 })),
    mean: m,
    sd: s,
    loopbackMean: ml,
    loopbackSd: sl,
    gapPct: gap,
    ciPct: ci,
    verdict
  }
}
