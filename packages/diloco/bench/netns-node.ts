/**
 * One DiLoCo replica as a testbed node process (packages/diloco/bench/netns.ts starts 4 of them through the
 * testbed's runner, each in its own network namespace behind emulated links): a NeuroShard host with the real
 * `diloco` service, the `tiny` model's inner loop on this worker's genesis shards, R rounds of H inner steps.
 *
 *   node dist/bench/netns-node.js --name w-0 --port 4001 --data-dir /tmp/w0 --ip 10.77.0.1
 *
 * Environment (the scenario's `node.env`): DILOCO_NET_PEERS (ip:port of every replica, comma-separated),
 * DILOCO_NET_CODEC (int8), DILOCO_NET_H (50), DILOCO_NET_ROUNDS (rounds the group applies, 5), DILOCO_NET_OUTER (`nesterov` | `avg`),
 * DILOCO_NET_OUT (directory for `<name>.json`).
 *
 * Prints the testbed's `ready` / `stats` lines (stats.recordPeers = the peers seen on the group topic, so the
 * runner's "converged" means every replica sees every other on the topic) and one `round` line per round.
 * Per round it records, on this machine's one clock: start, end of the H inner steps, end of `contribute`
 * (the new base applied), and the bytes the namespace's eth0 sent (kernel counter: everything on the wire,
 * TCP/IP, Noise, yamux and gossipsub relays included) and `bytesSent` of the service (payload + messages).
 */
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { multiaddr } from '@multiformats/multiaddr'
import { assignShards, loadDataset, readManifest } from '@neuroshard/genesis-data'
import { createNeuroShardHost } from '@neuroshard/host'
import { initParameter, modelParameters, preset } from '@neuroshard/model'
import { diloco, InnerLoop, payloadSize, resolveCodec } from '../src/index.js'
import type { CodecName, DiLoCo } from '../src/index.js'

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'w-0' },
    port: { type: 'string', default: '4001' },
    'data-dir': { type: 'string' },
    ip: { type: 'string', default: '' },
    bootstrap: { type: 'string', default: '' }
  }
})
const name = values.name ?? 'w-0'
const index = Number(name.slice(name.lastIndexOf('-') + 1))
const all = (process.env.DILOCO_NET_PEERS ?? '').split(',').filter(p => p.length > 0)
const mine = all.findIndex(p => p.split(':')[0] === values.ip)
const peers = all.filter((_, i) => i !== mine)
const earlier = all.slice(0, Math.max(0, mine))
const CODEC = (process.env.DILOCO_NET_CODEC ?? 'int8') as CodecName
const H = Number(process.env.DILOCO_NET_H ?? 50)
const ROUNDS = Number(process.env.DILOCO_NET_ROUNDS ?? 5)
const AVG = process.env.DILOCO_NET_OUTER === 'avg'
const OUT = process.env.DILOCO_NET_OUT ?? '/tmp/diloco-netns'
const WORKERS = peers.length + 1
const here = dirname(fileURLToPath(import.meta.url))
const genesis = join(here, '..', '..', 'bench-results', 'diloco-genesis')

function emit (event: string, fields: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ event, t: Date.now(), name, ...fields }) + '\n')
}
const txBytes = (): number => Number(readFileSync('/sys/class/net/eth0/statistics/tx_bytes', 'utf8'))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

// ---- model and data (the same as bench/experiments.ts: worker i gets assignShards(manifest, `worker-i`, 0, 10))
const manifest = await readManifest(genesis)
const train = await loadDataset(genesis, { split: 'train' })
const val = await loadDataset(genesis, { split: 'validation' })
const byHash = new Map(train.shards.map(s => [s.hash, s.tokens]))
const perWorker = Math.floor(train.shards.length / 4)
const shardIds = assignShards(manifest, `worker-${index}`, 0, perWorker)
const config = { ...preset('tiny'), vocabSize: manifest.tokenizer.vocabSize }
const specs = modelParameters(config)
const init = new Map(specs.map(s => [s.name, initParameter(config, s, 0)]))
const span = { id: 'full', parameters: specs }

const host = await createNeuroShardHost<{ diloco: DiLoCo }>({
  listen: [`/ip4/0.0.0.0/tcp/${values.port ?? '4001'}`],
  transports: { quic: false, webrtcDirect: false, circuitRelay: false },
  mdns: false,
  ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}),
  services: {
    diloco: diloco({ span, codec: CODEC, ...(AVG ? { outerLr: 1, outerMomentum: 0 } : {}) })
  }
} as any)
const d = host.services.diloco
emit('ready', { peerId: host.peerId.toString(), addrs: host.getMultiaddrs().map(String) })

const subscribers = (): string[] => host.services.pubsub.getSubscribers(d.topic).map(p => p.toString())
const stats = setInterval(() => {
  const mem = process.memoryUsage()
  emit('stats', { peerId: host.peerId.toString(), connections: host.getConnections().length, recordPeers: [host.peerId.toString(), ...subscribers()], covered: true, rss: mem.rss, heapUsed: mem.heapUsed })
}, 1000)

// every replica dials every other by address (the peer ids are learnt in the handshake), until each sees all
// the others on the group topic: a replica that sees fewer commits rounds with fewer members
const t0 = Date.now()
while (subscribers().length < WORKERS - 1) {
  if (Date.now() - t0 > 300_000) {
    const message = `saw ${subscribers().length} of ${WORKERS - 1} peers on the topic after 300 s`
    emit('error', { message })
    await mkdir(OUT, { recursive: true })
    await writeFile(join(OUT, `${name}.error`), message)
    process.exit(1)
  }
  const connected = new Set(host.getConnections().map(c => c.remoteAddr.toString().split('/')[2]))
  // each pair is dialled from one side only (the replica listed later dials the earlier ones): two
  // simultaneous dials leave two connections, and a subscription was then seen to go missing
  for (const p of earlier) {
    const [ip, port] = p.split(':')
    if (!connected.has(ip)) void host.dial(multiaddr(`/ip4/${ip}/tcp/${port}`)).catch(() => {})
  }
  await sleep(1000)
}
emit('members', { subscribers: subscribers().length, afterMs: Date.now() - t0 })

d.initialize(init)
const loop = await InnerLoop.create({
  config, parameters: init, train: shardIds.map(h => byHash.get(h) as ArrayLike<number>), validation: val.shards.map(s => s.tokens),
  seqLen: 64, batchSize: 8, seed: index, peakLr: 3e-3, totalSteps: H * ROUNDS, warmupSteps: Math.min(50, Math.floor(H * ROUNDS / 10)), evalBatches: 16
})

// contribute until the group has applied ROUNDS rounds. A replica whose pseudo-gradient missed its round (it
// was still computing when the round was committed) has it folded into the next round, so replicas do not stay
// in lockstep: the loop counts the group's rounds, not this replica's iterations, and a replica that finishes
// its H steps after the last round was applied does not contribute them (it would wait for a quorum alone).
const rounds: Array<Record<string, number | boolean | string>> = []
// the base this replica's inner steps start from: if the group applies rounds while they run, the
// pseudo-gradient is this replica's own progress from it (`startedFrom`), folded into the current round
let startedFrom: Map<string, Float32Array> = d.parameters()
while (d.round < ROUNDS) {
  const start = Date.now()
  const tx0 = txBytes()
  const sent0 = d.bytesSent
  const inner = await loop.run(H)
  const computed = Date.now()
  if (d.round >= ROUNDS) { emit('skipped', { computed }); break }
  const outcome = await d.contribute(await loop.getParameters(), { dataShards: shardIds, innerSteps: H, tokens: inner.tokens, startedFrom }, { signal: AbortSignal.timeout(600_000) })
  const applied = Date.now()
  await loop.setParameters(outcome.parameters)
  startedFrom = outcome.parameters
  const rec = {
    round: outcome.round, contributedRound: outcome.contributedRound, included: outcome.included, resynced: outcome.resynced,
    contributions: outcome.record?.contributions.length ?? -1, accepted: outcome.record?.contributions.filter(c => c.accepted).length ?? -1,
    start, computed, applied, innerLoss: inner.meanLoss, txBytes: txBytes() - tx0, serviceBytes: d.bytesSent - sent0, baseHash: hex(outcome.baseHash)
  }
  rounds.push(rec)
  emit('round', rec)
}
const valLoss = index === 0 ? await loop.evaluate() : undefined
const result = { name, peerId: host.peerId.toString(), codec: CODEC, H, rounds: ROUNDS, outer: AVG ? 'avg' : 'nesterov', payloadBytes: payloadSize(d.layout.size, resolveCodec(CODEC)), valLoss, baseHash: hex(d.baseHash), roundLog: rounds }
await mkdir(OUT, { recursive: true })
await writeFile(join(OUT, `${name}.json`), JSON.stringify(result, null, 2))
emit('done', { valLoss, baseHash: hex(d.baseHash) })
await loop.close()
// stay up (serving fetches of the last round to slower replicas) until the runner tears the testbed down
process.on('SIGTERM', () => { clearInterval(stats); void Promise.resolve(host.stop()).finally(() => process.exit(0)) })
