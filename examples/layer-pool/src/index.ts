/**
 * Example: four nodes share NeuroLLM `tiny` through the layer pool (`@neuroshard/layer-pool`).
 *
 * 1. start four hosts, each running the `layerPool` service with a memory budget that holds about half
 *    of the model (slots: 0 = embed, 1..2 = blocks, 3 = head),
 * 2. each node takes the span the swarm needs most (no coordinator) and initialises it from the model's
 *    genesis (config + init seed), so no weights cross the network yet,
 * 3. print the layer map once every slot has two live replicas,
 * 4. one node leaves; the others take its slots over with the memory they kept free (hot swap),
 * 5. stop everything (always, even on failure).
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-layer-pool start`
 */
import { pathToFileURL } from 'node:url'
import { createNeuroShardHost } from '@neuroshard/host'
import { describeSpan, layerPool, layerPoolRecordValidator, slotCount } from '@neuroshard/layer-pool'
import { TINY } from '@neuroshard/model'
import type { LayerPool } from '@neuroshard/layer-pool'

/** A host running the layer pool as its `layerPool` service */
type Node = Awaited<ReturnType<typeof createNeuroShardHost<{ layerPool: LayerPool }>>>

export interface LayerPoolResult {
  /** live replicas per slot once the four nodes settled */
  replicasBefore: number[]
  /** live replicas per slot after one node left and the others took over */
  replicasAfter: number[]
  /** what each node held at the start, e.g. `[0,2) embed+blocks[0,1)` */
  spans: string[]
}

/** Waits until `condition()` holds, re-checking whenever the pool's record table changes */
async function until (pool: LayerPool, condition: () => boolean, ms = 60_000): Promise<void> {
  if (condition()) return
  await new Promise<void>((resolve, reject) => {
    const check = (): void => { if (condition()) done() }
    const done = (err?: Error): void => {
      clearTimeout(timer)
      clearInterval(poll)
      pool.removeEventListener('layer-pool:records', check)
      if (err == null) resolve(); else reject(err)
    }
    const timer = setTimeout(() => { done(new Error(`timed out after ${ms} ms`)) }, ms)
    // a node's own span finishing to load changes the view too, without a record arriving
    const poll = setInterval(check, 250)
    pool.addEventListener('layer-pool:records', check)
  })
}

export async function main (log: (line: string) => void = console.log): Promise<LayerPoolResult> {
  const nodes: Node[] = []
  const slotBytes = 4 * 46_208 // one tiny block in fp32; embed and head are smaller
  try {
    // --- 1. four hosts with the layer pool; the DHT must know how to check layer records ---------------
    for (let i = 0; i < 4; i++) {
      const node = await createNeuroShardHost<{ layerPool: LayerPool }>({
        recordValidators: { 'layer-pool': layerPoolRecordValidator() },
        services: {
          layerPool: layerPool({
            modelId: 'example',
            config: TINY,
            initSeed: 42,
            memoryBytes: Math.round(2.9 * slotBytes), // room for ~2 slots plus the 25% reserve for hot swap
            heartbeatIntervalMs: 500,
            recordTtlMs: 4_000
          })
        }
      })
      nodes.push(node)
      if (i > 0) await node.dial(nodes[0].getMultiaddrs()[0])
    }
    const observer = nodes[0].services.layerPool

    // --- 2 and 3. wait until every slot has two live replicas and every node serves what it took ------
    const covered = (list: Node[]): boolean =>
      list[0].services.layerPool.view().every(v => v.live >= 2) &&
      list.every(n => n.services.layerPool.ownSpans().every(s => s.state === 'serving'))
    await until(observer, () => covered(nodes))
    const spans: string[] = []
    for (const node of nodes) {
      const held = node.services.layerPool.ownSpans().map(s => describeSpan(TINY, s.start, s.end)).join(', ')
      spans.push(held)
      log(`${node.peerId.toString().slice(-8)} holds ${held}`)
    }
    const replicasBefore = observer.view().map(v => v.live)
    log(`live replicas per slot (embed, block 0, block 1, head): ${replicasBefore.join(' ')}`)

    // --- 4. one node leaves: it announces `leaving`, the others fill the gap ----------------------------
    const leaver = nodes.pop()!
    log(`${leaver.peerId.toString().slice(-8)} leaves`)
    await leaver.stop()
    await until(observer, () => covered(nodes))
    const replicasAfter = observer.view().map(v => v.live)
    log(`after the leave: ${replicasAfter.join(' ')} (every one of the ${slotCount(TINY)} slots still has two or more)`)
    return { replicasBefore, replicasAfter, spans }
  } finally {
    // --- 5. always stop what was started ---------------------------------------------------------------
    await Promise.all(nodes.map(async n => { await n.stop() }))
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch(err => {
    console.error(err)
    process.exitCode = 1
  })
}
