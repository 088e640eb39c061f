/** What this machine offers for the testbed: root, network namespaces, TAP, Python, tbf, netem */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface TestbedEnvironment {
  root: boolean
  netns: boolean
  tun: boolean
  python: boolean
  tbf: boolean
  netem: boolean
  /** why the testbed cannot run here (undefined: it can) */
  missing?: string
}

function ok (cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 }).status === 0
}

export function probeEnvironment (): TestbedEnvironment {
  const env: TestbedEnvironment = { root: process.getuid?.() === 0, netns: false, tun: existsSync('/dev/net/tun'), python: ok('python3', ['-c', 'import fcntl, selectors']), tbf: false, netem: false }
  if (env.root) {
    const ns = `nstb-probe-${process.pid}`
    env.netns = ok('ip', ['netns', 'add', ns])
    if (env.netns) {
      ok('ip', ['-n', ns, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1'])
      env.tbf = ok('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'p0', 'root', 'tbf', 'rate', '20mbit', 'burst', '32kbit', 'latency', '400ms'])
      env.netem = ok('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'p1', 'root', 'netem', 'delay', '10ms'])
      ok('ip', ['netns', 'del', ns])
    }
  }
  if (!env.root) env.missing = 'not root'
  else if (!env.netns) env.missing = '`ip netns add` fails'
  else if (!env.netem && !(env.tun && env.python)) env.missing = 'no sch_netem, and no /dev/net/tun + python3 for the user-space link emulator'
  return env
}

/** Deletes what an interrupted run left behind (namespaces and links named nstb-* / tb*) */
export function cleanupStale (): string[] {
  const removed: string[] = []
  // runs whose runner process is alive (runner.pid in /tmp/neuroshard-testbed/<scenario>-<run>/) are kept
  const live = new Set<string>()
  try {
    for (const d of readdirSync('/tmp/neuroshard-testbed')) {
      try {
        process.kill(Number(readFileSync(`/tmp/neuroshard-testbed/${d}/runner.pid`, 'utf8')), 0)
        live.add(d.slice(d.lastIndexOf('-') + 1))
      } catch {}
    }
  } catch {}
  const runOf = (name: string): string | undefined => /^nstb-([a-z0-9]{4})-/.exec(name)?.[1] ?? /^tb([a-z0-9]{4})[bvtrp]/.exec(name)?.[1]
  const list = (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').split('\n').map(l => l.split(' ')[0]).filter(n => n.startsWith('nstb-'))
  for (const ns of list) { if (live.has(runOf(ns) ?? '')) continue; if (ok('ip', ['netns', 'del', ns])) removed.push(ns) }
  const links = (spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '').split('\n').map(l => l.split(':')[1]?.trim().split('@')[0]).filter((n): n is string => n != null && /^tb[a-z0-9]{4}[bvtrp]/.test(n))
  for (const l of links) { if (live.has(runOf(l) ?? '')) continue; if (ok('ip', ['link', 'del', l])) removed.push(l) }
  return removed
}

export function sh (args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 })
}

/** This package's directory (from src/netns under vitest, or dist/src/netns when built) */
export function testbedDir (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg) && readFileSync(pkg, 'utf8').includes('"@neuroshard/testbed"')) return dir
    dir = dirname(dir)
  }
  throw new Error('cannot find the testbed package directory')
}
