/**
 * A tied Validator's replica (spec §4.4) fed bad input by a peer: malformed or out-of-range tied rows,
 * missing or impossible AdamW numbers, NaN or negative moments, an empty SET_TIED — typed errors, the head
 * does not step and its tied weight is unchanged. A replica seeded by three SET_TIED messages steps only
 * with a STEP that carries the rows for its step.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { encodeTensorFrame } from '@neuroshard/tensor'
import { sendRequest } from '@neuroshard/utils'
import { Kind, PipelineRequest, PipelineResponse, encodeNamed, peerBytes, PIPELINE_PROTOCOL } from '../src/index.js'
import { stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'

const config = { ...preset('tiny'), tieEmbeddings: true }
const L = config.nLayers
const V = config.vocabSize
const d = config.dModel
const n = V * d
let head: PipelineStage
let validator: PipelineHost
let attacker: PipelineHost

beforeAll(async () => {
  head = await stage(config, L + 1, L + 2, weights(config, 4))
  validator = await startHost({ stages: [head] })
  attacker = await startHost({})
  await attacker.dial(validator.getMultiaddrs()[0])
})

afterAll(async () => {
  await stopAll([attacker, validator])
  await head?.close()
})

function request (fields: Partial<PipelineRequest>): PipelineRequest {
  return {
    kind: Kind.STEP,
    session: new Uint8Array(16).fill(3),
    position: 0,
    hop: 2,
    route: [
      { peer: peerBytes(attacker.peerId), start: 0, end: 1 },
      { peer: peerBytes(attacker.peerId), start: 1, end: L + 1 },
      { peer: peerBytes(validator.peerId), start: L + 1, end: L + 2 }
    ],
    hidden: new Uint8Array(0),
    microBatch: 0,
    targets: new Uint8Array(0),
    step: 0,
    gradNorm: 0.5,
    compress: false,
    tied: new Uint8Array(0),
    lossScale: 0,
    tiedReplica: false,
    tiedIds: new Uint8Array(0),
    tiedM: new Uint8Array(0),
    tiedV: new Uint8Array(0),
    deflate: false,
    lastMicroBatch: false, rollback: false, draftCount: 0, draft: [], direct: false, mirror: false, standbys: [], quiet: false, tiedRecompute: false, recomputed: [], tiedOwner: false, tiedPart: 0,
    ...fields
  }
}

async function ask (req: PipelineRequest): Promise<PipelineResponse> {
  return await sendRequest(attacker, validator.peerId, PIPELINE_PROTOCOL, req, { requestCodec: PipelineRequest, responseCodec: PipelineResponse, maxMessageSize: 8 * 1024 * 1024 })
}

const ids = (xs: number[]): Uint8Array<ArrayBuffer> => encodeTensorFrame({ dtype: 'int64', shape: [xs.length], data: BigInt64Array.from(xs, BigInt) }) as Uint8Array<ArrayBuffer>
const rows = (k: number, fill = 0.01): Uint8Array<ArrayBuffer> => encodeNamed('embed.weight', new Float32Array(k * d).fill(fill), [k, d])
const adamw = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipScale: 1, t: 1 }

async function tiedWeight (): Promise<Float32Array> {
  return (await head.head!.getParameters()).get('embed.weight')!
}

describe('tied replica: bad input from peers', () => {
  it('STEP with bad tied rows or AdamW numbers is refused before anything steps', async () => {
    const before = await tiedWeight()
    const cases: Array<[Partial<PipelineRequest>, string]> = [
      [{ tiedIds: ids([5, 3]), tied: rows(2) }, 'InvalidActivationError'], // not increasing
      [{ tiedIds: ids([1, V]), tied: rows(2) }, 'InvalidActivationError'], // id out of range
      [{ tiedIds: ids([-1]), tied: rows(1) }, 'InvalidActivationError'],
      [{ tiedIds: ids([1, 2]), tied: rows(3) }, 'InvalidActivationError'], // rows do not match the ids
      [{ tiedIds: Uint8Array.of(1, 2, 3) as Uint8Array<ArrayBuffer>, tied: rows(1) }, 'InvalidActivationError'],
      [{ tiedIds: ids([1]), tied: rows(1, Number.NaN), tiedAdamw: adamw }, 'InvalidActivationError'],
      [{ tiedIds: ids([1]), tied: rows(1) }, 'PipelineRequestError'], // no AdamW numbers
      [{ tiedIds: ids([1]), tied: rows(1), tiedAdamw: { ...adamw, t: 5 } }, 'PipelineRequestError'], // t != step + 1
      [{ tiedIds: ids([1]), tied: rows(1), tiedAdamw: { ...adamw, beta2: 1 } }, 'PipelineRequestError'],
      [{ tiedIds: ids([1]), tied: rows(1), tiedAdamw: { ...adamw, clipScale: 0 } }, 'PipelineRequestError']
    ]
    for (const [fields, name] of cases) {
      const res = await ask(request(fields))
      expect(res.error, JSON.stringify(Object.keys(fields))).toBe(name)
      expect(head.head!.stepCount).toBe(0)
    }
    expect(Buffer.from((await tiedWeight()).buffer).equals(Buffer.from(before.buffer))).toBe(true)
  })

  it('SET_TIED: empty, NaN matrix, negative second moment refused; three good parts seed a replica that steps with the rows', async () => {
    const before = await tiedWeight()
    expect((await ask(request({ kind: Kind.SET_TIED, step: 0 }))).error).toBe('PipelineRequestError')
    // the head has not stepped: SET_TIED is for step 0 only once it has (stepCount = step + 1)
    expect((await ask(request({ kind: Kind.SET_TIED, step: 0, tied: encodeNamed('embed.weight', new Float32Array(n), [V, d]) }))).error).toBe('PipelineRequestError')
    // step the head once (nothing accumulated: only its final norm steps on a zero gradient)
    expect((await ask(request({ kind: Kind.STEP, step: 0 }))).error).toBe('')
    expect(head.head!.stepCount).toBe(1)
    const nan = new Float32Array(n).fill(0.5)
    nan[7] = Number.NaN
    expect((await ask(request({ kind: Kind.SET_TIED, step: 0, tied: encodeNamed('embed.weight', nan, [V, d]) }))).error).toBe('NonFiniteTensorError')
    const negative = new Float32Array(n)
    negative[3] = -1
    expect((await ask(request({ kind: Kind.SET_TIED, step: 0, tiedV: encodeNamed('embed.weight', negative, [V, d]) }))).error).toBe('InvalidActivationError')
    expect(Buffer.from((await tiedWeight()).buffer).equals(Buffer.from(before.buffer))).toBe(true)
    // seed: matrix, then moments; only the message completing the three answers `replica`
    const w = new Float32Array(n).fill(0.25)
    expect((await ask(request({ kind: Kind.SET_TIED, step: 0, tied: encodeNamed('embed.weight', w, [V, d]) }))).replica).toBe(false)
    expect((await ask(request({ kind: Kind.SET_TIED, step: 0, tiedM: encodeNamed('embed.weight', new Float32Array(n), [V, d]) }))).replica).toBe(false)
    expect((await ask(request({ kind: Kind.SET_TIED, step: 0, tiedV: encodeNamed('embed.weight', new Float32Array(n), [V, d]) }))).replica).toBe(true)
    expect(Array.from((await tiedWeight()).subarray(0, 4))).toEqual([0.25, 0.25, 0.25, 0.25])
    // TAKE_TIED for step 1 keeps the (zero) head gradient; STEP with the rows steps the replica
    const take = await ask(request({ kind: Kind.TAKE_TIED, step: 1, tiedReplica: true }))
    expect(take.error).toBe('')
    expect(take.replica).toBe(true)
    const stepped = await ask(request({ kind: Kind.STEP, step: 1, tiedIds: ids([2]), tied: rows(1, 1), tiedAdamw: { ...adamw, t: 2, weightDecay: 0 } }))
    expect(stepped.error).toBe('')
    expect(stepped.replica).toBe(true)
    const after = await tiedWeight()
    // row 2 moved against its gradient (+1), every other row kept 0.25 (zero gradient, no decay)
    expect(after[2 * d]).toBeLessThan(0.25)
    expect(after[3 * d]).toBe(0.25)
    expect(after[0]).toBe(0.25)
    // a STEP without the rows for the next step drops the replica
    expect((await ask(request({ kind: Kind.TAKE_TIED, step: 2, tiedReplica: true }))).replica).toBe(true)
    const plain = await ask(request({ kind: Kind.STEP, step: 2 }))
    expect(plain.error).toBe('')
    expect(plain.replica).toBe(false)
    expect((await ask(request({ kind: Kind.TAKE_TIED, step: 3, tiedReplica: true }))).replica).toBe(false)
  })
})
