/**
 * Pipeline: the `/neuroshard/pipeline/1.0.0` request server and the `/neuroshard/pipeline/session/1.0.0`
 * session-stream server of a real Worker (blocks of the tiny model in onnxruntime) that forwards to a real
 * Validator, all on libp2p hosts over loopback.
 *
 * Oracle: a success answer (empty `error`) is wrong for a request whose activation frame was replaced by
 * random bytes, carries a non-finite value, or whose kind is unspecified.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { buildModelGraph, initParameter, modelParameters, preset } from '@neuroshard/model'
import { createPipelineStage, encodeActivation, pipeline, staticRouter, PIPELINE_PROTOCOL, PIPELINE_SESSION_PROTOCOL } from '@neuroshard/pipeline'
import type { PipelineStage } from '@neuroshard/pipeline'
import { float32 } from '@neuroshard/runtime'
import type { NeuroShardHost } from '@neuroshard/host'
import { handleAcceptAll } from '../accept-all.js'
import { frame, mutateAny, mutateProto, concat } from '../mutate.js'
import { encodeFields } from '../proto.js'
import type { Field } from '../proto.js'
import { exchange, frames, loopbackHost } from '../net.js'
import { parseFields } from '../proto.js'
import type { FuzzInput, FuzzTarget, Outcome } from '../engine.js'
import type { Rng } from '../rng.js'

const ACCEPT_ALL = '/fuzz/accept-all/pipeline'
void buildModelGraph

export function pipelineTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  const config = preset('tiny')
  const L = config.nLayers
  const d = config.dModel
  let worker: NeuroShardHost
  let validator: NeuroShardHost
  let client: NeuroShardHost
  const stages: PipelineStage[] = []
  let route: Field[] = []
  let hidden: Uint8Array
  const request = (fields: { kind?: bigint, session?: Uint8Array, position?: bigint, hidden?: Uint8Array }): Uint8Array => encodeFields([
    { no: 1, wire: 0, value: fields.kind ?? 1n },
    { no: 2, wire: 2, value: fields.session ?? new Uint8Array(16).fill(7) },
    { no: 3, wire: 0, value: fields.position ?? 0n },
    { no: 4, wire: 0, value: 1n },
    ...route,
    { no: 6, wire: 2, value: fields.hidden ?? hidden }
  ])
  let honest: Uint8Array[] = []
  return {
    name: options.vulnerable === true ? 'pipeline (accept-all)' : 'pipeline',
    handler: 'pipeline: /neuroshard/pipeline/1.0.0 and /session/1.0.0 servers on a Worker (tiny model, onnxruntime)',
    mode: 'stream',
    concurrency: 4,
    timeoutMs: 60_000,
    async setup () {
      const params = new Map(modelParameters(config).map(p => [p.name, initParameter(config, p, 3)]))
      stages.push(await createPipelineStage({ config, start: 1, end: L + 1, parameters: params, intraOpNumThreads: 1 }))
      stages.push(await createPipelineStage({ config, start: L + 1, end: L + 2, parameters: params, intraOpNumThreads: 1 }))
      worker = await loopbackHost({ pipeline: pipeline({ stages: [stages[0]], maxMessageSize: 256 * 1024, router: staticRouter([]) } as any) })
      validator = await loopbackHost({ pipeline: pipeline({ stages: [stages[1]], router: staticRouter([]) } as any) })
      client = await loopbackHost()
      await client.dial(worker.getMultiaddrs()[0])
      await worker.dial(validator.getMultiaddrs()[0])
      const hop = (peer: string, start: number, end: number): Field => ({ no: 5, wire: 2, value: encodeFields([{ no: 1, wire: 2, value: peerIdFromString(peer).toMultihash().bytes }, { no: 2, wire: 0, value: BigInt(start) }, { no: 3, wire: 0, value: BigInt(end) }]) })
      route = [hop(client.peerId.toString(), 0, 1), hop(worker.peerId.toString(), 1, L + 1), hop(validator.peerId.toString(), L + 1, L + 2)]
      hidden = encodeActivation(float32(new Float32Array(3 * d).map((_, i) => Math.sin(i) * 0.1), [1, 3, d]), false)
      await handleAcceptAll(worker, ACCEPT_ALL, new Uint8Array(0))
      honest = [request({}), request({ session: new Uint8Array(16).fill(9) }), request({ kind: 8n }), request({ position: 3n, hidden: encodeActivation(float32(new Float32Array(d).fill(0.2), [1, 1, d]), false) })]
    },
    async teardown () {
      await Promise.all([client?.stop(), worker?.stop(), validator?.stop()])
      await Promise.all(stages.map(async s => { await s.close() }))
    },
    generate (rng: Rng): FuzzInput {
      const session = rng.bool(0.3)
      const r = rng.next()
      let msg: Uint8Array
      let mustReject = false
      let kind: string
      if (r < 0.15) {
        msg = request({ hidden: rng.bytes(rng.bool() ? hidden.length : rng.len(4096)), session: rng.bytes(16) }); mustReject = true; kind = 'random-activation'
      } else if (r < 0.25) {
        const h = Uint8Array.from(hidden)
        // a float32 somewhere in the data part (the frame header is a few dozen bytes at most)
        const at = h.length - 4 * (1 + rng.int(3 * d))
        new DataView(h.buffer).setUint32(at, rng.pick([0x7fc00000, 0x7f800000, 0xff800000]), true)
        msg = request({ hidden: h, session: rng.bytes(16) }); mustReject = true; kind = 'non-finite'
      } else if (r < 0.3) {
        msg = request({ kind: 0n, session: rng.bytes(16) }); mustReject = true; kind = 'kind-unspecified'
      } else {
        msg = rng.bool(0.7) ? mutateProto(rng, rng.pick(honest)) : mutateAny(rng, honest); kind = 'mutated'
      }
      const framed = frame(rng, msg, 0.15)
      if (framed.framing !== 'ok' && framed.framing !== 'twice') mustReject = mustReject && framed.framing === 'ok'
      // first byte: which server (request or session stream)
      return { bytes: concat(Uint8Array.of(session ? 1 : 0), framed.bytes), mustReject, kind: `${session ? 'session' : 'request'}:${kind}:${framed.framing}` }
    },
    async run (input: FuzzInput, signal: AbortSignal): Promise<Outcome> {
      const protocol = options.vulnerable === true ? ACCEPT_ALL : input.bytes[0] === 1 ? PIPELINE_SESSION_PROTOCOL : PIPELINE_PROTOCOL
      const { response, ended } = await exchange(client, worker.peerId, protocol, input.bytes.subarray(1), signal, 8 << 20)
      const f = frames(response)[0]
      if (f == null) return { accepted: false, error: ended === 'reset' ? 'StreamReset' : 'StreamClosed' }
      let error = ''
      try { for (const x of parseFields(f)) if (x.no === 1 && x.value instanceof Uint8Array) error = new TextDecoder().decode(x.value) } catch { error = 'unparseable-response' }
      return error === '' ? { accepted: true } : { accepted: false, error }
    },
    async alive () {
      const { response } = await exchange(client, worker.peerId, PIPELINE_PROTOCOL, concat(Uint8Array.from([0x80 | (honest[1].length & 0x7f), honest[1].length >> 7]), honest[1]), AbortSignal.timeout(60_000))
      const f = frames(response)[0]
      if (f == null) throw new Error('the Worker did not answer an honest INFER request')
      for (const x of parseFields(f)) if (x.no === 1 && x.value instanceof Uint8Array && x.value.length > 0) throw new Error(`honest INFER refused: ${new TextDecoder().decode(x.value)}`)
    }
  }
}
