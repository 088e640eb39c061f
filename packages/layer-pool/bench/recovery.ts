/**
 * Hot-swap recovery: how long until every slot is back at >= 2 live replicas after 25% of the nodes
 * leave — the 25% holding the most slots at exactly two replicas, so the leave opens gaps; half of the
 * nodes announce `leaving` when they stop, half stop silently (their records are dropped by the liveness
 * probe when their connections close). Real libp2p hosts (TCP on loopback) in this process.
 *
 * Scenarios: 8 hosts holding `small` (memory for ≈ 4.5 copies), and 32 hosts holding a deeper model with a
 * smaller vocabulary (`small` with 24 blocks and 8,192 tokens, memory for ≈ 4.5 copies). The clock starts
 * when the leaving nodes are stopped and ends when every survivor sees every slot at >= 2 live replicas
 * and every survivor's spans serve.
 *
 * Run: `cd packages/layer-pool && npx tsc -b && ../../node_modules/.bin/node dist/bench/recovery.js [repeats] [scenario index]`
 * Results: bench/results/recovery.json
 */

import { execSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { SMALL } from '@neuroshard/model'
import { startPoolHost, stopAll, liveReplicas, until } from '../test/helpers.js'
import type { PoolHost } from '../test/helpers.js'
import type { ModelConfig } from '@neuroshard/model'

const MiB = 1024 * 1024
const FAST = { heartbeatIntervalMs: 500, recordTtlMs: 4_000, settleMs: 1_000, claimJitterMs: 300 }

interface Scenario { name: string, config: ModelConfig, budgetsMiB: number[] }

const scenarios: Scenario[] = [
  { name: '8 hosts, small (31M params)', config: SMALL, budgetsMiB: [96, 110, 72, 84, 100, 80, 120, 90] },
  {
    name: '32 hosts, small with 24 blocks and vocab 8192',
    config: { ...SMALL, nLayers: 24, vocabSize: 8192 },
    budgetsMiB: Array.from({ length: 32 }, (_, i) => 18 + (i * 7) % 13)
  }
]

function lcg (seed: number): () => number {
  let s = seed
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 }
}

async function run (scenario: Scenario, seed: number): Promise<{ seconds: number, minReplicasAfterLeave: number }> {
  const random = lcg(seed)
  const hosts: PoolHost[] = []
  try {
    const first = await startPoolHost({ ...FAST, config: scenario.config, memoryBytes: scenario.budgetsMiB[0] * MiB, random })
    hosts.push(first)
    hosts.push(...await Promise.all(scenario.budgetsMiB.slice(1).map(async (mb, i) =>
      startPoolHost({ ...FAST, config: scenario.config, memoryBytes: mb * MiB, random: lcg(seed * 1000 + i), announceLeave: i % 2 === 0 }, first))))
    const settled = (list: PoolHost[]): boolean => list.every(h => h.services.layerPool.ownSpans().every(s => s.state === 'serving'))
    await until(() => liveReplicas(first.services.layerPool).every(n => n >= 2) && settled(hosts), 300_000, () => liveReplicas(first.services.layerPool).join(','))

    // 25% leave, the worst ones: those that hold the most slots at exactly two live replicas (so the leave
    // does open gaps), half of them announcing it and half silently
    const replicas = liveReplicas(first.services.layerPool)
    const critical = (h: PoolHost): number => h.services.layerPool.ownSpans().reduce((n, s) => {
      for (let i = s.start; i < s.end; i++) if (replicas[i] <= 2) n++
      return n
    }, 0)
    const leaving = hosts.slice(1).sort((a, b) => critical(b) - critical(a)).slice(0, Math.max(1, Math.round(hosts.length / 4)))
    const survivors = hosts.filter(h => !leaving.includes(h))
    const t0 = performance.now()
    await Promise.all(leaving.map(async h => h.stop()))
    let min = Number.POSITIVE_INFINITY
    await until(() => {
      const replicas = liveReplicas(survivors[0].services.layerPool)
      min = Math.min(min, ...replicas)
      return survivors.every(h => liveReplicas(h.services.layerPool).every(n => n >= 2)) && settled(survivors)
    }, 600_000, () => survivors.map(h => `${Math.min(...liveReplicas(h.services.layerPool))}:${JSON.stringify(h.services.layerPool.ownSpans().filter(s => s.state !== 'serving').map(s => [s.start, s.end, s.state]))}`).join(' '))
    return { seconds: (performance.now() - t0) / 1000, minReplicasAfterLeave: min }
  } finally {
    await stopAll(hosts)
  }
}

const repeats = Number(process.argv[2] ?? 3)
const rows: Array<{ scenario: string, runs: number[], minReplicas: number[], failures: number }> = []
for (const scenario of scenarios.filter((_, i) => process.argv[3] == null || String(i) === process.argv[3])) {
  const runs: number[] = []
  const minReplicas: number[] = []
  let failures = 0
  for (let r = 0; r < repeats; r++) {
    try {
      const result = await run(scenario, 1 + r)
      runs.push(result.seconds)
      minReplicas.push(result.minReplicasAfterLeave)
      console.error(`${scenario.name} run ${r + 1}: ${result.seconds.toFixed(2)} s (lowest replica count seen: ${result.minReplicasAfterLeave})`)
    } catch (err: any) {
      // a run that never converges is a result too: it is counted and shown, not hidden
      failures++
      console.error(`${scenario.name} run ${r + 1} failed: ${err.message}`)
    }
  }
  rows.push({ scenario: scenario.name, runs, minReplicas, failures })
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b)
console.log('| scenario | runs | did not converge in 600 s | median s | max s | lowest replicas seen after the leave |')
console.log('|---|---:|---:|---:|---:|---|')
for (const row of rows) {
  const s = sorted(row.runs)
  const median = s.length > 0 ? s[Math.floor(s.length / 2)].toFixed(2) : '-'
  const max = s.length > 0 ? s[s.length - 1].toFixed(2) : '-'
  console.log(`| ${row.scenario} | ${s.length + row.failures} | ${row.failures} | ${median} | ${max} | ${row.minReplicas.join(', ')} |`)
}
const load = execSync('uptime').toString().trim()
console.log(`\nuptime: ${load}`)
mkdirSync(new URL('./results/', import.meta.url).pathname.replace('/dist/bench/', '/bench/'), { recursive: true })
writeFileSync(new URL('../../bench/results/recovery.json', import.meta.url), JSON.stringify({ date: new Date().toISOString(), load, rows }, null, 2) + '\n')
