import pDefer from 'p-defer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { handleRequests, sendRequest } from '../src/index.js'
import { EchoRequest, EchoResponse } from './fixtures/echo.js'
import { closed, concat, createConnectedHosts, varint } from './fixtures/hosts.js'
import type { RequestContext } from '../src/index.js'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'

const CAP = 1024
const codecs = { requestCodec: EchoRequest, responseCodec: EchoResponse, maxMessageSize: CAP }

let client: Libp2p
let server: Libp2p
let protocolCount = 0

beforeAll(async () => {
  [client, server] = await createConnectedHosts()
})

afterAll(async () => {
  await Promise.all([client?.stop(), server?.stop()])
})

function nextProtocol (): string {
  return `/neuroshard-test/request-${++protocolCount}/1.0.0`
}

/** The echo service: upper-cases text, echoes the payload; 'throw' makes the handler throw */
async function echoHandler (request: EchoRequest): Promise<EchoResponse> {
  if (request.text === 'throw') {
    throw new Error('handler bug')
  }

  return { text: request.text.toUpperCase(), payload: request.payload, count: request.payload.byteLength }
}

/** Start an echo service on the server that records each failure's error name */
async function startEcho (options: { timeout?: number } = {}): Promise<{ protocol: string, errors: string[], nextError(): Promise<string>, unhandle(): Promise<void> }> {
  const protocol = nextProtocol()
  const errors: string[] = []
  let waiting: ((name: string) => void) | undefined

  const unhandle = await handleRequests(server, protocol, echoHandler, {
    ...codecs,
    ...options,
    onError: (err) => {
      errors.push(err.name)
      waiting?.(err.name)
      waiting = undefined
    }
  })

  return {
    protocol,
    errors,
    unhandle,
    nextError: async () => new Promise((resolve) => { waiting = resolve })
  }
}

/** A server-side handler that does something wrong with the request stream */
async function startBadServer (behaviour: (stream: Stream) => void | Promise<void>): Promise<string> {
  const protocol = nextProtocol()
  await server.handle(protocol, async (stream) => { await behaviour(stream) })
  return protocol
}

async function request (protocol: string, text: string, options: { timeout?: number, signal?: AbortSignal, via?: Connection } = {}): Promise<EchoResponse> {
  const peer = options.via ?? server.peerId
  return sendRequest(client, peer, protocol, { text, payload: Uint8Array.of(7, 8, 9) }, { ...codecs, ...options })
}

describe('sendRequest + handleRequests', () => {
  it('round-trips a request through a libp2p node, and through an existing Connection', async () => {
    const { protocol, errors } = await startEcho()

    await expect(request(protocol, 'hello')).resolves.toEqual({ text: 'HELLO', payload: Uint8Array.of(7, 8, 9), count: 3 })

    const [connection] = client.getConnections(server.peerId)
    await expect(request(protocol, 'again', { via: connection })).resolves.toHaveProperty('text', 'AGAIN')

    // many at once
    const texts = Array.from({ length: 20 }, (_, i) => `m${i}`)
    const responses = await Promise.all(texts.map(async (text) => request(protocol, text)))
    expect(responses.map((r) => r.text)).toEqual(texts.map((t) => t.toUpperCase()))
    expect(errors).toEqual([])
  })

  it('leaves no stream open on either side after a request', async () => {
    const { protocol } = await startEcho()
    await request(protocol, 'x')

    const protocolStreams = (node: Libp2p): number => node.getConnections().flatMap((c) => c.streams).filter((s) => s.protocol === protocol).length
    await waitUntil(() => protocolStreams(client) === 0 && protocolStreams(server) === 0)
  })

  describe('the handler survives bad clients and keeps serving good ones', () => {
    const badClients: Array<[string, string, (protocol: string) => Promise<Stream>]> = [
      ['a body that is not protobuf', 'MalformedMessageError', async (p) => raw(p, concat(varint(1), [0x0f]))],
      ['an invalid (non-minimal) varint prefix', 'MalformedMessageError', async (p) => raw(p, Uint8Array.of(0x80, 0x00))],
      ['a declared length over the cap', 'MessageTooLargeError', async (p) => raw(p, varint(CAP + 1))],
      ['a truncated frame then EOF', 'StreamClosedError', async (p) => raw(p, concat(varint(50), new Uint8Array(5)), true)],
      ['a reset mid-message', 'StreamClosedError', async (p) => {
        const stream = await raw(p, concat(varint(50), new Uint8Array(5)))
        setTimeout(() => { stream.abort(new Error('bye')) }, 20)
        return stream
      }],
      ['silence', 'TimeoutError', async (p) => raw(p, new Uint8Array(0))],
      ['a request that makes the handler throw', 'Error', async (p) => raw(p, concat(varint(7), EchoRequest.encode({ text: 'throw' })))]
    ]

    it.each(badClients)('%s → %s on the server, stream reset', async (_, errorName, misbehave) => {
      // only the silent client waits for this timeout; a short one would turn a late-delivered bad frame (or the
      // good request below) into a TimeoutError on a loaded machine
      const { protocol, nextError } = await startEcho({ timeout: 3_000 })
      const error = nextError()
      const stream = await misbehave(protocol)

      expect(await error).toBe(errorName)
      await closed(stream)
      expect(stream.status).not.toBe('open')
      // the service still answers
      await expect(request(protocol, 'still there')).resolves.toHaveProperty('text', 'STILL THERE')
    })

    it('a client of a throwing handler gets StreamClosedError', async () => {
      const { protocol } = await startEcho()
      await expect(request(protocol, 'throw')).rejects.toHaveProperty('name', 'StreamClosedError')
    })
  })

  describe('the client rejects bad servers with typed errors', () => {
    it('times out a silent server within the timeout and resets the stream', async () => {
      let serverStream: Stream | undefined
      const protocol = await startBadServer((stream) => { serverStream = stream })

      const start = Date.now()
      await expect(request(protocol, 'anyone?', { timeout: 300 })).rejects.toHaveProperty('name', 'TimeoutError')
      const elapsed = Date.now() - start
      expect(elapsed).toBeGreaterThanOrEqual(290)
      expect(elapsed).toBeLessThan(8_000) // not the 10 s default, with room for a loaded machine's event-loop stalls

      // the silent server's stream is reset, not left open
      await waitUntil(() => serverStream != null && serverStream.status !== 'open')
    })

    it.each<[string, string, (stream: Stream) => void]>([
      ['garbage instead of a response', 'MalformedMessageError', (s) => { s.send(concat(varint(2), [0x0a, 0x09])) }],
      ['an oversized response', 'MessageTooLargeError', (s) => { s.send(varint(CAP + 1)) }],
      ['an endless length prefix', 'MessageTooLargeError', (s) => { s.send(new Uint8Array(16).fill(0x80)) }],
      ['a truncated response then EOF', 'StreamClosedError', (s) => { s.send(concat(varint(20), [1, 2])); void s.close() }],
      ['a reset', 'StreamClosedError', (s) => { s.abort(new Error('no')) }],
      ['EOF without a response', 'StreamClosedError', (s) => { void s.close() }]
    ])('%s → %s', async (_, errorName, behaviour) => {
      const protocol = await startBadServer(behaviour)
      const start = Date.now()
      await expect(request(protocol, 'q', { timeout: 60_000 })).rejects.toHaveProperty('name', errorName)
      // typed errors arrive from the bytes, not from the (60 s) timeout
      expect(Date.now() - start).toBeLessThan(30_000)
    })

    it('rejects with AbortError when the caller aborts, and with AbortError at once when already aborted', async () => {
      const protocol = await startBadServer(() => {})
      const controller = new AbortController()
      setTimeout(() => { controller.abort() }, 100)

      await expect(request(protocol, 'q', { signal: controller.signal, timeout: 10_000 })).rejects.toHaveProperty('name', 'AbortError')
      await expect(request(protocol, 'q', { signal: AbortSignal.abort() })).rejects.toHaveProperty('name', 'AbortError')
    })

    it('refuses an oversized request before sending it', async () => {
      const { protocol, errors } = await startEcho()
      const big = { text: 'x'.repeat(CAP), payload: new Uint8Array() }

      await expect(sendRequest(client, server.peerId, protocol, big, codecs)).rejects.toHaveProperty('name', 'MessageTooLargeError')
      await expect(request(protocol, 'small')).resolves.toHaveProperty('text', 'SMALL')
      // the server saw at most an empty reset stream, never a decoded oversized request
      expect(errors.every((name) => name === 'StreamClosedError')).toBe(true)
    })

    it('passes through libp2p\'s error for a protocol the peer does not speak', async () => {
      await expect(request('/neuroshard-test/nobody/1.0.0', 'q')).rejects.toHaveProperty('name', 'UnsupportedProtocolError')
    })
  })

  it('aborts the handler\'s signal when the requester gives up', async () => {
    const protocol = nextProtocol()
    const { promise: aborted, resolve } = pDefer<unknown>()

    await handleRequests(server, protocol, async (_req: EchoRequest, { signal }: RequestContext) => {
      await new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => { resolve(signal.reason); reject(signal.reason) }, { once: true })
      })
      return { text: '', payload: new Uint8Array(), count: 0 }
    }, codecs)

    await expect(request(protocol, 'slow', { timeout: 200 })).rejects.toHaveProperty('name', 'TimeoutError')
    expect(await aborted).toHaveProperty('name', 'StreamClosedError')
  })

  it('caps requests and responses separately (maxOutgoingMessageSize): a request over the request cap is refused, a response over it is sent', async () => {
    const protocol = nextProtocol()
    const errors: string[] = []
    const failed = pDefer<string>()
    const unhandle = await handleRequests(server, protocol, async (req: EchoRequest) => ({ text: req.text, payload: new Uint8Array(4 * CAP), count: 0 }), {
      requestCodec: EchoRequest,
      responseCodec: EchoResponse,
      maxMessageSize: 64,
      maxOutgoingMessageSize: 8 * CAP,
      onError: (err) => { errors.push(err.name); failed.resolve(err.name) }
    })
    try {
      // a small request, a response 64× the request cap: fine
      const res = await sendRequest(client, server.peerId, protocol, { text: 'hi', payload: new Uint8Array(0) }, { requestCodec: EchoRequest, responseCodec: EchoResponse, maxMessageSize: 8 * CAP })
      expect(res.payload.byteLength).toBe(4 * CAP)
      // a request over 64 bytes: the handler refuses to read it
      await expect(sendRequest(client, server.peerId, protocol, { text: 'x', payload: new Uint8Array(200) }, { requestCodec: EchoRequest, responseCodec: EchoResponse, maxMessageSize: 8 * CAP })).rejects.toThrow()
      expect(await failed.promise).toBe('MessageTooLargeError')
    } finally {
      await unhandle()
    }
  })

  it('unhandle removes the handler', async () => {
    const { protocol, unhandle } = await startEcho()
    await expect(request(protocol, 'a')).resolves.toHaveProperty('text', 'A')
    await unhandle()
    await expect(request(protocol, 'a')).rejects.toHaveProperty('name', 'UnsupportedProtocolError')
  })

  it('rejects invalid options with InvalidParametersError', async () => {
    await expect(handleRequests(server, nextProtocol(), echoHandler, { ...codecs, maxMessageSize: -1 })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(sendRequest(client, server.peerId, nextProtocol(), { text: '', payload: new Uint8Array() }, { ...codecs, timeout: 0 })).rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(sendRequest(undefined, server.peerId, nextProtocol(), { text: '', payload: new Uint8Array() }, codecs)).rejects.toHaveProperty('name', 'InvalidParametersError')
  })
})

async function raw (protocol: string, bytes: Uint8Array, close = false): Promise<Stream> {
  const stream = await client.dialProtocol(server.peerId, protocol)

  if (bytes.byteLength > 0) {
    stream.send(bytes)
  }

  if (close) {
    await stream.close()
  }

  return stream
}

async function waitUntil (check: () => boolean, timeout = 5_000): Promise<void> {
  const deadline = Date.now() + timeout

  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time')
    }

    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
