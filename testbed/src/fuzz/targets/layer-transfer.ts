/**
 * Layer-pool weight transfer: the `/neuroshard/layer-pool/weights/1.0.0` server (`weightsServer`) on a
 * real libp2p host over loopback, serving one span of real content.
 *
 * Oracle: an OK answer is only right for the honest chunks root, with chunk indices in range and distinct.
 */
import { digestChunks, weightsServer, WEIGHTS_PROTOCOL } from '@neuroshard/layer-pool'
import type { SpanTensor, WeightsServer } from '@neuroshard/layer-pool'
import type { NeuroShardHost } from '@neuroshard/host'
import { handleAcceptAll } from '../accept-all.js'
import { frame, mutateAny, mutateProto, concat } from '../mutate.js'
import { encodeFields, eq, parseFields, wireMismatch } from '../proto.js'
import { exchange, firstMessage, loopbackHost, varintField } from '../net.js'
import type { FuzzInput, FuzzTarget, Outcome } from '../engine.js'
import type { Rng } from '../rng.js'

const CHUNK = 1024
const ACCEPT_ALL = '/fuzz/accept-all/layer-weights'

export function layerTransferTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  let server: NeuroShardHost
  let client: NeuroShardHost
  let ws: WeightsServer
  let root: Uint8Array
  let count = 0
  const honest: Uint8Array[] = []
  const protocol = options.vulnerable === true ? ACCEPT_ALL : WEIGHTS_PROTOCOL
  const tensors: SpanTensor[] = [
    { name: 'blocks.1.attn.wq', shape: [16, 16], data: Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)) },
    { name: 'blocks.1.ffn.w1', shape: [16, 40], data: Float32Array.from({ length: 640 }, (_, i) => Math.cos(i)) },
    { name: 'blocks.1.norm', shape: [16], data: new Float32Array(16).fill(1) }
  ]
  return {
    name: options.vulnerable === true ? 'layer-pool transfer (accept-all)' : 'layer-pool transfer',
    handler: 'layer-pool: /neuroshard/layer-pool/weights/1.0.0 server (manifest + chunks)',
    mode: 'stream',
    concurrency: 8,
    async setup () {
      server = await loopbackHost()
      ws = weightsServer({ registrar: server as any }, {
        chunkSize: CHUNK,
        maxStreamsPerPeer: 64,
        provider: (req: any) => req.modelId === 'tiny' && req.version === 1 && req.start === 1 && req.end === 2 && req.part === 'weights' ? { tensors } : undefined
      } as any)
      await ws.start()
      const d = digestChunks(tensors, { chunkSize: CHUNK })
      root = d.chunksRoot
      count = d.chunkHashes.length
      client = await loopbackHost()
      await client.dial(server.getMultiaddrs()[0])
      await handleAcceptAll(server, ACCEPT_ALL, encodeFields([{ no: 1, wire: 0, value: 1n }, { no: 4, wire: 0, value: 0n }]))
      const req = (chunks: number[], manifest: boolean): Uint8Array => encodeFields([
        { no: 1, wire: 2, value: new TextEncoder().encode('tiny') }, { no: 2, wire: 0, value: 1n }, { no: 3, wire: 0, value: 1n }, { no: 4, wire: 0, value: 2n },
        { no: 6, wire: 2, value: root }, { no: 7, wire: 0, value: manifest ? 1n : 0n }, ...chunks.map(c => ({ no: 8, wire: 0, value: BigInt(c) }))
      ])
      honest.push(req([0, 1], true), req([count - 1], false), req([], true), req([2, 0], false))
    },
    async teardown () { await ws?.stop(); await Promise.all([client?.stop(), server?.stop()]) },
    generate (rng: Rng): FuzzInput {
      const msg = rng.bool(0.8) ? mutateProto(rng, rng.pick(honest)) : mutateAny(rng, honest)
      const { bytes, framing } = frame(rng, msg)
      let mustReject = false
      if (framing === 'ok' || framing === 'twice') {
        try {
          const f = parseFields(msg)
          if (wireMismatch(f, { 1: 2, 2: 0, 3: 0, 4: 0, 5: 0, 6: 2, 7: 0 })) throw new Error('no claim')
          const r = [...f].reverse().find(x => x.no === 6)
          const chunks: bigint[] = []
          for (const x of f) {
            if (x.no !== 8) continue
            if (typeof x.value === 'bigint') chunks.push(x.value)
            // packed (wire type 2): protobuf parsers must accept it, protons-runtime 7 reads it as one varint
            // (the length) and the packed bytes as further fields: no claim
            else throw new Error('no claim')
          }
          // protons-runtime reads at most 5 bytes of a uint32 varint and parses the rest as the next tag
          // (protobuf says: read all 10, keep the low 32 bits): over-long indices get no claim
          if (chunks.some(c => c >= 1n << 32n)) throw new Error('no claim')
          const rootOk = r?.value instanceof Uint8Array && eq(r.value, root)
          const badChunk = chunks.some((c, i) => c >= BigInt(count) || chunks.indexOf(c) !== i)
          mustReject = !rootOk || badChunk
          if (r != null && !(r.value instanceof Uint8Array)) mustReject = false // wire-type mismatch: no claim
        } catch {}
      }
      return { bytes, mustReject, kind: `framing-${framing}` }
    },
    async run (input: FuzzInput, signal: AbortSignal): Promise<Outcome> {
      const { response, ended } = await exchange(client, server.peerId, protocol, input.bytes, signal, 4 << 20)
      const res = firstMessage(response)
      if (res == null) return { accepted: false, error: ended === 'reset' ? 'StreamReset' : 'StreamClosed' }
      const status = varintField(res, 1)
      return status === 1n ? { accepted: true } : { accepted: false, error: `status-${status}` }
    },
    async alive () {
      const { response } = await exchange(client, server.peerId, WEIGHTS_PROTOCOL, concat(Uint8Array.of(honest[0].length), honest[0]), AbortSignal.timeout(20_000))
      const res = firstMessage(response)
      if (res == null || varintField(res, 1) !== 1n) throw new Error('the weights server did not answer an honest request')
    }
  }
}
