/**
 * The deliberately vulnerable stream handler of every stream target: reads whatever comes and answers
 * with the target's success response. A fuzz run against it must report junk accepted.
 */
import { concat } from './mutate.js'
import { varint } from './proto.js'
import type { NeuroShardHost } from '@neuroshard/host'

export async function handleAcceptAll (host: NeuroShardHost, protocol: string, okResponse: Uint8Array): Promise<void> {
  await host.handle(protocol, (stream) => {
    void (async () => {
      try {
        for await (const _ of stream) { void _; break }
        stream.send(concat(Uint8Array.from(varint(okResponse.length)), okResponse))
        await stream.close()
      } catch {
        stream.abort(new Error('accept-all handler failed'))
      }
    })()
  }, { maxInboundStreams: 1024 })
}
