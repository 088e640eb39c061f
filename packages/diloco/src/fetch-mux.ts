/**
 * One node can be a member of several replica groups (one per slot or span it holds), but a protocol has
 * one handler per node. Every fetch request names its group (specs/diloco §4), so the groups of a node
 * share one handler that passes each request to its group's service; an unknown group is NOT_FOUND.
 */
import { InvalidParametersError } from '@neuroshard/interface'
import { handleRequests } from '@neuroshard/utils'
import { FetchRequest, FetchResponse, FetchStatus } from './messages.js'
import type { HandlerRegistrar } from '@neuroshard/utils'
import type { Connection } from '@libp2p/interface'

type Serve = (req: FetchRequest, connection: Connection) => FetchResponse

interface Mux {
  groups: Map<string, Serve>
  registered?: Promise<() => Promise<void>>
}

const muxes = new WeakMap<HandlerRegistrar, Map<string, Mux>>()

const notFound = (): FetchResponse => ({ status: FetchStatus.NOT_FOUND, data: new Uint8Array(0), total: 0, round: 0, baseHash: new Uint8Array(0), stateHash: new Uint8Array(0) })

/** Serve `group`'s fetch requests on `protocol`; resolves to the function that stops serving it */
/** Largest fetch request read (group name, round, hash, range: well under this) */
export const MAX_FETCH_REQUEST_BYTES = 4096

export async function serveGroupFetch (registrar: HandlerRegistrar, protocol: string, group: string, serve: Serve, options: { timeout: number, maxMessageSize: number }): Promise<() => Promise<void>> {
  let byProtocol = muxes.get(registrar)
  if (byProtocol == null) {
    byProtocol = new Map()
    muxes.set(registrar, byProtocol)
  }
  let mux = byProtocol.get(protocol)
  if (mux == null) {
    mux = { groups: new Map() }
    byProtocol.set(protocol, mux)
  }
  if (mux.groups.has(group)) throw new InvalidParametersError(`this node already serves group ${group}`)
  mux.groups.set(group, serve)
  const m = mux
  m.registered ??= handleRequests(registrar, protocol, async (req: FetchRequest, ctx) => {
    const handler = m.groups.get(req.group)
    return handler == null ? notFound() : handler(req, ctx.connection)
  }, {
    requestCodec: FetchRequest,
    responseCodec: FetchResponse,
    // requests are a few dozen bytes; responses carry ranges of payloads and state (up to fetchRangeBytes)
    maxMessageSize: MAX_FETCH_REQUEST_BYTES,
    maxOutgoingMessageSize: options.maxMessageSize,
    timeout: options.timeout
  })
  try {
    await m.registered
  } catch (err) {
    m.groups.delete(group)
    if (m.groups.size === 0) { byProtocol.delete(protocol) }
    throw err
  }
  return async () => {
    if (m.groups.get(group) !== serve) return
    m.groups.delete(group)
    if (m.groups.size > 0) return
    byProtocol.delete(protocol)
    const unhandle = await m.registered
    await unhandle?.()
  }
}
