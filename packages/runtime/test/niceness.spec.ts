/**
 * `RuntimeInit.niceness`: the runtime's worker thread lowers its own priority (Linux nice is per thread) before it
 * creates a session, so onnxruntime's intra-op threads inherit it and the compute of its runs happens at that
 * priority, while the rest of the process (the event loop, other runtimes) keeps its own. Read from
 * /proc/self/task/<tid>/stat (field 19: nice; 14 + 15: user + system CPU ticks).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { describe, it, expect, afterAll } from 'vitest'
import { buildShardGraph, initParameter, modelParameters, preset, shardParameters } from '@neuroshard/model'
import { createShardExecutor, float32 } from '../src/index.js'
import type { ShardExecutor } from '../src/index.js'

const linux = process.platform === 'linux'
const config = preset('tiny')
const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 7)]))
const role = { kind: 'blocks' as const, start: 0, end: 1 }
const open: ShardExecutor[] = []
afterAll(async () => { await Promise.all(open.map(async e => { await e.close() })) })

interface Task { tid: number, nice: number, cpuTicks: number }

/** Every thread of this process: its nice value and CPU time so far */
function tasks (): Task[] {
  const out: Task[] = []
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string
    try { stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8') } catch { continue } // the thread ended
    // after the command name (which may hold spaces and parentheses): field 3 onwards
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    out.push({ tid: Number(tid), nice: Number(f[16]), cpuTicks: Number(f[11]) + Number(f[12]) })
  }
  return out
}

async function executor (niceness?: number): Promise<ShardExecutor> {
  const own = new Map([...shardParameters(config, role)].map(p => [p.name, params.get(p.name)!]))
  const ex = await createShardExecutor({
    config,
    role,
    parameters: own,
    intraOpNumThreads: 2,
    ...(niceness !== undefined ? { niceness } : {}),
    graphs: { forward: buildShardGraph(config, role, 'forward').bytes, backward: buildShardGraph(config, role, 'backward').bytes }
  })
  open.push(ex)
  return ex
}

/** Forward passes of a batch large enough that onnxruntime's compute dominates the message passing */
async function work (ex: ShardExecutor, runs: number): Promise<void> {
  const [B, T, D] = [4, 64, config.dModel]
  const x = float32(Float32Array.from({ length: B * T * D }, (_, i) => Math.sin(i)), [B, T, D])
  for (let i = 0; i < runs; i++) await ex.forward({ hidden_in: x })
}

describe.runIf(linux)('runtime niceness (Linux)', () => {
  it('the worker and the onnxruntime threads it starts run at the given nice value; the rest of the process does not', async () => {
    const N = 13 // a value nothing else here uses
    const before = new Set(tasks().filter(t => t.nice === N).map(t => t.tid))
    const main = tasks().find(t => t.tid === process.pid)!
    const ex = await executor(N)
    await work(ex, 2)
    const niced0 = tasks().filter(t => t.nice === N && !before.has(t.tid))
    // the worker thread itself and onnxruntime's second intra-op thread (intraOpNumThreads 2: the caller is the first)
    expect(niced0.length).toBeGreaterThanOrEqual(2)
    expect(tasks().find(t => t.tid === process.pid)!.nice).toBe(main.nice)
    // the compute of the runs is done by the niced threads: most of the process's CPU time while they run
    const all0 = tasks()
    await work(ex, 40)
    const all1 = tasks()
    const ticks = (ts: Task[], pick: (t: Task) => boolean): number => ts.filter(pick).reduce((a, t) => a + t.cpuTicks, 0)
    const nicedIds = new Set(niced0.map(t => t.tid))
    const nicedCpu = ticks(all1, t => nicedIds.has(t.tid)) - ticks(all0, t => nicedIds.has(t.tid))
    const allCpu = ticks(all1, () => true) - ticks(all0, () => true)
    expect(nicedCpu, `niced threads ${nicedCpu} of ${allCpu} ticks`).toBeGreaterThan(0.6 * allCpu)
  })

  it('without niceness the worker and its onnxruntime threads keep the process\'s nice value', async () => {
    const base = tasks().find(t => t.tid === process.pid)!.nice
    const before = new Map(tasks().map(t => [t.tid, t]))
    const ex = await executor()
    await work(ex, 2)
    const fresh = tasks().filter(t => !before.has(t.tid))
    expect(fresh.length).toBeGreaterThanOrEqual(2)
    for (const t of fresh) expect(t.nice).toBe(base)
  })

  it('refuses a nice value outside [0, 19]', async () => {
    await expect(executor(20)).rejects.toThrow(/niceness/)
    await expect(executor(-1)).rejects.toThrow(/niceness/)
  })
})
