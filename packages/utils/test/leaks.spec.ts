import { describe, expect, it } from 'vitest'
import { handleRequests, messageStream, sendRequest, withTimeout } from '../src/index.js'
import { EchoRequest, EchoResponse } from './fixtures/echo.js'
import { concat, createConnectedHosts, socketCounts, trackResources, varint, waitFor } from './fixtures/hosts.js'
import type { Libp2p } from '@libp2p/interface'

const codecs = { requestCodec: EchoRequest, responseCodec: EchoResponse, maxMessageSize: 1024 }

describe('nothing is left hanging', () => {
  it('after good requests, bad frames, timeouts and aborts, stopping the hosts leaves no sockets or timers behind', async () => {
    const baseline = socketCounts()
    const tracker = trackResources()
    let hosts: Libp2p[] = []

    try {
      const [client, server] = hosts = await createConnectedHosts()
      const echo = '/neuroshard-test/leak-echo/1.0.0'
      const silent = '/neuroshard-test/leak-silent/1.0.0'
      const failures: string[] = []

      await handleRequests(server, echo, (req: EchoRequest) => ({ text: req.text, payload: req.payload, count: 0 }), {
        ...codecs,
        // the silent client below fails by this timeout; a short one would also fail good requests whose bytes
        // a loaded machine delivers late (timers run before I/O after a stalled event loop)
        timeout: 2_000,
        onError: (err) => { failures.push(err.name) }
      })
      await server.handle(silent, () => {})

      const ask = async (protocol: string, options: { timeout?: number, signal?: AbortSignal } = {}): Promise<string> =>
        sendRequest(client, server.peerId, protocol, { text: 'hi', payload: new Uint8Array() }, { ...codecs, ...options })
          .then((res) => res.text, (err: Error) => err.name)

      // good requests
      expect(await Promise.all([ask(echo), ask(echo), ask(echo)])).toEqual(['hi', 'hi', 'hi'])
      // a silent server, a caller abort
      expect(await ask(silent, { timeout: 150 })).toBe('TimeoutError')
      const controller = new AbortController()
      setTimeout(() => { controller.abort() }, 50)
      expect(await ask(silent, { signal: controller.signal })).toBe('AbortError')
      // bad clients: garbage, oversized, truncated, silent - each fails on the server
      const sends = [concat(varint(1), [0x0f]), varint(5000), concat(varint(9), [1]), new Uint8Array(0)]
      const streams = await Promise.all(sends.map(async (bytes) => {
        const stream = await client.dialProtocol(server.peerId, echo)
        if (bytes.byteLength > 0) stream.send(bytes)
        return stream
      }))
      const truncated = streams[2]
      await truncated.close()
      await waitFor(() => failures.length === 4, 'four failures', 30_000)
      expect(failures.sort()).toEqual(['MalformedMessageError', 'MessageTooLargeError', 'StreamClosedError', 'TimeoutError'])
      // a messageStream read abandoned by timeout
      const stream = await client.dialProtocol(server.peerId, silent)
      await expect(messageStream(stream, { timeout: 50 }).readBytes()).rejects.toHaveProperty('name', 'TimeoutError')
      // withTimeout that settles early clears its timer
      expect(await withTimeout(async () => 'done', 60_000)).toBe('done')
    } finally {
      await Promise.all(hosts.map(async (host) => host.stop()))
    }

    try {
      // every socket, listener and timer created during the test is closed or cleared...
      await tracker.expectAllClosed()
    } finally {
      tracker.disable()
    }

    // ...and the process-level view agrees for sockets and listeners
    await waitFor(() => socketCounts().sockets <= baseline.sockets && socketCounts().listeners <= baseline.listeners, 'sockets to close')
  })
})
