import { existsSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { buildGenesisDataset, loadDataset, readCorpus, readDatasetTokenizerJson, readManifest } from '@neuroshard/genesis-data'
import { BpeTokenizer, trainBpe } from '@neuroshard/tokenizer'
import { loadLatestTrainState, loadTrainState } from '@neuroshard/trainer'
import type { CorpusSource, GenesisManifest } from '@neuroshard/genesis-data'
import type { TrainState } from '@neuroshard/trainer'

/** Where `neuroshard train` keeps everything unless `--data-dir` says otherwise */
export const DEFAULT_DATA_DIR = '.neuroshard'

/** Layout of a data directory */
export function workspacePaths (dataDir: string): { root: string, genesis: string, checkpoints: string, tokenizer: string } {
  const root = resolve(dataDir)
  return { root, genesis: join(root, 'genesis'), checkpoints: join(root, 'checkpoints'), tokenizer: join(root, 'genesis', 'tokenizer.json') }
}

/** `nlp-corpus`, or a comma-separated list of .txt / .jsonl files */
export function parseDataSource (text: string, textField?: string): CorpusSource {
  if (text === 'nlp-corpus') return 'nlp-corpus'
  const files = text.split(',').map(f => f.trim()).filter(f => f !== '').map(f => resolve(f))
  return { files, ...(textField !== undefined ? { textField } : {}) }
}

function sameSource (manifest: GenesisManifest, source: CorpusSource): boolean {
  const s = manifest.source as { kind: string, files?: Array<{ name: string }> }
  if (source === 'nlp-corpus') return s.kind === 'nlp-corpus'
  return s.kind === 'files' && JSON.stringify((s.files ?? []).map(f => f.name)) === JSON.stringify(source.files.map(f => basename(f)))
}

export interface PreparedData {
  tokenizer: BpeTokenizer
  manifest: GenesisManifest
  train: Uint16Array[] | Uint32Array[]
  validation: Uint16Array[] | Uint32Array[]
  /** true when the dataset was built now (false: loaded and verified) */
  built: boolean
}

export interface PrepareDataOptions {
  dataDir: string
  source: CorpusSource
  /** Vocabulary of a new tokenizer */
  vocabSize: number
  /** Tokens per shard of a new dataset @default genesis-data's */
  shardTokens?: number
  /** Share of documents in the validation split of a new dataset @default genesis-data's (2%) */
  validationFraction?: number
  onStage?: (stage: 'tokenizer' | 'dataset' | 'verify', info: Record<string, unknown>) => void
  signal?: AbortSignal
}

/**
 * Everything `train` needs from nothing: if `<dataDir>/genesis` holds a dataset, verify and load it
 * (its manifest must describe the same source); otherwise train a BPE tokenizer on the source's
 * documents and build the genesis dataset there.
 */
export async function prepareData (options: PrepareDataOptions): Promise<PreparedData> {
  const paths = workspacePaths(options.dataDir)
  let built = false
  if (existsSync(join(paths.genesis, 'manifest.json'))) {
    const manifest = await readManifest(paths.genesis)
    if (!sameSource(manifest, options.source)) {
      throw new Error(`${paths.genesis} holds a dataset built from ${JSON.stringify(manifest.source)}, not from the requested data; use another --data-dir`)
    }
  } else {
    const corpus = await readCorpus(options.source)
    if (corpus.documents.length === 0) throw new Error('the data source holds no documents')
    options.onStage?.('tokenizer', { documents: corpus.documents.length, vocabSize: options.vocabSize })
    const tokenizer = trainBpe(corpus.documents, { vocabSize: options.vocabSize })
    options.onStage?.('dataset', { vocabSize: tokenizer.vocabSize })
    await buildGenesisDataset({
      source: options.source,
      tokenizer,
      outDir: paths.genesis,
      ...(options.shardTokens !== undefined ? { shardTokens: options.shardTokens } : {}),
      ...(options.validationFraction !== undefined ? { validationFraction: options.validationFraction } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {})
    })
    built = true
  }
  options.onStage?.('verify', { dir: paths.genesis })
  const manifest = await readManifest(paths.genesis)
  const tokenizer = BpeTokenizer.fromTokenizerJson(await readDatasetTokenizerJson(paths.genesis, manifest))
  const opts = options.signal !== undefined ? { signal: options.signal } : {}
  const train = (await loadDataset(paths.genesis, { ...opts, split: 'train' })).shards.map(s => s.tokens)
  const validation = (await loadDataset(paths.genesis, { ...opts, split: 'validation' })).shards.map(s => s.tokens)
  return { tokenizer, manifest, train: train as Uint16Array[], validation: validation as Uint16Array[], built }
}

/** The tokenizer and newest (or a given) checkpoint of a data directory, for `generate` and `chat` */
export async function loadTrainedModel (dataDir: string, checkpoint?: string): Promise<{ tokenizer: BpeTokenizer, state: TrainState, path: string }> {
  const paths = workspacePaths(dataDir)
  if (!existsSync(paths.tokenizer)) throw new Error(`no tokenizer in ${paths.genesis}: run \`neuroshard train\` first (or pass --data-dir)`)
  const manifest = await readManifest(paths.genesis)
  const tokenizer = BpeTokenizer.fromTokenizerJson(await readDatasetTokenizerJson(paths.genesis, manifest))
  if (checkpoint !== undefined) return { tokenizer, state: await loadTrainState(checkpoint), path: resolve(checkpoint) }
  const latest = await loadLatestTrainState(paths.checkpoints)
  if (latest === undefined) throw new Error(`no checkpoint in ${paths.checkpoints}: run \`neuroshard train\` first`)
  if (latest.settings.config.vocabSize !== tokenizer.vocabSize) throw new Error(`the checkpoint's vocabulary (${latest.settings.config.vocabSize}) is not the tokenizer's (${tokenizer.vocabSize})`)
  return { tokenizer, state: latest, path: latest.path }
}
