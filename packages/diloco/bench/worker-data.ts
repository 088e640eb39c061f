/**
 * The experiments' data, shared by `experiments.ts` and `round-probe.ts`: the genesis dataset in `genesis`, each of
 * `workers` workers' training shards by genesis-data's deterministic assignment (`worker-i`, an equal share each),
 * all training shards, and the validation shards.
 */
import { assignShards, loadDataset, readManifest } from '@neuroshard/genesis-data'
import type { GenesisManifest } from '@neuroshard/genesis-data'

export interface WorkerData {
  manifest: GenesisManifest
  /** Training shards per worker */
  perWorker: number
  workerShards: Array<Array<ArrayLike<number>>>
  allShards: Array<ArrayLike<number>>
  valShards: Array<ArrayLike<number>>
}

export async function loadWorkerData (genesis: string, workers: number): Promise<WorkerData> {
  const manifest = await readManifest(genesis)
  const train = await loadDataset(genesis, { split: 'train' })
  const val = await loadDataset(genesis, { split: 'validation' })
  const byHash = new Map(train.shards.map(s => [s.hash, s.tokens]))
  const perWorker = Math.floor(train.shards.length / workers)
  const workerShards = Array.from({ length: workers }, (_, i) =>
    assignShards(manifest, `worker-${i}`, 0, perWorker).map(h => byHash.get(h) as ArrayLike<number>))
  return { manifest, perWorker, workerShards, allShards: train.shards.map(s => s.tokens), valShards: val.shards.map(s => s.tokens) }
}
