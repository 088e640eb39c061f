/**
 * localTrainStep (a Driver holding the whole model trains on its own executors) against the single-graph
 * model of `@neuroshard/model` (buildModelGraph, one executor): the same losses and weights, untied and tied.
 */
import { buildModelGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { createPipelineStage } from '@neuroshard/pipeline'
import { createShardExecutor } from '@neuroshard/runtime'
import { describe, expect, it } from 'vitest'
import { localTrainStep } from '../../src/network/node.js'
import type { ModelConfig } from '@neuroshard/model'
import type { TrainBatch } from '@neuroshard/pipeline'

async function compare (config: ModelConfig): Promise<void> {
  const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 3)]))
  const optimizer = { maxGradNorm: 1 }
  const stage = await createPipelineStage({ config, start: 0, end: config.nLayers + 2, parameters: params, intraOpNumThreads: 1, optimizer })
  const mono = await createShardExecutor({
    config,
    role: { kind: 'blocks', start: 0, end: config.nLayers },
    parameterSpecs: modelParameters(config),
    parameters: params,
    intraOpNumThreads: 1,
    graphs: { forward: buildModelGraph(config, 'inference').bytes, backward: buildModelGraph(config, 'backward').bytes },
    optimizer
  })
  try {
    const seq = 12
    for (let step = 0; step < 5; step++) {
      const ids = BigInt64Array.from({ length: 2 * seq }, (_, t) => BigInt((t * 7 + step * 3) % config.vocabSize))
      const targets = BigInt64Array.from({ length: 2 * seq }, (_, t) => BigInt((t * 7 + step * 3 + 1) % config.vocabSize))
      const batch: TrainBatch = { inputIds: ids, targets, batch: 2, seq }
      const got = await localTrainStep(stage, batch)
      const out = await mono.backward({ input_ids: { type: 'int64', dims: [2, seq], data: ids }, targets: { type: 'int64', dims: [2, seq], data: targets } })
      await mono.step()
      const want = (out.loss.data as Float32Array)[0]
      expect(got.step).toBe(step)
      expect(Math.abs(got.loss - want) / want, `loss at step ${step}`).toBeLessThan(1e-5)
    }
    const monoW = await mono.getParameters()
    let worst = 0
    for (const e of stage.executors) {
      for (const [name, w] of await e.getParameters()) {
        const m = monoW.get(name)!
        for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i] - m[i]))
      }
    }
    expect(worst).toBeLessThan(1e-4)
  } finally {
    await stage.close()
    await mono.close()
  }
}

describe('localTrainStep', () => {
  it('matches the single-graph model step for step (untied)', async () => {
    await compare(preset('tiny'))
  }, 120_000)

  it('matches it with tied embeddings (the head\'s gradient goes to the embedding, the stepped copy comes back)', async () => {
    await compare({ ...preset('tiny'), tieEmbeddings: true })
  }, 120_000)
})
