import { parseArgs } from 'node:util'
import { modelDrafter, ngramDrafter } from '@neuroshard/pipeline'
import { createInferenceEngine } from '@neuroshard/runtime'
import { TextGenerator, samplingRng } from '@neuroshard/trainer'
import { DEFAULT_DATA_DIR, loadTrainedModel } from '../workspace.js'
import type { CliIO } from '../progress.js'
import type { BpeTokenizer } from '@neuroshard/tokenizer'
import type { GenerateOptions, TokenDrafter } from '@neuroshard/trainer'
import type { ModelConfig } from '@neuroshard/model'

/** Sampling defaults of `generate` and `chat` */
export const DEFAULT_SAMPLING = Object.freeze({ temperature: 0.8, topK: 40, topP: 0.95, maxTokens: 100 })

export const SAMPLING_OPTIONS_USAGE = `  -d, --data-dir <dir>       data directory of a \`neuroshard train\` run (default ${DEFAULT_DATA_DIR})
      --checkpoint <file>    a specific checkpoint (default: the newest in <data-dir>/checkpoints)
      --temperature <x>      0 = greedy (default ${DEFAULT_SAMPLING.temperature})
      --top-k <n>            0 = off (default ${DEFAULT_SAMPLING.topK})
      --top-p <x>            1 = off (default ${DEFAULT_SAMPLING.topP})
      --max-tokens <n>       tokens to generate at most (default ${DEFAULT_SAMPLING.maxTokens})
      --seed <n>             sampling seed (default: random)
      --device <cpu|cuda>    execution provider (default cpu)
      --bake-weights <on|off> on: the model runs as one onnxruntime session with its weights baked in (prepacked,
                             faster decoding, a second copy of the weights in memory); off: three sessions with
                             the weights fed as inputs (default on)
      --json                 JSON lines instead of text
  -h, --help                 show this help
`

export const GENERATE_USAGE = `Usage: neuroshard generate --prompt <text> [options]

Continues a prompt with the newest checkpoint of a training run, streaming tokens as they come.

Options:
      --prompt <text>        the text to continue
      --draft <ngram|self:N> speculative decoding: drafts from an n-gram lookup of the text so far, or from the
                             model's own first N blocks (+ final norm and head); the same tokens as without it
      --gamma <n>            draft tokens per round (default 4)
${SAMPLING_OPTIONS_USAGE}`

export const SAMPLING_ARGS = {
  'data-dir': { type: 'string', short: 'd' },
  checkpoint: { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'max-tokens': { type: 'string' },
  seed: { type: 'string' },
  device: { type: 'string' },
  'bake-weights': { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
} as const

/** `--bake-weights on|off` (default on: see `TextGeneratorInit.bakeWeights`) */
export function bakeWeightsFlag (value: string | boolean | undefined): boolean {
  if (value === undefined || value === 'on') return true
  if (value === 'off') return false
  throw new Error(`--bake-weights must be on or off, got ${String(value)}`)
}

/** Sampling settings from parsed flags (throws a readable Error on bad values) */
export function samplingFromFlags (values: Record<string, string | boolean | undefined>): GenerateOptions & { maxTokens: number, seed: number } {
  const num = (k: string, d: number): number => {
    const v = values[k]
    if (v === undefined) return d
    const n = Number(v)
    if (!Number.isFinite(n)) throw new Error(`--${k} must be a number`)
    return n
  }
  const temperature = num('temperature', DEFAULT_SAMPLING.temperature)
  const topK = num('top-k', DEFAULT_SAMPLING.topK)
  const topP = num('top-p', DEFAULT_SAMPLING.topP)
  const maxTokens = num('max-tokens', DEFAULT_SAMPLING.maxTokens)
  const seed = num('seed', Math.floor(Math.random() * 2 ** 32))
  if (!(temperature >= 0)) throw new Error('--temperature must be >= 0')
  if (!Number.isSafeInteger(topK) || topK < 0) throw new Error('--top-k must be an integer >= 0')
  if (!(topP > 0 && topP <= 1)) throw new Error('--top-p must be in (0, 1]')
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new Error('--max-tokens must be an integer >= 1')
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error('--seed must be an integer >= 0')
  if (values.device !== undefined && values.device !== 'cpu' && values.device !== 'cuda') throw new Error('--device must be cpu or cuda')
  bakeWeightsFlag(values['bake-weights'])
  return { temperature, topK, topP, maxTokens, seed, random: samplingRng(seed) }
}

/** Decodes token by token into text, holding back bytes of a UTF-8 character cut between tokens */
export class StreamDecoder {
  private readonly tok: BpeTokenizer
  private readonly dec = new TextDecoder('utf-8')
  constructor (tok: BpeTokenizer) { this.tok = tok }
  push (id: number): string {
    if (this.tok.isSpecialToken(id)) return ''
    return this.dec.decode(this.tok.decodeBytes([id]), { stream: true })
  }

  flush (): string {
    return this.dec.decode()
  }
}

/** Load the tokenizer and newest checkpoint and start a generator */
export async function openModel (values: Record<string, string | boolean | undefined>, io: CliIO): Promise<{ tokenizer: BpeTokenizer, generator: TextGenerator, path: string, step: number, config: ModelConfig, parameters: Map<string, Float32Array> }> {
  const { tokenizer, state, path } = await loadTrainedModel((values['data-dir'] as string | undefined) ?? DEFAULT_DATA_DIR, values.checkpoint as string | undefined)
  const generator = await TextGenerator.create({
    config: state.settings.config,
    parameters: state.parameters,
    device: (values.device ?? 'cpu') as 'cpu' | 'cuda',
    // one thread decodes small models fastest (a single position per call); larger ones use onnxruntime's default
    ...(state.settings.config.dModel < 256 ? { threads: 1 } : {}),
    bakeWeights: bakeWeightsFlag(values['bake-weights']),
    onWarning: (m) => { io.stderr.write(`warning: ${m}\n`) }
  })
  return { tokenizer, generator, path, step: state.step, config: state.settings.config, parameters: state.parameters }
}

/** `--draft ngram` or `--draft self:N` (the model's first N blocks, final norm and head as a small model) */
export function draftKind (value: string | undefined, config?: ModelConfig): { kind: 'ngram' } | { kind: 'self', blocks: number } | undefined {
  if (value === undefined) return undefined
  if (value === 'ngram') return { kind: 'ngram' }
  const m = /^self:(\d+)$/.exec(value)
  const n = m != null ? Number(m[1]) : NaN
  if (Number.isSafeInteger(n) && n >= 1 && (config == null || n < config.nLayers)) return { kind: 'self', blocks: n }
  throw new Error(`--draft must be ngram or self:N with 1 <= N < the model's blocks, got ${value}`)
}

/** A source of drafters: `make()` gives one per generation (a draft model keeps a KV cache per sequence) */
export interface DrafterSource {
  make(): TokenDrafter & { close?(): Promise<void> }
  close(): Promise<void>
}

export async function openDrafter (kind: NonNullable<ReturnType<typeof draftKind>>, config: ModelConfig, parameters: Map<string, Float32Array>): Promise<DrafterSource> {
  if (kind.kind === 'ngram') return { make: () => ngramDrafter(), close: async () => {} }
  const small: ModelConfig = { ...config, nLayers: kind.blocks }
  const { modelParameters } = await import('@neuroshard/model')
  const engine = await createInferenceEngine({ config: small, parameters: new Map(modelParameters(small).map(s => [s.name, parameters.get(s.name)!])), intraOpNumThreads: 1 })
  return { make: () => modelDrafter({ open: async () => await engine.openInference(), vocabSize: config.vocabSize }), close: async () => { await engine.close() } }
}

/** Runs `neuroshard generate`; returns the exit code */
export async function generateCommand (argv: string[], io: CliIO): Promise<number> {
  let values
  let sampling
  try {
    ({ values } = parseArgs({ args: argv, options: { prompt: { type: 'string' }, draft: { type: 'string' }, gamma: { type: 'string' }, ...SAMPLING_ARGS }, strict: true, allowPositionals: false }))
    if (values.help === true) {
      io.stdout.write(GENERATE_USAGE)
      return 0
    }
    if (values.prompt === undefined) throw new Error('--prompt is required')
    sampling = samplingFromFlags(values)
    draftKind(values.draft)
    if (values.gamma !== undefined && !(Number.isSafeInteger(Number(values.gamma)) && Number(values.gamma) >= 1 && Number(values.gamma) <= 32)) throw new Error('--gamma must be an integer in [1, 32]')
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${GENERATE_USAGE}`)
    return 2
  }
  const json = values.json === true
  const emit = (o: Record<string, unknown>): void => { io.stdout.write(JSON.stringify(o) + '\n') }
  let model
  try {
    model = await openModel(values, io)
  } catch (err: any) {
    io.stderr.write(`generate: ${err?.message ?? err}\n`)
    return 1
  }
  const { tokenizer, generator } = model
  let draft: { drafter: TokenDrafter & { close?(): Promise<void> }, close(): Promise<void> } | undefined
  try {
    const kind = draftKind(values.draft, model.config)
    if (kind !== undefined) {
      const source = await openDrafter(kind, model.config, model.parameters)
      const drafter = source.make()
      draft = { drafter, close: async () => { await drafter.close?.(); await source.close() } }
    }
  } catch (err: any) {
    await generator.close()
    io.stderr.write(`generate: ${String(err?.message ?? err)}\n`)
    return 2
  }
  const speculation = { proposed: 0, accepted: 0, rounds: 0 }
  try {
    const eos = tokenizer.eosId
    // documents in the genesis data follow an <|eos|>: start the prompt as a new document
    const prompt = [...(eos !== undefined ? [eos] : []), ...tokenizer.encode(values.prompt)]
    if (json) emit({ event: 'start', checkpoint: model.path, step: model.step, promptTokens: prompt.length, seed: sampling.seed, executionProvider: generator.executionProvider, bakedWeights: generator.bakedWeights })
    const session = await generator.session()
    const decoder = new StreamDecoder(tokenizer)
    const ids: number[] = []
    const t0 = performance.now()
    let firstMs: number | undefined
    let text = ''
    let stopped = false
    void io.stopSignal?.then(() => { stopped = true })
    const spec = draft !== undefined
      ? { draft: draft.drafter, gamma: values.gamma !== undefined ? Number(values.gamma) : 4, onRound: (r: { proposed: number, accepted: number }) => { speculation.proposed += r.proposed; speculation.accepted += r.accepted; speculation.rounds++ } }
      : {}
    for await (const id of session.generate(prompt, { ...sampling, ...spec, ...(eos !== undefined ? { stopTokens: [eos] } : {}) })) {
      if (stopped) break
      firstMs ??= performance.now() - t0
      ids.push(id)
      const piece = decoder.push(id)
      text += piece
      if (json) emit({ event: 'token', id, text: piece })
      else if (piece !== '') io.stdout.write(piece)
    }
    const rest = decoder.flush()
    text += rest
    const seconds = (performance.now() - t0) / 1000
    await session.close()
    if (json) {
      emit({ event: 'done', tokens: ids.length, ids, text, stopped: stopped ? 'interrupted' : ids.at(-1) === eos ? 'eos' : 'max-tokens', seconds, tokensPerSecond: ids.length / seconds, firstTokenMs: firstMs, ...(draft !== undefined ? { speculation } : {}) })
    } else {
      io.stdout.write(rest + '\n')
    }
    return 0
  } finally {
    await draft?.close()
    await generator.close()
  }
}
