import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readCorpus } from '@neuroshard/genesis-data'
import { chatCommand } from '../../src/commands/chat.js'
import { generateCommand } from '../../src/commands/generate.js'
import { trainCommand } from '../../src/commands/train.js'

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'src', 'bin.js')
let root: string
let corpus: string

/** Run the CLI to completion; stdout parsed as JSON lines when `json` */
async function cli (args: string[], stdin?: string): Promise<{ code: number | null, lines: any[], stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  if (stdin !== undefined) child.stdin.end(stdin)
  else child.stdin.end()
  const code = await new Promise<number | null>(resolve => child.on('exit', c => { resolve(c) }))
  const lines = stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l))
  return { code, lines, stdout, stderr }
}

beforeAll(async () => {
  expect(existsSync(BIN), `${BIN} is missing: build first (tsc -b packages/node)`).toBe(true)
  root = await mkdtemp(join(tmpdir(), 'ns-cli-'))
  corpus = join(root, 'corpus.txt')
  const docs = (await readCorpus('nlp-corpus')).documents.slice(0, 1500)
  await writeFile(corpus, docs.join('\n\n') + '\n')
})
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

const TRAIN = ['train', '--data', 'corpus.txt', '--vocab-size', '400', '--steps', '30', '--seq-len', '32', '--batch-size', '4',
  '--eval-every', '10', '--checkpoint-every', '10', '--warmup', '3', '--lr', '1e-2', '--threads', '1']

describe('neuroshard train → generate → chat (processes)', () => {
  it('trains from nothing with JSON progress, then generates and chats from the checkpoint', async () => {
    // train: tokenizer + genesis dataset built in ./.neuroshard, then 30 steps (stdout is a pipe → JSON lines)
    const t = await cli(TRAIN)
    expect(t.code, t.stderr).toBe(0)
    const kinds = t.lines.map(l => l.event)
    expect(kinds.slice(0, 4)).toEqual(['tokenizer', 'dataset', 'verify', 'data'])
    expect(kinds).toContain('start')
    const steps = t.lines.filter(l => l.event === 'step')
    expect(steps.map(s => s.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    for (const s of steps) {
      expect(s.totalSteps).toBe(30)
      expect(Number.isFinite(s.loss) && s.tokensPerSecond > 0 && s.etaMs >= 0).toBe(true)
    }
    const evals = t.lines.filter(l => l.event === 'eval')
    expect(evals.map(e => e.step)).toEqual([0, 10, 20, 30])
    expect(evals[3].loss).toBeLessThan(evals[0].loss)
    expect(t.lines.filter(l => l.event === 'checkpoint').map(c => c.step)).toEqual([10, 20, 30])
    const done = t.lines.at(-1)
    expect(done).toMatchObject({ event: 'done', step: 30, stopped: 'completed' })

    // the same command again: data loaded and verified (not rebuilt), run already complete
    const again = await cli(TRAIN)
    expect(again.code, again.stderr).toBe(0)
    expect(again.lines.find(l => l.event === 'data')?.built).toBe(false)
    expect(again.lines.find(l => l.event === 'start')?.resumedFrom).toMatch(/step-00000030/)
    expect(again.lines.filter(l => l.event === 'step')).toEqual([])
    expect(again.lines.at(-1)?.contentHash).toBe(done.contentHash)

    // other settings on top of these checkpoints: a clear refusal
    const other = await cli(TRAIN.map((a, i) => TRAIN[i - 1] === '--batch-size' ? '8' : a))
    expect(other.code).toBe(2)
    expect(other.stderr).toMatch(/ResumeMismatch|other settings/)

    // generate: streams tokens; the same seed gives the same text
    const g1 = await cli(['generate', '--prompt', 'The', '--max-tokens', '12', '--seed', '7', '--json'])
    expect(g1.code, g1.stderr).toBe(0)
    expect(g1.lines[0]).toMatchObject({ event: 'start', step: 30 })
    const tokens = g1.lines.filter(l => l.event === 'token')
    const end = g1.lines.at(-1)
    expect(end.event).toBe('done')
    expect(tokens.length).toBe(end.tokens)
    expect(end.tokens).toBeGreaterThan(0)
    expect(end.tokens).toBeLessThanOrEqual(12)
    expect(tokens.map(x => x.text).join('')).toBe(end.text)
    const g2 = await cli(['generate', '--prompt', 'The', '--max-tokens', '12', '--seed', '7', '--json'])
    expect(g2.lines.at(-1).ids).toEqual(end.ids)
    const plain = await cli(['generate', '--prompt', 'The', '--max-tokens', '12', '--seed', '7'])
    expect(plain.stdout).toBe(end.text + '\n')

    // chat: stdin drives three turns; the KV cache carries over from turn to turn until /reset
    const c = await cli(['chat', '--max-tokens', '6', '--seed', '3', '--json'], 'Hello there\nHow are you today?\n/reset\nAgain\n')
    expect(c.code, c.stderr).toBe(0)
    const turns = c.lines.filter(l => l.event === 'turn')
    expect(turns.length).toBe(3)
    expect(turns[0].cachedTokens).toBe(0)
    expect(turns[1].cachedTokens).toBe(turns[0].position)
    expect(turns[1].cachedTokens).toBeGreaterThan(0)
    expect(turns[1].position).toBeGreaterThan(turns[0].position)
    expect(turns[2].cachedTokens).toBe(0)
    expect(c.lines.at(-1)).toEqual({ event: 'end', turns: 3 })
  }, 90_000)

  it('serve: the API and dashboard over the checkpoint, in a process that stops cleanly on SIGINT', async () => {
    const token = 'serve-test-token'
    const child = spawn(process.execPath, [BIN, 'serve', '--api-port', '0', '--api-token', token, '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const lines: any[] = []
    const exited = new Promise<number | null>(resolve => child.on('exit', c => { resolve(c) }))
    try {
      const listening = await new Promise<any>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`serve did not listen in 30 s: ${stderr}`)) }, 30_000)
        let buffer = ''
        child.stdout.on('data', (d: Buffer) => {
          buffer += d.toString()
          let nl
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = JSON.parse(buffer.slice(0, nl))
            buffer = buffer.slice(nl + 1)
            lines.push(line)
            if (line.event === 'listening') { clearTimeout(timer); resolve(line) }
          }
        })
        void exited.then(code => { clearTimeout(timer); reject(new Error(`serve exited with ${code}: ${stderr}`)) })
      })
      expect(listening).toMatchObject({ step: 30, model: 'neurollm-local', tokenRequired: true })
      expect(listening.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(JSON.stringify(lines)).not.toContain(token)
      const models = await (await fetch(listening.url + '/v1/models')).json() as any
      expect(models.data.map((m: any) => m.id)).toEqual(['neurollm-local'])
      const training = await (await fetch(listening.url + '/api/training')).json() as any
      expect(training.validation.map((p: any) => p.step)).toEqual([0, 10, 20, 30])
      expect((await fetch(listening.url + '/v1/completions', { method: 'POST', body: JSON.stringify({ model: 'neurollm-local', prompt: 'The' }) })).status).toBe(401)
      const res = await fetch(listening.url + '/v1/completions', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ model: 'neurollm-local', prompt: 'The', max_tokens: 8, seed: 7, temperature: 0.8, top_p: 0.95 }) })
      expect(res.status).toBe(200)
      const body = await res.json() as any
      expect(body.usage.completion_tokens).toBeGreaterThan(0)
      expect(body.usage.completion_tokens).toBeLessThanOrEqual(8)
      expect((await fetch(listening.url + '/')).status).toBe(200)
      child.kill('SIGINT')
      expect(await exited).toBe(0)
      expect(lines.at(-1)).toEqual({ event: 'stopped', signal: 'SIGINT' })
    } finally {
      if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
    }
  }, 60_000)

  it('explains what is missing and refuses bad flags (in process)', async () => {
    let err = ''
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => { err += s; return true } } } as any
    const empty = await mkdtemp(join(tmpdir(), 'ns-cli-empty-'))
    try {
      expect(await generateCommand(['--prompt', 'x', '--data-dir', empty], io)).toBe(1)
      expect(err).toMatch(/neuroshard train/)
      expect(await chatCommand(['--data-dir', empty], io)).toBe(1)
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
    expect(await generateCommand(['--prompt', 'x', '--top-p', '2'], io)).toBe(2)
    expect(await generateCommand([], io)).toBe(2)
    expect(await trainCommand(['--steps', '0'], io)).toBe(2)
    expect(await trainCommand(['--preset', 'huge'], io)).toBe(2)
    expect(await trainCommand(['--time', 'soon'], io)).toBe(2)
    expect(await chatCommand(['--bogus'], io)).toBe(2)
  })
})
