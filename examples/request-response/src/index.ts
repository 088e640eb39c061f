/**
 * Example: one-shot request/response between two hosts with `@neuroshard/utils`.
 *
 * `handleRequests` / `sendRequest` frame each message with an unsigned-varint length prefix, apply a
 * per-message timeout and a size cap on every read, and turn every failure into a typed error. They take
 * any codec with `encode(message): Uint8Array` and `decode(bytes): message` — usually a namespace
 * `protons` generated from a `.proto` file; here a tiny hand-written JSON codec, so the example has no
 * generated code.
 *
 * 1. server host A answers `/neuroshard/example-greet/1.0.0`: { name, repeat } → { text },
 * 2. client host B sends a small request and prints the answer,
 * 3. B asks for a response larger than its own `maxMessageSize`: the read is refused from the length
 *    prefix alone (the body is never read) with `MessageTooLargeError`,
 * 4. B sends a request larger than the server's cap: the server refuses it (its `onError` sees
 *    `MessageTooLargeError`) and resets the stream, which B sees as `StreamClosedError`.
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-request-response start`
 */
import { pathToFileURL } from 'node:url'
import { createNeuroShardHost } from '@neuroshard/host'
import { handleRequests, sendRequest } from '@neuroshard/utils'
import type { NeuroShardHost } from '@neuroshard/host'
import type { MessageCodec } from '@neuroshard/utils'

/** Protocol ids follow /neuroshard/<proto>/<semver> */
const PROTOCOL = '/neuroshard/example-greet/1.0.0'

interface GreetRequest { name: string, repeat: number }
interface GreetResponse { text: string }

/**
 * A codec is just encode + decode. decode MUST throw on bytes that are not a valid message: the helpers
 * turn that into `MalformedMessageError` and reset the stream.
 */
function jsonCodec<T> (check: (value: unknown) => value is T): MessageCodec<T> {
  return {
    encode: (message: T) => new TextEncoder().encode(JSON.stringify(message)),
    decode: (bytes: Uint8Array) => {
      const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
      if (!check(value)) throw new Error('not a valid message')
      return value
    }
  }
}

const GreetRequestCodec = jsonCodec<GreetRequest>((v): v is GreetRequest =>
  typeof v === 'object' && v !== null && typeof (v as GreetRequest).name === 'string' &&
  Number.isSafeInteger((v as GreetRequest).repeat) && (v as GreetRequest).repeat >= 1 && (v as GreetRequest).repeat <= 100_000)
const GreetResponseCodec = jsonCodec<GreetResponse>((v): v is GreetResponse =>
  typeof v === 'object' && v !== null && typeof (v as GreetResponse).text === 'string')

export interface RequestResponseResult {
  /** the answer to the small request */
  answer: string
  /** what the client got asking for a response over its cap */
  responseTooLarge: { name: string, message: string }
  /** what the client got sending a request over the server's cap */
  requestTooLarge: { name: string, message: string }
  /** the error the server's onError saw for that request */
  serverSaw: string
}

async function expectError (p: Promise<unknown>): Promise<{ name: string, message: string }> {
  try {
    await p
  } catch (err) {
    return { name: (err as Error).name, message: (err as Error).message }
  }
  throw new Error('expected the request to fail')
}

export async function main (log: (line: string) => void = console.log): Promise<RequestResponseResult> {
  const hosts: NeuroShardHost[] = []
  try {
    const server = await createNeuroShardHost()
    hosts.push(server)
    const client = await createNeuroShardHost()
    hosts.push(client)

    // --- 1. the server: one request in, one response out, at most 64 KiB each way, 5 s per message -----
    let serverError: (name: string) => void = () => {}
    const serverSaw = new Promise<string>(resolve => { serverError = resolve })
    await handleRequests(server, PROTOCOL, (request) => ({
      text: Array.from({ length: request.repeat }, () => `hello ${request.name}!`).join(' ')
    }), {
      requestCodec: GreetRequestCodec,
      responseCodec: GreetResponseCodec,
      maxMessageSize: 64 * 1024,
      timeout: 5_000,
      // failures never crash the server: they reset that one stream and are reported here
      onError: (err) => { serverError(err.name) }
    })
    log(`server ${server.peerId.toString()} handles ${PROTOCOL}`)

    await client.dial(server.getMultiaddrs()[0])
    const options = (maxMessageSize: number): Parameters<typeof sendRequest<GreetRequest, GreetResponse>>[4] => ({
      requestCodec: GreetRequestCodec,
      responseCodec: GreetResponseCodec,
      maxMessageSize,
      timeout: 5_000
    })

    // --- 2. a normal request ----------------------------------------------------------------------------
    const { text: answer } = await sendRequest(client, server.peerId, PROTOCOL, { name: 'client', repeat: 2 }, options(1024))
    log(`request { name: 'client', repeat: 2 } → "${answer}"`)

    // --- 3. a response larger than the client accepts: 3,000 greetings ≈ 42 KB > the client's 1 KiB ------
    // (it stays under the server's own 64 KiB cap, so the server sends it and the client's cap is what trips)
    const responseTooLarge = await expectError(sendRequest(client, server.peerId, PROTOCOL, { name: 'client', repeat: 3_000 }, options(1024)))
    log(`request for a ~42 KB response with maxMessageSize 1 KiB → ${responseTooLarge.name}: ${responseTooLarge.message}`)

    // --- 4. a request larger than the server accepts (100 KB > 64 KiB) ----------------------------------
    const big = { name: 'x'.repeat(100_000), repeat: 1 }
    const requestTooLarge = await expectError(sendRequest(client, server.peerId, PROTOCOL, big, options(1024 * 1024)))
    // (bounded wait: a broken server must fail the example, not hang it)
    const seen = await Promise.race([serverSaw, new Promise<string>((_resolve, reject) => {
      setTimeout(() => { reject(new Error('the server reported no error within 10 s')) }, 10_000).unref()
    })])
    log(`a 100 KB request to a server capped at 64 KiB → client: ${requestTooLarge.name}; server's onError: ${seen}`)

    return { answer, responseTooLarge, requestTooLarge, serverSaw: seen }
  } finally {
    await Promise.allSettled(hosts.map(async h => { await h.stop() }))
  }
}

// run only when executed directly (`node dist/src/index.js`), not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
