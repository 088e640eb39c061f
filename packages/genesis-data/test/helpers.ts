import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import corpus from 'nlp-corpus'
import { trainBpe } from '@neuroshard/tokenizer'
import type { BpeTokenizer } from '@neuroshard/tokenizer'

let tok: BpeTokenizer | undefined
/** A small tokenizer trained on the start of the genesis corpus */
export function smallTokenizer (): BpeTokenizer {
  tok ??= trainBpe(corpus.some(2000), { vocabSize: 512 })
  return tok
}

/** Sentences 2000… of nlp-corpus (not the tokenizer's training slice) */
export function sentences (n: number): string[] {
  return corpus.some(2000 + n).slice(2000)
}

/** A temp dir removed by the returned cleanup */
export async function tempDir (): Promise<{ dir: string, cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ns-genesis-'))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}

/** Write a .jsonl corpus file and a .txt one (paragraphs) from sentences */
export async function writeCorpusFiles (dir: string, docs: string[]): Promise<string[]> {
  const half = Math.floor(docs.length / 2)
  const jsonl = join(dir, 'a.jsonl')
  const txt = join(dir, 'b.txt')
  await writeFile(jsonl, docs.slice(0, half).map(text => JSON.stringify({ text, id: 1 })).join('\n') + '\n')
  await writeFile(txt, docs.slice(half).join('\n\n') + '\n')
  return [jsonl, txt]
}
