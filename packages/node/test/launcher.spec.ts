/**
 * The `neuroshard` bin applies the allocator settings itself (src/launcher.ts, issue #15): real processes,
 * checked from outside through /proc (the process's environment and command line as the kernel has them).
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchPlan, runsOnGlibc } from '../src/launcher.js'
import { testCorpus } from './network/corpus.js'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'bin.js')
const SECRET = 'sk-launcher-test-7f3a9c'

/** The environment of the test without any of the settings */
function bareEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NEUROSHARD_TEST_SECRET: SECRET, ...extra }
  for (const key of ['MALLOC_ARENA_MAX', 'NODE_OPTIONS', 'NEUROSHARD_ALLOCATOR_TUNING']) {
    if (!(key in extra)) delete env[key]
  }
  return env
}

function environ (pid: number): Map<string, string> {
  const vars = new Map<string, string>()
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=')
    if (eq > 0) vars.set(entry.slice(0, eq), entry.slice(eq + 1))
  }
  return vars
}

function cmdline (pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(a => a !== '')
}

/** Processes whose parent is `pid` */
function children (pid: number): number[] {
  const found: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) found.push(Number(name))
    } catch {}
  }
  return found
}

interface Proc {
  child: ChildProcessWithoutNullStreams
  out: () => string
  err: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** resolves once stdout has a line containing `text` */
  until: (text: string, ms: number) => Promise<void>
}

function run (args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[] = []): Proc {
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => { resolve({ code, signal }) })
  })
  return {
    child,
    out: () => out,
    err: () => err,
    exited,
    until: async (text, ms) => {
      const t0 = Date.now()
      while (!out.includes(text)) {
        if (child.exitCode != null || child.signalCode != null) throw new Error(`exited (${child.exitCode ?? child.signalCode}) before "${text}"; stderr: ${err.slice(-2000)}`)
        if (Date.now() - t0 > ms) throw new Error(`no "${text}" in ${ms} ms; stderr: ${err.slice(-2000)}`)
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    }
  }
}

async function stopped (p: Proc, signal: NodeJS.Signals): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  p.child.kill(signal)
  const timer = setTimeout(() => { p.child.kill('SIGKILL') }, 60_000)
  try { return await p.exited } finally { clearTimeout(timer) }
}

const SEMI = '--max-semi-space-size=16'
const linuxGlibc = runsOnGlibc()

describe('launchPlan', () => {
  it('adds what is missing, keeps what the user set, and can be turned off', () => {
    expect(launchPlan({}, [], true)).toEqual({ reason: 'applied', arenaMax: '2', semiSpaceFlag: SEMI })
    expect(launchPlan({ MALLOC_ARENA_MAX: '4' }, [], true)).toEqual({ reason: 'applied', semiSpaceFlag: SEMI })
    expect(launchPlan({ NODE_OPTIONS: '--inspect --max_semi_space_size=8' }, [], true)).toEqual({ reason: 'applied', arenaMax: '2' })
    expect(launchPlan({}, ['--max-semi-space-size', '8'], true)).toEqual({ reason: 'applied', arenaMax: '2' })
    expect(launchPlan({ MALLOC_ARENA_MAX: '' }, ['--max-semi-space-size=32'], true)).toEqual({ reason: 'already-set' })
    expect(launchPlan({ NEUROSHARD_ALLOCATOR_TUNING: 'off' }, [], true)).toEqual({ reason: 'off' })
    expect(launchPlan({ NEUROSHARD_ALLOCATOR_TUNING: 'OFF' }, [], true)).toEqual({ reason: 'off' })
    expect(launchPlan({ NEUROSHARD_ALLOCATOR_TUNING: 'on' }, [], true).reason).toBe('applied')
    // a flag that only starts the same way is not the semi-space flag
    expect(launchPlan({ NODE_OPTIONS: '--max-semi-space-sizes=1' }, [], true).semiSpaceFlag).toBe(SEMI)
    expect(launchPlan({}, [], false)).toEqual({ reason: 'not-glibc' })
  })
})

describe.skipIf(!linuxGlibc)('the neuroshard bin applies the allocator settings itself (processes, Linux/glibc)', () => {
  let dir: string

  beforeAll(async () => {
    expect(existsSync(BIN), `${BIN} is missing: build first (tsc -b)`).toBe(true)
    dir = await mkdtemp(join(tmpdir(), 'neuroshard-launcher-'))
    await writeFile(join(dir, 'corpus.txt'), testCorpus(1500).join('\n\n'))
  })

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('`start` with no settings runs with both, in the same process (execve), env passed through; SIGTERM stops it cleanly with 0', async () => {
    const p = run(['start', '--data', join(dir, 'corpus.txt'), '--data-dir', join(dir, 'start'), '--vocab-size', '320', '--inner-steps', '5', '--batch-size', '4', '--seq-len', '32', '--memory', '0.01', '--api-port', '0', '--json'], bareEnv())
    try {
      await p.until('"event":"api"', 120_000)
      const pid = p.child.pid!
      const env = environ(pid)
      expect(env.get('MALLOC_ARENA_MAX')).toBe('2')
      expect(env.get('NEUROSHARD_TEST_SECRET')).toBe(SECRET)
      expect(env.get('NODE_OPTIONS')).toBe(SEMI)
      // the flag is not on the command line, where Workers started with `execArgv: process.execArgv` would refuse it
      const argv = cmdline(pid)
      expect(argv.some(a => a.includes('semi-space'))).toBe(false)
      expect(argv.slice(-1)).toEqual(['--json'])
      // the node is this process: no second node process beside it
      expect(children(pid)).toEqual([])
      const { code, signal } = await stopped(p, 'SIGTERM')
      expect({ code, signal }, p.err()).toEqual({ code: 0, signal: null })
      expect(p.out().trim().split('\n').at(-1)).toBe('{"event":"stopped","signal":"SIGTERM"}')
      expect(p.out() + p.err()).not.toContain(SECRET)
    } finally {
      if (p.child.exitCode == null && p.child.signalCode == null) p.child.kill('SIGKILL')
    }
  }, 180_000)

  it('keeps a value the user set: MALLOC_ARENA_MAX=4 stays 4, a semi-space flag in NODE_OPTIONS gets no second one', async () => {
    const p = run(['hosts', '--nodes', '1', '--json'], bareEnv({ MALLOC_ARENA_MAX: '4', NODE_OPTIONS: '--max-semi-space-size=8' }))
    try {
      await p.until('"event":"started"', 60_000)
      const pid = p.child.pid!
      expect(environ(pid).get('MALLOC_ARENA_MAX')).toBe('4')
      expect(environ(pid).get('NODE_OPTIONS')).toBe('--max-semi-space-size=8')
      expect(cmdline(pid).some(a => a.includes('semi-space'))).toBe(false)
      expect(await stopped(p, 'SIGINT')).toEqual({ code: 0, signal: null })
    } finally {
      if (p.child.exitCode == null && p.child.signalCode == null) p.child.kill('SIGKILL')
    }
    // only the arena setting set by the user, other node options in NODE_OPTIONS: the flag is added after them,
    // the user's arena value kept
    const q = run(['hosts', '--nodes', '1', '--json'], bareEnv({ MALLOC_ARENA_MAX: '4', NODE_OPTIONS: '--max-old-space-size=2048' }))
    try {
      await q.until('"event":"started"', 60_000)
      expect(environ(q.child.pid!).get('MALLOC_ARENA_MAX')).toBe('4')
      expect(environ(q.child.pid!).get('NODE_OPTIONS')).toBe(`--max-old-space-size=2048 ${SEMI}`)
      expect(await stopped(q, 'SIGINT')).toEqual({ code: 0, signal: null })
    } finally {
      if (q.child.exitCode == null && q.child.signalCode == null) q.child.kill('SIGKILL')
    }
  }, 150_000)

  it('`train` under the launcher starts its onnxruntime worker thread and trains (a V8 flag in execArgv made every Worker throw)', async () => {
    const p = run(['train', '--steps', '2', '--vocab-size', '320', '--data', join(dir, 'corpus.txt'), '--data-dir', join(dir, 'train'), '--batch-size', '2', '--seq-len', '16', '--eval-every', '1', '--checkpoint-every', '2', '--threads', '1', '--json'], bareEnv())
    const { code } = await p.exited
    expect(code, p.err()).toBe(0)
    expect(p.err()).not.toContain('ERR_WORKER_INVALID_EXEC_ARGV')
    const events = p.out().trim().split('\n').map(l => JSON.parse(l))
    expect(events.filter(e => e.event === 'step').length).toBeGreaterThan(0)
  }, 180_000)

  it('NEUROSHARD_ALLOCATOR_TUNING=off leaves the process as started', async () => {
    const p = run(['hosts', '--nodes', '1', '--json'], bareEnv({ NEUROSHARD_ALLOCATOR_TUNING: 'off' }))
    try {
      await p.until('"event":"started"', 60_000)
      expect(environ(p.child.pid!).has('MALLOC_ARENA_MAX')).toBe(false)
      expect(cmdline(p.child.pid!).some(a => a.includes('semi-space'))).toBe(false)
      expect(await stopped(p, 'SIGTERM')).toEqual({ code: 0, signal: null })
    } finally {
      if (p.child.exitCode == null && p.child.signalCode == null) p.child.kill('SIGKILL')
    }
  }, 90_000)

  it('exit codes pass through the restart (usage 2, help 0, bad option 2)', async () => {
    const unknown = run(['no-such-command'], bareEnv())
    expect((await unknown.exited).code).toBe(2)
    expect(unknown.err()).toContain('unknown command: no-such-command')
    const help = run(['--help'], bareEnv())
    expect((await help.exited).code).toBe(0)
    expect(help.out()).toContain('Usage: neuroshard')
    const bad = run(['hosts', '--nodes', 'zero'], bareEnv())
    expect((await bad.exited).code).toBe(2)
  }, 60_000)

  it('without process.execve (Node < 23.11) the command runs in a child with the settings; SIGTERM and the exit code pass through', async () => {
    // a preload that removes execve, in the parent and (carried in execArgv) in the child
    const noExecve = ['--import', 'data:text/javascript,delete process.execve']
    const p = run(['hosts', '--nodes', '1', '--json'], bareEnv(), noExecve)
    try {
      await p.until('"event":"started"', 60_000)
      const parent = p.child.pid!
      expect(environ(parent).has('MALLOC_ARENA_MAX')).toBe(false)
      const kids = children(parent)
      expect(kids).toHaveLength(1)
      expect(environ(kids[0]).get('MALLOC_ARENA_MAX')).toBe('2')
      expect(environ(kids[0]).get('NEUROSHARD_TEST_SECRET')).toBe(SECRET)
      expect(environ(kids[0]).get('NODE_OPTIONS')).toBe(SEMI)
      expect(await stopped(p, 'SIGTERM')).toEqual({ code: 0, signal: null })
      expect(p.out().trim().split('\n').at(-1)).toBe('{"event":"stopped","signal":"SIGTERM"}')
    } finally {
      if (p.child.exitCode == null && p.child.signalCode == null) p.child.kill('SIGKILL')
    }
    const bad = run(['hosts', '--nodes', 'zero'], bareEnv(), noExecve)
    expect((await bad.exited).code).toBe(2)
  }, 90_000)
})
