/**
 * Everything a peer can send wrong — malformed frames and messages, wrong shapes, NaN activations, ids out
 * of range, unknown sessions, oversized messages, bad routes, a full KV cache — gets a typed error, changes
 * nothing, and the node keeps serving a valid generation right after.
 */
import { deflateSync } from 'node:zlib'
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { float32 } from '@neuroshard/runtime'
import { encodeTensorFrame } from '@neuroshard/tensor'
import { messageStream, sendRequest } from '@neuroshard/utils'
import { Kind, PipelineRequest, PipelineResponse, encodeActivation, encodeIds, peerBytes, staticRouter, PIPELINE_PROTOCOL, PIPELINE_SESSION_PROTOCOL } from '../src/index.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const d = config.dModel
const params = weights(config, 3)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
let want: number[]
const prompt = [104, 105, 33]
let driver: PipelineHost, worker: PipelineHost, validator: PipelineHost, attacker: PipelineHost
const KV_CAP = 2 * 2 * config.nKvHeads * (d / config.nHeads) * 4 * 100 // 100 tokens of batch 1 on the Worker

beforeAll(async () => {
  stages.push(...await Promise.all([[0, 1], [1, L + 1], [L + 1, L + 2]].map(async ([a, b]) => await stage(config, a, b, params))))
  reference = await monolith(config, params)
  want = (await referenceGreedy(reference, prompt, 6)).ids
  worker = await startHost({ stages: [stages[1]], maxMessageSize: 256 * 1024, maxKvBytes: KV_CAP })
  validator = await startHost({ stages: [stages[2]] })
  driver = await startHost({ stages: [stages[0]], router: staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]) })
  attacker = await startHost({})
  hosts.push(driver, worker, validator, attacker)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

function route (): PipelineRequest['route'] {
  return [
    { peer: peerBytes(attacker.peerId), start: 0, end: 1 },
    { peer: peerBytes(worker.peerId), start: 1, end: L + 1 },
    { peer: peerBytes(validator.peerId), start: L + 1, end: L + 2 }
  ]
}

function request (fields: Partial<PipelineRequest>): PipelineRequest {
  return {
    kind: Kind.INFER, session: new Uint8Array(16).fill(7), position: 0, hop: 1, route: route(),
    hidden: encodeActivation(float32(new Float32Array(3 * d).fill(0.1), [1, 3, d]), false),
    microBatch: 0, targets: new Uint8Array(0), step: 0, gradNorm: 0, compress: false, tied: new Uint8Array(0), lossScale: 0,
    tiedReplica: false, tiedIds: new Uint8Array(0), tiedM: new Uint8Array(0), tiedV: new Uint8Array(0), deflate: false, lastMicroBatch: false, rollback: false, draftCount: 0, draft: [], direct: false, mirror: false, standbys: [], quiet: false, tiedRecompute: false, recomputed: [], tiedOwner: false, tiedPart: 0,
    ...fields
  }
}

async function ask (to: PipelineHost, req: PipelineRequest): Promise<PipelineResponse> {
  return await sendRequest(attacker, to.peerId, PIPELINE_PROTOCOL, req, { requestCodec: PipelineRequest, responseCodec: PipelineResponse, maxMessageSize: 8 * 1024 * 1024 })
}

/** The node still serves: a fresh generation through it gives the reference tokens */
async function stillServes (): Promise<void> {
  const got: number[] = []
  for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 6 })) got.push(t.id)
  expect(got).toEqual(want)
}

describe('bad input from peers', () => {
  it('a malformed protobuf message resets only that stream', async () => {
    const stream = await attacker.dialProtocol(worker.peerId, PIPELINE_PROTOCOL)
    const m = messageStream(stream)
    await m.writeBytes(Uint8Array.of(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))
    await expect(m.readBytes()).rejects.toHaveProperty('name', 'StreamClosedError')
    await stillServes()
  })

  it('session streams: training kinds refused in order, garbage ends only that stream', async () => {
    const stream = await attacker.dialProtocol(worker.peerId, PIPELINE_SESSION_PROTOCOL)
    const m = messageStream(stream)
    await m.write(request({ kind: Kind.STEP }), PipelineRequest)
    expect((await m.read(PipelineResponse)).error).toBe('PipelineRequestError')
    const s = new Uint8Array(16).fill(21)
    await m.write(request({ session: s }), PipelineRequest)
    const ok = await m.read(PipelineResponse)
    expect(ok.error).toBe('')
    expect(ok.position).toBe(3)
    await m.write(request({ session: s, position: 3, hidden: encodeActivation(float32(new Float32Array(d).fill(0.2), [1, 1, d]), false) }), PipelineRequest)
    expect((await m.read(PipelineResponse)).position).toBe(4)
    await m.writeBytes(Uint8Array.of(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))
    await expect(m.read(PipelineResponse)).rejects.toHaveProperty('name', 'StreamClosedError')
    await ask(worker, request({ kind: Kind.CLOSE, session: s }))
    expect(worker.services.pipeline.sessionStats().sessions).toBe(0)
    await stillServes()
  })

  it('an oversized message is refused before it is read', async () => {
    const big = request({ hidden: encodeActivation(float32(new Float32Array(127 * d * 9), [9, 127, d]), false) })
    await expect(ask(worker, big)).rejects.toHaveProperty('name', 'StreamClosedError')
    await stillServes()
  })

  it('malformed tensor frames, wrong dtype, wrong shapes', async () => {
    const cases: Array<[Partial<PipelineRequest>, string]> = [
      [{ hidden: Uint8Array.of(1, 2, 3, 4, 5) }, 'InvalidActivationError'],
      [{ hidden: encodeTensorFrame({ dtype: 'float32', shape: [1, 3, d - 1], data: new Float32Array(3 * (d - 1)) }) as Uint8Array<ArrayBuffer> }, 'InvalidActivationError'],
      [{ hidden: encodeTensorFrame({ dtype: 'float32', shape: [3, d], data: new Float32Array(3 * d) }) as Uint8Array<ArrayBuffer> }, 'InvalidActivationError'],
      [{ hidden: encodeTensorFrame({ dtype: 'int32', shape: [1, 3, d], data: new Int32Array(3 * d) }) as Uint8Array<ArrayBuffer> }, 'InvalidActivationError'],
      [{ hidden: encodeActivation(float32(new Float32Array(200 * d), [1, 200, d]), false) }, 'InvalidActivationError'], // seq > maxSeqLen
      [{ hidden: encodeActivation(float32(new Float32Array(3 * d), [1, 3, d]), false), compress: true }, 'InvalidActivationError'] // says int8, is float32
    ]
    for (const [fields, name] of cases) {
      const res = await ask(worker, request(fields))
      expect(res.error, JSON.stringify(Object.keys(fields))).toBe(name)
      expect(res.failedHop).toBe(1)
    }
    expect(worker.services.pipeline.sessionStats().sessions).toBe(0)
    await stillServes()
  })

  it('deflated frames: garbage and a zlib bomb past the message cap are refused; a good one runs', async () => {
    const bomb = deflateSync(new Uint8Array(64 * 1024 * 1024 + 1024)) // 64 MiB + 1 KiB of zeros in ~65 KB
    for (const hidden of [Uint8Array.of(1, 2, 3, 4, 5), new Uint8Array(bomb.buffer, bomb.byteOffset, bomb.byteLength)]) {
      const res = await ask(worker, request({ hidden: hidden as Uint8Array<ArrayBuffer>, deflate: true }))
      expect(res.error).toBe('InvalidActivationError')
      expect(res.failedHop).toBe(1)
    }
    expect(worker.services.pipeline.sessionStats().sessions).toBe(0)
    const s = new Uint8Array(16).fill(23)
    const h = float32(new Float32Array(3 * d).fill(0.1), [1, 3, d])
    const ok = await ask(worker, request({ session: s, hidden: encodeActivation(h, true, true), compress: true, deflate: true }))
    expect(ok.error).toBe('')
    expect(ok.position).toBe(3)
    await ask(worker, request({ kind: Kind.CLOSE, session: s }))
    await stillServes()
  })

  it('NaN activations are refused by the Worker (NonFiniteTensorError) and nothing is cached', async () => {
    const bad = new Float32Array(3 * d).fill(0.5)
    bad[17] = Number.NaN
    const res = await ask(worker, request({ hidden: encodeActivation(float32(bad, [1, 3, d]), false) }))
    expect(res.error).toBe('NonFiniteTensorError')
    expect(worker.services.pipeline.sessionStats()).toMatchObject({ sessions: 0, bytes: 0 })
    await stillServes()
  })

  it('unknown sessions, positions that do not match the cache', async () => {
    expect((await ask(worker, request({ session: new Uint8Array(16).fill(9), position: 5, hidden: encodeActivation(float32(new Float32Array(d), [1, 1, d]), false) }))).error).toBe('UnknownSessionError')
    // a valid session, then a chunk claiming the wrong position
    const s = new Uint8Array(16).fill(10)
    const ok = await ask(worker, request({ session: s }))
    expect(ok.error).toBe('')
    expect(ok.position).toBe(3)
    expect((await ask(worker, request({ session: s, position: 7, hidden: encodeActivation(float32(new Float32Array(d), [1, 1, d]), false) }))).error).toBe('SessionPositionError')
    await ask(worker, request({ kind: Kind.CLOSE, session: s }))
    expect(worker.services.pipeline.sessionStats().sessions).toBe(0)
    await stillServes()
  })

  it('a full KV cache is KvCacheFullError; other sessions keep running', async () => {
    const s = new Uint8Array(16).fill(11)
    const res = await ask(worker, request({ session: s, hidden: encodeActivation(float32(new Float32Array(101 * d), [1, 101, d]), false) }))
    expect(res.error).toBe('KvCacheFullError')
    expect(worker.services.pipeline.sessionStats()).toMatchObject({ sessions: 0, bytes: 0 })
    await stillServes()
  })

  it('bad routes and session ids', async () => {
    const r = route()
    const cases: Array<[Partial<PipelineRequest>, string]> = [
      [{ hop: 0 }, 'InvalidRouteError'],
      [{ hop: 3 }, 'InvalidRouteError'],
      [{ route: [r[0], r[2]] }, 'InvalidRouteError'],
      [{ route: [r[0], { ...r[1], end: L }, r[2]] }, 'InvalidRouteError'],
      [{ route: [r[0], { ...r[1], peer: r[2].peer }, r[2]] }, 'InvalidRouteError'],
      [{ route: [r[0], { ...r[1], peer: Uint8Array.of(0, 3, 1, 2) }, r[2]] }, 'InvalidRouteError'],
      [{ session: new Uint8Array(3) }, 'PipelineRequestError'],
      [{ kind: Kind.KIND_UNSPECIFIED }, 'PipelineRequestError']
    ]
    for (const [fields, name] of cases) {
      expect((await ask(worker, request(fields))).error, JSON.stringify(fields.hop ?? fields.kind ?? 'route')).toBe(name)
    }
    await stillServes()
  })

  it('mirrors (1.4.0): malformed standbys and mirror fields refused; a mirror runs only this hop\'s blocks', async () => {
    const s = new Uint8Array(16).fill(23)
    const three = [new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)]
    const cases: Array<[Partial<PipelineRequest>, string]> = [
      [{ session: s, standbys: [new Uint8Array(0)] }, 'InvalidRouteError'], // neither empty nor one per hop
      [{ session: s, mirror: true, direct: true }, 'PipelineRequestError'],
      [{ session: s, mirror: true, standbys: three }, 'PipelineRequestError'],
      [{ session: s, mirror: true, draftCount: 1 }, 'PipelineRequestError']
    ]
    for (const [fields, name] of cases) {
      expect((await ask(worker, request(fields))).error, JSON.stringify(Object.keys(fields))).toBe(name)
    }
    expect(worker.services.pipeline.sessionStats().sessions).toBe(0) // refused: nothing opened
    const res = await ask(worker, request({ session: s, mirror: true }))
    // answered by the Worker itself with the position only: not forwarded to the Validator, nothing sampled
    expect(res.error).toBe('')
    expect(res.position).toBe(3)
    expect(res.token).toBe(0)
    expect(worker.services.pipeline.sessionStats().sessions).toBe(1)
    await ask(worker, request({ kind: Kind.CLOSE, session: s }))
    expect(worker.services.pipeline.sessionStats().sessions).toBe(0)
    await stillServes()
  })

  it('target ids out of range reach no graph (TokenIdOutOfRangeError); a prompt id out of range is refused locally', async () => {
    const targets = new BigInt64Array(3).fill(1n)
    targets[1] = BigInt(config.vocabSize)
    const base = { session: new Uint8Array(16).fill(12), hop: 2, microBatch: 0, step: 0 }
    expect((await ask(validator, request({ ...base, kind: Kind.TARGETS, targets: encodeIds(targets, [1, 3]) }))).error).toBe('')
    const res = await ask(validator, request({ ...base, kind: Kind.TRAIN_FORWARD, lossScale: 1 }))
    expect(res.error).toBe('TokenIdOutOfRangeError')
    targets[1] = -1n
    await ask(validator, request({ ...base, kind: Kind.TARGETS, targets: encodeIds(targets, [1, 3]) }))
    expect((await ask(validator, request({ ...base, kind: Kind.TRAIN_FORWARD, lossScale: 1 }))).error).toBe('TokenIdOutOfRangeError')
    expect((await ask(validator, request({ ...base, kind: Kind.GRAD_NORM }))).normSq).toBe(0) // nothing accumulated
    const run = async (): Promise<void> => { for await (const _ of driver.services.pipeline.generate([1, config.vocabSize])) {} }
    await expect(run()).rejects.toHaveProperty('name', 'InvalidParametersError')
    await stillServes()
  })

  it('a micro-batch re-sent after a failure is accumulated once', async () => {
    const targets = new BigInt64Array(3).fill(5n)
    const base = { session: new Uint8Array(16).fill(13), hop: 2, microBatch: 4, step: 0 }
    await ask(validator, request({ ...base, kind: Kind.TARGETS, targets: encodeIds(targets, [1, 3]) }))
    const first = await ask(validator, request({ ...base, kind: Kind.TRAIN_FORWARD, lossScale: 1 }))
    expect(first.error).toBe('')
    const once = (await ask(validator, request({ ...base, kind: Kind.GRAD_NORM }))).normSq
    expect(once).toBeGreaterThan(0)
    // the same micro-batch again (as a replacement Worker would send it): same answer, no second accumulation
    const again = await ask(validator, request({ ...base, kind: Kind.TRAIN_FORWARD, lossScale: 1 }))
    expect(again.error).toBe('')
    expect(again.grad).toEqual(first.grad)
    expect(again.loss).toBe(first.loss)
    expect((await ask(validator, request({ ...base, kind: Kind.GRAD_NORM }))).normSq).toBe(once)
    // a different micro-batch does accumulate
    await ask(validator, request({ ...base, microBatch: 5, kind: Kind.TARGETS, targets: encodeIds(targets, [1, 3]) }))
    await ask(validator, request({ ...base, microBatch: 5, kind: Kind.TRAIN_FORWARD, lossScale: 1 }))
    expect((await ask(validator, request({ ...base, kind: Kind.GRAD_NORM }))).normSq).toBeCloseTo(4 * once, 4)
    await stages[2].head!.zeroGradients()
  })
})
