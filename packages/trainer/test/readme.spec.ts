// The example of README.md, kept compiling and passing (data directory and step count scaled down)
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadDataset } from '@neuroshard/genesis-data'
import { preset } from '@neuroshard/model'
import { train, TextGenerator, samplingRng } from '../src/index.js'
import { smallGenesis } from './fixtures/genesis.js'

describe('README example', () => {
  it('runs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ns-readme-'))
    try {
      const dir = (await smallGenesis(join(root, 'data'), 1500, 512)).dir
      const t = await loadDataset(dir, { split: 'train' })
      const v = await loadDataset(dir, { split: 'validation' })
      const config = { ...preset('tiny'), vocabSize: t.manifest.tokenizer.vocabSize }

      const result = await train({
        config,
        train: t.shards.map(s => s.tokens),
        validation: v.shards.map(s => s.tokens),
        dataId: t.manifest.manifestHash,
        steps: 10,
        batchSize: 16,
        seqLen: 128,
        gradAccumulation: 1,
        peakLr: 5e-3,
        warmupSteps: 100,
        evalEvery: 100,
        checkpointDir: join(root, 'checkpoints'),
        onProgress: (e) => { if (e.type === 'eval') expect(e.loss).toBeGreaterThan(0) }
      })

      const gen = await TextGenerator.create({ config, parameters: result.parameters })
      const session = await gen.session()
      const ids: number[] = []
      for await (const id of session.generate([257, 464], { temperature: 0.8, topK: 40, maxTokens: 20, random: samplingRng(1) })) {
        ids.push(id)
      }
      await session.close()
      await gen.close()
      expect(ids.length).toBeGreaterThan(0)
      expect(result.step).toBe(10)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  }, 60_000)
})
