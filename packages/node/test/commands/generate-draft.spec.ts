/**
 * `neuroshard generate --draft`: speculative decoding on this machine gives the same tokens as plain generation
 * (same seed), with an n-gram drafter and with the model's first block as the draft model.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readCorpus } from '@neuroshard/genesis-data'
import { generateCommand } from '../../src/commands/generate.js'
import { trainCommand } from '../../src/commands/train.js'

let root: string
let dataDir: string

function io (): { io: any, out: () => string, err: () => string } {
  let out = ''
  let err = ''
  return { io: { stdout: { write: (s: string) => { out += s; return true } }, stderr: { write: (s: string) => { err += s; return true } } }, out: () => out, err: () => err }
}

async function generate (extra: string[]): Promise<any> {
  const t = io()
  const code = await generateCommand(['--prompt', 'The river flows', '--data-dir', dataDir, '--seed', '11', '--max-tokens', '24', '--json', ...extra], t.io)
  expect(code, t.err()).toBe(0)
  return t.out().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l)).find(l => l.event === 'done')
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ns-draft-'))
  dataDir = join(root, '.neuroshard')
  const corpus = join(root, 'corpus.txt')
  await writeFile(corpus, (await readCorpus('nlp-corpus')).documents.slice(0, 600).join('\n\n') + '\n')
  const t = io()
  expect(await trainCommand(['--data', corpus, '--data-dir', dataDir, '--vocab-size', '300', '--steps', '20', '--seq-len', '32', '--batch-size', '4',
    '--eval-every', '20', '--checkpoint-every', '20', '--warmup', '2', '--lr', '1e-2', '--threads', '1', '--json'], t.io), t.err()).toBe(0)
}, 300_000)
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

describe('neuroshard generate --draft', () => {
  it('the same tokens as plain generation, sampled and greedy; the rounds are reported', async () => {
    for (const sampling of [[], ['--temperature', '0']]) {
      const plain = await generate(sampling)
      expect(plain.speculation).toBeUndefined()
      for (const draft of [['--draft', 'ngram'], ['--draft', 'self:1', '--gamma', '3']]) {
        const got = await generate([...sampling, ...draft])
        expect(got.ids, draft.join(' ')).toEqual(plain.ids)
        expect(got.speculation.rounds).toBeGreaterThan(0)
        expect(got.speculation.accepted).toBeLessThanOrEqual(got.speculation.proposed)
      }
    }
  }, 240_000)

  it('refuses bad --draft and --gamma values', async () => {
    for (const bad of [['--draft', 'bogus'], ['--draft', 'self:0'], ['--gamma', '0'], ['--gamma', 'x']]) {
      const t = io()
      expect(await generateCommand(['--prompt', 'x', '--data-dir', dataDir, ...bad], t.io), bad.join(' ')).toBe(2)
    }
    // self:N must leave the draft smaller than the model (tiny has 2 blocks)
    const t = io()
    expect(await generateCommand(['--prompt', 'x', '--data-dir', dataDir, '--draft', 'self:2'], t.io)).toBe(2)
    expect(t.err()).toMatch(/self:N/)
  }, 120_000)
})
