/**
 * A server's session stream (spec §2) ends after the session TTL without a request, and every request starts that
 * time again: one deadline per stream, refreshed per request (not a timer per read), with real hosts on 127.0.0.1.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { messageStream } from '@neuroshard/utils'
import { Kind, PipelineRequest, PipelineResponse, PIPELINE_SESSION_PROTOCOL } from '../src/index.js'
import { mesh, startHost, stopAll } from './helpers.js'
import type { PipelineHost } from './helpers.js'

const TTL = 1_500
let server: PipelineHost, client: PipelineHost

beforeAll(async () => {
  server = await startHost({ sessionTtlMs: TTL })
  client = await startHost({})
  await mesh([server, client])
}, 60_000)

afterAll(async () => {
  await stopAll([server, client])
})

/** A request the server refuses at once (a 3-byte session id): it answers it, and it counts as a request */
function refused (): PipelineRequest {
  return {
    kind: Kind.CLOSE, session: new Uint8Array(3), position: 0, hop: 1, route: [], hidden: new Uint8Array(0), microBatch: 0,
    targets: new Uint8Array(0), step: 0, gradNorm: 0, compress: false, tied: new Uint8Array(0), lossScale: 0, tiedReplica: false,
    tiedIds: new Uint8Array(0), tiedM: new Uint8Array(0), tiedV: new Uint8Array(0), deflate: false, lastMicroBatch: false, direct: false,
    rollback: false, draftCount: 0, draft: [], mirror: false, standbys: [], quiet: false, tiedRecompute: false, recomputed: [], tiedOwner: false, tiedPart: 0
  }
}

describe('session stream idle deadline', () => {
  it('an idle session stream ends after the TTL; requests keep it open past the TTL', async () => {
    // idle: nothing is written, the server ends the stream (the read sees it end) after about the TTL
    const idle = await client.dialProtocol(server.peerId, PIPELINE_SESSION_PROTOCOL)
    const t0 = performance.now()
    await expect(messageStream(idle, { timeout: 60_000 }).readBytes()).rejects.toThrow()
    const idleMs = performance.now() - t0
    expect(idleMs).toBeGreaterThanOrEqual(TTL * 0.9)

    // busy: a request every TTL / 3 for more than twice the TTL, each answered on the same stream
    const busy = await client.dialProtocol(server.peerId, PIPELINE_SESSION_PROTOCOL)
    const m = messageStream(busy, { timeout: 60_000 })
    const start = performance.now()
    let answered = 0
    while (performance.now() - start < 2.2 * TTL) {
      await m.write(refused(), PipelineRequest)
      const res = await m.read(PipelineResponse)
      expect(res.error).toBe('PipelineRequestError')
      answered++
      await new Promise(resolve => setTimeout(resolve, TTL / 3))
    }
    expect(answered).toBeGreaterThanOrEqual(5)
    expect(busy.status).toBe('open')
    // and once the requests stop, it ends again
    await expect(m.readBytes()).rejects.toThrow()
  }, 60_000)
})
