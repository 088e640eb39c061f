import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prepareData } from '../../src/workspace.js'
import { testCorpus } from './corpus.js'
import type { PreparedData } from '../../src/workspace.js'

/**
 * A fresh data directory (`neuroshard-<name>-…` in the temp dir) holding `documents` documents of the test corpus,
 * built into genesis data and a tokenizer of `vocabSize` as the node tests' devnets use them. The caller removes `dir`.
 */
export async function prepareTestData (name: string, documents: number, vocabSize = 300): Promise<{ dir: string, data: PreparedData }> {
  const dir = await mkdtemp(join(tmpdir(), `neuroshard-${name}-`))
  await writeFile(join(dir, 'corpus.txt'), testCorpus(documents).join('\n\n'))
  const data = await prepareData({ dataDir: dir, source: { files: [join(dir, 'corpus.txt')] }, vocabSize, shardTokens: 4096, validationFraction: 0.05 })
  return { dir, data }
}
