import { readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { InvalidParametersError } from '@neuroshard/interface'
import corpus from 'nlp-corpus'
import { CorpusFormatError } from './errors.js'
import { sha256Hex } from './hash.js'

/** Where the genesis text comes from */
export type CorpusSource =
  | 'nlp-corpus'
  | {
    /**
     * Text files, read in this order. `.txt`: documents are separated by blank lines.
     * `.jsonl`: one JSON object per non-empty line, its text in `textField`.
     */
    files: string[]
    /** @default 'text' */
    textField?: string
  }

export interface Corpus {
  documents: string[]
  /** How the manifest describes the source (without the document count and hash) */
  description: { kind: 'nlp-corpus', package: string, version: string } | { kind: 'files', files: Array<{ name: string, sha256: string }> }
}

async function nlpCorpusVersion (): Promise<string> {
  // nlp-corpus exports only its entry point; find package.json from there
  let dir = dirname(fileURLToPath(import.meta.resolve('nlp-corpus')))
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'))
      if (pkg.name === 'nlp-corpus') return String(pkg.version)
    } catch {}
    dir = dirname(dir)
  }
  return 'unknown'
}

/** Split a .txt file into documents at blank lines (lines inside a paragraph keep their '\n') */
export function splitParagraphs (text: string): string[] {
  return text.split(/\r?\n(?:[ \t]*\r?\n)+/).map(d => d.replace(/^\s+|\s+$/g, '')).filter(d => d.length > 0)
}

/**
 * Read the documents of a corpus. `'nlp-corpus'` is every sentence of the npm package `nlp-corpus`
 * (MIT) in its fixed order, one document per sentence.
 */
export async function readCorpus (source: CorpusSource): Promise<Corpus> {
  if (source === 'nlp-corpus') {
    return { documents: corpus.all(), description: { kind: 'nlp-corpus', package: 'nlp-corpus', version: await nlpCorpusVersion() } }
  }
  if (typeof source !== 'object' || source === null || !Array.isArray(source.files) || source.files.length === 0) {
    throw new InvalidParametersError('source must be "nlp-corpus" or { files: string[] }')
  }
  const field = source.textField ?? 'text'
  const documents: string[] = []
  const files: Array<{ name: string, sha256: string }> = []
  for (const path of source.files) {
    let bytes: Uint8Array
    try {
      bytes = await readFile(path)
    } catch (err) {
      throw new CorpusFormatError(`cannot read ${path}: ${(err as Error).message}`)
    }
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    } catch {
      throw new CorpusFormatError(`${path} is not valid UTF-8`)
    }
    files.push({ name: basename(path), sha256: sha256Hex(bytes) })
    if (path.endsWith('.jsonl')) {
      const lines = text.split('\n')
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i].trim()
        if (line === '') continue
        let obj: unknown
        try {
          obj = JSON.parse(line)
        } catch {
          throw new CorpusFormatError(`${path}:${i + 1}: not JSON`)
        }
        const t = typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[field] : undefined
        if (typeof t !== 'string') throw new CorpusFormatError(`${path}:${i + 1}: no string field "${field}"`)
        if (t.length > 0) documents.push(t)
      }
    } else if (path.endsWith('.txt')) {
      documents.push(...splitParagraphs(text))
    } else {
      throw new CorpusFormatError(`${path}: only .txt and .jsonl files are supported`)
    }
  }
  return { documents, description: { kind: 'files', files } }
}
