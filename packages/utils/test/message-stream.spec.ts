import pDefer from 'p-defer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { messageStream } from '../src/index.js'
import { EchoRequest, EchoResponse } from './fixtures/echo.js'
import { closed, concat, createConnectedHosts, varint, waitFor } from './fixtures/hosts.js'
import type { FramedStream, MessageStreamOptions } from '../src/index.js'
import type { Libp2p, Stream } from '@libp2p/interface'

const CAP = 1024

let client: Libp2p
let server: Libp2p
let protocolCount = 0

beforeAll(async () => {
  [client, server] = await createConnectedHosts()
})

afterAll(async () => {
  await Promise.all([client?.stop(), server?.stop()])
})

interface Outcome<T> { value?: T, error?: Error, elapsed: number, stream: Stream }

/**
 * Register a fresh protocol on the server whose handler runs `fn` on a messageStream of the first
 * inbound stream; resolves with what `fn` returned or threw and how long it took.
 */
async function serveOnce<T> (fn: (messages: FramedStream) => Promise<T>, options: MessageStreamOptions = {}): Promise<{ protocol: string, outcome: Promise<Outcome<T>> }> {
  const protocol = `/neuroshard-test/message-stream-${++protocolCount}/1.0.0`
  const { promise, resolve } = pDefer<Outcome<T>>()

  await server.handle(protocol, async (stream) => {
    const start = Date.now()
    const messages = messageStream(stream, { maxMessageSize: CAP, timeout: 5_000, ...options })

    try {
      resolve({ value: await fn(messages), elapsed: Date.now() - start, stream })
    } catch (error: any) {
      resolve({ error, elapsed: Date.now() - start, stream })
    }
  })

  return { protocol, outcome: promise }
}

/** Open a stream to the server and send `bytes` verbatim, optionally closing our end */
async function sendRaw (protocol: string, bytes: Uint8Array, close = false): Promise<Stream> {
  const stream = await client.dialProtocol(server.peerId, protocol)
  stream.send(bytes)

  if (close) {
    await stream.close()
  }

  return stream
}

describe('messageStream', () => {
  it('round-trips protobuf messages and raw bodies in both directions', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => {
      const received: EchoRequest[] = []

      for (let i = 0; i < 3; i++) {
        const request = await messages.read(EchoRequest)
        received.push(request)
        await messages.write({ text: request.text.toUpperCase(), payload: request.payload, count: i }, EchoResponse)
      }

      const raw = await messages.readBytes()
      await messages.writeBytes(raw.slice().reverse())
      await messages.close()
      return received
    })

    const messages = messageStream(await client.dialProtocol(server.peerId, protocol), { maxMessageSize: CAP })
    const responses: EchoResponse[] = []

    for (const text of ['a', 'bb', '']) {
      await messages.write({ text, payload: Uint8Array.of(1, 2, text.length) }, EchoRequest)
      responses.push(await messages.read(EchoResponse))
    }

    await messages.writeBytes(Uint8Array.of(1, 2, 3))
    expect(await messages.readBytes()).toEqual(Uint8Array.of(3, 2, 1))
    await messages.close()

    expect(responses).toEqual([
      { text: 'A', payload: Uint8Array.of(1, 2, 1), count: 0 },
      { text: 'BB', payload: Uint8Array.of(1, 2, 2), count: 1 },
      { text: '', payload: Uint8Array.of(1, 2, 0), count: 2 }
    ])
    const { value, error } = await outcome
    expect(error).toBeUndefined()
    expect(value?.map((r) => r.text)).toEqual(['a', 'bb', ''])
  })

  it('reads a message of exactly the cap, body split over many chunks', async () => {
    const body = new Uint8Array(CAP).map((_, i) => i % 251)
    const { protocol, outcome } = await serveOnce(async (messages) => messages.readBytes())
    const stream = await client.dialProtocol(server.peerId, protocol)
    const framed = concat(varint(CAP), body)

    for (let i = 0; i < framed.length; i += 100) {
      stream.send(framed.subarray(i, i + 100))
    }

    const { value, error } = await outcome
    expect(error).toBeUndefined()
    expect(value).toEqual(body)
    await stream.close()
  })

  it('readList hands a body back as the list of pieces it arrived in; the next message reads on', async () => {
    const body = new Uint8Array(CAP).map((_, i) => (i * 7) % 253)
    const { protocol, outcome } = await serveOnce(async (messages) => {
      const list = await messages.readList()
      const pieces = [...list]
      const next = await messages.readBytes()
      return { byteLength: list.byteLength, joined: list.subarray(), pieces, next }
    })
    const stream = await client.dialProtocol(server.peerId, protocol)
    const framed = concat(varint(CAP), body, varint(3), Uint8Array.of(9, 8, 7))

    for (let i = 0; i < framed.length; i += 100) {
      stream.send(framed.subarray(i, i + 100))
    }

    const { value, error } = await outcome
    expect(error).toBeUndefined()
    expect(value?.byteLength).toBe(CAP)
    expect(value?.joined).toEqual(body)
    expect(value?.pieces.reduce((n, p) => n + p.byteLength, 0)).toBe(CAP)
    expect(value?.pieces.every((p) => p instanceof Uint8Array)).toBe(true)
    expect(value?.next).toEqual(Uint8Array.of(9, 8, 7))
    await stream.close()
  })

  it('rejects a declared length over the cap from the prefix alone, without waiting for the body', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.read(EchoRequest), { timeout: 60_000 })
    // the prefix announces CAP + 1 bytes; no body follows and our end stays open
    const stream = await sendRaw(protocol, varint(CAP + 1))

    const { error, elapsed } = await outcome
    expect(error?.name).toBe('MessageTooLargeError')
    expect(elapsed).toBeLessThan(30_000) // the read timeout is 60 s: it did not wait for bytes
    // the reader reset the stream
    expect((await closed(stream))?.name).toBe('StreamResetError')
  })

  it('rejects an endless length prefix (0xff bytes) as too large as soon as it exceeds the cap\'s prefix length', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.readBytes(), { timeout: 60_000 })
    const stream = await sendRaw(protocol, new Uint8Array(12).fill(0xff))

    const { error, elapsed } = await outcome
    expect(error?.name).toBe('MessageTooLargeError')
    expect(elapsed).toBeLessThan(30_000) // not the 60 s read timeout
    await closed(stream)
  })

  it('rejects a non-minimal varint prefix as malformed', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.readBytes())
    // 0x80 0x00 is a two-byte encoding of 0
    const stream = await sendRaw(protocol, Uint8Array.of(0x80, 0x00))

    const { error } = await outcome
    expect(error?.name).toBe('MalformedMessageError')
    await closed(stream)
  })

  it('rejects a truncated frame (prefix says 100, 10 bytes then EOF) with StreamClosedError', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.readBytes())
    await sendRaw(protocol, concat(varint(100), new Uint8Array(10)), true)

    const { error } = await outcome
    expect(error?.name).toBe('StreamClosedError')
  })

  it('rejects EOF before any message with StreamClosedError', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.read(EchoRequest))
    await sendRaw(protocol, new Uint8Array(0), true)

    expect((await outcome).error?.name).toBe('StreamClosedError')
  })

  it('rejects a reset mid-message with StreamClosedError', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.readBytes())
    const stream = await sendRaw(protocol, concat(varint(100), new Uint8Array(10)))
    // wait until the server has started reading, then reset
    await new Promise((resolve) => { setImmediate(resolve) })
    stream.abort(new Error('client gives up'))

    expect((await outcome).error?.name).toBe('StreamClosedError')
  })

  it.each([
    ['an invalid wire type', [0x0f]],
    ['a length-delimited field longer than the body', [0x0a, 0x05, 0x61]],
    ['a truncated field tag varint', [0xff]]
  ])('rejects a body that is not a protobuf message (%s) with MalformedMessageError', async (_, body) => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.read(EchoRequest))
    const stream = await sendRaw(protocol, concat(varint(body.length), body))

    const { error } = await outcome
    expect(error?.name).toBe('MalformedMessageError')
    expect(await closed(stream)).toBeDefined()
  })

  it('times out a silent peer within the configured timeout', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.read(EchoRequest), { timeout: 500 })
    const stream = await client.dialProtocol(server.peerId, protocol)
    // open the stream on the server side without sending a message: one byte of a two-byte prefix
    stream.send(Uint8Array.of(0x81))

    const { error, elapsed } = await outcome
    expect(error?.name).toBe('TimeoutError')
    expect(elapsed).toBeGreaterThanOrEqual(490)
    // well below the 10 s library default it overrides, with room for a loaded machine's event-loop stalls
    expect(elapsed).toBeLessThan(8_000)
    expect((await closed(stream))?.name).toBe('StreamResetError')
  })

  it('reads and writes share one lazily re-armed deadline timer per stream, and each still times out on its own deadline', async () => {
    const timeout = 300
    const { protocol, outcome } = await serveOnce(async (messages) => {
      for (;;) {
        const body = await messages.readBytes()
        if (body.byteLength === 0) return await messages.readBytes() // the client's last message: then silence
        await messages.writeBytes(body)
      }
    }, { timeout })
    const messages = messageStream(await client.dialProtocol(server.peerId, protocol), { maxMessageSize: CAP, timeout })
    // count the timers messageStream creates (by the caller's stack) while round trips go on for longer than the timeout
    const real = globalThis.setTimeout
    let made = 0
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      if (new Error().stack?.includes('message-stream') === true) made++
      return real(...args)
    }) as typeof setTimeout
    let trips = 0
    const started = Date.now()
    try {
      while (trips < 50 || Date.now() - started < 2 * timeout) {
        const body = Uint8Array.of(trips & 0xff, 1, 2)
        await messages.writeBytes(body)
        expect(await messages.readBytes()).toEqual(body)
        trips++
      }
    } finally {
      globalThis.setTimeout = real
    }
    // before: a timer for every read and write at both ends, 4 per round trip (here >= 200). Now a few per timeout
    // period at each end: a timer fires at the deadline it was armed for and is re-armed for the read or write then
    // in flight (twice when libuv's cached clock lets it fire a little before that deadline)
    expect(trips).toBeGreaterThanOrEqual(50)
    expect(made).toBeLessThanOrEqual(2 * 2 * (2 + Math.ceil((Date.now() - started) / timeout)))
    // the server now reads once more and gets nothing: its own deadline, not an earlier one armed for a past read
    const quietFrom = Date.now()
    await messages.writeBytes(new Uint8Array(0))
    const { error } = await outcome
    expect(error?.name).toBe('TimeoutError')
    expect(Date.now() - quietFrom).toBeGreaterThanOrEqual(timeout - 10)
    expect(Date.now() - quietFrom).toBeLessThan(8_000)
  })

  it('lets a per-call timeout override the stream default', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.read(EchoRequest, { timeout: 100 }), { timeout: 60_000 })
    const stream = await sendRaw(protocol, Uint8Array.of(0x81))

    const { error, elapsed } = await outcome
    expect(error?.name).toBe('TimeoutError')
    expect(elapsed).toBeLessThan(30_000) // the stream default (60 s) would not have fired
    await closed(stream)
  })

  it('rejects with AbortError when the caller aborts, and resets the stream', async () => {
    const controller = new AbortController()
    const { protocol, outcome } = await serveOnce(async (messages) => {
      setTimeout(() => { controller.abort() }, 50)
      return messages.read(EchoRequest, { signal: controller.signal })
    }, { timeout: 60_000 })
    const stream = await sendRaw(protocol, Uint8Array.of(0x81))

    const { error, elapsed } = await outcome
    expect(error?.name).toBe('AbortError')
    expect(elapsed).toBeLessThan(30_000) // the abort, not the 60 s read timeout
    await closed(stream)
  })

  it('rejects with AbortError at once for an already-aborted signal', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.read(EchoRequest, { signal: AbortSignal.abort() }))
    const stream = await client.dialProtocol(server.peerId, protocol)

    expect((await outcome).error?.name).toBe('AbortError')
    await closed(stream)
  })

  it('refuses to write an oversized message without sending anything, and the stream stays usable', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => messages.read(EchoRequest))
    const messages = messageStream(await client.dialProtocol(server.peerId, protocol), { maxMessageSize: CAP })

    await expect(messages.write({ text: 'x'.repeat(CAP), payload: new Uint8Array() }, EchoRequest)).rejects.toHaveProperty('name', 'MessageTooLargeError')
    await expect(messages.writeBytes(new Uint8Array(CAP + 1))).rejects.toHaveProperty('name', 'MessageTooLargeError')
    // the first message the server sees is this one: nothing of the refused ones went out
    await messages.write({ text: 'fits', payload: new Uint8Array() }, EchoRequest)

    const { value, error } = await outcome
    expect(error).toBeUndefined()
    expect(value?.text).toBe('fits')
    await messages.close()
  })

  it('after a failure, every later call throws StreamClosedError', async () => {
    const { protocol, outcome } = await serveOnce(async (messages) => {
      const first = await messages.readBytes().catch((err: Error) => err)
      const second = await messages.readBytes().catch((err: Error) => err)
      const third = await messages.writeBytes(Uint8Array.of(1)).catch((err: Error) => err)
      return [first, second, third].map((e) => (e as Error).name)
    })
    await sendRaw(protocol, Uint8Array.of(0x80, 0x00))

    expect((await outcome).value).toEqual(['MalformedMessageError', 'StreamClosedError', 'StreamClosedError'])
  })

  it('applies backpressure: a fast writer stalls while the reader is behind, and nothing is lost', async () => {
    const size = 256 * 1024
    const count = 160 // 40 MiB: more than the high-water mark plus any window Yamux may have granted
    const reader = pDefer<{ messages: FramedStream, stream: Stream }>()
    const protocol = `/neuroshard-test/message-stream-${++protocolCount}/1.0.0`
    await server.handle(protocol, (stream) => {
      reader.resolve({ messages: messageStream(stream, { maxMessageSize: size, readHighWaterMark: 2 * size }), stream })
    })

    const clientStream = await client.dialProtocol(server.peerId, protocol)
    const writer = messageStream(clientStream, { maxMessageSize: size, timeout: 30_000 })
    let written = 0
    const writing = (async () => {
      for (let i = 0; i < count; i++) {
        await writer.writeBytes(new Uint8Array(size).fill(i % 256))
        written++
      }
      await writer.close()
    })()

    const { messages, stream: serverStream } = await reader.promise
    // the reader reads nothing until the writer is blocked on a full send window
    await waitFor(() => clientStream.writableNeedsDrain && serverStream.readStatus === 'paused', 'the writer to stall', 20_000)
    expect(written).toBeLessThan(count)
    expect(serverStream.status).toBe('open')

    for (let i = 0; i < count; i++) {
      const body = await messages.readBytes()
      expect(body.byteLength).toBe(size)
      expect(body[0]).toBe(i % 256)
      expect(body[size - 1]).toBe(i % 256)
    }

    await writing
    expect(written).toBe(count)
    await messages.close()
  })

  it('rejects invalid options with InvalidParametersError', async () => {
    const stream = await client.dialProtocol(server.peerId, (await serveOnce(async () => {})).protocol)

    expect(() => messageStream(stream, { maxMessageSize: 0 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => messageStream(stream, { maxMessageSize: 1.5 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => messageStream(stream, { timeout: -1 })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    expect(() => messageStream(stream, { timeout: Number.NaN })).toThrow(expect.objectContaining({ name: 'InvalidParametersError' }))
    await stream.close()
  })
})
