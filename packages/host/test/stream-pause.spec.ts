/**
 * A reader that pauses a stream (backpressure: `messageStream` does it at its high-water mark) must not lose the
 * stream. Yamux grows a stream's receive window up to 16 MiB while the reader keeps up, and a paused stream only
 * stops granting more: the sender may still send what the grown window allows, all of which lands in the stream's
 * read buffer. With yamux's default read-buffer limit (4 MiB) the stream was then aborted (`StreamBufferError`): a
 * weight transfer whose client paused a few milliseconds for its hash thread lost the stream and the replica.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost } from '../src/index.js'
import type { NeuroShardHost } from '../src/index.js'
import type { Stream } from '@libp2p/interface'

const PROTOCOL = '/neuroshard/test/bulk/1.0.0'
const PIECE = 1 << 20
/** Enough for the window to grow to its maximum before the pause */
const PIECES = 96

/** Send PIECES pieces of 1 MiB as fast as the stream takes them, then close */
async function bulk (stream: Stream): Promise<void> {
  const piece = new Uint8Array(PIECE).fill(3)
  for (let i = 0; i < PIECES; i++) {
    if (!stream.send(piece)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => { stream.removeEventListener('close', onClose); resolve() }
        const onClose = (): void => { stream.removeEventListener('drain', onDrain); reject(new Error('closed')) }
        stream.addEventListener('drain', onDrain, { once: true })
        stream.addEventListener('close', onClose, { once: true })
      })
    }
  }
  await stream.close()
}

describe('a paused stream', () => {
  const hosts: NeuroShardHost[] = []
  afterEach(async () => {
    await Promise.all(hosts.splice(0).map(async h => { await h.stop() }))
  })

  it('keeps what the sender had window for and delivers everything after resume', async () => {
    const transports = { quic: false, webrtcDirect: false, circuitRelay: false }
    const a = await createNeuroShardHost({ listen: ['/ip4/127.0.0.1/tcp/0'], transports })
    hosts.push(a)
    const b = await createNeuroShardHost({ listen: ['/ip4/127.0.0.1/tcp/0'], transports })
    hosts.push(b)
    await b.handle(PROTOCOL, bulk)
    const stream = await a.dialProtocol(b.getMultiaddrs()[0], PROTOCOL)

    let received = 0
    let pauses = 0
    let error: Error | undefined
    const ended = new Promise<void>(resolve => {
      stream.addEventListener('close', (evt) => { error = (evt as { error?: Error }).error; resolve() }, { once: true })
      stream.addEventListener('remoteCloseWrite', () => { resolve() }, { once: true })
    })
    stream.addEventListener('message', (evt) => {
      received += evt.data.byteLength
      // after the window had time to grow, pause a while now and then, as a slow reader does
      if (received >= 24 * PIECE && pauses < 4 && received >= (24 + 16 * pauses) * PIECE) {
        pauses++
        stream.pause()
        setTimeout(() => { stream.resume() }, 300)
      }
    })
    await ended
    // what was buffered while paused is handed over after the last resume
    const deadline = Date.now() + 30_000
    while (received < PIECES * PIECE && error == null && stream.status !== 'aborted' && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 20))
    }

    expect(error).toBeUndefined()
    expect(stream.status).not.toBe('aborted')
    expect(pauses).toBeGreaterThan(0)
    expect(received).toBe(PIECES * PIECE)
  })
})
