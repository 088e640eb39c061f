/**
 * The README's main command as a user runs it: `neuroshard devnet` in its own process (JSON lines), then
 * `neuroshard start` in another process joining it through a bootstrap address. Both build their genesis
 * data from the same small corpus file (the tokenizer and shards are deterministic, so they agree).
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testCorpus } from './corpus.js'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'src', 'bin.js')

interface Proc {
  child: ChildProcessWithoutNullStreams
  events: any[]
  stderr: () => string
  /** Resolves with the first event matching `predicate` (past or future) */
  until: (predicate: (e: any) => boolean, ms: number, what: string) => Promise<any>
}

function run (args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const events: any[] = []
  const waiters: Array<{ predicate: (e: any) => boolean, resolve: (e: any) => void }> = []
  let err = ''
  let buffer = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString()
    let nl
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      const e = JSON.parse(line)
      events.push(e)
      for (const w of [...waiters]) {
        if (w.predicate(e)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(e) }
      }
    }
  })
  return {
    child,
    events,
    stderr: () => err,
    until: async (predicate, ms, what) => {
      const seen = events.find(predicate)
      if (seen !== undefined) return seen
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`timed out after ${ms} ms waiting for ${what}; stderr: ${err.slice(-2000)}`)) }, ms)
        const onExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`exited with ${code} while waiting for ${what}; stderr: ${err.slice(-2000)}`)) }
        child.once('exit', onExit)
        waiters.push({ predicate, resolve: (e) => { clearTimeout(timer); child.off('exit', onExit); resolve(e) } })
      })
    }
  }
}

async function stop (p: Proc | undefined): Promise<number | null> {
  if (p == null || p.child.exitCode != null || p.child.signalCode != null) return p?.child.exitCode ?? null
  const exited = new Promise<number | null>((resolve) => p.child.once('exit', (code) => { resolve(code) }))
  p.child.kill('SIGINT')
  const timer = setTimeout(() => { p.child.kill('SIGKILL') }, 60_000)
  const code = await exited
  clearTimeout(timer)
  return code
}

describe('neuroshard devnet and start (processes)', () => {
  let dir: string
  let devnet: Proc | undefined
  let joiner: Proc | undefined
  const common = ['--vocab-size', '320', '--inner-steps', '5', '--batch-size', '4', '--seq-len', '32', '--api-port', '0', '--json']

  beforeAll(async () => {
    expect(existsSync(BIN), `${BIN} is missing: build first (tsc -b)`).toBe(true)
    dir = await mkdtemp(join(tmpdir(), 'neuroshard-cli-'))
    await writeFile(join(dir, 'corpus.txt'), testCorpus(1500).join('\n\n'))
  })

  afterAll(async () => {
    await stop(joiner)
    await stop(devnet)
    await rm(dir, { recursive: true, force: true })
  }, 120_000)

  it('`neuroshard devnet` trains (validation loss falls) and serves chat completions through its API', async () => {
    devnet = run(['devnet', '--data', join(dir, 'corpus.txt'), '--data-dir', join(dir, 'devnet'), ...common])
    const api = await devnet.until(e => e.event === 'api', 180_000, 'the API')
    const first = await devnet.until(e => e.event === 'validation', 240_000, 'a validation loss')
    const later = await devnet.until(e => e.event === 'validation' && e.round >= first.round + 2, 240_000, 'two more rounds')
    expect(later.loss).toBeLessThan(first.loss)
    expect(devnet.events.filter(e => e.event === 'stage')).toHaveLength(4)

    const res = await fetch(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'devnet', messages: [{ role: 'user', content: 'The driver' }], max_tokens: 6 })
    })
    expect(res.status).toBe(200)
    const body: any = await res.json()
    expect(body.object).toBe('chat.completion')
    expect(typeof body.choices[0].message.content).toBe('string')
    const training: any = await (await fetch(`${api.url}/api/training`)).json()
    expect(training.active).toBe(true)
    expect(training.validation.length).toBeGreaterThan(0)
  }, 400_000)

  it('`neuroshard start --bootstrap` joins it, takes a span and follows its DiLoCo rounds; Ctrl-C exits 0', async () => {
    const node = devnet!.events.find(e => e.event === 'node' && e.node === 0)
    expect(node).toBeDefined()
    joiner = run(['start', '--bootstrap', node.addresses[0], '--memory', '0.01', '--data', join(dir, 'corpus.txt'), '--data-dir', join(dir, 'joiner'), ...common])
    const stage = await joiner.until(e => e.event === 'stage', 240_000, 'a span')
    expect(stage.end).toBeGreaterThan(stage.start)
    // the joiner downloaded the group's state and applies the network's rounds
    await joiner.until(e => e.event === 'round', 240_000, 'a DiLoCo round')
    // its memory every 10 s (the testbed's soak reads heap and RSS from these lines)
    const memory = await joiner.until(e => e.event === 'memory', 60_000, 'a memory line')
    expect(memory.heapUsed).toBeGreaterThan(2 ** 20)
    expect(memory.heapTotal).toBeGreaterThanOrEqual(memory.heapUsed)
    expect(memory.rss).toBeGreaterThan(memory.heapTotal)
    expect(await stop(joiner), joiner.stderr()).toBe(0)
    expect(joiner.events.at(-1)).toMatchObject({ event: 'stopped' })
    expect(await stop(devnet)).toBe(0)
  }, 400_000)
})
