/** Constants of the genesis dataset format. The format is specified in `specs/genesis-data/README.md`. */

/** Shard file magic, ASCII "NSGD" */
export const SHARD_MAGIC = Uint8Array.from([0x4e, 0x53, 0x47, 0x44])
/** Shard file format version */
export const SHARD_VERSION = 1
/** Bytes before the token ids in a shard file */
export const SHARD_HEADER_BYTES = 12
/** `format` field of manifest.json */
export const MANIFEST_FORMAT = 'neuroshard-genesis-dataset'
/** `version` field of manifest.json */
export const MANIFEST_VERSION = 1
/** Domain separation prefix of the document → split hash */
export const SPLIT_DOMAIN = 'neuroshard-genesis-split/v1'
/** Domain separation prefix of the (peer, round, shard) assignment score */
export const ASSIGN_DOMAIN = 'neuroshard-genesis-assign/v1'
/** Domain separation prefix of the batch-order random stream */
export const SHUFFLE_DOMAIN = 'neuroshard-genesis-shuffle/v1'

/**
 * Tokens per shard (the last shard of each split may be shorter).
 *
 * @default 65536
 */
export const DEFAULT_SHARD_TOKENS = 65_536
/**
 * Fraction of documents that go to the validation split.
 *
 * @default 0.02
 */
export const DEFAULT_VALIDATION_FRACTION = 0.02
/** Largest shard accepted by the loader, in bytes (a size cap on every read) @default 256 MiB */
export const MAX_SHARD_BYTES = 256 * 1024 * 1024
/** Largest manifest accepted by the loader @default 64 MiB */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024
