/**
 * What one large message costs between two processes: a libp2p stream (TCP + Noise + Yamux, the host profile every
 * node runs, framed by @neuroshard/utils' messageStream) against a raw TCP socket, both on 127.0.0.1 in the same run.
 * The tied training step moves one V × d float32 matrix per step this way (`small`: 49 152 000 bytes, TAKE_TIED).
 *
 * Run: npx -y pnpm@10 exec tsc -b packages/pipeline && (cd packages/pipeline && ../../node_modules/.bin/node dist/bench/stream.js)
 * SIZE=bytes (default 49 152 000), REPEATS=n (default 4); PROFILE=dir writes a V8 CPU profile of both processes there.
 */
import { fork } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { createNeuroShardHost } from '@neuroshard/host'
import { messageStream } from '@neuroshard/utils'
import type { AddressInfo } from 'node:net'

const SIZE = Number(process.env.SIZE ?? 49_152_000)
const REPEATS = Number(process.env.REPEATS ?? 4)
const PROTOCOL = '/neuroshard/bench/stream/1.0.0'
const MAX = 64 * 1024 * 1024
const transports = { quic: false, webrtcDirect: false, circuitRelay: false }

if (process.argv[2] === 'server') {
  const host = await createNeuroShardHost({ listen: ['/ip4/127.0.0.1/tcp/0'], transports })
  await host.handle(PROTOCOL, async stream => {
    const m = messageStream(stream, { maxMessageSize: MAX, timeout: 120_000 })
    for (;;) {
      try {
        await m.readBytes()
      } catch {
        return
      }
      await m.writeBytes(new Uint8Array(1))
    }
  })
  // raw TCP: count the bytes of each message, answer one byte per message
  const raw = createServer(socket => {
    let n = 0
    socket.on('data', d => {
      n += d.length
      if (n >= SIZE) {
        n -= SIZE
        socket.write(new Uint8Array(1))
      }
    })
  })
  await new Promise<void>(resolve => raw.listen(0, '127.0.0.1', resolve))
  process.on('disconnect', () => { process.exit(0) })
  process.send!({ addr: host.getMultiaddrs()[0].toString(), port: (raw.address() as AddressInfo).port })
} else {
  const execArgv = process.env.PROFILE != null ? ['--cpu-prof', '--cpu-prof-dir', process.env.PROFILE] : []
  const child = fork(fileURLToPath(import.meta.url), ['server'], { execArgv })
  const info = await new Promise<{ addr: string, port: number }>(resolve => child.once('message', m => { resolve(m as { addr: string, port: number }) }))
  const before = loadavg().map(x => x.toFixed(2)).join(' ')
  const host = await createNeuroShardHost({ transports })
  const m = messageStream(await host.dialProtocol(multiaddr(info.addr), PROTOCOL), { maxMessageSize: MAX, timeout: 120_000 })
  const payload = new Uint8Array(SIZE).fill(7)
  const viaLibp2p: number[] = []
  const viaTcp: number[] = []
  const socket = connect(info.port, '127.0.0.1')
  await new Promise<void>(resolve => socket.once('connect', () => { resolve() }))
  // alternate, so both see the same load
  for (let i = 0; i < REPEATS; i++) {
    let t0 = performance.now()
    await m.writeBytes(payload)
    await m.readBytes()
    viaLibp2p.push(performance.now() - t0)
    t0 = performance.now()
    socket.write(payload)
    await new Promise(resolve => socket.once('data', resolve))
    viaTcp.push(performance.now() - t0)
  }
  const mbps = (ms: number): string => (SIZE / 1e6 / (ms / 1000)).toFixed(1)
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
  console.log(`one ${SIZE}-byte message between two processes on 127.0.0.1, ${REPEATS} alternating repeats, ${new Date().toISOString()}, node ${process.version}, load average ${before} -> ${loadavg().map(x => x.toFixed(2)).join(' ')}`)
  console.log('\n| path | ms per message (each repeat) | MB/s (median) |\n|---|---|---|')
  console.log(`| libp2p stream (TCP + Noise + Yamux + length prefix) | ${viaLibp2p.map(x => x.toFixed(0)).join(', ')} | ${mbps(median(viaLibp2p))} |`)
  console.log(`| raw TCP socket | ${viaTcp.map(x => x.toFixed(0)).join(', ')} | ${mbps(median(viaTcp))} |`)
  socket.destroy()
  await host.stop()
  child.disconnect()
}
