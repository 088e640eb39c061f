import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startNetworkDevnet } from '../../src/network/devnet.js'
import { prepareData } from '../../src/workspace.js'
import { testCorpus } from './corpus.js'
import type { NetworkDevnet, NetworkDevnetInit } from '../../src/network/devnet.js'
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

/**
 * `prepareTestData(name, documents)` and a devnet over it (`startNetworkDevnet` with the prepared tokenizer and
 * data, no ledger unless `init` gives one). The caller stops `devnet` and removes `dir` (`stopTestDevnet`).
 */
export async function startTestDevnet (name: string, documents: number, init: Omit<NetworkDevnetInit, 'tokenizer' | 'data'>): Promise<{ dir: string, data: PreparedData, devnet: NetworkDevnet }> {
  const { dir, data } = await prepareTestData(name, documents)
  const devnet = await startNetworkDevnet({
    ledger: false,
    ...init,
    tokenizer: data.tokenizer,
    data: { manifest: data.manifest, train: data.train, validation: data.validation }
  })
  return { dir, data, devnet }
}

/** Stop a test devnet and remove its data directory (either may be missing after a failed set-up) */
export async function stopTestDevnet (devnet: NetworkDevnet | undefined, dir: string | undefined): Promise<void> {
  await devnet?.stop()
  if (dir != null) await rm(dir, { recursive: true, force: true })
}
