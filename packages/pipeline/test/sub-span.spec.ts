/**
 * A hop may use part of a span its node serves (inference): a Driver holding [0, 2) (embedding + block 0)
 * routes to a node holding [1, 4) (both blocks + head) for [2, 4) only; the node builds a stage for the
 * sub-range and the generation equals the single-process model. Training refuses partial spans.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { float32 } from '@neuroshard/runtime'
import { sendRequest } from '@neuroshard/utils'
import { Kind, PIPELINE_PROTOCOL, PipelineRequest, PipelineResponse, encodeActivation, peerBytes, staticRouter } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const params = weights(config, 17)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor

beforeAll(async () => {
  stages.push(await stage(config, 0, 2, params), await stage(config, 1, 4, params))
  reference = await monolith(config, params)
  const server = await startHost({ stages: [stages[1]] })
  const driver = await startHost({ stages: [stages[0]], router: staticRouter([{ peer: server.peerId, start: 2, end: 4 }]) })
  hosts.push(driver, server)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

describe('sub-span hops', () => {
  it('a node serves part of its span; greedy output equals the single-process model', async () => {
    const prompt = [...new TextEncoder().encode('partial spans')]
    const want = await referenceGreedy(reference, prompt, 10)
    const got: number[] = []
    for await (const t of hosts[0].services.pipeline.generate(prompt, { maxNewTokens: 10 })) got.push(t.id)
    expect(got).toEqual(want.ids)
  })

  it('training requests for part of a span are refused', async () => {
    const [driver, server] = hosts
    const req: PipelineRequest = {
      kind: Kind.TRAIN_FORWARD, session: new Uint8Array(16), position: 0, hop: 1,
      route: [{ peer: peerBytes(driver.peerId), start: 0, end: 2 }, { peer: peerBytes(server.peerId), start: 2, end: 4 }],
      hidden: encodeActivation(float32(new Float32Array(2 * config.dModel), [1, 2, config.dModel]), false),
      microBatch: 0, targets: new Uint8Array(0), step: 0, gradNorm: 0, compress: false, tied: new Uint8Array(0), lossScale: 1,
      tiedReplica: false, tiedIds: new Uint8Array(0), tiedM: new Uint8Array(0), tiedV: new Uint8Array(0), deflate: false, lastMicroBatch: false, rollback: false, draftCount: 0, draft: [], direct: false, mirror: false, standbys: [], quiet: false, tiedRecompute: false, recomputed: [], tiedOwner: false, tiedPart: 0
    }
    const res = await sendRequest(driver, server.peerId, PIPELINE_PROTOCOL, req, { requestCodec: PipelineRequest, responseCodec: PipelineResponse })
    expect(res.error).toBe('PipelineRequestError')
  })
})
