/**
 * A Worker dies between the micro-batches of a training step: the Driver re-sends that micro-batch over the
 * replica under the same id, leaves the dead Worker (and the gradients it took with it) out of the step, and
 * every surviving hop steps exactly once. The losses are those of the single-process model on the same
 * weights (both replicas started equal).
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { buildModelGraph, modelParameters, preset } from '@neuroshard/model'
import { createShardExecutor, int64 } from '@neuroshard/runtime'
import { staticRouter } from '../src/index.js'
import { mesh, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineRouter, PipelineStage, TrainBatch } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config, 31)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
let chains = 0

function batch (seed: number): TrainBatch {
  const ids = BigInt64Array.from({ length: 2 * 8 }, (_, i) => BigInt((seed * 31 + i * 7) % config.vocabSize))
  const targets = BigInt64Array.from({ length: 2 * 8 }, (_, i) => BigInt((seed * 17 + i * 5 + 1) % config.vocabSize))
  return { inputIds: ids, targets, batch: 2, seq: 8 }
}

beforeAll(async () => {
  // Driver [0,1) · Workers A, B [1,3) (same weights) · Validator [3,4)
  stages.push(...await Promise.all([[0, 1], [1, L + 1], [1, L + 1], [L + 1, L + 2]].map(async ([a, b]) => await stage(config, a, b, params))))
  reference = await createShardExecutor({ config, role: { kind: 'blocks', start: 0, end: L }, parameterSpecs: modelParameters(config), parameters: params, intraOpNumThreads: 1, graphs: { forward: buildModelGraph(config, 'forward').bytes } })
  const servers = await Promise.all(stages.slice(1).map(async s => await startHost({ stages: [s] })))
  const inner = staticRouter(servers.map((h, i) => ({ peer: h.peerId, start: stages[i + 1].start, end: stages[i + 1].end })))
  // the router kills Worker A when the Driver asks for the chain of the second micro-batch
  const router: PipelineRouter = {
    async chain (o) {
      if (++chains === 2) await servers[0].stop()
      return await inner.chain(o)
    },
    reportFailure: (p, e) => { inner.reportFailure(p, e) }
  }
  const driver = await startHost({ stages: [stages[0]], router })
  hosts.push(driver, ...servers)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

describe('training failover', () => {
  it('a micro-batch whose Worker died is re-sent over the replica; the step completes without the dead Worker', async () => {
    const [driver, a, b, v] = hosts
    const data = [batch(1), batch(2)]
    const r = await driver.services.pipeline.trainStep(data)
    expect(r.retries).toBe(1)
    expect(chains).toBe(3) // mb 0, mb 1 (A dead), mb 1 again (B)
    // A is gone; B and the Validator stepped once, as did the Driver
    expect(r.participants.map(p => p.peer.toString()).sort()).toEqual([b.peerId.toString(), v.peerId.toString()].sort())
    expect(stages[0].embed!.stepCount).toBe(1)
    expect(stages[2].blocks!.stepCount).toBe(1)
    expect(stages[3].head!.stepCount).toBe(1)
    expect(a.status).toBe('stopped')
    // each micro-batch's loss is the single-process loss on the starting weights (A and B were identical)
    for (let i = 0; i < data.length; i++) {
      const want = ((await reference.forward({ input_ids: int64(data[i].inputIds, [2, 8]), targets: int64(data[i].targets, [2, 8]) })).loss.data as Float32Array)[0]
      expect(Math.abs(r.losses[i] - want) / want).toBeLessThan(1e-5)
    }
    // the next step runs on B without retries
    const next = await driver.services.pipeline.trainStep(batch(3))
    expect(next.retries).toBe(0)
    expect(next.step).toBe(1)
  })
})
