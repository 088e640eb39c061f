/**
 * A DiLoCo replica for the Byzantine-worker scenario: a NeuroShard host with the real DiLoCo service
 * (`@neuroshard/diloco`: gossip announces, robust aggregation, leader commit) over one span of `--dim`
 * parameters. Each round an honest replica moves its copy halfway towards a target (the same for all, from
 * a fixed seed) plus its own noise, as H inner steps on its own data would; a `--byzantine` replica sends
 * the honest direction flipped and scaled by `--attack-scale` (a poisoned pseudo-gradient). After each round
 * it prints the round record: who was accepted, and how far the new base is from the target.
 *
 *   node dist/src/netns/diloco-node.js --name w0 --port 4001 --group-size 4 --rounds 6 [--byzantine]
 *       [--bootstrap …] [--aggregator nnm-trimmed-mean|mean|…]
 *
 * Lines: {"event":"ready","peerId"}, {"event":"diloco-round","round","contributions":[{peer,accepted}],
 * "distance","included"}, {"event":"diloco-done"}.
 */
import { parseArgs } from 'node:util'
import { diloco } from '@neuroshard/diloco'
import { createNeuroShardHost } from '@neuroshard/host'
import type { AggregatorChoice, DiLoCo } from '@neuroshard/diloco'

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'node' },
    port: { type: 'string', default: '4001' },
    'data-dir': { type: 'string' },
    bootstrap: { type: 'string', default: '' },
    'group-size': { type: 'string', default: '4' },
    rounds: { type: 'string', default: '6' },
    dim: { type: 'string', default: '4096' },
    byzantine: { type: 'boolean', default: false },
    'attack-scale': { type: 'string', default: '20' },
    aggregator: { type: 'string' }
  }
})

function emit (event: string, fields: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ event, t: Date.now(), name: values.name, ...fields }) + '\n')
}

/** xorshift32 normal samples (Box-Muller): the same target on every replica, own noise per replica */
function gaussian (seed: number): () => number {
  let x = seed >>> 0 || 1
  const u = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return (x + 1) / 4294967297 }
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u())
}

const dim = Number(values.dim)
const groupSize = Number(values['group-size'])
const span = { id: 'testbed-byzantine', parameters: [{ name: 'w', shape: [dim] }] }
const host = await createNeuroShardHost<{ diloco: DiLoCo }>({
  listen: [`/ip4/0.0.0.0/tcp/${values.port}`],
  transports: { quic: false, webrtcDirect: false, circuitRelay: false },
  mdns: false,
  dataDir: values['data-dir'],
  bootstrap: (values.bootstrap ?? '').split(',').filter(s => s.length > 0),
  services: {
    // a generous deadline: on a loaded machine every replica's announce should make its round, so each
    // round really contains the attack (the check fails a round without it)
    diloco: diloco({ span, codec: 'fp32', minDeadlineMs: 15_000, ...(values.aggregator != null ? { aggregator: values.aggregator as AggregatorChoice } : {}) })
  }
} as any)
emit('ready', { peerId: host.peerId.toString(), byzantine: values.byzantine })

const d = host.services.diloco
const targetRng = gaussian(12345)
const target = Float32Array.from({ length: dim }, () => targetRng())
const targetNorm = Math.hypot(...target)
const noise = gaussian(1 + Number(String(values.name).replace(/\D/g, '') || 0) * 7919)
d.initialize(new Map([['w', new Float32Array(dim)]]))

// wait until the other replicas are on the group topic (a replica that sees no one commits alone)
const deadline = Date.now() + 300_000
while ((host.services as any).pubsub.getSubscribers(d.topic).length < groupSize - 1 && Date.now() < deadline) {
  await new Promise(resolve => setTimeout(resolve, 250))
}
emit('group', { subscribers: (host.services as any).pubsub.getSubscribers(d.topic).length })

const scale = Number(values['attack-scale'])
for (let r = 0; r < Number(values.rounds); r++) {
  const base = d.parameters().get('w') as Float32Array
  const local = new Float32Array(dim)
  for (let i = 0; i < dim; i++) {
    const honestStep = 0.5 * (target[i] - base[i]) + 0.02 * noise()
    local[i] = values.byzantine ? base[i] - scale * honestStep : base[i] + honestStep
  }
  const out = await d.contribute(new Map([['w', local]]), { dataShards: [`shard-${String(values.name)}-${r}`], innerSteps: 1, tokens: 1 })
  const w = out.parameters.get('w') as Float32Array
  let sq = 0
  for (let i = 0; i < dim; i++) sq += (w[i] - target[i]) ** 2
  emit('diloco-round', {
    round: out.round,
    included: out.included,
    resynced: out.resynced,
    aggregator: out.record?.aggregator,
    contributions: out.record?.contributions.map(c => ({ peer: c.sender, accepted: c.accepted })) ?? [],
    distance: Math.sqrt(sq) / targetNorm
  })
}
emit('diloco-done', {})

const stop = async (): Promise<void> => {
  await Promise.resolve(host.stop()).catch(() => {})
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.on('SIGINT', () => { void stop() })
