import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import pDefer from 'p-defer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { messageStream } from '../src/index.js'
import { EchoRequest } from './fixtures/echo.js'
import { createConnectedHosts } from './fixtures/hosts.js'
import type { Libp2p } from '@libp2p/interface'

interface FramingVector {
  description: string
  maxMessageSize: number
  timeoutMs?: number
  stream: string
  eof: boolean
  messages?: string[]
  error?: string
}

const dir = join(import.meta.dirname, '../../../specs/framing/vectors')
// write-*.json are the senders' vectors (rules 1-2), body-*.json bodies decoded as EchoRequest (rule 6), the rest the receivers'
const vectors = readdirSync(dir).filter((file) => file.endsWith('.json') && !file.startsWith('write-') && !file.startsWith('body-')).sort()
  .map((file): [string, FramingVector] => [file, JSON.parse(readFileSync(join(dir, file), 'utf8'))])
const bodyVectors = readdirSync(dir).filter((file) => file.startsWith('body-') && file.endsWith('.json')).sort()
  .map((file): [string, { body: string, decoded?: { text: string, payload: string }, error?: string }] => [file, JSON.parse(readFileSync(join(dir, file), 'utf8'))])
const writeVectors = readdirSync(dir).filter((file) => file.startsWith('write-') && file.endsWith('.json')).sort()
  .map((file): [string, { maxMessageSize: number, write: string[], written: string, error: string | null }] => [file, JSON.parse(readFileSync(join(dir, file), 'utf8'))])

let client: Libp2p
let server: Libp2p
let count = 0

beforeAll(async () => {
  [client, server] = await createConnectedHosts()
})

afterAll(async () => {
  await Promise.all([client?.stop(), server?.stop()])
})

describe('specs/framing/vectors replayed over a libp2p stream', () => {
  it('has vectors', () => {
    expect(vectors.length).toBeGreaterThan(10)
  })

  it.each(vectors)('%s', async (_, vector) => {
    const protocol = `/neuroshard-test/framing-vector-${++count}/1.0.0`
    const result = pDefer<{ messages: string[], error?: string }>()

    await server.handle(protocol, async (stream) => {
      const messages: string[] = []
      const reader = messageStream(stream, { maxMessageSize: vector.maxMessageSize, timeout: vector.timeoutMs ?? 5_000 })

      try {
        for (let i = 0; i < (vector.messages?.length ?? 0); i++) {
          messages.push(Buffer.from(await reader.readBytes()).toString('hex'))
        }

        if (vector.error != null) {
          await reader.readBytes()
        }

        result.resolve({ messages })
      } catch (err: any) {
        result.resolve({ messages, error: err.name })
      }
    })

    const stream = await client.dialProtocol(server.peerId, protocol)

    if (vector.stream.length > 0) {
      stream.send(Buffer.from(vector.stream, 'hex'))
    }

    if (vector.eof) {
      await stream.close()
    }

    const { messages, error } = await result.promise
    expect(messages).toEqual(vector.messages ?? [])
    expect(error).toBe(vector.error)

    if (vector.error != null) {
      // the receiver reset the stream
      await new Promise((resolve) => {
        if (stream.status !== 'open') resolve(undefined)
        stream.addEventListener('close', resolve, { once: true })
      })
    } else if (!vector.eof) {
      await stream.close()
    }
  })
})

describe('specs/framing/vectors/write-*.json replayed over a libp2p stream (senders, rules 1-2)', () => {
  it('has vectors', () => {
    expect(writeVectors.length).toBeGreaterThan(3)
  })

  it.each(writeVectors)('%s', async (_, vector) => {
    const protocol = `/neuroshard-test/framing-write-vector-${++count}/1.0.0`
    const received = pDefer<string>()

    await server.handle(protocol, async (stream) => {
      const chunks: Uint8Array[] = []
      for await (const chunk of stream) chunks.push(chunk.subarray())
      received.resolve(Buffer.concat(chunks).toString('hex'))
    })

    const stream = await client.dialProtocol(server.peerId, protocol)
    const writer = messageStream(stream, { maxMessageSize: vector.maxMessageSize, timeout: 5_000 })
    let error: string | null = null
    try {
      for (const m of vector.write) await writer.writeBytes(Buffer.from(m, 'hex'))
    } catch (err: any) {
      error = err.name
    }
    await writer.close()
    expect(await received.promise).toBe(vector.written)
    expect(error).toBe(vector.error)
  })
})

describe('specs/framing/vectors/body-*.json replayed over a libp2p stream (rule 6, bodies decoded as EchoRequest)', () => {
  it('has vectors', () => {
    expect(bodyVectors.length).toBeGreaterThan(5)
  })

  it.each(bodyVectors)('%s', async (_, vector) => {
    const protocol = `/neuroshard-test/framing-body-vector-${++count}/1.0.0`
    const result = pDefer<{ decoded?: { text: string, payload: string }, error?: string }>()

    await server.handle(protocol, async (stream) => {
      try {
        const m = await messageStream(stream, { timeout: 5_000 }).read(EchoRequest)
        result.resolve({ decoded: { text: m.text, payload: Buffer.from(m.payload).toString('hex') } })
        await stream.close()
      } catch (err: any) {
        result.resolve({ error: err.name })
      }
    })

    const stream = await client.dialProtocol(server.peerId, protocol)
    await messageStream(stream, { timeout: 5_000 }).writeBytes(Buffer.from(vector.body, 'hex'))
    const got = await result.promise
    if (vector.error != null) {
      expect(got.error).toBe(vector.error)
    } else {
      expect(got.decoded).toEqual(vector.decoded)
    }
    stream.abort(new Error('done'))
  })
})
