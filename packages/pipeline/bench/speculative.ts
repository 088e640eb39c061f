/**
 * Speculative decoding over 3 nodes with 0, 20 and 50 ms per hop (issue 16): Driver, Worker and Validator are
 * separate `node` processes on 127.0.0.1; every libp2p connection between them runs through a TCP relay in this
 * process that holds each chunk for the hop delay before passing it on, in both directions (this machine's kernel
 * has no `sch_netem`). A plain token travels Driver → Worker → Validator and back: four delays per token.
 *
 * The model: `tiny` (byte vocabulary) trained here for STEPS steps on this repo's docs (so that drafts can be
 * right), weights handed to the nodes through a file. Greedy generation of N tokens from a few prompts, plain and
 * speculative: with the n-gram drafter (prompt lookup) and with the self-draft (the model's own first block +
 * final norm + head as a 1-block model on the Driver). Every speculative output is checked against the plain one.
 *
 * Run: npx -y pnpm@10 exec tsc -b packages/pipeline && (cd packages/pipeline && ../../node_modules/.bin/node dist/bench/speculative.js)
 * Env: DELAYS=0,20,50 STEPS=600 N=64 REPEATS=3
 */
import { fork } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildModelGraph, modelParameters, preset } from '@neuroshard/model'
import { createShardExecutor, int64, warmupCosine } from '@neuroshard/runtime'
import { byteTokenizer } from '../src/index.js'
import type { SpecCommand } from './speculative-node.js'
import type { SpeculativeRound } from '../src/index.js'
import type { ChildProcess } from 'node:child_process'
import type { Server, Socket } from 'node:net'
import type { ModelConfig } from '@neuroshard/model'

const DELAYS = (process.env.DELAYS ?? '0,20,50').split(',').map(Number)
const STEPS = Number(process.env.STEPS ?? 600)
const N = Number(process.env.N ?? 64)
const REPEATS = Number(process.env.REPEATS ?? 3)
const PROMPTS = ['The Driver sends activations to the first Worker', 'A server MUST check, before running anything', 'Every node steps its own AdamW on its own layers']

/** The hop delay every relay applies now, ms */
let delayMs = 0

/** A TCP relay to 127.0.0.1:`port` that holds every chunk `delayMs` before passing it on (order kept) */
async function relay (port: number): Promise<{ port: number, server: Server }> {
  const sockets = new Set<Socket>()
  const pass = (from: Socket, to: Socket): void => {
    from.on('data', chunk => {
      const d = delayMs
      if (d <= 0) to.write(chunk)
      else setTimeout(() => { if (!to.destroyed) to.write(chunk) }, d)
    })
    from.on('end', () => { setTimeout(() => to.end(), delayMs) })
    from.on('error', () => to.destroy())
    from.on('close', () => { setTimeout(() => to.destroy(), delayMs) })
  }
  const server = createServer(c => {
    const u = createConnection(port, '127.0.0.1')
    c.setNoDelay(true)
    u.setNoDelay(true)
    sockets.add(c).add(u)
    pass(c, u)
    pass(u, c)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  server.on('close', () => { for (const s of sockets) s.destroy() })
  return { port: (server.address() as { port: number }).port, server }
}

class Node {
  readonly child: ChildProcess
  private next = 1
  private readonly pending = new Map<number, { resolve(v: any): void, reject(e: Error): void }>()

  constructor (readonly name: string) {
    this.child = fork(fileURLToPath(new URL('./speculative-node.js', import.meta.url)), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.child.on('message', (msg: any) => {
      const p = this.pending.get(msg.id)
      this.pending.delete(msg.id)
      if (msg.error == null) p?.resolve(msg.value)
      else p?.reject(new Error(`${name}: ${String(msg.error)}`))
    })
    this.child.once('exit', () => { for (const p of this.pending.values()) p.reject(new Error(`${name} exited`)) })
  }

  async call<T = any> (cmd: SpecCommand): Promise<T> {
    const id = this.next++
    return await new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.child.send({ id, cmd })
    })
  }
}

function corpus (): Uint8Array {
  const files = ['../../specs/pipeline/README.md', '../../specs/layer-pool/README.md', '../runtime/README.md', '../../specs/model/README.md', 'README.md']
  return new Uint8Array(Buffer.concat(files.map(p => readFileSync(new URL(p, new URL('../../', import.meta.url))))))
}

async function train (config: ModelConfig, file: string): Promise<number> {
  const data = corpus()
  const ex = await createShardExecutor({
    config,
    role: { kind: 'blocks', start: 0, end: config.nLayers },
    parameterSpecs: modelParameters(config),
    seed: 1,
    graphs: { backward: buildModelGraph(config, 'backward').bytes },
    optimizer: { schedule: warmupCosine({ peakLr: 5e-3, warmupSteps: 30, totalSteps: STEPS }), weightDecay: 0 }
  })
  const batch = 8
  const seq = 64
  let rng = 12345
  const losses: number[] = []
  for (let step = 0; step < STEPS; step++) {
    const ids = new BigInt64Array(batch * seq)
    const targets = new BigInt64Array(batch * seq)
    for (let b = 0; b < batch; b++) {
      rng = (rng * 1103515245 + 12345) >>> 0
      const start = rng % (data.length - seq - 1)
      for (let t = 0; t < seq; t++) { ids[b * seq + t] = BigInt(data[start + t]); targets[b * seq + t] = BigInt(data[start + t + 1]) }
    }
    const out = await ex.backward({ input_ids: int64(ids, [batch, seq]), targets: int64(targets, [batch, seq]) })
    losses.push(Number((out.loss.data as Float32Array)[0]))
    await ex.step()
  }
  const p = await ex.getParameters()
  await ex.close()
  writeFileSync(file, Buffer.concat(modelParameters(config).map(s => { const a = p.get(s.name)!; return Buffer.from(a.buffer, a.byteOffset, a.byteLength) })))
  const last = losses.slice(-20)
  return last.reduce((a, b) => a + b, 0) / last.length
}

interface Gen { ids: number[], ms: number, firstMs: number, rounds: SpeculativeRound[] }

const load = (): string => loadavg().map(x => x.toFixed(2)).join(' ')
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)] }

async function main (): Promise<void> {
  const config: ModelConfig = { ...preset('tiny') }
  const work = mkdtempSync(join(tmpdir(), 'ns-spec-'))
  const weights = join(work, 'tiny.f32')
  const started = new Date().toISOString()
  const loadStart = load()
  const t0 = performance.now()
  const loss = await train(config, weights)
  const trainS = (performance.now() - t0) / 1000
  const L = config.nLayers
  const spans: Array<[number, number]> = [[0, 1], [1, 2], [2, L + 2]]
  const nodes = ['driver', 'worker', 'validator'].map(name => new Node(name))
  const relays: Server[] = []
  const rows: string[] = []
  const json: Record<string, unknown> = { date: started, loadavgStart: loadavg(), node: process.version, cpus: cpus().length, steps: STEPS, trainLoss: loss, n: N, repeats: REPEATS, runs: [] as unknown[] }
  try {
    const info = await Promise.all(nodes.map(async (n, i) => await n.call<{ peer: string, addrs: string[] }>({ op: 'init', config, weights, start: spans[i][0], end: spans[i][1], ip: '127.0.0.1', threads: 1 })))
    const hops = [1, 2].map(i => ({ peer: info[i].peer, start: spans[i][0], end: spans[i][1] }))
    /** The address of node i through a new relay */
    const via = async (i: number): Promise<string> => {
      const target = Number(info[i].addrs.find(a => a.includes('/tcp/'))!.split('/tcp/')[1].split('/')[0])
      const r = await relay(target)
      relays.push(r.server)
      return `/ip4/127.0.0.1/tcp/${r.port}/p2p/${info[i].peer}`
    }
    await nodes[1].call({ op: 'connect', hops: [], dial: [await via(2)] })
    await nodes[0].call({ op: 'connect', hops, dial: [await via(1), await via(2)] })
    const tok = byteTokenizer()
    const prompts = PROMPTS.map(p => tok.encode(p))
    for (const delay of DELAYS) {
      delayMs = delay
      // warm-up (sessions, streams, the draft engine)
      for (const d of ['none', 'ngram', 'self-draft'] as const) await nodes[0].call<Gen>({ op: 'generate', prompt: prompts[0], n: 8, drafter: d })
      const stats: Record<string, { tps: number[], accepted: number, proposed: number, rounds: number, same: boolean, firstMs: number[] }> = {}
      for (let r = 0; r < REPEATS; r++) {
        for (const p of prompts) {
          const plain = await nodes[0].call<Gen>({ op: 'generate', prompt: p, n: N, drafter: 'none' })
          for (const d of ['none', 'ngram', 'self-draft'] as const) {
            const g = d === 'none' ? plain : await nodes[0].call<Gen>({ op: 'generate', prompt: p, n: N, drafter: d })
            const s = stats[d] ??= { tps: [], accepted: 0, proposed: 0, rounds: 0, same: true, firstMs: [] }
            s.tps.push(g.ids.length / (g.ms / 1000))
            s.firstMs.push(g.firstMs)
            s.accepted += g.rounds.reduce((a, x) => a + x.accepted, 0)
            s.proposed += g.rounds.reduce((a, x) => a + x.proposed, 0)
            s.rounds += g.rounds.length
            s.same &&= JSON.stringify(g.ids) === JSON.stringify(plain.ids)
          }
        }
      }
      const base = median(stats.none.tps)
      for (const d of ['none', 'ngram', 'self-draft'] as const) {
        const s = stats[d]
        const tps = median(s.tps)
        rows.push(`| ${delay} ms | ${d === 'none' ? 'plain' : `speculative, ${d}`} | ${tps.toFixed(1)} | ${(tps / base).toFixed(2)}× | ${d === 'none' ? '–' : `${(100 * s.accepted / Math.max(1, s.proposed)).toFixed(1)} % (${s.accepted}/${s.proposed})`} | ${d === 'none' ? '–' : (N * PROMPTS.length * REPEATS / Math.max(1, s.rounds)).toFixed(2)} | ${median(s.firstMs).toFixed(0)} | ${s.same ? 'yes' : 'NO'} |`)
        ;(json.runs as unknown[]).push({ delay, drafter: d, tokensPerS: s.tps, medianTokensPerS: tps, speedup: tps / base, accepted: s.accepted, proposed: s.proposed, rounds: s.rounds, sameAsPlain: s.same, firstTokenMs: s.firstMs })
      }
      process.stderr.write(`delay ${delay} ms done, load ${load()}\n`)
    }
  } finally {
    await Promise.all(nodes.map(async n => await n.call({ op: 'stop' }).catch(() => {})))
    for (const r of relays) r.close()
    rmSync(work, { recursive: true, force: true })
  }
  const out = [
    `speculative decoding over 3 nodes (Driver, Worker, Validator: separate processes, every connection through a relay that delays each direction by the hop delay)`,
    `${started}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, loadavg at start ${loadStart}, at end ${load()}`,
    `model: tiny (byte vocabulary, ${config.nLayers} blocks × ${config.dModel}), trained ${STEPS} steps on this repo's docs here (${trainS.toFixed(0)} s, final loss ${loss.toFixed(3)}); greedy, ${N} new tokens from each of ${PROMPTS.length} prompts, ${REPEATS} repeats; γ adaptive (max 8)`,
    '',
    '| delay per hop | decoding | tokens/s (median) | vs plain | draft tokens accepted | tokens per round trip | first token (ms, median) | same tokens as plain |',
    '|---|---|---|---|---|---|---|---|',
    ...rows
  ].join('\n')
  process.stdout.write(out + '\n')
  json.loadavgEnd = loadavg()
  json.table = out
  const dir = fileURLToPath(new URL('../../bench-results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, `speculative-${Date.now()}.json`), JSON.stringify(json, null, 2))
}

main().then(() => process.exit(0), err => { process.stderr.write(`${String(err?.stack ?? err)}\n`); process.exit(1) })
