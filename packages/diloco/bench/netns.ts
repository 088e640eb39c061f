/**
 * DiLoCo over emulated links (packages/diloco/README.md, "Over emulated links"): 4 replicas of the `tiny` model
 * as separate processes, each in its own network namespace, run the real `diloco` service (gossipsub + fetch
 * streams, commit, robust aggregation, outer step) for R rounds of H inner steps. The network is the testbed's
 * (`testbed/`, its runner unchanged): link delay, jitter and loss from its user-space emulator, the egress cap
 * from the kernel's tbf. Needs root and a built testbed (`tsc -b testbed`).
 *
 *   node_modules/.bin/tsc -b packages/diloco testbed
 *   node_modules/.bin/node packages/diloco/dist/bench/netns.js [scenario names…]
 *
 * Each scenario is written as a testbed scenario file (node command: dist/bench/netns-node.js) and run with
 * `testbed/dist/src/netns/run.js`; once every replica has written its result the runner is sent SIGTERM (it
 * tears namespaces, links and processes down; it writes no results file then). Environment: DILOCO_NET_ROUNDS
 * (default 5), DILOCO_NET_H (default 50). Results: bench-results/diloco-netns.json and the printed table.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const pkg = resolve(here, '..', '..')
const testbed = resolve(pkg, '..', '..', 'testbed')
const runJs = join(testbed, 'dist', 'src', 'netns', 'run.js')
const resultsFile = join(pkg, 'bench-results', 'diloco-netns.json')
const ROUNDS = Number(process.env.DILOCO_NET_ROUNDS ?? 5)
const H = Number(process.env.DILOCO_NET_H ?? 50)
const WORKERS = 4
const TIMEOUT_MS = 30 * 60_000

interface Link { rateMbit: number, delayMs: number, jitterMs?: number, lossPct?: number }
interface Config { name: string, link: Link, codec: string, outer: 'nesterov' | 'avg' }
const LAN100: Link = { rateMbit: 100, delayMs: 10 }
const HOME20: Link = { rateMbit: 20, delayMs: 50, jitterMs: 5, lossPct: 1 }
const CONFIGS: Config[] = [
  { name: 'net100-int8', link: LAN100, codec: 'int8', outer: 'nesterov' },
  { name: 'net100-sparse-avg', link: LAN100, codec: 'sparse', outer: 'avg' },
  { name: 'net100-fp32', link: LAN100, codec: 'fp32', outer: 'nesterov' },
  { name: 'home20-int8', link: HOME20, codec: 'int8', outer: 'nesterov' },
  { name: 'home20-fp32', link: HOME20, codec: 'fp32', outer: 'nesterov' }
]

interface NodeResult { name: string, codec: string, H: number, rounds: number, outer: string, payloadBytes: number, valLoss?: number, baseHash: string, roundLog: Array<Record<string, any>> }
interface Result {
  name: string, link: Link, codec: string, outer: string, H: number, rounds: number, payloadBytes: number,
  wireBytesPerRound: number, wireBytesMedian: number, serviceBytesPerRound: number, computeS: number, commS: number, valLoss?: number,
  /** final bases identical on every replica; rounds whose applied base differed between replicas (a fork the next rounds resolved) */
  identical: boolean, forkedRounds: number, minContributions: number, meanContributions: number, loadBefore: string, loadAfter: string, date: string, error?: string
}

const load = (): string => readFileSync('/proc/loadavg', 'utf8').trim()
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

async function runOne (c: Config): Promise<Result> {
  const dir = join('/tmp', 'diloco-netns', c.name)
  const out = join(dir, 'out')
  await rm(dir, { recursive: true, force: true })
  await mkdir(out, { recursive: true })
  const peers = Array.from({ length: WORKERS }, (_, i) => `10.77.0.${i + 1}:4001`).join(',')
  const scenario = {
    name: `diloco-${c.name}`,
    description: `DiLoCo, 4 replicas of tiny, ${c.codec}, H = ${H}, ${ROUNDS} rounds`,
    durationS: 7200,
    groups: { w: { count: WORKERS, rateMbit: c.link.rateMbit } },
    bootstrap: ['w-0'],
    links: { '*': { delayMs: c.link.delayMs, jitterMs: c.link.jitterMs ?? 0, lossPct: c.link.lossPct ?? 0 } },
    node: {
      command: ['{node}', join(pkg, 'dist', 'bench', 'netns-node.js'), '--name', '{name}', '--port', '{port}', '--data-dir', '{dataDir}', '--ip', '{ip}'],
      env: { DILOCO_NET_PEERS: peers, DILOCO_NET_CODEC: c.codec, DILOCO_NET_H: String(H), DILOCO_NET_ROUNDS: String(ROUNDS), DILOCO_NET_OUTER: c.outer, DILOCO_NET_OUT: out }
    },
    events: [],
    convergeTimeoutS: 300
  }
  const file = join(dir, 'scenario.json')
  await writeFile(file, JSON.stringify(scenario, null, 2))
  const loadBefore = load()
  const date = new Date().toISOString()
  console.log(`run ${c.name} (${date}, load ${loadBefore})`)
  const child = spawn(process.execPath, [runJs, file], { stdio: ['ignore', 'inherit', 'inherit'], cwd: testbed })
  let exited = false
  child.once('exit', () => { exited = true })
  // stopping this script stops the runner, which tears namespaces, links and node processes down
  const forward = (): void => { child.kill('SIGTERM') }
  process.once('SIGTERM', forward)
  process.once('SIGINT', forward)
  const deadline = Date.now() + TIMEOUT_MS
  const names = Array.from({ length: WORKERS }, (_, i) => `w-${i}`)
  const failed = (): boolean => names.some(n => existsSync(join(out, `${n}.error`)))
  while (!exited && Date.now() < deadline && !failed() && !names.every(n => existsSync(join(out, `${n}.json`)))) await sleep(1000)
  const done = names.every(n => existsSync(join(out, `${n}.json`)))
  if (done) await sleep(3000) // the slower replicas may still fetch the last round's payloads
  if (!exited) {
    child.kill('SIGTERM')
    await new Promise(resolve => { child.once('exit', resolve); setTimeout(resolve, 30_000) })
  }
  process.off('SIGTERM', forward)
  process.off('SIGINT', forward)
  const loadAfter = load()
  const base = { name: c.name, link: c.link, codec: c.codec, outer: c.outer, H, rounds: ROUNDS, loadBefore, loadAfter, date }
  if (!done) return { ...base, payloadBytes: 0, wireBytesPerRound: 0, wireBytesMedian: 0, serviceBytesPerRound: 0, computeS: NaN, commS: NaN, identical: false, forkedRounds: 0, minContributions: 0, meanContributions: 0, error: `not every replica finished (logs under /tmp/neuroshard-testbed/diloco-${c.name}-*)` }
  return { ...base, ...await analyze(out) }
}

/** The measures of one run from its replicas' result files */
async function analyze (out: string): Promise<Omit<Result, 'name' | 'link' | 'codec' | 'outer' | 'H' | 'rounds' | 'loadBefore' | 'loadAfter' | 'date'>> {
  const names = Array.from({ length: WORKERS }, (_, i) => `w-${i}`)
  const nodes: NodeResult[] = await Promise.all(names.map(async n => JSON.parse(await readFile(join(out, `${n}.json`), 'utf8'))))
  // per round R, on the machine's one clock: compute = from the first start to the last end of the H inner steps
  // of the pseudo-gradients contributed to R; comm = from that last end until the last replica has applied R
  // (announce, payload over gossipsub or fetch, commit, aggregation, outer step). Round 0 is left out (the
  // replicas start it at different times after start-up).
  const rounds = nodes[0].rounds
  const compute: number[] = []
  const comm: number[] = []
  const logs = nodes.flatMap(n => n.roundLog)
  for (let R = 1; R < rounds; R++) {
    const contributed = logs.filter(l => l.contributedRound === R)
    const applied = logs.filter(l => l.round === R)
    if (contributed.length === 0 || applied.length === 0) continue
    const start = Math.min(...contributed.map(l => l.start))
    const computed = Math.max(...contributed.map(l => l.computed))
    compute.push((computed - start) / 1000)
    comm.push((Math.max(...applied.map(l => l.applied)) - computed) / 1000)
  }
  const all = nodes.flatMap(n => n.roundLog)
  const valLoss = nodes.find(n => n.valLoss !== undefined && n.valLoss !== null)?.valLoss
  const median = (xs: number[]): number => { const v = [...xs].sort((a, b) => a - b); return v[Math.floor(v.length / 2)] }
  return {
    payloadBytes: nodes[0].payloadBytes,
    // a typical round of one replica (state downloads it served to resyncing peers show up as outliers)
    wireBytesMedian: median(all.map(r => r.txBytes)),
    // everything each replica's interface sent while it trained and exchanged, divided by the group's rounds
    wireBytesPerRound: all.reduce((a, r) => a + r.txBytes, 0) / WORKERS / rounds,
    serviceBytesPerRound: all.reduce((a, r) => a + r.serviceBytes, 0) / WORKERS / rounds,
    computeS: mean(compute),
    commS: mean(comm),
    ...(valLoss !== undefined ? { valLoss } : {}),
    identical: nodes.every(n => n.baseHash === nodes[0].baseHash),
    forkedRounds: Array.from({ length: rounds }, (_, R) => new Set(logs.filter(l => l.round === R).map(l => l.baseHash)).size).filter(k => k > 1).length,
    minContributions: Math.min(...all.map(r => r.contributions)),
    meanContributions: mean(all.map(r => r.contributions))
  }
}

const analyzeOnly = process.argv.includes('--analyze')
const only = process.argv.slice(2).filter(a => !a.startsWith('--'))
const results: Result[] = existsSync(resultsFile) ? JSON.parse(await readFile(resultsFile, 'utf8')) : []
// --analyze: recompute the measures of the stored runs from their replicas' files (/tmp/diloco-netns/<name>/out)
if (analyzeOnly) {
  for (const [i, r] of results.entries()) {
    if (r.error !== undefined || !existsSync(join('/tmp', 'diloco-netns', r.name, 'out', 'w-0.json'))) continue
    results[i] = { ...r, ...await analyze(join('/tmp', 'diloco-netns', r.name, 'out')) }
  }
  await writeFile(resultsFile, JSON.stringify(results, null, 2))
}
for (const c of CONFIGS) {
  if (analyzeOnly) break
  if (only.length > 0 && !only.includes(c.name)) continue
  if (only.length === 0 && results.some(r => r.name === c.name && r.error === undefined)) { console.log(`skip ${c.name} (in ${resultsFile})`); continue }
  const r = await runOne(c)
  const i = results.findIndex(x => x.name === c.name)
  if (i >= 0) results[i] = r; else results.push(r)
  await mkdir(dirname(resultsFile), { recursive: true })
  await writeFile(resultsFile, JSON.stringify(results, null, 2))
  console.log(`done ${c.name}: ${r.error ?? `compute ${r.computeS.toFixed(2)} s, comm ${r.commS.toFixed(2)} s per round`}`)
}

const fmtB = (b: number): string => b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${Math.round(b)} B`
const linkOf = (l: Link): string => `${l.rateMbit} Mbit/s up, ${l.delayMs} ms${(l.jitterMs ?? 0) > 0 ? ` ± ${l.jitterMs}` : ''}${(l.lossPct ?? 0) > 0 ? `, ${l.lossPct} % loss` : ''}`
console.log('\n| config | link (each node) | codec | outer | H | rounds | payload/node/round | wire bytes sent/node/round (eth0): mean / median | service bytes/node/round | compute s/round | comm s/round | upload of 3 payloads at the cap (s) | comm share | val loss | contributions per round, mean (min) | final weights bit-identical | rounds with diverging bases | load before → after |')
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
for (const r of results) {
  if (r.error !== undefined) { console.log(`| ${r.name} | ${linkOf(r.link)} | ${r.codec} | ${r.outer} | ${r.H} | ${r.rounds} | FAILED: ${r.error} |||||||||||| ${r.loadBefore.split(' ')[0]} → ${r.loadAfter.split(' ')[0]} |`); continue }
  console.log(`| ${r.name} | ${linkOf(r.link)} | ${r.codec} | ${r.outer === 'avg' ? 'avg (lr 1, μ 0)' : 'Nesterov 0.7/0.9'} | ${r.H} | ${r.rounds} | ${fmtB(r.payloadBytes)} | ${fmtB(r.wireBytesPerRound)} / ${r.wireBytesMedian !== undefined ? fmtB(r.wireBytesMedian) : '—'} | ${fmtB(r.serviceBytesPerRound)} | ${r.computeS.toFixed(2)} | ${r.commS.toFixed(2)} | ${(3 * r.payloadBytes * 8 / (r.link.rateMbit * 1e6)).toFixed(3)} | ${(100 * r.commS / (r.commS + r.computeS)).toFixed(1)} % | ${r.valLoss?.toFixed(4) ?? '—'} | ${r.meanContributions.toFixed(2)} (${r.minContributions}) | ${r.identical ? 'yes' : 'NO'} | ${r.forkedRounds} of ${r.rounds} | ${r.loadBefore.split(' ')[0]} → ${r.loadAfter.split(' ')[0]} |`)
}
