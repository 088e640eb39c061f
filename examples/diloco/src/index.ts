/**
 * Example: four libp2p hosts train one model together with DiLoCo.
 *
 * Each host is a replica of the same span (here a small linear model `y = w·x + bias`, so the example runs
 * in a second; a real node's inner loop is `InnerLoop` over NeuroLLM shards). Every round each replica:
 *
 * 1. takes the group's base weights (`diloco.parameters()`),
 * 2. runs H inner steps of SGD on its **own** data shard (the shards differ: each host sees other examples),
 * 3. hands its local weights to `diloco.contribute()`, which publishes the int8 pseudo-gradient on the group's
 *    gossipsub topic, waits for the round's commit, aggregates with the trimmed mean and applies the outer
 *    Nesterov step; every host ends the round with the same weights (same hash).
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-diloco start`
 */
import { pathToFileURL } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { diloco } from '@neuroshard/diloco'
import { createNeuroShardHost } from '@neuroshard/host'
import type { DiLoCo, Span } from '@neuroshard/diloco'

const DIM = 8
const HOSTS = 4
const ROUNDS = 5
const H = 20 // inner steps per round
const SPAN: Span = { id: 'linear', parameters: [{ name: 'w', shape: [DIM] }, { name: 'bias', shape: [1] }] }
const TRUE_W = Array.from({ length: DIM }, (_, i) => Math.sin(i + 1))
const TRUE_B = 0.5

type Host = Awaited<ReturnType<typeof createNeuroShardHost<{ diloco: DiLoCo }>>>

/** A deterministic data shard: 64 examples of y = w·x + b + noise, different for every host */
function shard (seed: number): Array<{ x: number[], y: number }> {
  let s = seed * 7919 + 1
  const u = (): number => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32 - 0.5 }
  return Array.from({ length: 64 }, () => {
    const x = Array.from({ length: DIM }, () => 2 * u())
    return { x, y: x.reduce((a, xi, i) => a + xi * TRUE_W[i], TRUE_B) + 0.05 * u() }
  })
}

function loss (p: Map<string, Float32Array>, data: Array<{ x: number[], y: number }>): number {
  const w = p.get('w') as Float32Array
  const b = (p.get('bias') as Float32Array)[0]
  return data.reduce((a, d) => a + (d.x.reduce((s, xi, i) => s + xi * w[i], b) - d.y) ** 2, 0) / data.length
}

/** H steps of plain SGD on the mean squared error */
function innerSteps (p: Map<string, Float32Array>, data: Array<{ x: number[], y: number }>, steps: number, lr = 0.05): void {
  const w = p.get('w') as Float32Array
  const b = p.get('bias') as Float32Array
  for (let t = 0; t < steps; t++) {
    const gw = new Float64Array(DIM)
    let gb = 0
    for (const d of data) {
      const err = d.x.reduce((s, xi, i) => s + xi * w[i], b[0]) - d.y
      for (let i = 0; i < DIM; i++) gw[i] += 2 * err * d.x[i] / data.length
      gb += 2 * err / data.length
    }
    for (let i = 0; i < DIM; i++) w[i] -= lr * gw[i]
    b[0] -= lr * gb
  }
}

export interface ExampleResult {
  rounds: number
  lossBefore: number
  lossAfter: number
  /** Distinct weight hashes across the hosts after the last round (1 = all identical) */
  distinctHashes: number
  /** Pseudo-gradients accepted per round */
  accepted: number[]
  bytesSent: number
}

export async function main (print: (line: string) => void = console.log): Promise<ExampleResult> {
  const hosts: Host[] = []
  try {
    for (let i = 0; i < HOSTS; i++) {
      hosts.push(await createNeuroShardHost<{ diloco: DiLoCo }>({
        transports: { quic: false, webrtcDirect: false, circuitRelay: false },
        services: { diloco: diloco({ span: SPAN, codec: 'int8', aggregator: 'trimmed-mean', minDeadlineMs: 1000, commitStaggerMs: 1000 }) }
      }))
    }
    for (let i = 1; i < HOSTS; i++) for (let j = 0; j < i; j++) await hosts[i].dial(multiaddr(hosts[j].getMultiaddrs()[0]))
    const topic = hosts[0].services.diloco.topic
    while (!hosts.every(h => h.services.pubsub.getSubscribers(topic).length === HOSTS - 1)) await new Promise(resolve => setTimeout(resolve, 50))

    // every replica starts from the same genesis weights (zeros here)
    const genesis = new Map([['w', new Float32Array(DIM)], ['bias', new Float32Array(1)]])
    for (const h of hosts) h.services.diloco.initialize(genesis)
    const shards = hosts.map((_, i) => shard(i))
    const all = shards.flat()
    const lossBefore = loss(genesis, all)
    print(`round  loss (all data)  accepted  weights hash`)
    const accepted: number[] = []
    for (let r = 0; r < ROUNDS; r++) {
      const outcomes = await Promise.all(hosts.map(async (h, i) => {
        const p = h.services.diloco.parameters()
        innerSteps(p, shards[i], H)
        return await h.services.diloco.contribute(p, { dataShards: [`example-shard-${i}`], innerSteps: H, tokens: 64 * H })
      }))
      const o = outcomes[0]
      accepted.push(o.record?.contributions.filter((c: { accepted: boolean }) => c.accepted).length ?? 0)
      print(`${String(r).padStart(5)}  ${loss(o.parameters, all).toFixed(5).padStart(15)}  ${String(accepted[r]).padStart(8)}  ${Buffer.from(o.baseHash).toString('hex').slice(0, 16)}…`)
    }
    const final = hosts[0].services.diloco.parameters()
    const lossAfter = loss(final, all)
    const distinctHashes = new Set(hosts.map(h => Buffer.from(h.services.diloco.baseHash).toString('hex'))).size
    const bytesSent = hosts.reduce((a, h) => a + h.services.diloco.bytesSent, 0)
    print(`loss ${lossBefore.toFixed(4)} → ${lossAfter.toFixed(4)}; ${distinctHashes === 1 ? 'all replicas identical' : 'replicas differ'}; ${bytesSent} bytes published in all`)
    return { rounds: ROUNDS, lossBefore, lossAfter, distinctHashes, accepted, bytesSent }
  } finally {
    await Promise.all(hosts.map(async h => { await h.stop() }))
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main()
}
