/**
 * @packageDocumentation
 *
 * The NeuroShard genesis dataset, verifiable by anyone: content-addressed token shards, a manifest
 * with every shard's sha256, a deterministic `(peer id, round) → shards` assignment, and a loader
 * that refuses tampered shards and yields `(input, target)` batches. Format: `specs/genesis-data`.
 */

export { buildGenesisDataset, documentSplit, validationThreshold } from './build.js'
export type { BuildGenesisDatasetOptions, BuildProgress, BuildResult } from './build.js'
export { readCorpus, splitParagraphs } from './corpus.js'
export type { Corpus, CorpusSource } from './corpus.js'
export { computeManifestHash, validateManifest } from './manifest.js'
export type { GenesisManifest, ManifestSource, ShardEntry, Split } from './manifest.js'
export { encodeShard, decodeShard } from './shard.js'
export type { TokenArray } from './shard.js'
export { assignShards, assignmentScore } from './assign.js'
export type { AssignOptions } from './assign.js'
export { loadShard, loadDataset, readManifest, readDatasetTokenizerJson, verifyDataset } from './loader.js'
export type { Shard, LoadOptions, LoadDatasetOptions, VerifyReport } from './loader.js'
export { batches, windowOrder, ShuffleStream } from './batches.js'
export type { Batch, BatchOptions } from './batches.js'
export { canonicalJson, sha256Hex } from './hash.js'
export * from './constants.js'
export * from './errors.js'
