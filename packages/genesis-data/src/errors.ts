/** A shard's bytes do not hash to its name, or disagree with its manifest entry: tampered or corrupt */
export class ShardIntegrityError extends Error {
  static override name = 'ShardIntegrityError'
  override name = 'ShardIntegrityError'
}

/** A shard whose hash is right but whose contents are not a valid shard file (bad magic, version, size, token id) */
export class ShardFormatError extends Error {
  static override name = 'ShardFormatError'
  override name = 'ShardFormatError'
}

/** A shard listed in the manifest is missing from disk */
export class ShardNotFoundError extends Error {
  static override name = 'ShardNotFoundError'
  override name = 'ShardNotFoundError'
}

/** `manifest.json` is missing, not JSON, or does not follow the schema */
export class ManifestError extends Error {
  static override name = 'ManifestError'
  override name = 'ManifestError'
}

/** `manifest.json` parses but its `manifestHash` (or the tokenizer it names) does not match its contents */
export class ManifestIntegrityError extends Error {
  static override name = 'ManifestIntegrityError'
  override name = 'ManifestIntegrityError'
}

/** A corpus file that cannot be read as text / JSONL */
export class CorpusFormatError extends Error {
  static override name = 'CorpusFormatError'
  override name = 'CorpusFormatError'
}
