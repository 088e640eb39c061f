/**
 * A Driver's training step that fails is retried with the same batch. The hops answer a micro-batch they completed
 * from their record, keyed by (session, step, micro-batch): the Driver loop took the stream's next batch for the same
 * step, so a hop could answer a different batch's gradients, and which batches a replica trained depended on when
 * its steps failed (the testbed saw two replicas of one round, same weights and shards, make different updates).
 * Two NetworkNodes on loopback (real hosts, layer pool, onnxruntime stages, the Driver loop on genesis data), an
 * untied micro model split between them; the Driver's first pipeline step is made to fail before it sends anything.
 */
import { slotCount } from '@neuroshard/layer-pool'
import { constantLr } from '@neuroshard/runtime'
import { afterAll, describe, expect, it } from 'vitest'
import { MICRO_CONFIG } from './four-replicas.js'
import { until } from './tied-pair.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { TrainBatch } from '@neuroshard/pipeline'

describe('a failed training step', () => {
  let dir: string | undefined
  let devnet: NetworkDevnet | undefined

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('is retried with its batch at the same step, not the stream\'s next one', async () => {
    const calls: Array<{ node: number, step: number, batch: TrainBatch, failed: boolean }> = []
    ;({ dir, devnet } = await startTestDevnet('step-retry', 300, {
      nodes: 2,
      config: { ...MICRO_CONFIG, nLayers: 2 },
      node: { innerSteps: 6, batchSize: 2, seqLen: 16, evalEvery: 0, optimizer: { schedule: constantLr(2e-2) }, diloco: { minDeadlineMs: 1500, codec: 'fp32' } },
      onNode: (node, index) => {
        const pipeline = node.host.services.pipeline
        const real = pipeline.trainStep.bind(pipeline)
        pipeline.trainStep = async (b, options) => {
          const step = node.heldStages().find(h => h.start === 0)?.stage.executors[0].stepCount ?? -1
          const batch = Array.isArray(b) ? b[0] : b
          // the node's first step fails before anything is sent (as a refusing hop would)
          const failed = !calls.some(c => c.node === index)
          calls.push({ node: index, step, batch, failed })
          if (failed) throw new Error('refused for the test')
          return await real(b, options)
        }
      }
    }))
    const slots = slotCount(devnet.config)
    // the step after the failed one began (the failed step's own retries may fail too: a route not ready yet)
    const done = (): boolean => calls.length > 0 && calls.some(c => c.node === calls[0].node && c.step === calls[0].step + 1)
    await until(done, 240_000, () => `the step after the failed one (calls ${JSON.stringify(calls.map(c => [c.node, c.step, c.failed]))}; spans ${devnet!.nodes.map(n => n.heldStages().map(h => `${h.start}-${h.end}`).join(',')).join(' | ')} of ${slots})`)
    const failed = calls[0]
    expect(failed.failed).toBe(true)
    const mine = calls.filter(c => c.node === failed.node)
    const retries = mine.filter(c => c !== failed && c.step === failed.step)
    expect(retries.length).toBeGreaterThan(0)
    // every retry of the step has its batch
    for (const r of retries) {
      expect(Array.from(r.batch.inputIds)).toEqual(Array.from(failed.batch.inputIds))
      expect(Array.from(r.batch.targets)).toEqual(Array.from(failed.batch.targets))
    }
    // the stream goes on after it: the next step trains another batch
    const next = mine.find(c => c.step === failed.step + 1)!
    expect(Array.from(next.batch.inputIds)).not.toEqual(Array.from(failed.batch.inputIds))
  }, 300_000)
})
