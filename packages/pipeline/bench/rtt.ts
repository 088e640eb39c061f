/**
 * What one small message costs (issues 10/12): round trips of a 1 KiB frame, echoed, over
 *  - a libp2p stream between two hosts of the NeuroShard host profile (TCP + Noise + Yamux, framed by
 *    @neuroshard/utils' messageStream as the pipeline frames its messages), and
 *  - a raw TCP socket (node:net, a 4-byte length prefix): the kernel and Node's socket layer alone,
 * with both ends in this process (as the devnet's nodes) and in two processes (as separate nodes), the four
 * cases in blocks that take turns (BLOCKS rounds × ROUND_TRIPS each), so that load changes hit all alike.
 *
 * Per case: median and p99 wall µs per round trip over the blocks, CPU µs per round trip (both ends, all threads
 * of the process(es) involved), and, from a separate counting pass (async_hooks, not timed), what one round trip
 * creates in this process: socket writes and reads ('data' events), setImmediate / nextTick / timer callbacks
 * (in the two-process cases the server's side is not counted: halve the one-process counts for one end). With PROFILE=1 the one-process
 * libp2p case runs once more under the V8 sampling profiler (100 µs) and its self time per round trip is split by
 * module: Noise (and its ChaCha20-Poly1305), yamux, @libp2p/tcp, libp2p utils and buffer lists, Node's socket
 * streams, event dispatch, GC, the framing, the rest.
 *
 * Run: npx -y pnpm@10 exec tsc -b packages/pipeline && (cd packages/pipeline && ../../node_modules/.bin/node dist/bench/rtt.js)
 * Env: SIZE (bytes, default 1024), ROUND_TRIPS (per block, default 500), BLOCKS (default 8), PROFILE=1, IDLE_MS (default 0):
 * wait that long (a timer) before each timed round trip, so that both ends sit idle between messages as a pipeline hop does
 * between tokens (wall times and block means cover the round trips only; the CPU column also holds each wait's timer).
 */
import { createHook } from 'node:async_hooks'
import { fork } from 'node:child_process'
import inspector from 'node:inspector/promises'
import { createServer, connect, Socket } from 'node:net'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { createNeuroShardHost } from '@neuroshard/host'
import { messageStream } from '@neuroshard/utils'
import type { AddressInfo, Server } from 'node:net'

const SIZE = Number(process.env.SIZE ?? 1024)
const ROUND_TRIPS = Number(process.env.ROUND_TRIPS ?? 500)
const BLOCKS = Number(process.env.BLOCKS ?? 8)
const IDLE_MS = Number(process.env.IDLE_MS ?? 0)
const idle = async (): Promise<void> => { if (IDLE_MS > 0) await new Promise(resolve => setTimeout(resolve, IDLE_MS)) }
const PROTOCOL = '/neuroshard/bench/rtt/1.0.0'
const transports = { quic: false, webrtcDirect: false, circuitRelay: false }
const hostInit = { listen: ['/ip4/127.0.0.1/tcp/0'], transports, mdns: false }

type Host = Awaited<ReturnType<typeof createNeuroShardHost>>

/** An echo server of both kinds: a libp2p host answering PROTOCOL and a raw TCP server */
async function echoServers (): Promise<{ host: Host, raw: Server, addr: string, port: number }> {
  const host = await createNeuroShardHost(hostInit)
  await host.handle(PROTOCOL, async stream => {
    const m = messageStream(stream, { maxMessageSize: 1 << 20, timeout: 600_000 })
    for (;;) {
      let msg: Uint8Array
      try { msg = await m.readBytes() } catch { return }
      await m.writeBytes(msg)
    }
  })
  const raw = createServer(socket => { rawEcho(socket) })
  await new Promise<void>(resolve => raw.listen(0, '127.0.0.1', resolve))
  return { host, raw, addr: host.getMultiaddrs()[0].toString(), port: (raw.address() as AddressInfo).port }
}

/** Echo length-prefixed frames back on a raw socket (one write per frame) */
function rawEcho (socket: Socket): void {
  socket.setNoDelay(true)
  let buf: Buffer = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d])
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0)
      if (buf.length < 4 + len) break
      socket.write(buf.subarray(0, 4 + len))
      buf = buf.subarray(4 + len)
    }
  })
  socket.on('error', () => {})
}

/** A client of a raw echo: one round trip per call */
async function rawClient (port: number): Promise<{ roundTrip(frame: Uint8Array): Promise<void>, close(): void }> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  await new Promise<void>(resolve => socket.once('connect', () => { resolve() }))
  let want = 0
  let got = 0
  let done: (() => void) | undefined
  socket.on('data', (d: Buffer) => {
    got += d.length
    if (got >= want && done != null) { const r = done; done = undefined; got -= want; r() }
  })
  return {
    async roundTrip (frame) {
      const out = Buffer.allocUnsafe(4 + frame.length)
      out.writeUInt32BE(frame.length, 0)
      out.set(frame, 4)
      want = out.length
      await new Promise<void>(resolve => { done = resolve; socket.write(out) })
    },
    close () { socket.destroy() }
  }
}

async function libp2pClient (host: Host, addr: string): Promise<{ roundTrip(frame: Uint8Array): Promise<void>, close(): void }> {
  const m = messageStream(await host.dialProtocol(multiaddr(addr), PROTOCOL), { maxMessageSize: 1 << 20, timeout: 600_000 })
  return {
    async roundTrip (frame) {
      await m.writeBytes(frame)
      await m.readBytes()
    },
    close () {}
  }
}

const cpuNow = (): number => { const c = process.cpuUsage(); return c.user + c.system }

if (process.argv[2] === 'server') {
  const s = await echoServers()
  process.on('message', (msg: any) => {
    if (msg === 'cpu') process.send!({ cpu: cpuNow() })
  })
  process.on('disconnect', () => { process.exit(0) })
  process.send!({ addr: s.addr, port: s.port })
} else {
  const loadBefore = loadavg().map(x => x.toFixed(2)).join(' ')
  const started = new Date().toISOString()
  // two processes: an echo server in a child
  const child = fork(fileURLToPath(import.meta.url), ['server'])
  const remote = await new Promise<{ addr: string, port: number }>(resolve => child.once('message', m => { resolve(m as { addr: string, port: number }) }))
  const childCpu = async (): Promise<number> => await new Promise(resolve => {
    child.once('message', (m: any) => { resolve(m.cpu) })
    child.send('cpu')
  })
  // one process: the echo servers in this process
  const local = await echoServers()
  const client = await createNeuroShardHost(hostInit)
  const cases = {
    'libp2p stream, one process': await libp2pClient(client, local.addr),
    'libp2p stream, two processes': await libp2pClient(client, remote.addr),
    'raw TCP socket, one process': await rawClient(local.port),
    'raw TCP socket, two processes': await rawClient(remote.port)
  }
  type Name = keyof typeof cases
  const names = Object.keys(cases) as Name[]
  const frame = new Uint8Array(SIZE).fill(7)
  // warm-up
  for (const name of names) for (let i = 0; i < 200; i++) await cases[name].roundTrip(frame)
  const wall = new Map<Name, number[]>(names.map(n => [n, []]))
  const blockUs = new Map<Name, number[]>(names.map(n => [n, []]))
  const cpu = new Map<Name, number>(names.map(n => [n, 0]))
  for (let b = 0; b < BLOCKS; b++) {
    // rotate the order from block to block
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + b) % names.length]
      const two = name.endsWith('two processes')
      const c0 = cpuNow(); const r0 = two ? await childCpu() : 0
      let busy = 0
      for (let i = 0; i < ROUND_TRIPS; i++) {
        await idle()
        const t = performance.now()
        await cases[name].roundTrip(frame)
        const us = (performance.now() - t) * 1000
        busy += us
        wall.get(name)!.push(us)
      }
      blockUs.get(name)!.push(busy / ROUND_TRIPS)
      const r1 = two ? await childCpu() : 0
      cpu.set(name, cpu.get(name)! + (cpuNow() - c0) + (r1 - r0))
    }
  }
  // counting pass: what one round trip creates (async_hooks slows everything: not timed)
  const counted = new Map<Name, Map<string, number>>()
  const COUNT = 200
  for (const name of names) {
    const seen = new Map<string, number>()
    const hook = createHook({ init (_id, type) { if (type !== 'PROMISE') seen.set(type, (seen.get(type) ?? 0) + 1) } })
    // socket writes and reads ('data' events) of every socket of this process
    const proto = Socket.prototype as any
    const write = proto.write
    const emit = proto.emit
    proto.write = function (...args: any[]) { seen.set('write', (seen.get('write') ?? 0) + 1); return write.apply(this, args) }
    proto.emit = function (ev: string, ...args: any[]) { if (ev === 'data') seen.set('read', (seen.get('read') ?? 0) + 1); return emit.call(this, ev, ...args) }
    hook.enable()
    for (let i = 0; i < COUNT; i++) await cases[name].roundTrip(frame)
    hook.disable()
    proto.write = write
    proto.emit = emit
    counted.set(name, seen)
  }
  const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))] }
  const per = (name: Name, type: string): string => ((counted.get(name)!.get(type) ?? 0) / COUNT).toFixed(2)
  console.log(`one ${SIZE}-byte frame echoed, ${started}, node ${process.version}, load ${loadBefore} -> ${loadavg().map(x => x.toFixed(2)).join(' ')}; ${BLOCKS} blocks × ${ROUND_TRIPS} round trips per case, the cases taking turns${IDLE_MS > 0 ? `, each round trip after ${IDLE_MS} ms idle` : ''}`)
  console.log('\n| case | µs per round trip (median of all) | (p99) | block means (min–max) | CPU µs per round trip (both ends) | socket writes | socket reads | setImmediate | nextTick | timers (this process) |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (const name of names) {
    const w = wall.get(name)!
    const bl = blockUs.get(name)!
    console.log(`| ${name} | ${pct(w, 50).toFixed(0)} | ${pct(w, 99).toFixed(0)} | ${Math.min(...bl).toFixed(0)}–${Math.max(...bl).toFixed(0)} | ${(cpu.get(name)! / (BLOCKS * ROUND_TRIPS)).toFixed(0)} | ${per(name, 'write')} | ${per(name, 'read')} | ${per(name, 'Immediate')} | ${per(name, 'TickObject')} | ${per(name, 'Timeout')} |`)
  }
  if (process.env.PROFILE != null) {
    const name: Name = 'libp2p stream, one process'
    const session = new inspector.Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 100 })
    await session.post('Profiler.start')
    const N = BLOCKS * ROUND_TRIPS
    const t0 = performance.now()
    for (let i = 0; i < N; i++) await cases[name].roundTrip(frame)
    const ms = performance.now() - t0
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    // self time per node = its samples × the mean interval
    const dt = (profile.endTime - profile.startTime) / profile.samples!.length
    const count = new Map<number, number>()
    for (const id of profile.samples!) count.set(id, (count.get(id) ?? 0) + 1)
    const groups = new Map<string, number>()
    const classify = (url: string, fn: string): string => {
      if (fn === '(idle)') return 'idle (waiting for the socket)'
      if (fn === '(garbage collector)') return 'garbage collection'
      if (fn === '(program)') return 'native, unattributed (V8/libuv)'
      if (/libp2p-noise|as-chacha20poly1305|as-sha256/.test(url)) return 'Noise (framing, ChaCha20-Poly1305)'
      if (/libp2p-yamux/.test(url)) return 'yamux'
      if (/@libp2p\/tcp/.test(url)) return '@libp2p/tcp'
      if (/@libp2p\/utils|uint8arraylist|it-[a-z-]+\/|p-queue|p-defer|race-signal|uint8arrays/.test(url)) return 'libp2p utils, buffer lists, queues'
      if (/main-event|event_target|internal\/events|node:events|^events$/.test(url) || fn === 'dispatchEvent') return 'event dispatch'
      if (/@libp2p\/|libp2p\/dist|@chainsafe/.test(url)) return 'other libp2p'
      if (/internal\/(streams|net|stream_base_commons)|node:net|^net$/.test(url)) return 'Node socket streams'
      if (/neuroshard\/utils|packages\/utils/.test(url)) return '@neuroshard/utils framing'
      if (/internal\/(timers|process\/task_queues)/.test(url)) return 'timers, microtask/nextTick queues'
      if (/rtt\.js/.test(url)) return 'this benchmark'
      return url === '' ? `native: ${fn}` : 'other JS'
    }
    for (const node of profile.nodes) {
      const self = (count.get(node.id) ?? 0) * dt
      if (self === 0) continue
      const g = classify(node.callFrame.url, node.callFrame.functionName)
      groups.set(g, (groups.get(g) ?? 0) + self)
    }
    // small native entries into one row
    for (const [g, v] of [...groups]) if (g.startsWith('native: ') && v / N < 2) { groups.delete(g); groups.set('native, other', (groups.get('native, other') ?? 0) + v) }
    console.log(`\nprofile of '${name}' (${N} round trips, ${(ms * 1000 / N).toFixed(0)} µs each under the profiler; V8 sampling every 100 µs, self time by module):\n`)
    console.log('| module | µs per round trip | share of busy |\n|---|---|---|')
    const busy = [...groups].filter(([g]) => !g.startsWith('idle')).reduce((s, [, v]) => s + v, 0)
    for (const [g, v] of [...groups].sort((a, b) => b[1] - a[1])) console.log(`| ${g} | ${(v / N).toFixed(1)} | ${g.startsWith('idle') ? '' : `${(100 * v / busy).toFixed(0)} %`} |`)
    if (process.env.PROFILE === 'top') {
      const fns = new Map<string, number>()
      for (const node of profile.nodes) {
        const self = (count.get(node.id) ?? 0) * dt
        const k = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/.*node_modules\//, '')}:${node.callFrame.lineNumber}`
        fns.set(k, (fns.get(k) ?? 0) + self)
      }
      for (const [k, v] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${(v / N).toFixed(1).padStart(7)} µs  ${k}`)
    }
  }
  for (const c of Object.values(cases)) c.close()
  await client.stop()
  await local.host.stop()
  local.raw.close()
  child.disconnect()
  process.exit(0)
}
