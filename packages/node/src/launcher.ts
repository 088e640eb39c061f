/**
 * Allocator settings for a long-running node, applied by the `neuroshard` launcher itself (issue #15).
 *
 * Two settings keep a node's RSS flat (testbed README, soak runs 1–6): `MALLOC_ARENA_MAX=2` (glibc gives new
 * threads their own malloc arenas, up to 8 per core, and every stage rebuild starts new onnxruntime worker
 * threads) and V8's `--max-semi-space-size=16` (a young generation of at most 2 × 16 MB instead of 2 × 64 MB).
 * glibc reads `MALLOC_ARENA_MAX` only when the process starts and V8 sizes its heaps when an isolate is
 * created, so the process replaces itself (`process.execve`, same PID) with one that has them, before anything
 * heavy is loaded. The V8 flag is added to `NODE_OPTIONS` (after whatever options are there), never to the
 * command line: a Worker started with `execArgv: process.execArgv` would refuse it. Where `process.execve` is
 * missing (Node < 23.11) it runs the same command as a child process instead (stdio inherited, signals
 * forwarded, exit code propagated).
 *
 * Only on Linux with glibc; a value the user set (either setting) is kept; `NEUROSHARD_ALLOCATOR_TUNING=off`
 * turns it off. The environment is passed on unchanged apart from `MALLOC_ARENA_MAX` and `NODE_OPTIONS`, and is
 * never printed.
 *
 * This module imports only node builtins so that it runs before the CLI's dependency graph is loaded.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { isatty } from 'node:tty'

export const ARENA_MAX = '2'
export const SEMI_SPACE_FLAG = '--max-semi-space-size=16'
export const TUNING_ENV = 'NEUROSHARD_ALLOCATOR_TUNING'

export interface LaunchPlan {
  /** what to add; empty when nothing is missing, tuning is off or it means nothing on this platform */
  arenaMax?: string
  semiSpaceFlag?: string
  /** why nothing is added, for tests */
  reason: 'applied' | 'off' | 'not-glibc' | 'already-set'
}

/** True for a V8 flag setting the semi-space size, in either spelling, with or without a value */
function isSemiSpaceFlag (arg: string): boolean {
  return /^--max[-_]semi[-_]space[-_]size(=|$)/.test(arg)
}

/** Whether this process runs on glibc (Linux): its memory map has libc.so.6 and no musl loader */
export function runsOnGlibc (platform: NodeJS.Platform = process.platform): boolean {
  if (platform !== 'linux') return false
  try {
    const maps = readFileSync('/proc/self/maps', 'utf8')
    return /\/libc\.so\.6$/m.test(maps) && !/ld-musl/.test(maps)
  } catch {
    return false
  }
}

/** What the launcher would add to a process with this environment and these node options */
export function launchPlan (env: NodeJS.ProcessEnv, execArgv: readonly string[], glibc: boolean): LaunchPlan {
  const tuning = (env[TUNING_ENV] ?? '').trim().toLowerCase()
  if (tuning === 'off' || tuning === '0' || tuning === 'false' || tuning === 'no') return { reason: 'off' }
  if (!glibc) return { reason: 'not-glibc' }
  const plan: LaunchPlan = { reason: 'applied' }
  // set, even to an empty value: the user's choice (glibc ignores an empty or invalid one)
  if (env.MALLOC_ARENA_MAX === undefined) plan.arenaMax = ARENA_MAX
  const nodeOptions = (env.NODE_OPTIONS ?? '').split(/\s+/)
  if (!execArgv.some(isSemiSpaceFlag) && !nodeOptions.some(isSemiSpaceFlag)) plan.semiSpaceFlag = SEMI_SPACE_FLAG
  if (plan.arenaMax === undefined && plan.semiSpaceFlag === undefined) return { reason: 'already-set' }
  return plan
}

/**
 * Called first by the `neuroshard` bin. Returns true when this process should go on and run the command: it
 * already runs with the settings, should not get them, or could not restart. Otherwise it replaces the process
 * (`process.execve`: does not return) or, without execve, starts the command as a child process and returns
 * false: this process then only waits for the child and exits with its code.
 */
export function applyAllocatorSettings (): boolean {
  const plan = launchPlan(process.env, process.execArgv, runsOnGlibc())
  if (plan.reason !== 'applied') return true
  const env: NodeJS.ProcessEnv = { ...process.env }
  if (plan.arenaMax !== undefined) env.MALLOC_ARENA_MAX = plan.arenaMax
  // the V8 flag goes into NODE_OPTIONS, not on the command line: the runtime and hash threads start their
  // Workers with `execArgv: process.execArgv`, and a Worker given a V8 flag in its execArgv throws
  // ERR_WORKER_INVALID_EXEC_ARGV (soak run 7's first try: no stage was ever built)
  if (plan.semiSpaceFlag !== undefined) {
    const current = env.NODE_OPTIONS?.trim() ?? ''
    env.NODE_OPTIONS = current === '' ? plan.semiSpaceFlag : `${current} ${plan.semiSpaceFlag}`
  }
  const args = [...process.execArgv, ...process.argv.slice(1)]
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve
  if (typeof execve === 'function') {
    try {
      execve.call(process, process.execPath, [process.execPath, ...args], env)
    } catch (err: any) {
      // the process is unchanged: go on without the settings rather than not start at all
      process.stderr.write(`neuroshard: could not restart with the allocator settings (${err?.code ?? err?.message ?? err}); running without them\n`)
      return true
    }
  }
  spawnChild(args, env)
  return false
}

/** The fallback: the same command as a child that has the settings; this process only waits for it */
function spawnChild (args: string[], env: NodeJS.ProcessEnv): void {
  const child = spawn(process.execPath, args, { stdio: 'inherit', env })
  // Ctrl-C in a terminal reaches the whole process group, the child included: forwarding it too would be a
  // second Ctrl-C, which the CLI takes as "give up on a clean shutdown"
  const interactive = isatty(0)
  const forward = (signal: NodeJS.Signals): void => { if (signal !== 'SIGINT' || !interactive) child.kill(signal) }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward)
  child.on('error', (err) => {
    process.stderr.write(`neuroshard: could not start the node process: ${err.message}\n`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    if (signal != null) {
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, forward)
      process.kill(process.pid, signal)
      return
    }
    process.exit(code ?? 1)
  })
}
