/**
 * Example: a model no single node holds, with `@neuroshard/pipeline` and `@neuroshard/swarm-router`.
 *
 * Five libp2p hosts on 127.0.0.1 each hold a slice of the `tiny` NeuroLLM:
 *
 * - the Driver holds the embedding (slot 0) and tokenizes,
 * - two Workers hold both blocks (slots 1–2): a replica each,
 * - the Validator holds the final norm and the LM head (slot 3) and samples.
 *
 * The Driver's swarm router picks the chain from the spans the nodes announce (here a static list shaped
 * like layer-pool records), the Driver generates, we stop the Worker in use halfway, and the generation
 * continues on the replica with the same text. Then the same chain trains the model for a few steps:
 * train-forward down, loss at the Validator, gradients back up, every node stepping its own AdamW.
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-pipeline start`
 */
import { pathToFileURL } from 'node:url'
import { createNeuroShardHost } from '@neuroshard/host'
import { initParameter, modelParameters, preset } from '@neuroshard/model'
import { createPipelineStage, pipeline } from '@neuroshard/pipeline'
import { swarmRouter } from '@neuroshard/swarm-router'
import type { NeuroShardHost } from '@neuroshard/host'
import type { Pipeline, PipelineStage, TrainBatch } from '@neuroshard/pipeline'
import type { SwarmRouter } from '@neuroshard/swarm-router'

export interface PipelineExampleResult {
  /** Text generated with every node up */
  text: string
  /** Text generated while the Worker in use was stopped after 6 tokens */
  textWithFailover: string
  /** Failovers the Driver performed */
  failovers: number
  /** Training losses, one per step */
  losses: number[]
}

type Host = NeuroShardHost & { services: { pipeline: Pipeline, swarmRouter: SwarmRouter } }
type PeerId = NeuroShardHost['peerId']

export async function main (log: (line: string) => void = console.log): Promise<PipelineExampleResult> {
  const config = preset('tiny')
  const L = config.nLayers
  // every node starts from the same genesis weights (in a network: layer-pool's weight store)
  const weights = new Map<string, Float32Array>(modelParameters(config).map(p => [p.name, initParameter(config, p, 1)]))
  const spans: Array<[number, number]> = [[0, 1], [1, L + 1], [1, L + 1], [L + 1, L + 2]]
  const stages: PipelineStage[] = await Promise.all(spans.map(async ([start, end]) =>
    await createPipelineStage({ config, start, end, parameters: weights, intraOpNumThreads: 1 })))

  // the spans the Driver's router sees (a layer-pool node passes its `layerPool` service instead)
  const records = new Map<string, { record: { peerId: PeerId, spans: Array<{ start: number, end: number, state: string, throughput: number }> } }>()
  const hosts: Host[] = []
  try {
    for (let i = 0; i < stages.length; i++) {
      const host = await createNeuroShardHost<any>({
        listen: ['/ip4/127.0.0.1/tcp/0'],
        transports: { quic: false, webrtcDirect: false, circuitRelay: false },
        services: {
          pipeline: pipeline({ stages: [stages[i]] }),
          ...(i === 0 ? { swarmRouter: swarmRouter({ records: { records: () => records } }) } : {})
        }
      }) as Host
      hosts.push(host)
      if (i > 0) records.set(host.peerId.toString(), { record: { peerId: host.peerId, spans: [{ start: spans[i][0], end: spans[i][1], state: 'serving', throughput: 0 }] } })
    }
    for (const a of hosts) for (const b of hosts) if (a !== b && a.getConnections(b.peerId).length === 0) await a.dial(b.getMultiaddrs()[0])
    const [driver] = hosts
    log(`5 hosts: Driver [0,1), Workers ${hosts[1].peerId.toString().slice(-6)} and ${hosts[2].peerId.toString().slice(-6)} [1,${L + 1}), Validator [${L + 1},${L + 2})`)

    // 1. generate (greedy) — tokens stream back as the Validator samples them
    let text = ''
    for await (const token of driver.services.pipeline.generate('Hello, ', { maxNewTokens: 16 })) text += token.text
    log(`generated: ${JSON.stringify(text)}`)

    // 2. the same generation, stopping the Worker in use after 6 tokens
    let failovers = 0
    driver.services.pipeline.addEventListener('pipeline:failover', (e) => {
      failovers++
      log(`hop ${e.detail.hop} (${e.detail.peer.toString().slice(-6)}) failed: ${e.detail.error.name}; switching to the standby`)
    })
    const inUse = driver.services.swarmRouter.plan(1, L + 2)!.chain.hops[0].peer
    let textWithFailover = ''
    let n = 0
    for await (const token of driver.services.pipeline.generate('Hello, ', { maxNewTokens: 16 })) {
      textWithFailover += token.text
      if (++n === 6) {
        await hosts.find(h => h.peerId.toString() === inUse)!.stop()
        // layer-pool drops a stopped node's record (it announces `leaving`); until then the router's ban keeps it out
        setTimeout(() => records.delete(inUse), 0)
      }
    }
    log(`with failover: ${JSON.stringify(textWithFailover)} (${textWithFailover === text ? 'same text' : 'DIFFERENT'})`)

    // 3. train: each step is a micro-batch of a repeating byte pattern; loss at the Validator, AdamW on every node
    const losses: number[] = []
    for (let step = 0; step < 5; step++) {
      const seq = 16
      const ids = BigInt64Array.from({ length: seq }, (_, t) => BigInt(97 + (t % 4)))
      const targets = BigInt64Array.from({ length: seq }, (_, t) => BigInt(97 + ((t + 1) % 4)))
      const batch: TrainBatch = { inputIds: ids, targets, batch: 1, seq }
      const r = await driver.services.pipeline.trainStep(batch)
      losses.push(r.loss)
      log(`step ${r.step}: loss ${r.loss.toFixed(4)}, global grad norm ${r.gradNorm.toFixed(4)}, lr ${r.lr.toExponential(2)}`)
    }
    return { text, textWithFailover, failovers, losses }
  } finally {
    await Promise.all(hosts.map(async h => { await Promise.resolve(h.stop()).catch(() => {}) }))
    await Promise.all(stages.map(async s => { await s.close() }))
  }
}

// run only when executed directly (`node dist/src/index.js`), not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
