/**
 * A client holding no part of the model generates through a Driver over
 * /neuroshard/pipeline/generate/1.0.0: same tokens as the Driver's own generate (and the single-process
 * model), abort frees the session, failures arrive as typed errors, a malformed request is refused.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { messageStream } from '@neuroshard/utils'
import { GenerateEvent, PIPELINE_GENERATE_PROTOCOL, generateRemote, staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config, 29)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
let driver: PipelineHost, worker: PipelineHost, client: PipelineHost

beforeAll(async () => {
  stages.push(...await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([a, b]) => await stage(config, a, b, params))))
  reference = await monolith(config, params)
  worker = await startHost({ stages: [stages[1]] })
  const validator = await startHost({ stages: [stages[2]] })
  driver = await startHost({ stages: [stages[0]], router: staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]) })
  client = await startHost({})
  hosts.push(driver, worker, validator, client)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

describe('remote client', () => {
  it('streams the tokens the single-process model generates; the text is tokenized by the Driver', async () => {
    const prompt = 'remote clients'
    const want = await referenceGreedy(reference, [...new TextEncoder().encode(prompt)], 12)
    const got: number[] = []
    let text = ''
    for await (const t of generateRemote(client, driver.peerId, prompt, { maxNewTokens: 12, returnLogits: true })) {
      got.push(t.id)
      text += t.text
      expect(t.logits!.length).toBe(config.vocabSize)
    }
    expect(got).toEqual(want.ids)
    const local: string[] = []
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 12 })) local.push(t.text)
    expect(text).toBe(local.join(''))
  })

  it('abort stops the generation on the Driver and frees the Worker\'s cache', async () => {
    const controller = new AbortController()
    const seen: number[] = []
    const run = async (): Promise<void> => {
      for await (const t of generateRemote(client, driver.peerId, 'abc', { maxNewTokens: 100, signal: controller.signal })) {
        seen.push(t.id)
        if (seen.length === 3) controller.abort()
      }
    }
    await expect(run()).rejects.toHaveProperty('name', 'AbortError')
    expect(seen.length).toBe(3)
    await expect.poll(() => worker.services.pipeline.sessionStats().sessions, { timeout: 10_000 }).toBe(0)
  })

  it('failures arrive as typed errors', async () => {
    const run = async (prompt: number[]): Promise<void> => { for await (const _ of generateRemote(client, driver.peerId, prompt, { maxNewTokens: 2 })) {} }
    await expect(run([1, 2, config.vocabSize])).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(run([])).rejects.toHaveProperty('name', 'InvalidParametersError')
    // a node that is not a Driver refuses to generate
    const notDriver = async (): Promise<void> => { for await (const _ of generateRemote(client, worker.peerId, 'x')) {} }
    await expect(notDriver()).rejects.toHaveProperty('name', 'InvalidParametersError')
  })

  it('a malformed request resets the stream (as on the pipeline protocol); the Driver keeps serving', async () => {
    const stream = await client.dialProtocol(driver.peerId, PIPELINE_GENERATE_PROTOCOL)
    const m = messageStream(stream)
    await m.writeBytes(Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0x0f))
    await m.close()
    await expect(m.read(GenerateEvent)).rejects.toHaveProperty('name', 'StreamClosedError')
    const got: number[] = []
    for await (const t of generateRemote(client, driver.peerId, 'ok', { maxNewTokens: 2 })) got.push(t.id)
    expect(got.length).toBe(2)
  })
})
