/**
 * `neuroshard generate --draft`: speculative decoding on this machine gives the same tokens as plain generation
 * (same seed), with an n-gram drafter and with the model's first block as the draft model.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readCorpus } from '@neuroshard/genesis-data'
import { LocalGenerator } from '../../src/api/local-generator.js'
import { draftKind, generateCommand, openDrafter } from '../../src/commands/generate.js'
import { serveCommand } from '../../src/commands/serve.js'
import { trainCommand } from '../../src/commands/train.js'
import { loadTrainedModel } from '../../src/workspace.js'

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

  it('the API\'s local generator (serve --draft) answers with the same text, concurrent requests included', async () => {
    const { tokenizer, state } = await loadTrainedModel(dataDir)
    const config = state.settings.config
    const plain = await LocalGenerator.create({ tokenizer, config, parameters: state.parameters, threads: 1 })
    const source = await openDrafter(draftKind('self:1', config)!, config, state.parameters)
    const spec = await LocalGenerator.create({ tokenizer, config, parameters: state.parameters, threads: 1, draft: { source, gamma: 3 } })
    try {
      const text = async (g: LocalGenerator, prompt: string, seed: number): Promise<string> => {
        let out = ''
        for await (const piece of g.generate(prompt, { model: g.modelId, maxTokens: 20, temperature: 0.8, topK: 40, topP: 0.95, seed }, new AbortController().signal)) out += piece
        return out
      }
      const prompts = ['The river flows', 'A network of machines', 'Once upon a time']
      const want = await Promise.all(prompts.map(async (p, i) => await text(plain, p, i + 1)))
      // three requests at once: each has its own draft-model cache
      const got = await Promise.all(prompts.map(async (p, i) => await text(spec, p, i + 1)))
      expect(got).toEqual(want)
      expect(spec.speculation.rounds).toBeGreaterThan(0)
    } finally {
      await plain.close()
      await spec.close()
    }
  }, 240_000)

  it('--bake-weights: on by default (one session, weights baked in), off runs the shard executors; greedy tokens agree', async () => {
    const start = async (extra: string[]): Promise<{ start: any, done: any }> => {
      const t = io()
      const code = await generateCommand(['--prompt', 'The river flows', '--data-dir', dataDir, '--temperature', '0', '--max-tokens', '24', '--json', ...extra], t.io)
      expect(code, t.err()).toBe(0)
      const lines = t.out().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l))
      return { start: lines.find(l => l.event === 'start'), done: lines.find(l => l.event === 'done') }
    }
    const baked = await start([])
    const off = await start(['--bake-weights', 'off'])
    const on = await start(['--bake-weights', 'on'])
    expect(baked.start.bakedWeights).toBe(true)
    expect(on.start.bakedWeights).toBe(true)
    expect(off.start.bakedWeights).toBe(false)
    expect(baked.done.ids.length).toBe(24)
    expect(off.done.ids).toEqual(baked.done.ids)
  }, 240_000)

  it('refuses bad --draft, --gamma and --bake-weights values', async () => {
    for (const bad of [['--draft', 'bogus'], ['--draft', 'self:0'], ['--gamma', '0'], ['--gamma', 'x'], ['--bake-weights', 'yes']]) {
      const t = io()
      expect(await generateCommand(['--prompt', 'x', '--data-dir', dataDir, ...bad], t.io), bad.join(' ')).toBe(2)
    }
    // self:N must leave the draft smaller than the model (tiny has 2 blocks)
    const t = io()
    expect(await generateCommand(['--prompt', 'x', '--data-dir', dataDir, '--draft', 'self:2'], t.io)).toBe(2)
    expect(t.err()).toMatch(/self:N/)
    for (const bad of [['--draft', 'bogus'], ['--gamma', '99'], ['--bake-weights', '1']]) expect(await serveCommand(bad, { ...io().io, env: {} }), bad.join(' ')).toBe(2)
  }, 120_000)
})
