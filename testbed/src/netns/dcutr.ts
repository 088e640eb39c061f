/**
 * DCUtR scenario: two hosts behind two NAT routers, a public circuit relay, and a public probe namespace.
 *
 *   inet (bridge, the relay at 11.0.0.3, the probe at 11.0.0.4)
 *     ├─ router A (public 11.0.0.1) ── home A 192.168.1.2
 *     └─ router B (public 11.0.0.2) ── home B 192.168.2.2
 *
 * The routers (nftables) masquerade outbound traffic and map their public TCP port 4001 to the home host's 4001, but
 * their forward filter lets an inbound connection in only from an address the home has sent a packet to in the last
 * 2 minutes (address-dependent filtering). So nobody can connect to a home unsolicited (checked from the probe before
 * and after), and A and B cannot connect to each other unless both send first at about the same time: the hole punch
 * that DCUtR synchronises over a relayed connection.
 *
 * Why the static mapping of port 4001: js-libp2p's TCP transport dials from an ephemeral port, not from its listening
 * port (no SO_REUSEPORT), so behind a real masquerading NAT the mapping a punch needs (public port → the listening
 * port) never exists and TCP hole punching cannot succeed; the routers here model the mapping that a NAT with
 * endpoint-independent mapping gives a host that dials from its listening port (as go-libp2p does), and keep the
 * filtering that hole punching has to get through. The public addresses are outside the private ranges because
 * @libp2p/dcutr dials only public addresses (the earlier nat-relay scenario's 10.77.x.x never qualified).
 *
 * Usage (root, nft): node dist/src/netns/dcutr.js [--no-dcutr] [--out <name>] [--wait-s 60]
 * Verdict: pass when B was reached through the relay, a direct A–B connection opened afterwards, and the probe could
 * open no connection to either home. `--no-dcutr` (hosts without DCUtR) is the control: it must fail.
 */
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync, mkdirSync, readFileSync, createWriteStream } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { ChildProcess } from 'node:child_process'

const { values } = parseArgs({ options: { 'no-dcutr': { type: 'boolean', default: false }, out: { type: 'string' }, 'wait-s': { type: 'string', default: '60' } } })
const holePunching = values['no-dcutr'] !== true
const waitS = Number(values['wait-s'])
const here = dirname(fileURLToPath(import.meta.url))
const testbed = join(here, '..', '..', '..')
const run = Math.random().toString(36).slice(2, 6)
const ns = (n: string): string => `nsdc-${run}-${n}`
const NS = ['inet', 'ra', 'rb', 'a', 'b', 'probe'].map(ns)
const logDir = `/tmp/neuroshard-testbed/dcutr-${run}/logs`
mkdirSync(logDir, { recursive: true })

function sh (args: string[], input?: string): string {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', input })
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

const children: ChildProcess[] = []
let tornDown = false
function teardown (): void {
  if (tornDown) return
  tornDown = true
  for (const c of children) { try { c.kill('SIGKILL') } catch {} }
  for (const n of NS) spawnSync('ip', ['netns', 'del', n])
}
process.on('SIGINT', () => { teardown(); process.exit(130) })
process.on('SIGTERM', () => { teardown(); process.exit(143) })

function router (r: string, pub: string, lan: string, home: string, homeIp: string): void {
  sh(['ip', '-n', ns('inet'), 'link', 'add', `v${r}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(r)])
  sh(['ip', '-n', ns('inet'), 'link', 'set', `v${r}`, 'master', 'br0', 'up'])
  sh(['ip', '-n', ns(r), 'addr', 'add', `${pub}/24`, 'dev', 'eth0'])
  sh(['ip', '-n', ns(r), 'link', 'set', 'eth0', 'up'])
  sh(['ip', '-n', ns(r), 'link', 'set', 'lo', 'up'])
  sh(['ip', 'netns', 'exec', ns(r), 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
  sh(['ip', '-n', ns(r), 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(home)])
  sh(['ip', '-n', ns(r), 'addr', 'add', `${lan}/24`, 'dev', 'lan0'])
  sh(['ip', '-n', ns(r), 'link', 'set', 'lan0', 'up'])
  sh(['ip', '-n', ns(home), 'addr', 'add', `${homeIp}/24`, 'dev', 'eth0'])
  sh(['ip', '-n', ns(home), 'link', 'set', 'eth0', 'up'])
  sh(['ip', '-n', ns(home), 'link', 'set', 'lo', 'up'])
  sh(['ip', '-n', ns(home), 'route', 'add', 'default', 'via', lan])
  const rules = [
    'table ip nat {',
    '  chain pre { type nat hook prerouting priority dstnat; iifname "eth0" tcp dport 4001 dnat to ' + homeIp + ':4001; }',
    '  chain post { type nat hook postrouting priority srcnat; oifname "eth0" masquerade; }',
    '}',
    'table ip filter {',
    '  set contacted { type ipv4_addr; flags dynamic,timeout; timeout 2m; }',
    '  chain homefw {',
    '    type filter hook forward priority 0; policy drop;',
    '    iifname "lan0" oifname "eth0" update @contacted { ip daddr } accept',
    '    ct state established,related accept',
    '    iifname "eth0" ct status dnat ip saddr @contacted counter accept',
    '    counter drop',
    '  }',
    '}'
  ].join('\n')
  sh(['ip', 'netns', 'exec', ns(r), 'nft', '-f', '-'], rules)
}

/** A TCP connect from the probe namespace; true if it opened within 3 s */
function probeConnect (ip: string): boolean {
  const js = `const s=require('net').connect({host:'${ip}',port:4001});s.setTimeout(3000);s.on('connect',()=>{console.log('open');process.exit(0)});s.on('timeout',()=>{console.log('timeout');process.exit(1)});s.on('error',e=>{console.log(e.code);process.exit(1)})`
  const r = spawnSync('ip', ['netns', 'exec', ns('probe'), process.execPath, '-e', js], { encoding: 'utf8' })
  return r.status === 0
}

interface Proc { name: string, lines: any[], waiters: Array<() => void> }
function start (name: string, where: string, args: string[]): Proc {
  const p: Proc = { name, lines: [], waiters: [] }
  const child = spawn('ip', ['netns', 'exec', ns(where), process.execPath, join(testbed, 'dist/src/netns/dcutr-node.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: 'libp2p:dcutr*' } })
  children.push(child)
  const log = createWriteStream(join(logDir, `${name}.log`))
  let buf = ''
  child.stdout.on('data', (d: Buffer) => {
    log.write(d)
    buf += d.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try { p.lines.push(JSON.parse(line)) } catch {}
      for (const w of p.waiters.splice(0)) w()
    }
  })
  child.stderr.on('data', (d: Buffer) => log.write(d))
  return p
}
async function waitFor (p: Proc, pred: (l: any) => boolean, ms: number): Promise<any> {
  const deadline = Date.now() + ms
  for (;;) {
    const hit = p.lines.find(pred)
    if (hit != null) return hit
    const left = deadline - Date.now()
    if (left <= 0) return undefined
    await new Promise<void>(resolve => { const t = setTimeout(resolve, left); p.waiters.push(() => { clearTimeout(t); resolve() }) })
  }
}

const loadBefore = readFileSync('/proc/loadavg', 'utf8').trim()
const started = new Date().toISOString()
const failures: string[] = []
const row: Record<string, string> = {}
try {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)')
  if (spawnSync('nft', ['--version']).status !== 0) throw new Error('needs the nft binary')
  for (const n of NS) sh(['ip', 'netns', 'add', n])
  sh(['ip', '-n', ns('inet'), 'link', 'add', 'br0', 'type', 'bridge'])
  sh(['ip', '-n', ns('inet'), 'link', 'set', 'br0', 'up'])
  sh(['ip', '-n', ns('inet'), 'link', 'set', 'lo', 'up'])
  sh(['ip', '-n', ns('inet'), 'addr', 'add', '11.0.0.3/24', 'dev', 'br0'])
  router('ra', '11.0.0.1', '192.168.1.1', 'a', '192.168.1.2')
  router('rb', '11.0.0.2', '192.168.2.1', 'b', '192.168.2.2')
  sh(['ip', '-n', ns('inet'), 'link', 'add', 'vprobe', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns('probe')])
  sh(['ip', '-n', ns('inet'), 'link', 'set', 'vprobe', 'master', 'br0', 'up'])
  sh(['ip', '-n', ns('probe'), 'addr', 'add', '11.0.0.4/24', 'dev', 'eth0'])
  sh(['ip', '-n', ns('probe'), 'link', 'set', 'eth0', 'up'])

  const dc = ['--hole-punching', holePunching ? '1' : '0']
  const relay = start('relay', 'inet', ['--role', 'relay', '--ip', '11.0.0.3', '--announce', '/ip4/11.0.0.3/tcp/4001', ...dc])
  const rr = await waitFor(relay, l => l.event === 'ready', 60_000)
  if (rr == null) throw new Error('the relay did not start')
  const relayAddr = `/ip4/11.0.0.3/tcp/4001/p2p/${String(rr.peerId)}`
  if (!probeConnect('11.0.0.3')) failures.push('probe: cannot connect to the relay (the probe itself is broken)')
  const b = start('b', 'b', ['--role', 'b', '--ip', '192.168.2.2', '--announce', '/ip4/11.0.0.2/tcp/4001', '--relay', relayAddr, ...dc])
  const br = await waitFor(b, l => l.event === 'ready', 60_000)
  const reserved = await waitFor(b, l => l.event === 'reserved', 90_000)
  if (br == null || reserved?.addr == null) throw new Error('B did not reserve a slot on the relay')
  // NAT: unsolicited connections to the homes' public port must not open (the homes contacted only the relay)
  const openBefore = ['11.0.0.1', '11.0.0.2'].filter(ip => probeConnect(ip))
  for (const ip of openBefore) failures.push(`NAT: the probe opened a connection to ${ip}:4001 before any punch`)
  const a = start('a', 'a', ['--role', 'a', '--ip', '192.168.1.2', '--announce', '/ip4/11.0.0.1/tcp/4001', '--relay', relayAddr, '--target', `${relayAddr}/p2p-circuit/p2p/${String(br.peerId)}`, ...dc])
  const relayed = await waitFor(a, l => l.event === 'relayed', 90_000)
  if (relayed == null || relayed.error != null) failures.push(`relay: A did not reach B through the relay (${String(relayed?.error ?? 'no answer')})`)
  row.relayed = relayed?.error == null && relayed != null ? `yes, ${String(relayed.ms)} ms, ${relayed.limited === true ? 'limited' : 'unlimited'}` : 'no'
  const t0 = Date.now()
  const direct = await Promise.race([
    waitFor(a, l => l.event === 'direct', waitS * 1000).then(l => l != null ? { who: 'A', ...l } : undefined),
    waitFor(b, l => l.event === 'direct', waitS * 1000).then(l => l != null ? { who: 'B', ...l } : undefined)
  ])
  // give the other side a moment to log its end of the same connection
  await new Promise(resolve => setTimeout(resolve, 2000))
  const aDirect = a.lines.find(l => l.event === 'direct')
  const bDirect = b.lines.find(l => l.event === 'direct')
  if (direct == null) failures.push(`DCUtR: no direct A–B connection within ${waitS} s of the relayed one`)
  row.direct = direct == null ? 'no' : `yes after ${String(direct.msAfterRelayed ?? Date.now() - t0)} ms`
  row.directA = aDirect != null ? `${String(aDirect.direction)} ${String(aDirect.addr)}` : '–'
  row.directB = bDirect != null ? `${String(bDirect.direction)} ${String(bDirect.addr)}` : '–'
  const openAfter = ['11.0.0.1', '11.0.0.2'].filter(ip => probeConnect(ip))
  for (const ip of openAfter) failures.push(`NAT: the probe opened a connection to ${ip}:4001 after the punch`)
  row.probe = `${openBefore.length === 0 ? 'none' : openBefore.join(', ')} / ${openAfter.length === 0 ? 'none' : openAfter.join(', ')}`
  const counters = ['ra', 'rb'].map(r => {
    const out = spawnSync('ip', ['netns', 'exec', ns(r), 'nft', 'list', 'chain', 'ip', 'filter', 'homefw'], { encoding: 'utf8' }).stdout
    const m = [...out.matchAll(/counter packets (\d+)/g)].map(x => x[1])
    return `${r}: ${m[0] ?? '?'} in / ${m[1] ?? '?'} dropped`
  })
  row.filter = counters.join('; ')
} catch (err: any) {
  failures.push(`setup: ${String(err?.message)}`)
} finally {
  teardown()
}

const name = holePunching ? 'dcutr' : 'dcutr-off'
const verdict = failures.length === 0 ? 'pass' : `FAIL: ${failures.join('; ')}`
const header = `Command: \`cd testbed && ../node_modules/.bin/node dist/src/netns/dcutr.js${holePunching ? '' : ' --no-dcutr'}\`\nDate: ${started}; machine: ${cpus().length} × ${cpus()[0]?.model.split(' ').slice(0, 2).join(' ')}; load before: ${loadBefore}; load after: ${readFileSync('/proc/loadavg', 'utf8').trim()} (loadavg 1 min now ${loadavg()[0].toFixed(2)}); links: veth pairs and a bridge, no delay; logs: ${logDir}\n`
const table = [
  '| scenario | DCUtR | A → B through the relay | direct A–B connection | A\'s direct connection | B\'s direct connection | probe connections to the homes, before / after | router filter: inbound accepted / dropped | verdict |',
  '|---|---|---|---|---|---|---|---|---|',
  `| ${name} | ${holePunching ? 'on' : 'off'} | ${row.relayed ?? '–'} | ${row.direct ?? '–'} | ${row.directA ?? '–'} | ${row.directB ?? '–'} | ${row.probe ?? '–'} | ${row.filter ?? '–'} | ${verdict} |`
].join('\n')
const text = `${header}\n${table}\n`
process.stdout.write(text)
const out = values.out ?? name
writeFileSync(join(testbed, 'results', `${out}.md`), text)
process.exitCode = failures.length === 0 ? 0 : 1
