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
import { PIPELINE_SESSION_PROTOCOL } from '../src/constants.js'
import { UnknownSessionError } from '../src/errors.js'
import { Kind, Request, Response } from '../src/pb/pipeline.js'
import { peerBytes } from '../src/peer.js'
import { mesh, monolith, referenceGreedy, stage, startHost, stopAll, weights } from './helpers.js'
import type { PipelineHost } from './helpers.js'
import type { PipelineStage, RecoveryTiming } from '../src/index.js'
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
    tiedIds: new Uint8Array(0), tiedM: new Uint8Array(0), tiedV: new Uint8Array(0), deflate: false, lastMicroBatch: false, direct: false, rollback: false, draftCount: 0, draft: [], mirror: false, standbys: [], quiet: false, tiedRecompute: false, recomputed: [], tiedOwner: false, tiedPart: 0,
    ...fields
  }
}

/**
 * What the Worker got back from the Validator for each INFER it forwarded (`undefined`: nothing, a quiet INFER that
 * went through) and what came later for quiet ones (`late`)
 */
function recordRelays (host: PipelineHost, dropDirect = false): Array<Response | undefined> & { late: Response[] } {
  const p = host.services.pipeline as any
  const forward = p.forwardHop.bind(p)
  const seen = Object.assign([] as Array<Response | undefined>, { late: [] as Response[] })
  p.forwardHop = async (req: Request, hidden: unknown, signal?: AbortSignal, relay?: (res: Response) => void) => {
    // dropDirect: an older Worker (before 1.3.0) decodes the request without fields 22 and 25, forwards it without
    // them and answers what it got back
    const res: Response | undefined = dropDirect
      ? await forward({ ...req, direct: false, quiet: false }, hidden, signal)
      : await forward(req, hidden, signal, relay == null ? undefined : (r: Response) => { seen.late.push(r); relay(r) })
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

/** Whether `host` holds a spare session stream to `peer` (§4.2) */
function spareTo (host: PipelineHost, peer: PipelineHost): boolean {
  return (host.services.pipeline as any).spares.has(Buffer.from(peerBytes(peer.peerId)).toString('hex'))
}

async function generate (v: PipelineHost, n: number): Promise<number[]> {
  driver.services.pipeline.setRouter(staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: v.peerId, start: L + 1, end: L + 2 }]))
  const got: number[] = []
  for await (const t of driver.services.pipeline.generate([...new TextEncoder().encode('direct tokens')], { maxNewTokens: n })) got.push(t.id)
  return got
}

describe('tokens straight from the Validator', () => {
  it('greedy output equals the single-process model; the Worker gets no answer for direct tokens (quiet, 1.5.0)', async () => {
    const n = 16
    const want = await referenceGreedy(reference, [...new TextEncoder().encode('direct tokens')], n)
    const relays = recordRelays(worker)
    expect(await generate(validator, n)).toEqual(want.ids)
    // the prefill (and any token before the stream was acknowledged) comes back on the route with its token; after
    // that every answer went to the Driver directly and the route answered nothing (no token id reached the Worker)
    expect(relays.length).toBe(n)
    expect(relays[0]?.token).toBe(want.ids[0])
    const quiet = relays.filter(r => r == null)
    expect(quiet.length).toBeGreaterThanOrEqual(n - 3)
    expect(relays[relays.length - 1]).toBeUndefined()
    expect(relays.late).toEqual([])
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
    // no tokens stream, so nothing is direct or quiet: every token comes back through the Worker
    expect(relays.every(r => r != null && !r.direct)).toBe(true)
    expect(relays.map(r => r?.token)).toEqual(want.ids)
    delete (worker.services.pipeline as any).forwardHop
  })

  it('a Worker that drops `direct` (older node): the Validator answers on the route, the same output', async () => {
    const n = 12
    const want = await referenceGreedy(reference, [...new TextEncoder().encode('direct tokens')], n)
    const relays = recordRelays(worker, true)
    expect(await generate(validator, n)).toEqual(want.ids)
    expect(relays.every(r => r != null && !r.direct)).toBe(true)
    expect(relays.map(r => r?.token)).toEqual(want.ids)
    delete (worker.services.pipeline as any).forwardHop
  })

  it('a decode token costs 3 messages on the session and tokens streams (quiet, 1.5.0; 5 with acknowledgements)', async () => {
    expect(await messagesPerToken(driver)).toBe(3)
  })

  it('with `quietInfer: false` the Driver has every direct INFER acknowledged: 5 messages per token, the same output', async () => {
    const loud = await startHost({ stages: [stages[0]], router: staticRouter([]), quietInfer: false })
    try {
      await mesh([loud, worker, validator])
      expect(await messagesPerToken(loud)).toBe(5)
    } finally {
      await stopAll([loud])
    }
  })

  /** Greedy tokens from `from` (a Driver) through the Worker and the Validator: the messages per decode token, once the tokens stream is open */
  async function messagesPerToken (from: PipelineHost): Promise<number> {
    // count every message written on a pipeline session or tokens stream of any host of this process: one `send` on
    // the libp2p stream per length-prefixed message (the streams' shared prototype, found from a real stream)
    const probe = await from.dialProtocol(worker.peerId, PIPELINE_SESSION_PROTOCOL)
    let proto = Object.getPrototypeOf(probe)
    while (proto != null && !Object.prototype.hasOwnProperty.call(proto, 'send')) proto = Object.getPrototypeOf(proto)
    await probe.close()
    expect(proto).not.toBeNull()
    const original = proto.send
    const counted = new Set([PIPELINE_SESSION_PROTOCOL, PIPELINE_TOKENS_PROTOCOL])
    let messages = 0
    proto.send = function (this: { protocol?: string }, ...args: unknown[]) {
      if (this.protocol != null && counted.has(this.protocol)) messages++
      return original.apply(this, args)
    }
    const n = 24
    const first = 4
    let atFirst = 0
    // until no message has been written for 200 ms: the answers of the token just taken (if any) have all come
    const settle = async (): Promise<void> => {
      for (let last = -1; last !== messages;) {
        last = messages
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
    try {
      const want = await referenceGreedy(reference, [...new TextEncoder().encode('direct tokens')], n)
      from.services.pipeline.setRouter(staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]))
      const got: number[] = []
      for await (const t of from.services.pipeline.generate([...new TextEncoder().encode('direct tokens')], { maxNewTokens: n })) {
        got.push(t.id)
        if (got.length === first + 1) {
          await settle()
          atFirst = messages
        }
      }
      await settle()
      expect(got).toEqual(want.ids)
      // from the 5th token on the tokens stream is long open: Driver → Worker, Worker → Validator, Validator → Driver
      // (and without quiet INFERs the acknowledgements Validator → Worker → Driver); the session's CLOSE goes on the
      // request protocol, not counted
      return (messages - atFirst) / (n - 1 - first)
    } finally {
      proto.send = original
    }
  }

  it('a quiet INFER that the Validator refuses: its error comes back through the Worker and the Driver replays; the same output', async () => {
    const n = 12
    const want = await referenceGreedy(reference, [...new TextEncoder().encode('direct tokens')], n)
    const relays = recordRelays(worker)
    driver.services.pipeline.setRouter(staticRouter([{ peer: worker.peerId, start: 1, end: L + 1 }, { peer: validator.peerId, start: L + 1, end: L + 2 }]))
    const got: number[] = []
    for await (const t of driver.services.pipeline.generate([...new TextEncoder().encode('direct tokens')], { maxNewTokens: n })) {
      got.push(t.id)
      // once the tokens are direct, the Validator refuses the next INFER as a node that lost the session would
      if (got.length === 6) {
        const v = validator.services.pipeline as any
        v.serveInfer = async () => {
          delete v.serveInfer
          throw new UnknownSessionError('no session here (the test dropped it)')
        }
      }
    }
    expect(got).toEqual(want.ids)
    // the prefill, 5 quiet tokens, the refused one, the replay from position 0 and the rest
    expect(relays.length).toBe(n + 1)
    // the refusal came to the Worker after it had forwarded the request (nothing answered at once), marked quiet
    expect(relays.late.map(r => [r.error, r.quiet])).toEqual([['UnknownSessionError', true]])
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
    const links: number[] = []
    const direct: Array<boolean | undefined> = []
    const onRecovered = (e: CustomEvent<RecoveryTiming>): void => { links.push(e.detail.ms.link); direct.push(e.detail.direct) }
    driver.services.pipeline.addEventListener('pipeline:recovered', onRecovered)
    // without mirrors (with them, the mirrors' session stream to the standby is the one a switch uses: mirror.spec)
    for await (const t of driver.services.pipeline.generate(prompt, { maxNewTokens: 10, mirror: false })) {
      got.push(t.id)
      if (got.length === 3) {
        // a spare to the standby (WARM), and one to the Worker in use (kept for its next session once its link opened)
        await expect.poll(() => [spareTo(driver, standby), spareTo(driver, worker)], { timeout: 10_000 }).toEqual([true, true])
        // the Worker in use fails: the switch to the standby uses the stream opened ahead
        router.reportFailure(worker.peerId)
        await worker.hangUp(driver.peerId)
      }
    }
    driver.services.pipeline.removeEventListener('pipeline:recovered', onRecovered)
    expect(got).toEqual(want.ids)
    // the replay's link to the standby was the spare (no stream opened on the way), and its place is taken by a new spare
    expect(links).toEqual([0])
    // the replay from position 0 went direct: its token came on the tokens stream to the Validator (the same one),
    // not back through the standby
    expect(direct).toEqual([true])
    await expect.poll(() => spareTo(driver, standby), { timeout: 10_000 }).toBe(true)
  })
})
