/**
 * One host of the DCUtR scenario (`dcutr.ts`), a NeuroShard host (TCP + circuit relay) in its own network namespace.
 *
 *   --role relay  a public host running the circuit relay v2 server (`relayServer`)
 *   --role b      behind NAT: connects to the relay, reserves a slot (listens on /p2p-circuit), announces its
 *                 router's public address
 *   --role a      behind NAT: connects to the relay, then dials B through it (`--target`, a /p2p-circuit address)
 *
 * Prints one JSON line per event: `ready` (peer id), `reserved` (B: its relayed address), `connection` (every
 * connection to or from the other home's host: relayed or direct, direction), `direct` (the first direct connection
 * to that host, with the ms since the relayed one opened). `--hole-punching 0` runs the host without DCUtR.
 */
import { parseArgs } from 'node:util'
import { multiaddr } from '@multiformats/multiaddr'
import { createNeuroShardHost } from '@neuroshard/host'

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    ip: { type: 'string' },
    announce: { type: 'string' },
    relay: { type: 'string' },
    target: { type: 'string' },
    'hole-punching': { type: 'string', default: '1' }
  }
})
const role = values.role
if (role !== 'relay' && role !== 'a' && role !== 'b') throw new Error('--role relay|a|b')
const emit = (event: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(JSON.stringify({ event, t: Date.now(), ...fields }) + '\n')
}

const host = await createNeuroShardHost({
  listen: [`/ip4/${values.ip}/tcp/4001`, ...(role === 'b' ? ['/p2p-circuit'] : [])],
  ...(values.announce != null ? { announce: [values.announce] } : {}),
  transports: { quic: false, webrtcDirect: false, circuitRelay: true },
  relayServer: role === 'relay',
  holePunching: values['hole-punching'] !== '0'
})
emit('ready', { peerId: host.peerId.toString(), addresses: host.getMultiaddrs().map(String) })

const relayPeer = values.relay?.split('/p2p/')[1]
let relayedAt: number | undefined
let direct = false
host.addEventListener('connection:open', (evt) => {
  const c = evt.detail
  const peer = c.remotePeer.toString()
  if (peer === relayPeer) return
  const relayed = c.remoteAddr.toString().includes('/p2p-circuit')
  if (relayed && relayedAt == null) relayedAt = Date.now()
  emit('connection', { peer, addr: c.remoteAddr.toString(), direction: c.direction, relayed, limited: c.limits != null })
  if (!relayed && !direct) {
    direct = true
    emit('direct', { peer, addr: c.remoteAddr.toString(), direction: c.direction, msAfterRelayed: relayedAt != null ? Date.now() - relayedAt : null })
  }
})
host.addEventListener('connection:close', (evt) => {
  const c = evt.detail
  if (c.remotePeer.toString() === relayPeer) return
  emit('connection-closed', { peer: c.remotePeer.toString(), addr: c.remoteAddr.toString() })
})

if (values.relay != null) {
  await host.dial(multiaddr(values.relay), { signal: AbortSignal.timeout(30_000) })
  emit('relay-connected')
}
if (role === 'b') {
  // the reservation shows as a /p2p-circuit listen address
  const deadline = Date.now() + 60_000
  let addr: string | undefined
  while (addr == null && Date.now() < deadline) {
    addr = host.getMultiaddrs().map(String).find(a => a.includes('/p2p-circuit'))
    if (addr == null) {
      // with `announce` the address manager shows the announced addresses only: ask the transport's listeners
      addr = (host as any).components?.transportManager?.getAddrs?.().map(String).find((a: string) => a.includes('/p2p-circuit'))
    }
    if (addr == null) await new Promise(resolve => setTimeout(resolve, 250))
  }
  emit('reserved', { addr: addr ?? null })
}
if (role === 'a' && values.target != null) {
  const t0 = Date.now()
  try {
    const c = await host.dial(multiaddr(values.target), { signal: AbortSignal.timeout(30_000) })
    emit('relayed', { peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), ms: Date.now() - t0, limited: c.limits != null })
  } catch (err: any) {
    emit('relayed', { error: `${String(err?.name)}: ${String(err?.message)}` })
  }
}

const stop = async (): Promise<void> => {
  await host.stop()
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.on('SIGINT', () => { void stop() })
