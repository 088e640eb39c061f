import { parseArgs } from 'node:util'
import { InvalidParametersError } from '@neuroshard/interface'
import { DEFAULT_DEVNET_NODES, MAX_DEVNET_NODES } from '../constants.js'
import { startDevnet, transportName } from '../devnet.js'
import type { Devnet, DevnetSnapshot } from '../devnet.js'

/** Usage text of `neuroshard devnet` */
export const DEVNET_USAGE = `Usage: neuroshard hosts [options]

Starts N NeuroShard hosts on 127.0.0.1 that find each other through the Kad-DHT and gossip heartbeats,
shows a live peer table and stops cleanly on Ctrl-C.

Options:
  -n, --nodes <n>       number of hosts (1-${MAX_DEVNET_NODES}, default ${DEFAULT_DEVNET_NODES})
  -d, --data-dir <dir>  keep host identities in <dir>/node-<i>/identity.key (default: ephemeral)
      --json            print JSON lines (also the default when stdout is not a terminal)
  -h, --help            show this help
`

/** Where the command writes; injectable for tests */
export interface CommandIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream
  /** Resolves when the process is asked to stop (SIGINT / SIGTERM) */
  stopSignal: Promise<string>
}

/**
 * Runs `neuroshard devnet` until `io.stopSignal` resolves. Returns the process exit code.
 */
export async function devnetCommand (argv: string[], io: CommandIO): Promise<number> {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string', short: 'n' },
        'data-dir': { type: 'string', short: 'd' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      },
      strict: true,
      allowPositionals: false
    }))
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${DEVNET_USAGE}`)
    return 2
  }
  if (values.help === true) {
    io.stdout.write(DEVNET_USAGE)
    return 0
  }
  const nodes = values.nodes != null ? Number(values.nodes) : DEFAULT_DEVNET_NODES
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_DEVNET_NODES) {
    io.stderr.write(`--nodes must be an integer from 1 to ${MAX_DEVNET_NODES}\n`)
    return 2
  }
  const json = values.json === true || io.stdout.isTTY !== true
  const started = Date.now()
  const emit = (obj: Record<string, unknown>): void => { io.stdout.write(JSON.stringify(obj) + '\n') }

  let devnet: Devnet
  // 'started' is the first JSON line; updates from the start-up itself follow it
  let announced = false
  try {
    devnet = await startDevnet({
      nodes,
      ...(values['data-dir'] != null ? { dataDir: values['data-dir'] } : {}),
      onUpdate: json ? (snapshot) => { if (announced) emit({ event: 'update', ...snapshot }) } : undefined
    })
  } catch (err: any) {
    io.stderr.write(`devnet failed to start: ${err.message}\n`)
    return err instanceof InvalidParametersError ? 2 : 1
  }

  if (json) {
    emit({ event: 'started', nodes, peers: devnet.hosts.map(h => h.peerId.toString()) })
    announced = true
    emit({ event: 'update', ...devnet.snapshot() })
  }
  let convergedLine = ''
  devnet.addEventListener('devnet:converged', () => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    convergedLine = `devnet converged: ${nodes} nodes, every node connected to every other and heard every heartbeat (${seconds} s)`
    if (json) {
      emit({ event: 'converged', nodes, ms: Date.now() - started })
    } else {
      render(io, devnet.snapshot(), convergedLine)
    }
  })

  let refresh: ReturnType<typeof setInterval> | undefined
  if (!json) {
    render(io, devnet.snapshot(), convergedLine)
    refresh = setInterval(() => { render(io, devnet.snapshot(), convergedLine) }, 1000)
  }

  const signal = await io.stopSignal
  if (refresh != null) clearInterval(refresh)
  if (!json) io.stdout.write(`\n${signal}: stopping ${nodes} hosts…\n`)
  await devnet.stop()
  if (json) {
    emit({ event: 'stopped', signal })
  } else {
    io.stdout.write('stopped\n')
  }
  return 0
}

/** Draws the peer table in place (clear screen, home cursor) */
function render (io: CommandIO, snapshot: DevnetSnapshot, convergedLine: string): void {
  io.stdout.write('\x1b[H\x1b[2J' + formatPeerTable(snapshot) + '\n' +
    (convergedLine !== '' ? convergedLine : 'waiting for convergence…') + '\nCtrl-C to stop\n')
}

/** The peer table as text, one row per host */
export function formatPeerTable (snapshot: DevnetSnapshot): string {
  const header = ['#', 'peer', 'listening', 'conns', 'via', 'dht', 'mesh', 'heartbeats', 'last beat']
  const rows = snapshot.nodes.map(n => {
    const via = new Map<string, number>()
    for (const c of n.connections) via.set(c.transport, (via.get(c.transport) ?? 0) + 1)
    const listening = [...new Set(n.addresses.map(a => `${transportName(a)}:${portOf(a)}`))].join(' ')
    const heard = Object.keys(n.heartbeats).length
    const age = n.lastHeartbeatAt != null ? `${((snapshot.time - n.lastHeartbeatAt) / 1000).toFixed(1)}s ago` : '-'
    return [
      String(n.index),
      `…${n.shortId}`,
      listening,
      String(n.connections.length),
      [...via].map(([t, k]) => `${t}×${k}`).join(' ') || '-',
      String(n.routingTableSize),
      String(n.meshPeers),
      `${heard}/${snapshot.nodes.length - 1}`,
      age
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  return [
    `NeuroShard devnet: ${snapshot.nodes.length} nodes, ${snapshot.converged ? 'converged' : 'converging'}`,
    '',
    line(header),
    line(widths.map(w => '-'.repeat(w))),
    ...rows.map(line)
  ].join('\n')
}

function portOf (addr: string): string {
  const m = addr.match(/\/(?:tcp|udp)\/(\d+)/)
  return m?.[1] ?? '?'
}
