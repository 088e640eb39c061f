/**
 * Tokens straight from the Validator (spec §2 tokens streams, `direct` INFER) and warm standbys (§4.2, WARM), with
 * real hosts on 127.0.0.1: greedy output equals the single-process model whichever way the token travels; Workers
 * relay no token ids on direct sessions; a Validator without tokens streams (an older node) and a Worker that drops
 * the `direct` field (an older node) still give the same output; only the route's Driver may open a tokens stream or
 * send WARM; a standby that got WARM holds a session stream to its next hop, and the Driver one to the standby.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { preset } from '@neuroshard/model'
import { messageStream, sendRequest } from '@neuroshard/utils'
import { PIPELINE_PROTOCOL, PIPELINE_TOKENS_PROTOCOL, staticRouter } from '../src/index.js'
import { Kind, Request, Response } from '../src/pb/pipeline.js'
import { peerBytes } from '../src/peer.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage } from '../src/index.js'
import type { ShardExecutor } from '@neuroshard/runtime'

const config = preset('tiny')
const L = config.nLayers
const params = weights(config, 5)
const hosts: PipelineHost[] = []
const stages: PipelineStage[] = []
let reference: ShardExecutor
let driver: PipelineHost, worker: PipelineHost, standby: PipelineHost, validator: PipelineHost, oldValidator: PipelineHost, stranger: PipelineHost

function request (fields: Partial<Request>): Request {
  return {
    kind: Kind.INFER, session: new Uint8Array(16).fill(7), position: 0, hop: 0, route: [], hidden: new Uint8Array(0), microBatch: 0,
    targets: new Uint8Array(0), step: 0, gradNorm: 0, compress: false, tied: new Uint8Array(0), lossScale: 0, tiedReplica: false,
    tiedIds: new Uint8Array(0), tiedM: new Uint8Array(0), tiedV: new Uint8Array(0), deflate: false, lastMicroBatch: false, direct: false, rollback: false, draftCount: 0, draft: [], mirror: false, standbys: [], tiedRecompute: false,
    ...fields
  }
}

/** What the Worker got back from the Validator for each INFER it forwarded */
function recordRelays (host: PipelineHost, dropDirect = false): Response[] {
  const p = host.services.pipeline as any
  const forward = p.forwardHop.bind(p)
  const seen: Response[] = []
  p.forwardHop = async (req: Request, hidden: unknown, signal?: AbortSignal) => {
    // dropDirect: an older Worker decodes the request without field 22 and forwards it without it
    const res: Response = await forward(dropDirect ? { ...req, direct: false } : req, hidden, signal)
    seen.push(res)
    return res
  }
  return seen
}

beforeAll(async () => {
  const spans = [[0, 1], [1, L + 1], [1, L + 1], [L + 1, L + 2], [L + 1, L + 2]]
  stages.push(...await Promise.all(spans.map(async ([a, b]) => await stage(config, a, b, params))))
  reference = await monolith(config, params)
  worker = await startHost({ stages: [stages[1]] })
  standby = await startHost({ stages: [stages[2]] })
  validator = await startHost({ stages: [stages[3]] })
  // an older Validator: no tokens streams
  oldValidator = await startHost({ stages: [stages[4]], directTokens: false })
  driver = await startHost({ stages: [stages[0]], router: staticRouter([]) })
  stranger = await startHost({})
  hosts.push(driver, worker, standby, validator, oldValidator, stranger)
  await mesh(hosts)
}, 60_000)

afterAll(async () => {
  await stopAll(hosts)
  await Promise.all([...stages.map(async s => { await s.close() }), reference?.close()])
})

async function generate (v: PipelineHost, n: number): Promise<number[]> {
  driver.services.pipeline.setRouter(staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: v.peerId, start: L + 1, end: L + 2 }]))
  const got: number[] = []
  for await (const t of driver.services.pipeline.generate([...new TextEncoder().encode('direct tokens')], { maxNewTokens: n })) got.push(t.id)
  return got
}

describe('tokens straight from the Validator', () => {
  it('greedy output equals the single-process model; the Worker relays acknowledgements without token ids', async () => {
    const n = 16
    const want = await referenceGreedy(reference, [...new TextEncoder().encode('direct tokens')], n)
    const relays = recordRelays(worker)
    expect(await generate(validator, n)).toEqual(want.ids)
    // the prefill (and any token before the stream was acknowledged) comes back on the route; after that every
    // answer went to the Driver directly and the Worker saw only the position
    const direct = relays.filter(r => r.direct)
    expect(direct.length).toBeGreaterThanOrEqual(n - 3)
    for (const r of direct) expect(r.token).toBe(0)
    expect(relays[relays.length - 1].direct).toBe(true)
    // the Validator dropped the session's tokens stream at CLOSE
    await expect.poll(() => validator.services.pipeline.sessionStats().watchers, { timeout: 10_000 }).toBe(0)
    delete (worker.services.pipeline as any).forwardHop
  })

  it('a Validator without tokens streams (older node): the same output, tokens on the route', async () => {
    const n = 12
    const want = await referenceGreedy(reference, [...new TextEncoder().encode('direct tokens')], n)
    const relays = recordRelays(worker)
    expect(await generate(oldValidator, n)).toEqual(want.ids)
    expect(relays.length).toBe(n)
    expect(relays.every(r => !r.direct)).toBe(true)
    expect(relays.map(r => r.token)).toEqual(want.ids)
    delete (worker.services.pipeline as any).forwardHop
  })

  it('a Worker that drops `direct` (older node): the Validator answers on the route, the same output', async () => {
    const n = 12
    const want = await referenceGreedy(reference, [...new TextEncoder().encode('direct tokens')], n)
    const relays = recordRelays(worker, true)
    expect(await generate(validator, n)).toEqual(want.ids)
    expect(relays.every(r => !r.direct)).toBe(true)
    delete (worker.services.pipeline as any).forwardHop
  })

  it('only the route\'s Driver may open a tokens stream; TOKENS on the request protocol is refused', async () => {
    const route = [
      { peer: peerBytes(driver.peerId), start: 0, end: 1 },
      { peer: peerBytes(worker.peerId), start: 1, end: L + 1 },
      { peer: peerBytes(validator.peerId), start: L + 1, end: L + 2 }
    ]
    const open = async (from: PipelineHost, req: Request): Promise<Response> => {
      const stream = await from.dialProtocol(validator.peerId, PIPELINE_TOKENS_PROTOCOL)
      const m = messageStream(stream, { maxMessageSize: 1 << 20 })
      await m.write(req, Request)
      const res = await m.read(Response)
      await m.close().catch(() => {})
      return res
    }
    // a stranger naming the Driver's route (it knows the session id, e.g. as a Worker)
    expect((await open(stranger, request({ kind: Kind.TOKENS, hop: 2, route }))).error).toBe('PipelineRequestError')
    // not the last hop, not TOKENS
    expect((await open(driver, request({ kind: Kind.TOKENS, hop: 1, route }))).error).toBe('InvalidRouteError')
    expect((await open(driver, request({ kind: Kind.INFER, hop: 2, route }))).error).toBe('PipelineRequestError')
    const res: Response = await sendRequest(driver, validator.peerId, PIPELINE_PROTOCOL, request({ kind: Kind.TOKENS, hop: 2, route }), { requestCodec: Request, responseCodec: Response })
    expect(res.error).toBe('PipelineRequestError')
    expect(validator.services.pipeline.sessionStats().watchers).toBe(0)
    // the Validator serves right after
    const want = await referenceGreedy(reference, [...new TextEncoder().encode('direct tokens')], 4)
    expect(await generate(validator, 4)).toEqual(want.ids)
  })
})

describe('warm standbys', () => {
  it('WARM from the route\'s Driver makes the standby open a session stream to its next hop; from anyone else it is refused', async () => {
    const route = [
      { peer: peerBytes(driver.peerId), start: 0, end: 1 },
      { peer: peerBytes(standby.peerId), start: 1, end: L + 1 },
      { peer: peerBytes(validator.peerId), start: L + 1, end: L + 2 }
    ]
    const warm = request({ kind: Kind.WARM, hop: 1, route })
    const refused: Response = await sendRequest(stranger, standby.peerId, PIPELINE_PROTOCOL, warm, { requestCodec: Request, responseCodec: Response })
    expect(refused.error).toBe('PipelineRequestError')
    expect(standby.services.pipeline.sessionStats().spares).toBe(0)
    const ok: Response = await sendRequest(driver, standby.peerId, PIPELINE_PROTOCOL, warm, { requestCodec: Request, responseCodec: Response })
    expect(ok.error).toBe('')
    await expect.poll(() => standby.services.pipeline.sessionStats().spares, { timeout: 10_000 }).toBe(1)
  })

  it('a generation warms the router\'s standby: the Driver keeps a session stream open to it, and a switch adopts it', async () => {
    const router = staticRouter([
      { peer: worker.peerId, start: 1, end: L + 1 },
      { peer: standby.peerId, start: 1, end: L + 1 },
      { peer: validator.peerId, start: L + 1, end: L + 2 }
    ])
    driver.services.pipeline.setRouter(router)
    const prompt = [...new TextEncoder().encode('direct tokens')]
    const want = await referenceGreedy(reference, prompt, 10)
    const got: number[] = []
    // without mirrors (with them, the mirrors' session stream to the standby is the one a switch uses: mirror.spec)
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 10, mirror: false })) {
      got.push(t.id)
      if (got.length === 3) {
        await expect.poll(() => driver.services.pipeline.sessionStats().spares, { timeout: 10_000 }).toBe(1)
        // the Worker in use fails: the switch to the standby uses the stream opened ahead
        router.reportFailure(worker.peerId)
        await worker.hangUp(driver.peerId)
      }
    }
    expect(got).toEqual(want.ids)
    expect(driver.services.pipeline.sessionStats().spares).toBe(0)
  })
})
