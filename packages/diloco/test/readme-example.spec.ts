import { multiaddr } from '@multiformats/multiaddr'
import { createNeuroShardHost } from '@neuroshard/host'
import { expect, it } from 'vitest'
import { diloco } from '../src/index.js'
import type { DiLoCo } from '../src/index.js'

it('the README example runs', async () => {
  // the span this replica group trains (a node holding the whole model passes modelParameters(config))
  const span = { id: 'linear', parameters: [{ name: 'w', shape: [4] }, { name: 'bias', shape: [1] }] }
  const start = async () => await createNeuroShardHost<{ diloco: DiLoCo }>({
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    services: { diloco: diloco({ span, codec: 'int8', aggregator: 'trimmed-mean', minDeadlineMs: 1000 }) }
  })
  const a = await start()
  const b = await start()
  await b.dial(multiaddr(a.getMultiaddrs()[0]))
  // wait until each sees the other on the group topic (a node that sees no one commits its rounds alone)
  while (![a, b].every(n => n.services.pubsub.getSubscribers(n.services.diloco.topic).length === 1)) await new Promise(r => setTimeout(r, 50))

  const genesis = new Map([['w', new Float32Array(4)], ['bias', new Float32Array(1)]])
  for (const node of [a, b]) node.services.diloco.initialize(genesis) // every replica starts from the same weights

  // one round: each replica moves its weights (its H inner AdamW steps, e.g. with InnerLoop), then contributes
  const outcomes = await Promise.all([a, b].map(async (node, i) => {
    const local = node.services.diloco.parameters()
    local.get('w')?.fill(-0.1 * (i + 1))
    return await node.services.diloco.contribute(local, { dataShards: [`shard-${i}`], innerSteps: 1, tokens: 128 })
  }))
  // outcomes[i].parameters: the new base, identical on both replicas (outcomes[i].baseHash);
  // outcomes[i].record: the base hash, each sender's pseudo-gradient hash, data shards and accept/reject
  expect(Buffer.from(outcomes[0].baseHash)).toEqual(Buffer.from(outcomes[1].baseHash))
  // Δ = 0 − local = 0.1 and 0.2, mean 0.15 (each its block's absmax, so int8 keeps it); θ = 0 − 0.7·(1 + 0.9)·0.15
  expect(outcomes[0].parameters.get('w')?.[0]).toBeCloseTo(-0.15 * 1.33, 5)
  expect(outcomes[0].record?.contributions.map(c => c.accepted)).toEqual([true, true])
  await Promise.all([a.stop(), b.stop()])
})
