import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { initParameter, modelParameters, preset } from '@neuroshard/model'
import { checkpointFileName, decodeTrainState, encodeTrainState, listCheckpoints, loadLatestTrainState, saveTrainState } from '../src/index.js'
import type { TrainState } from '../src/index.js'

const config = preset('tiny')
const dirs: string[] = []
afterEach(async () => { await Promise.all(dirs.splice(0).map(async d => { await rm(d, { recursive: true, force: true }) })) })

function state (step: number): TrainState {
  const specs = modelParameters(config)
  const parameters = new Map(specs.map(s => [s.name, initParameter(config, s, step)]))
  const m = new Map(specs.map(s => [s.name, initParameter(config, s, step + 100)]))
  const v = new Map(specs.map(s => [s.name, initParameter(config, s, step + 200).map(Math.abs)]))
  return {
    settings: { config, seed: 1, dataSeed: 2, seqLen: 32, batchSize: 4, gradAccumulation: 2, schedule: { peakLr: 1e-3, minLr: 1e-4, warmupSteps: 10, totalSteps: 100 }, optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 }, threads: 1, dataId: 'abc' },
    step,
    data: { epoch: 1, batch: 7 },
    tokens: step * 256,
    elapsedMs: 1234.5,
    evals: [{ step: 0, loss: 5.5, tokens: 0, elapsedMs: 0 }],
    parameters,
    m,
    v
  }
}

describe('training-state checkpoints', () => {
  it('round-trip every field bit-for-bit', () => {
    const s = state(3)
    const d = decodeTrainState(encodeTrainState(s))
    expect(d.settings).toEqual(s.settings)
    expect({ step: d.step, data: d.data, tokens: d.tokens, elapsedMs: d.elapsedMs, evals: d.evals }).toEqual({ step: 3, data: s.data, tokens: s.tokens, elapsedMs: s.elapsedMs, evals: s.evals })
    for (const [k, p] of s.parameters) {
      expect(d.parameters.get(k)).toEqual(p)
      expect(d.m.get(k)).toEqual(s.m.get(k))
      expect(d.v.get(k)).toEqual(s.v.get(k))
    }
    expect(d.contentHash).toMatch(/^[0-9a-f]{64}$/)
  })

  it('a flipped bit anywhere in the tensors or the state, or a truncated file, is a TrainStateError', () => {
    const bytes = encodeTrainState(state(3))
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true))
    for (const at of [8 + headerLen + 5, bytes.length - 3]) {
      const bad = bytes.slice()
      bad[at] ^= 1
      expect(() => decodeTrainState(bad)).toThrow(expect.objectContaining({ name: 'TrainStateError' }))
    }
    // the state JSON: change the step in the state but not elsewhere
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)).replace('\\"tokens\\":768', '\\"tokens\\":769')
    const forged = bytes.slice()
    forged.set(new TextEncoder().encode(text), 8)
    expect(() => decodeTrainState(forged)).toThrow(expect.objectContaining({ name: 'TrainStateError' }))
    expect(() => decodeTrainState(bytes.subarray(0, bytes.length - 10))).toThrow(expect.objectContaining({ name: 'TrainStateError' }))
    expect(() => decodeTrainState(new Uint8Array(4))).toThrow(expect.objectContaining({ name: 'TrainStateError' }))
  })

  it('saves atomically, keeps the newest N, and loads the newest valid one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ns-state-'))
    dirs.push(dir)
    expect(await loadLatestTrainState(dir)).toBeUndefined()
    for (const s of [1, 2, 3]) await saveTrainState(dir, state(s), 2)
    expect(await listCheckpoints(dir)).toEqual([2, 3])
    expect((await readdir(dir)).filter(n => n.includes('.tmp-'))).toEqual([])
    // a torn temp file from a killed writer is ignored; a corrupt newest file falls back to the previous one
    await writeFile(join(dir, checkpointFileName(4) + '.tmp-999'), 'garbage')
    expect((await loadLatestTrainState(dir))?.step).toBe(3)
    await writeFile(join(dir, checkpointFileName(5)), 'garbage')
    expect((await loadLatestTrainState(dir))?.step).toBe(3)
  })
})
